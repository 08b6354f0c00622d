"""The OTLP/gRPC receiver applies the same limits: message size, items, nesting; garbage is INVALID_ARGUMENT."""

from __future__ import annotations

import time

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otel_showmax.receiver import OTLPGrpcReceiver

from ._wire import trace_body

MiB = 1024 * 1024
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def export_raw(channel: grpc.Channel, body: bytes, compression: grpc.Compression | None = None, timeout: float = 10):
    call = channel.unary_unary(EXPORT, request_serializer=lambda raw: raw,
                               response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
    return call(body, timeout=timeout, compression=compression)


def refused(channel: grpc.Channel, body: bytes, compression: grpc.Compression | None = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failed:
        export_raw(channel, body, compression)
    return failed.value


def test_grpc_refuses_bombs_oversized_deep_and_garbage_messages_and_keeps_serving():
    bomb = b"\x0a\x00" * (8 * MiB - 8)  # 16 MiB of empty ResourceSpans, 15 KiB once gzip-compressed
    options = [("grpc.max_send_message_length", 32 * MiB)]
    with OTLPGrpcReceiver() as receiver, grpc.insecure_channel(f"127.0.0.1:{receiver.port}", options=options) as channel:
        started = time.monotonic()
        error = refused(channel, bomb, grpc.Compression.Gzip)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_items" in error.details()
        assert time.monotonic() - started < 3
        error = refused(channel, b"\xff\xff\xff garbage")
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in error.details()
        error = refused(channel, b"\x0a" * (17 * MiB))  # above max_body
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        error = refused(channel, b"\x0a\x00" * (9 * MiB), grpc.Compression.Gzip)  # above max_body once inflated
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        export_raw(channel, trace_body("after"))
        assert [s["name"] for s in receiver.spans] == ["after"]
        assert receiver.requests[EXPORT] >= 3


def test_grpc_max_items_and_max_depth_are_configurable():
    with OTLPGrpcReceiver(max_items=100) as receiver, grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as channel:
        export_raw(channel, trace_body(spans=97))  # 1 resource + 1 scope + 97 spans
        error = refused(channel, trace_body(spans=99))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_items=100" in error.details()
        assert len(receiver.spans) == 97
    with OTLPGrpcReceiver(max_depth=2) as receiver, grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as channel:
        error = refused(channel, trace_body(spans=1))  # ResourceSpans > ScopeSpans > Span: depth 3
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_depth=2" in error.details()
        assert receiver.spans == []
    with pytest.raises(ValueError, match="max_items"):
        OTLPGrpcReceiver(max_items=0)
