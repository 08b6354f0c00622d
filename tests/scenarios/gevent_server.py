"""A gevent-served Falcon app configured by otel_showmax, with a hub-lag probe.

Usage: gevent_server.py PORT STATS_FILE. On SIGTERM it stops serving, writes
{"served", "max_lag_ms", "dropped", "shutdown_s"} to STATS_FILE and exits.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import falcon  # noqa: E402
import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

import otel_showmax  # noqa: E402

otel_showmax.setup(service_name="never-blocks")
log = logging.getLogger("catalogue")
log.setLevel(logging.INFO)
TITLES = [{"id": i, "title": f"Title {i}", "year": 2000 + i} for i in range(20)]
served = 0


class Titles:
    def on_get(self, req, resp):
        global served
        served += 1
        log.info("listing %d titles", len(TITLES))
        resp.media = TITLES


app = falcon.App()
app.add_route("/titles", Titles())
max_lag = 0.0


def probe() -> None:
    global max_lag
    while True:
        start = time.perf_counter()
        gevent.sleep(0.01)
        max_lag = max(max_lag, time.perf_counter() - start - 0.01)


gevent.spawn(probe)
server = WSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None, error_log=None)


gevent.signal_handler(signal.SIGTERM, lambda: gevent.spawn(server.stop, 1))
server.serve_forever()
start = time.monotonic()
otel_showmax.shutdown()
stats = {
    "served": served,
    "max_lag_ms": max_lag * 1000,
    "dropped": otel_showmax.dropped(),
    "shutdown_s": time.monotonic() - start,
}
with open(sys.argv[2], "w") as f:
    json.dump(stats, f)
