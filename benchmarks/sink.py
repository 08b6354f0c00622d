"""A counting OTLP/HTTP receiver for the overhead benchmark: ``python benchmarks/sink.py``.

The package's receiver (``python -m otel_showmax.receiver``) turns every record into a JSON line:
~30 µs of CPU per item, ~90 µs per request of the catalogue endpoint. On these 2-vCPU machines a
busy neighbour vCPU slows the worker's own thread by up to half (BENCHMARKS.md, "The machine"), so
that receiver taxed the configuration that exports more records. A collector is far cheaper per
item; this sink parses each export request (protobuf, C implementation) and only counts what the
runner verifies — the benchmarked service's spans (server spans apart), application and request
log records, metric points — so every configuration's telemetry is still checked, exactly
(tests/test_bench_sink.py: the same counts as the full receiver's, from the same exports).

Prints its endpoint on the first line of stdout; ``GET /counts`` answers the counts as JSON.
Listens on 127.0.0.1 only; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SERVER_KIND = 2  # Span.SpanKind.SPAN_KIND_SERVER


def _service(resource: Any) -> str:
    for attribute in resource.attributes:
        if attribute.key == "service.name":
            return str(attribute.value.string_value)
    return ""


class Counts:
    """What the runner checks, counted per export request (thread-safe)."""

    def __init__(self, service: str, app_log_text: str, request_logger: str) -> None:
        self.service = service
        self.app_log_text = app_log_text
        self.request_logger = request_logger
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        got: Counter[str] = Counter()
        for resource_spans in request.resource_spans:
            ours = _service(resource_spans.resource) == self.service
            if not ours:
                continue
            for scope_spans in resource_spans.scope_spans:
                got["spans_total"] += len(scope_spans.spans)
                got["spans"] += sum(1 for span in scope_spans.spans if span.kind == SERVER_KIND)
        self._add(got)

    def logs(self, body: bytes) -> None:
        request = ExportLogsServiceRequest.FromString(body)
        got: Counter[str] = Counter()
        text = self.app_log_text
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                records = scope_logs.log_records
                got["logs_total"] += len(records)
                if scope_logs.scope.name == self.request_logger:
                    got["request_logs"] += len(records)
                got["app_logs"] += sum(1 for record in records if text in record.body.string_value)
        self._add(got)

    def metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        points = 0
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    if kind:
                        points += len(getattr(metric, kind).data_points)
        self._add(Counter(metric_points=points))

    def _add(self, got: Counter[str]) -> None:
        with self._lock:
            self._counts.update(got)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            keys = ("spans", "spans_total", "app_logs", "request_logs", "logs_total", "metric_points")
            return {key: self._counts[key] for key in keys}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    counts: Counts  # set on the subclass made in main()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding", "").strip().lower() == "gzip":
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        handler = {"/v1/traces": self.counts.traces, "/v1/logs": self.counts.logs,
                   "/v1/metrics": self.counts.metrics}.get(self.path.split("?", 1)[0])
        if handler is None:
            self._reply(404, b"unknown path\n", "text/plain")
            return
        try:
            handler(body)
        except Exception as error:  # a malformed body is the sender's bug: say so, keep serving
            self._reply(400, f"malformed OTLP protobuf: {error!r}\n".encode(), "text/plain")
            return
        self._reply(200, b"", "application/x-protobuf")  # an empty Export*ServiceResponse

    def do_GET(self) -> None:
        if self.path != "/counts":
            self._reply(404, b"GET /counts\n", "text/plain")
            return
        self._reply(200, json.dumps(self.counts.snapshot()).encode(), "application/json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", required=True, help="service.name whose server spans are counted")
    parser.add_argument("--app-log-text", required=True, help="log bodies containing this are application logs")
    parser.add_argument("--request-logger", required=True, help="instrumentation scope of request log records")
    args = parser.parse_args(argv)
    handler = type("Handler", (_Handler,), {"counts": Counts(args.service, args.app_log_text, args.request_logger)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
