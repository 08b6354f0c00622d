"""The request log's own cost per request, in isolation: ``request_log.write`` in a loop.

    .venv/bin/python benchmarks/request_log_finish.py
    PYTHONPATH=/path/to/other-checkout .venv/bin/python benchmarks/request_log_finish.py   # another tree

Inside a span, correlation installed, the bridge queueing into a bounded deque: once with the bridge
alone on the root logger, once with a local handler that discards records beside it (what a
StreamHandler costs on top is left out). Prints the best of 5 repeats of 100,000 calls, 3 times
alternated.
"""

from __future__ import annotations

import collections
import logging
import timeit
import types
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from otel_showmax import correlation
from otel_showmax._instrumentation import request_log
from otel_showmax._pipeline.log_bridge import BridgeHandler


class Discard(logging.Handler):
    def handle(self, record: logging.LogRecord) -> bool:
        return True

    def emit(self, record: logging.LogRecord) -> None:
        pass


def main() -> None:
    queued: collections.deque[Any] = collections.deque(maxlen=256)
    bridge = BridgeHandler(queued.append)
    bridge.injected = frozenset(correlation.FIELD_PRESETS["plain"])  # as setup() does (the patch reads it)
    root = logging.getLogger()
    root.handlers[:] = [bridge]
    root.setLevel(logging.INFO)
    correlation.install("plain", service_name="svc")
    logger = logging.getLogger("otel_showmax.request")
    options = types.SimpleNamespace(request_log=True, logger=logger, level=logging.INFO)
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/titles", "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "wrk/4.2.0"}
    req = types.SimpleNamespace(uri_template="/titles")
    resp = types.SimpleNamespace(status_code=200)
    # request_log.write; in older checkouts RequestLogMiddleware._finish.
    finish = getattr(request_log, "write", None) or request_log.RequestLogMiddleware._finish
    n = 100_000
    with TracerProvider().get_tracer("bench").start_as_current_span("request"):
        for label, extra in [("bridge only", []), ("bridge + local handler", [Discard()])] * 3:
            root.handlers[:] = [bridge, *extra]
            best = min(timeit.repeat(lambda: finish(env, req, resp, 0.0, options), number=n, repeat=5))
            print(f"{label:24} {best / n * 1e6:.2f} µs per request log ({type(queued[-1]).__name__} queued)")


if __name__ == "__main__":
    main()
