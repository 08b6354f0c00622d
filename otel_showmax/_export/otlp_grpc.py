"""OTLP/gRPC span and log exporters sending the bytes of our protobuf encoder (bad items contained by contain.py).

Upstream's gRPC exporters (opentelemetry-exporter-otlp-proto-grpc) build protobuf messages with
their encoder and let the stub serialize them. These subclasses put the same request on the same
channel already serialized by ``otel_showmax._export.protobuf`` (byte-identical, several times cheaper per
item); everything else — retries and their back-off, deadlines, reconnection on UNAVAILABLE,
compression, headers, credentials, exporter metrics — stays upstream's ``_export``. An item that
cannot be encoded is escaped or left out alone, as over OTLP/HTTP, instead of failing its batch;
``invalid_items`` says how many the last encoding left out (set on every retry's encoding, so
counted once by the BatchWorker).

Two private hooks of upstream's ``OTLPExporterMixin`` are overridden: ``_translate_data`` (returns
bytes) and ``_initialize_channel_and_stub`` (a client without a request serializer on the channel
upstream made). tests/export/test_otlp_grpc.py fails loudly when upstream stops calling either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .._upstream import GrpcOTLPLogExporter as OTLPLogExporter
from .contain import encode_logs_counted, encode_spans_counted

__all__ = ["LOGS_METHOD", "SPANS_METHOD", "GrpcLogExporter", "GrpcSpanExporter"]

SPANS_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


class RawClient:
    """A service stub whose ``Export`` takes the request already serialized (bytes)."""

    def __init__(self, channel: Any, method: str, response_type: Any) -> None:
        self.Export = channel.unary_unary(method, request_serializer=None,
                                          response_deserializer=response_type.FromString)


class GrpcSpanExporter(OTLPSpanExporter):
    """``OTLPSpanExporter`` (gRPC) sending the lean encoder's bytes; same arguments and behaviour."""

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()
        self._client = RawClient(self._channel, SPANS_METHOD, ExportTraceServiceResponse)  # type: ignore[assignment]

    invalid_items = 0

    def _translate_data(self, data: Sequence[Any]) -> bytes:  # type: ignore[override]
        encoded, self.invalid_items = encode_spans_counted(data)
        return encoded


class GrpcLogExporter(OTLPLogExporter):
    """``OTLPLogExporter`` (gRPC) sending the lean encoder's bytes; takes the bridge's serialized
    batches (``_encode.EncodedLogs``) as they are. Same arguments and behaviour."""

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()
        self._client = RawClient(self._channel, LOGS_METHOD, ExportLogsServiceResponse)

    invalid_items = 0

    def _translate_data(self, data: Sequence[Any]) -> bytes:
        encoded, self.invalid_items = encode_logs_counted(data)
        return encoded
