"""The catalogue API: a small Falcon service in the spirit of the Showmax catalogue.

Endpoints::

    GET /titles?genre=&year=&q=&offset=0&limit=20   a page of titles (20 by default), filtered
    GET /titles/{title_id}                          one title, 404 when unknown
    GET /search?q=                                  titles whose name or cast matches q
    GET /health                                     liveness (excluded from tracing and request logs)

Telemetry has two entry points, and this module works with both:

* zero-code: ``opentelemetry-instrument gunicorn -c gunicorn.conf.py catalogue:app`` — the wrapper
  configures the process before this module is imported; the ``setup()`` call below then returns
  the active configuration and changes nothing;
* in code: ``gunicorn -c gunicorn.conf.py catalogue:app`` (or uWSGI) — the ``setup()`` call below
  configures the process. It must run before ``falcon.App`` is created: the Falcon
  instrumentation replaces ``falcon.App`` when it is switched on.

Titles live in SQLite and pages are cached in Redis when ``REDIS_URL`` is set (``store.py``); the
sqlite3 and redis instrumentors ``setup()`` turns on make each query and cache call a span. Each
request writes one application log line; otel_showmax adds the request log ("canonical log line")
and the trace ids to both.
"""

from __future__ import annotations

import os

import otel_showmax

# The service name comes from OTEL_SERVICE_NAME when set, so the wrapper's configuration and this
# call agree (a different one would be reported once and ignored: the first configuration wins).
otel_showmax.setup(service_name=os.environ.get("OTEL_SERVICE_NAME", "catalogue"))

import falcon  # noqa: E402  (after setup(): see the module docstring)
import logconfig  # noqa: E402  (local JSON lines with trace ids; see logconfig.py)
import store  # noqa: E402  (SQLite titles, Redis cache: traced by the instrumentors setup() turned on)

logconfig.configure()
log = otel_showmax.get_logger("catalogue")  # the seed's helper, safe to call anywhere, any number of times

store.build()
MAX_LIMIT = 100


def _int_param(req: falcon.Request, name: str, default: int, low: int, high: int) -> int:
    value = req.get_param_as_int(name, min_value=low, max_value=high)
    return default if value is None else value


class Titles:
    """A page of titles, optionally filtered by genre, year and a text query."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        genre = req.get_param("genre")
        year = req.get_param_as_int("year")
        query = (req.get_param("q") or "").lower()
        offset = _int_param(req, "offset", 0, 0, 1_000_000)
        limit = _int_param(req, "limit", 20, 1, MAX_LIMIT)
        page, total = store.titles(genre, year, query, offset, limit)
        log.info("listed %d of %d titles", len(page), total,
                 extra={"catalogue.genre": genre or "", "catalogue.offset": offset})
        resp.media = {"titles": page, "total": total, "offset": offset, "limit": limit}


class Title:
    """One title by id."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, title_id: int) -> None:
        title = store.title(title_id)
        if title is None:
            log.info("title %d not found", title_id)
            raise falcon.HTTPNotFound(title="No such title", description=f"title {title_id} does not exist")
        log.info("title %d: %s", title_id, title["title"])
        resp.media = title


class Search:
    """Titles whose name or cast contains the query."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = req.get_param("q", required=True).lower()
        hits = store.search(query, MAX_LIMIT)
        log.info("search matched %d titles", len(hits))
        resp.media = {"query": query, "titles": hits, "total": len(hits)}


class Health:
    """Liveness probe; otel_showmax excludes it from tracing and from the request log."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok", "pid": os.getpid()}


def create_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/titles", Titles())
    app.add_route("/titles/{title_id:int}", Title())
    app.add_route("/search", Search())
    app.add_route("/health", Health())
    return app


app = application = create_app()  # gunicorn: catalogue:app; uWSGI: module = catalogue

_config = otel_showmax.get_config()
if _config is not None and _config.provenance is not None:
    log.info("catalogue app loaded in pid %d; telemetry configured by %s in pid %d",
             os.getpid(), _config.provenance.entry_point, _config.provenance.pid)


if __name__ == "__main__":  # a quick local run without a server: python catalogue.py
    from wsgiref.simple_server import make_server

    port = int(os.environ.get("PORT", "8000"))
    print(f"catalogue on http://127.0.0.1:{port}/titles")
    make_server("127.0.0.1", port, app).serve_forever()
