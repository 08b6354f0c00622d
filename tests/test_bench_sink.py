"""The benchmark's counting sink counts exactly what the full receiver decodes from the same exports."""

from __future__ import annotations

import sys
from pathlib import Path

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import run as bench


def _send(endpoint: str, compression: Compression) -> None:
    for service, servers in ((bench.SERVICE, 3), ("someone-else", 2)):
        resource = Resource.create({"service.name": service})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=compression)))
        tracer = tracer_provider.get_tracer("bench-test")
        for _ in range(servers):
            with tracer.start_as_current_span("GET /titles", kind=SpanKind.SERVER), tracer.start_as_current_span("c"):
                pass
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", compression=compression)))
        for scope, lines in (("catalogue", [bench.APP_LOG_TEXT, "something else"]),
                             (bench.REQUEST_LOGGER, ["GET /titles 200 1.0ms"] * 2)):
            otel_logger = logger_provider.get_logger(scope)
            for line in lines:
                otel_logger.emit(body=line, severity_number=SeverityNumber.INFO, severity_text="INFO")
        tracer_provider.shutdown()
        logger_provider.shutdown()


def test_sink_counts_what_the_full_receiver_decodes() -> None:
    sink, full = bench.SinkReceiver(), bench.LiveReceiver()
    try:
        for receiver in (sink, full):
            _send(receiver.endpoint, Compression.NoCompression)
            _send(receiver.endpoint, Compression.Gzip)
        expected = {"spans": 6, "spans_total": 12, "app_logs": 4, "request_logs": 8, "logs_total": 16,
                    "metric_points": 0}
        assert sink.counts() == expected
        assert full.counts() == expected
    finally:
        sink.close()
        full.close()


def test_sink_stops_by_pid_on_sigterm() -> None:
    sink = bench.SinkReceiver()
    sink.close()
    assert sink.proc.returncode == 0
