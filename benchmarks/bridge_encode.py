"""Export-thread CPU per bridged log record: Converter + encode_logs vs the direct path.

Usage: .venv/bin/python benchmarks/bridge_encode.py [--batch 512] [--rounds 30]

The records are what a request logs through the stdlib bridge in benchmarks/catalogue_app.py:
the application line (two ``extra`` attributes) and otel_showmax.falcon's request log (seven),
inside the server span, with the injected correlation fields the bridge skips. They are queued by
the real BridgeHandler (as _Pending items); each round turns the whole batch into the
ExportLogsServiceRequest bytes both ways (Converter + encode_logs, then Converter.encode),
alternating which goes first, after checking the bytes are equal. Reported: median and best CPU
time (thread time) per record in microseconds; the first (cold cache) round is not counted.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def queued_records(n: int) -> list:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from otel_showmax._pipeline.log_bridge import BridgeHandler

    tracer = TracerProvider(resource=Resource.create({"service.name": "catalogue"})).get_tracer("bench")
    queued: list = []
    app = logging.getLogger("catalogue.api")
    access = logging.getLogger("otel_showmax.request")
    handler = BridgeHandler(queued.append)
    for lg in (app, access):
        lg.handlers[:] = [handler]
        lg.propagate = False
        lg.setLevel(logging.INFO)
    for i in range(n // 2):
        with tracer.start_as_current_span("GET /titles") as span:
            ctx = span.get_span_context()
            correlation = {  # what otel_showmax's record factory injects (skipped by the bridge)
                "otelTraceID": format(ctx.trace_id, "032x"), "otelSpanID": format(ctx.span_id, "016x"),
                "otelTraceSampled": True, "otelServiceName": "catalogue",
            }
            app.info("listed %d of %d titles", 20, 120 + i,
                     extra={**correlation, "catalogue.genre": "drama", "catalogue.offset": i % 5 * 20})
            access.info(  # shaped like otel_showmax.falcon's request log
                "%s %s %d %.1fms", "GET", "/titles", 200, 1.25 + i % 7,
                extra={**correlation, "http.request.method": "GET", "http.route": "/titles",
                       "url.path": "/titles", "http.response.status_code": 200, "duration_ms": 1.25 + i % 7,
                       "client.address": f"10.0.{i % 3}.{i % 250}", "user_agent.original": "wrk/4.2"},
            )
    return queued


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    from opentelemetry.sdk._logs import LogRecordLimits
    from opentelemetry.sdk.resources import Resource

    from otel_showmax._export.protobuf import encode_logs
    from otel_showmax._pipeline.log_bridge import Converter

    resource = Resource.create({"service.name": "catalogue", "process.pid": os.getpid()})
    injected = frozenset(("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName"))
    converter = Converter(lambda: resource, LogRecordLimits(), injected, direct=True)
    batch = queued_records(args.batch)

    def current() -> bytes:
        return encode_logs(converter.convert_batch(batch))

    def direct() -> bytes:
        return converter.encode(batch).data

    assert current() == direct(), "the direct path's bytes differ"
    times: dict[str, list[float]] = {"current": [], "direct": []}
    clock = time.thread_time
    for r in range(args.rounds + 1):
        order = [("current", current), ("direct", direct)]
        if r % 2:
            order.reverse()
        for name, fn in order:
            t0 = clock()
            fn()
            elapsed = clock() - t0
            if r:
                times[name].append(elapsed / len(batch) * 1e6)
    print(f"{len(batch)} records per batch, {args.rounds} rounds, CPU µs per record (thread time)")
    for name, values in times.items():
        print(f"  {name:8s} median {statistics.median(values):6.2f}  best {min(values):6.2f}")
    ratio = statistics.median(times["current"]) / statistics.median(times["direct"])
    print(f"  speed-up (median): {ratio:.2f}x")


if __name__ == "__main__":
    main()
