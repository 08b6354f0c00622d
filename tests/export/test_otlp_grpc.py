"""The lean gRPC exporters put upstream's exact request bytes on the wire, and keep invalid text."""

from __future__ import annotations

import inspect
import logging
import threading
from concurrent import futures

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc import exporter as upstream_mixin
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_showmax import _config
from otel_showmax._export import exporters as _exporters
from otel_showmax._export import protobuf as _encode
from otel_showmax._export.otlp_grpc import (
    LOGS_METHOD,
    SPANS_METHOD,
    GrpcLogExporter,
    GrpcSpanExporter,
    RawClient,
)
from otel_showmax._pipeline import log_bridge as _bridge

RESOURCE = Resource.create({"service.name": "catalogue", "deployment.environment.name": "test"})


class CaptureServer:
    """A gRPC server on 127.0.0.1 keeping each Export request's raw bytes, answering OK."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        for service in ("opentelemetry.proto.collector.trace.v1.TraceService",
                        "opentelemetry.proto.collector.logs.v1.LogsService"):
            handler = grpc.unary_unary_rpc_method_handler(self._keep(f"/{service}/Export"))
            self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _keep(self, method: str):  # type: ignore[no-untyped-def]
        def handle(request: bytes, context: object) -> bytes:
            with self._lock:
                self.requests.append((method, request))
            return b""  # an empty Export*ServiceResponse

        return handle

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def take(self) -> list[tuple[str, bytes]]:
        with self._lock:
            got, self.requests = self.requests, []
        return got

    def stop(self) -> None:
        self.server.stop(None)


@pytest.fixture
def capture():
    server = CaptureServer()
    yield server
    server.stop()


def _spans(name: str = "GET /titles") -> list:
    provider = TracerProvider(resource=RESOURCE)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("catalogue.api", "1.2.3")
    with tracer.start_as_current_span(name, kind=SpanKind.SERVER, attributes={
        "http.request.method": "GET", "http.route": "/titles", "http.response.status_code": 200,
        "http.request.header.x_request_id": ("abc",), "retries": [1, 2], "ok": True, "ratio": 0.5,
    }) as span:
        span.add_event("cache miss", {"key": "titles:1"})
        with tracer.start_as_current_span("db.query", attributes={"db.system.name": "postgresql"}) as child:
            child.set_status(Status(StatusCode.ERROR, "timeout"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def _logs() -> list:
    provider = LoggerProvider(resource=RESOURCE)
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    otel_logger = provider.get_logger("catalogue.api")
    otel_logger.emit(body="listed 20 of 120 titles", severity_number=SeverityNumber.INFO, severity_text="INFO",
                     attributes={"count": 20, "page": 1})
    otel_logger.emit(body={"event": "started", "workers": 2}, severity_number=SeverityNumber.WARN)
    provider.shutdown()
    return list(memory.get_finished_logs())


def _span_count(body: bytes) -> int:
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    return sum(len(scoped.spans) for rs in request.resource_spans for scoped in rs.scope_spans)


def _log_count(body: bytes) -> int:
    request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
    return sum(len(scoped.log_records) for rl in request.resource_logs for scoped in rl.scope_logs)


@pytest.mark.parametrize(("items", "lean", "upstream", "method", "count", "success"), [
    (_spans, GrpcSpanExporter, OTLPSpanExporter, SPANS_METHOD, _span_count, SpanExportResult.SUCCESS),
    (_logs, GrpcLogExporter, OTLPLogExporter, LOGS_METHOD, _log_count, LogRecordExportResult.SUCCESS),
], ids=["spans", "logs"])
def test_requests_are_byte_identical_to_upstreams(capture, items, lean, upstream, method, count, success):
    batch = items()
    upstream_method, upstream_body = _export_once(capture, upstream, batch, success)
    our_method, our_body = _export_once(capture, lean, batch, success)
    assert upstream_method == our_method == method
    assert our_body == upstream_body
    assert count(our_body) == 2


def test_the_bridges_serialized_batches_go_out_as_they_are(capture):
    converter = _bridge.Converter(lambda: RESOURCE, LogRecordLimits(), frozenset(), direct=True)
    record = logging.LogRecord("catalogue.api", logging.INFO, __file__, 1, "listed %d titles", (20,), None)
    pending = _bridge._Pending(record, None, record.getMessage(), 1_700_000_000_000_000_000)
    batch = converter([pending])
    assert type(batch) is _encode.EncodedLogs
    method, body = _export_once(capture, GrpcLogExporter, batch, LogRecordExportResult.SUCCESS)
    assert method == LOGS_METHOD and body == batch.data
    got = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
    assert got.resource_logs[0].scope_logs[0].log_records[0].body.string_value == "listed 20 titles"


def _export_once(capture, exporter_class, batch, success):  # type: ignore[no-untyped-def]
    """Export ``batch`` with a fresh exporter; the one request the server got: (method, bytes)."""
    exporter = exporter_class(endpoint=capture.endpoint, insecure=True)
    try:
        assert exporter.export(batch) is success
    finally:
        exporter.shutdown()
    (sent,) = capture.take()
    return sent


def test_a_span_with_invalid_text_is_exported_escaped_not_lost(capture):
    spans = _spans(name="GET /files/caf\udce9") + _spans()
    _, body = _export_once(capture, GrpcSpanExporter, spans, SpanExportResult.SUCCESS)
    names = [s.name for s in trace_service_pb2.ExportTraceServiceRequest.FromString(body)
             .resource_spans[0].scope_spans[0].spans]
    assert sorted(names) == sorted(["GET /files/caf\\udce9", "db.query", "GET /titles", "db.query"])


def test_upstream_still_calls_the_two_hooks_we_override():
    # If upstream stops calling either, our client would get a message or its stub our bytes:
    # the byte-identity tests above fail too; this says why.
    source = inspect.getsource(upstream_mixin.OTLPExporterMixin._export)
    assert "self._client.Export(" in source and "request=self._translate_data(data)" in source
    assert "self._initialize_channel_and_stub()" in inspect.getsource(upstream_mixin.OTLPExporterMixin.__init__)


def test_reconnecting_keeps_the_raw_client(capture):
    exporter = GrpcSpanExporter(endpoint=capture.endpoint, insecure=True)
    try:
        assert isinstance(exporter._client, RawClient)
        exporter._initialize_channel_and_stub()  # what upstream does after UNAVAILABLE
        assert isinstance(exporter._client, RawClient)
        assert exporter.export(_spans()) is SpanExportResult.SUCCESS
        assert len(capture.take()) == 1
    finally:
        exporter.shutdown()


def test_method_paths_match_the_service_descriptors():
    for module, service, path in ((trace_service_pb2, "TraceService", SPANS_METHOD),
                                  (logs_service_pb2, "LogsService", LOGS_METHOD)):
        full = module.DESCRIPTOR.services_by_name[service].methods_by_name["Export"].full_name
        assert path == "/" + full.rsplit(".", 1)[0] + "/" + full.rsplit(".", 1)[1]


@pytest.mark.parametrize(("signal", "cls"), [("traces", GrpcSpanExporter), ("logs", GrpcLogExporter)])
def test_grpc_configuration_makes_the_lean_exporters(signal, cls):
    config = _config.resolve({"otlp_protocol": "grpc", "endpoint": "http://127.0.0.1:4317"}, environ={})
    exporter = _exporters.make_exporter(config.exporter(signal))
    try:
        assert type(exporter) is cls
    finally:
        exporter.shutdown()
