"""A Falcon service whose routes block the gevent hub, or do not, for the hub-block monitor's tests.

Routes::

    GET /ok          answers at once (a traced request: starts the monitor in a uWSGI worker)
    GET /block       an unpatched 300 ms sleep: blocks the hub
    GET /coop        gevent.sleep(0.3): yields to the hub, blocks nothing (negative control)
    GET /wait        gevent.sleep(0.8): in flight while another request blocks
    GET /slowlog     logs one line through a handler that sends it synchronously, on an unpatched socket,
                     to the log server at HUB_TEST_LOG_SERVER (host:port), which acknowledges after 300 ms
    GET /spawn       starts a background greenlet that blocks the hub for 250 ms, outside any request
    GET /monitor     whether the monitor runs in this worker
    GET /health      the server's readiness probe (excluded from telemetry)

Lines the tests look up are marked ``# MARK: <name>``.
"""

from __future__ import annotations

import logging
import os
import sys

import otel_showmax

otel_showmax.setup(service_name=os.environ.get("OTEL_SERVICE_NAME", "hubapp"))

import falcon  # noqa: E402
import gevent  # noqa: E402
import logconfig  # noqa: E402  (the catalogue example's local JSON lines with trace ids)
from gevent import monkey  # noqa: E402

logconfig.configure()
log = logging.getLogger("hubapp")


unpatched_sleep = monkey.get_original("time", "sleep")  # what `from time import sleep` before patching gives


class RemoteLogHandler(logging.Handler):
    """The seed's bug: a remote logging handler doing synchronous network I/O inside the request."""

    def __init__(self, address: str) -> None:
        super().__init__()
        host, _, port = address.rpartition(":")
        self.address = (host, int(port))

    def emit(self, record: logging.LogRecord) -> None:
        sock = monkey.get_original("socket", "socket")()
        try:
            sock.connect(self.address)
            sock.sendall(self.format(record).encode() + b"\n")
            sock.recv(16)  # MARK: remote-ack
        finally:
            sock.close()


remote = logging.getLogger("hubapp.remote")
if os.environ.get("HUB_TEST_LOG_SERVER"):
    remote.addHandler(RemoteLogHandler(os.environ["HUB_TEST_LOG_SERVER"]))


class Ok:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


class Block:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        unpatched_sleep(0.3)  # MARK: block
        resp.media = {"blocked": 0.3}


class Coop:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        gevent.sleep(0.3)
        resp.media = {"slept": 0.3}


class Wait:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        gevent.sleep(0.8)
        resp.media = {"slept": 0.8}


class SlowLog:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        remote.warning("payment provider answered slowly")
        resp.media = {"logged": True}


class Monitor:
    """Whether the hub monitor runs in this worker."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from otel_showmax._instrumentation import hub_monitor

        resp.media = {"running": hub_monitor.is_running()}


def nightly_cleanup() -> None:  # MARK: cleanup
    gevent.sleep(0.05)  # after the request that spawned it has answered
    unpatched_sleep(0.25)  # MARK: background


class Spawn:
    """Starts a background greenlet (plain gevent.spawn: no trace context) that blocks the hub."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        gevent.spawn(nightly_cleanup)
        resp.media = {"spawned": True}


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok", "pid": os.getpid()}


app = application = falcon.App()
app.add_route("/ok", Ok())
app.add_route("/block", Block())
app.add_route("/coop", Coop())
app.add_route("/wait", Wait())
app.add_route("/slowlog", SlowLog())
app.add_route("/spawn", Spawn())
app.add_route("/monitor", Monitor())
app.add_route("/health", Health())


if __name__ == "__main__":  # pragma: no cover
    sys.exit("served by gunicorn or uWSGI in tests/integration/test_hub_monitor.py")
