"""A storefront that never calls setup() itself: the app object is built at import.

Served with ``gunicorn --preload -c late_setup_conf.py``: the master imports this module (the app
is built before any telemetry is configured) and each worker calls ``otel_showmax.setup()`` in its
``post_fork`` hook, the fork-model recipe of upstream's documentation.
"""

from __future__ import annotations

import logging
import os

import falcon
import requests

CATALOGUE_URL = os.environ.get("CATALOGUE_URL", "http://127.0.0.1:8000").rstrip("/")
log = logging.getLogger("storefront")


class Home:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        upstream = requests.get(f"{CATALOGUE_URL}/titles", params={"limit": 6}, timeout=10)
        titles = upstream.json()["titles"]
        log.info("home page with %d titles", len(titles))
        resp.media = {"rows": [{"name": "featured", "titles": [t["id"] for t in titles]}]}


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok", "pid": os.getpid()}


app = falcon.App()
app.add_route("/home", Home())
app.add_route("/health", Health())
