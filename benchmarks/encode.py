"""Per-span and per-log-record OTLP encoding cost: otel_showmax._export.protobuf vs upstream.

Usage: .venv/bin/python benchmarks/encode.py [--batch 512] [--rounds 30]

Spans come from a real Falcon app under opentelemetry-instrumentation-falcon (a server span with the
instrumentation's default attributes, a different target and peer port per request); log records
from the SDK LoggerProvider, shaped like the request log line (a string body, code.* attributes,
trace and span ids). Each round encodes the whole batch with both encoders (alternating) and the
report gives the median and best per-item CPU time (process time) in microseconds. Our encoder's caches are warm after
the first round, as they are in a running service; the first ("cold") batch is reported apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def falcon_spans(n: int) -> list:
    import falcon
    import falcon.testing
    from opentelemetry.instrumentation.falcon import FalconInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "catalogue", "process.pid": os.getpid()}), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    FalconInstrumentor().instrument(tracer_provider=provider)
    try:

        class Titles:
            def on_get(self, req, resp, title_id):
                resp.media = {"id": title_id}

        app = falcon.App()
        app.add_route("/titles/{title_id}", Titles())
        client = falcon.testing.TestClient(app)
        for i in range(n):
            client.simulate_get(
                f"/titles/{i}", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) catalogue-bench/1.0"},
                remote_addr="10.0.3.17",
            )
    finally:
        FalconInstrumentor().uninstrument()
    return list(exporter.get_finished_spans())


def request_logs(n: int) -> list:
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "catalogue"}), shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("catalogue.api")
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("bench")
    for i in range(n):
        with tracer.start_as_current_span("GET /titles/{title_id}"):
            logger.emit(
                LogRecord(
                    severity_number=SeverityNumber.INFO,
                    severity_text="INFO",
                    body=f"served 20 titles for /titles/{i} in {i % 17}.{i % 10} ms",
                    attributes={
                        "code.file.path": "/srv/catalogue/api.py",
                        "code.function.name": "on_get",
                        "code.line.number": 42,
                    },
                )
            )
    return list(exporter.get_finished_logs())


_clock = time.process_time  # CPU time of this process: other load on the machine does not count


def measure(items: list, ours, upstream, rounds: int) -> dict:
    n = len(items)
    t = _clock()
    first = ours(items)
    cold = (_clock() - t) / n * 1e6
    assert first == upstream(items), "outputs differ"
    times: dict[str, list[float]] = {"ours": [], "upstream": []}
    for _ in range(rounds):
        for name, fn in (("upstream", upstream), ("ours", ours)):
            t = _clock()
            fn(items)
            times[name].append((_clock() - t) / n * 1e6)
    return {
        "upstream_median": statistics.median(times["upstream"]),
        "upstream_best": min(times["upstream"]),
        "ours_median": statistics.median(times["ours"]),
        "ours_best": min(times["ours"]),
        "ours_cold": cold,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as up_logs
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as up_spans

    from otel_showmax._export import protobuf as _encode

    spans = falcon_spans(args.batch)
    logs = request_logs(args.batch)
    print(f"python {sys.version.split()[0]}, batch {args.batch}, {args.rounds} rounds, cores {os.cpu_count()}")
    print(f"falcon server span: {len(spans[0].attributes)} attributes; log record: {len(logs[0].log_record.attributes)}")
    print(f"{'signal':<8} {'upstream µs/item':>18} {'ours µs/item':>14} {'ours cold':>10} {'speed-up':>9}")
    for signal, items, ours, upstream in (
        ("spans", spans, _encode.encode_spans, lambda b: up_spans(b).SerializePartialToString()),
        ("logs", logs, _encode.encode_logs, lambda b: up_logs(b).SerializeToString()),
    ):
        r = measure(items, ours, upstream, args.rounds)
        print(
            f"{signal:<8} {r['upstream_median']:>11.2f} (best {r['upstream_best']:.1f})"
            f" {r['ours_median']:>7.2f} (best {r['ours_best']:.1f}) {r['ours_cold']:>8.2f}"
            f" {r['upstream_median'] / r['ours_median']:>8.1f}x"
        )
    print(f"fallbacks to upstream: {_encode.fallbacks}")


if __name__ == "__main__":
    main()
