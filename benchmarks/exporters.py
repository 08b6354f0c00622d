"""CPU per exported item, whole exporter: otel_showmax's OTLP exporters against upstream's, HTTP and gRPC.

    PYTHONPATH=. benchmarks/.venv-upstream/bin/python benchmarks/exporters.py   # against the NEWEST upstream
    .venv/bin/python benchmarks/exporters.py                                    # against the main virtualenv's

What a service pays per exported span and log record for the custom export paths
(otel_showmax/_export/otlp_http.py: lean encoder + urllib3 transport; otel_showmax/_export/otlp_grpc.py:
lean encoder's bytes on upstream's channel) against upstream's exporters as a user gets them
(OTLPSpanExporter / OTLPLogExporter, HTTP with its default transport, and gRPC), all exporting the
same batches (Falcon server spans with the instrumentation's attributes; request-log-shaped records,
benchmarks/encode.py) to a live receiver in its own process (python -m otel_showmax.receiver).

Each round calls ``export()`` on each exporter in turn (A B C D …) for ``--exports`` batches; the
report gives the median over rounds of this process's CPU time (every thread, gRPC's included) per
item. Every export must succeed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--exports", type=int, default=4, help="exports per exporter per round")
    args = parser.parse_args()

    import importlib.metadata as md

    from encode import falcon_spans, request_logs
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as UpGrpcLogs
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as UpGrpcSpans
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as UpHttpLogs
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as UpHttpSpans

    from otel_showmax._export.otlp_grpc import GrpcLogExporter, GrpcSpanExporter
    from otel_showmax._export.otlp_http import HTTPLogExporter, HTTPSpanExporter, use_urllib3
    from otel_showmax.receiver import ReceiverProcess

    spans = falcon_spans(args.batch)
    logs = request_logs(args.batch)
    receiver = ReceiverProcess(grpc=True).start()
    try:
        http = str(receiver.endpoint).rstrip("/")
        grpc = str(receiver.grpc_endpoint)
        ours_http_spans = HTTPSpanExporter(endpoint=f"{http}/v1/traces")
        ours_http_logs = HTTPLogExporter(endpoint=f"{http}/v1/logs")
        assert use_urllib3(ours_http_spans, http) and use_urllib3(ours_http_logs, http), "urllib3 switch refused"
        exporters = {
            "spans": {
                "upstream http": (UpHttpSpans(endpoint=f"{http}/v1/traces"), spans),
                "ours http": (ours_http_spans, spans),
                "upstream grpc": (UpGrpcSpans(endpoint=grpc, insecure=True), spans),
                "ours grpc": (GrpcSpanExporter(endpoint=grpc, insecure=True), spans),
            },
            "logs": {
                "upstream http": (UpHttpLogs(endpoint=f"{http}/v1/logs"), logs),
                "ours http": (ours_http_logs, logs),
                "upstream grpc": (UpGrpcLogs(endpoint=grpc, insecure=True), logs),
                "ours grpc": (GrpcLogExporter(endpoint=grpc, insecure=True), logs),
            },
        }
        for table in exporters.values():  # warm-up: connections, caches
            for exporter, items in table.values():
                assert exporter.export(items).name == "SUCCESS"
        spent: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for signal, table in exporters.items():
                for name, (exporter, items) in table.items():
                    start = time.process_time()
                    for _ in range(args.exports):
                        result = exporter.export(items)
                        assert result.name == "SUCCESS", (signal, name, result)
                    spent.setdefault((signal, name), []).append(
                        (time.process_time() - start) / (args.exports * len(items)) * 1e6)
        versions = {n: md.version(n) for n in ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
                                                "opentelemetry-exporter-otlp-proto-grpc", "grpcio")}
        print(f"python {sys.version.split()[0]}, cores {os.cpu_count()}, batch {args.batch}, {args.rounds} rounds x "
              f"{args.exports} exports; {', '.join(f'{k} {v}' for k, v in versions.items())}")
        print("| item | upstream HTTP | ours HTTP (ratio) | upstream gRPC | ours gRPC (ratio) |\n|---|---|---|---|---|")
        for signal in exporters:
            m = {name: statistics.median(spent[(signal, name)]) for name in exporters[signal]}
            print(f"| {signal} (CPU µs per item) | {m['upstream http']:.2f} | {m['ours http']:.2f} "
                  f"({m['ours http'] / m['upstream http']:.2f}) | {m['upstream grpc']:.2f} | {m['ours grpc']:.2f} "
                  f"({m['ours grpc'] / m['upstream grpc']:.2f}) |")
        for table in exporters.values():
            for exporter, _ in table.values():
                exporter.shutdown()
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
