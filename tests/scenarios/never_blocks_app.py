"""The catalogue endpoint for tests/integration/test_never_blocks.py, served by gunicorn -k gevent.

A hub-lag probe runs beside the requests (GET /lag reads and resets it); at worker exit, after
otel_showmax's own bounded shutdown, it writes {"served", "max_lag_ms", "dropped"} to $STATS_FILE.
"""

import atexit
import json
import logging
import os
import time

import falcon
import gevent

served = 0
max_lag = 0.0


def write_stats() -> None:
    import otel_showmax

    with open(os.environ["STATS_FILE"], "w") as f:
        json.dump({"served": served, "max_lag_ms": max_lag * 1000, "dropped": otel_showmax.dropped()}, f)


atexit.register(write_stats)  # registered first, so it runs after otel_showmax's shutdown

import otel_showmax  # noqa: E402

otel_showmax.setup(service_name="never-blocks")
log = logging.getLogger("catalogue")
log.setLevel(logging.INFO)
TITLES = [{"id": i, "title": f"Title {i}", "year": 2000 + i} for i in range(20)]


class Titles:
    def on_get(self, req, resp):
        global served
        served += 1
        log.info("listing %d titles", len(TITLES))
        resp.media = TITLES


class Lag:
    """GET /lag: the worst hub stall seen since the last GET /lag (in ms), then reset it."""

    def on_get(self, req, resp):
        global max_lag
        resp.media = {"max_lag_ms": max_lag * 1000}
        max_lag = 0.0


app = falcon.App()
app.add_route("/titles", Titles())
app.add_route("/lag", Lag())


def probe() -> None:
    global max_lag
    while True:
        start = time.perf_counter()
        gevent.sleep(0.01)
        max_lag = max(max_lag, time.perf_counter() - start - 0.01)


gevent.spawn(probe)
