"""The storefront: a second small Falcon service that calls the catalogue API over HTTP.

One user request to the storefront is one distributed trace: the storefront's server span, the
client span of its ``requests`` call (``setup()`` turns on every installed instrumentor, requests'
among them, so the W3C ``traceparent`` header travels with it) and the catalogue's server span
share one trace id, and both services' log lines carry it.

Endpoints::

    GET /home?genre=drama      a home page: a row of titles from the catalogue (GET /titles)
    GET /watch/{title_id}      a title page (GET /titles/{title_id}); 404 passes through
    GET /health                liveness

Set ``CATALOGUE_URL`` (default ``http://127.0.0.1:8000``). Run it like the catalogue, e.g.
``OTEL_SERVICE_NAME=storefront gunicorn -c gunicorn.conf.py -b 127.0.0.1:8001 frontend:app``.
"""

from __future__ import annotations

import os
import threading

import otel_showmax

otel_showmax.setup(service_name=os.environ.get("OTEL_SERVICE_NAME", "storefront"))

import falcon  # noqa: E402  (after setup(): the Falcon instrumentation replaces falcon.App)
import logconfig  # noqa: E402  (local JSON lines with trace ids; see logconfig.py)
import requests  # noqa: E402  (traced: setup() turned on opentelemetry-instrumentation-requests)

logconfig.configure()
log = otel_showmax.get_logger("storefront")  # the seed's helper, safe to call anywhere, any number of times

CATALOGUE_URL = os.environ.get("CATALOGUE_URL", "http://127.0.0.1:8000").rstrip("/")
TIMEOUT = float(os.environ.get("CATALOGUE_TIMEOUT", "5"))

# One connection pool per process, made after fork (a pool inherited from a master is shared).
_sessions: dict[int, requests.Session] = {}
_sessions_lock = threading.Lock()


def session() -> requests.Session:
    pid = os.getpid()
    s = _sessions.get(pid)
    if s is None:
        with _sessions_lock:
            s = _sessions.setdefault(pid, requests.Session())
    return s


def catalogue(path: str, **params: object) -> requests.Response:
    try:
        return session().get(f"{CATALOGUE_URL}{path}", params=params or None, timeout=TIMEOUT)
    except requests.RequestException as error:
        log.warning("catalogue unreachable: %s", error)
        raise falcon.HTTPBadGateway(title="Catalogue unavailable")


class Home:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        genre = req.get_param("genre")
        params: dict[str, object] = {"limit": 6}
        if genre:
            params["genre"] = genre
        upstream = catalogue("/titles", **params)
        if upstream.status_code != 200:
            raise falcon.HTTPBadGateway(title="Catalogue error", description=f"status {upstream.status_code}")
        row = [{"id": t["id"], "title": t["title"]} for t in upstream.json()["titles"]]
        log.info("home page with %d titles", len(row), extra={"storefront.genre": genre or ""})
        resp.media = {"rows": [{"name": genre or "featured", "titles": row}]}


class Watch:
    def on_get(self, req: falcon.Request, resp: falcon.Response, title_id: int) -> None:
        upstream = catalogue(f"/titles/{title_id}")
        if upstream.status_code == 404:
            log.info("title %d not in the catalogue", title_id)
            raise falcon.HTTPNotFound(title="No such title")
        if upstream.status_code != 200:
            raise falcon.HTTPBadGateway(title="Catalogue error", description=f"status {upstream.status_code}")
        title = upstream.json()
        log.info("watch page for title %d", title_id)
        resp.media = {"title": title["title"], "year": title["year"], "cast": title["cast"]}


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok", "pid": os.getpid()}


def create_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/home", Home())
    app.add_route("/watch/{title_id:int}", Watch())
    app.add_route("/health", Health())
    return app


app = application = create_app()
