"""The OTLP/gRPC twin of ``OTLPReceiver``: same storage interface, same fault modes, same limits.

Requests are deserialised by our own function, which checks ``max_items`` and ``max_depth`` on the
wire bytes before parsing (gRPC itself enforces ``max_body`` as its largest receive message, after
decompression); a refused request is answered RESOURCE_EXHAUSTED or INVALID_ARGUMENT naming the limit.
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from .decode import REQUEST_TYPES, decode
from .limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITEMS, LimitExceeded, check, schema_for
from .store import Mode, Store, StoreView

__all__ = ["OTLPGrpcReceiver"]

_HTTP_TO_GRPC = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}

#: Most calls served or queued at once; more are refused with RESOURCE_EXHAUSTED.
DEFAULT_MAX_CONCURRENT_RPCS = 64


class _Refused:
    """What the deserialiser returns for a request it will not parse: the status to abort with."""

    __slots__ = ("code", "message")

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message


def _deserializer(signal: str, max_items: int, max_depth: int) -> Any:
    request_type = REQUEST_TYPES[signal]
    schema = schema_for(request_type)

    def deserialize(data: bytes) -> Any:
        try:
            check(data, schema, max_items, max_depth)
            return request_type.FromString(data)  # type: ignore[attr-defined]
        except LimitExceeded as exc:
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if exc.limit == "max_items" else grpc.StatusCode.INVALID_ARGUMENT
            return _Refused(code, str(exc))
        except Exception as exc:  # Malformed, DecodeError: whatever the bytes provoke
            return _Refused(grpc.StatusCode.INVALID_ARGUMENT, f"malformed OTLP protobuf: {type(exc).__name__}: {exc}")

    return deserialize


class OTLPGrpcReceiver(StoreView):
    """An OTLP/gRPC receiver (TraceService, LogsService, MetricsService) keeping every record.

    Args:
        host: Address to bind; loopback by default.
        port: Port to bind; 0 picks a free one.
        mode: ``live``, ``blackhole`` (never answers until the deadline or stop) or
            ``status:CODE`` (HTTP code mapped to a gRPC status, e.g. 503 → UNAVAILABLE).
        jsonl_path: Append each decoded item as a JSON line (see ``OTLPReceiver``).
        otlp_json_path: Append each export request as one line of OTLP/JSON.
        max_body: Largest accepted message in bytes (after decompression); larger → RESOURCE_EXHAUSTED.
        max_items: Most protobuf messages in one request; more → RESOURCE_EXHAUSTED.
        max_depth: Deepest message nesting in one request; deeper → INVALID_ARGUMENT.
        max_concurrent_rpcs: Most calls served or queued at once (8 threads serve them); more →
            RESOURCE_EXHAUSTED.
        store: Share storage with another receiver.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, mode: str = "live", *,
                 jsonl_path: str | None = None, otlp_json_path: str | None = None, max_body: int = 16 * 1024 * 1024,
                 max_items: int = DEFAULT_MAX_ITEMS, max_depth: int = DEFAULT_MAX_DEPTH,
                 max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS, store: Store | None = None) -> None:
        for name, value in (("max_body", max_body), ("max_items", max_items), ("max_depth", max_depth),
                            ("max_concurrent_rpcs", max_concurrent_rpcs)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        self.host = host
        self.mode = Mode(mode)
        self.max_body = max_body
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_concurrent_rpcs = max_concurrent_rpcs
        self.store = store if store is not None else Store(jsonl_path, otlp_json_path)
        self._owns_store = store is None
        self.stopping = threading.Event()
        self._requested_port = port
        self._port = 0
        self._server: Any = None

    def set_mode(self, mode: str) -> None:
        """Switch the fault mode for the calls that arrive from now on."""
        self.mode = Mode(mode)

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._server is None:
            raise RuntimeError("receiver not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://HOST:PORT`` for the OTLP gRPC exporter (insecure)."""
        return f"http://{self.host}:{self.port}"

    def _export(self, signal: str, method: str, request: Any, context: grpc.ServicerContext, response: Any) -> Any:
        self.store.count_request(method)
        if isinstance(request, _Refused):
            context.abort(request.code, request.message)
        mode = self.mode
        if mode.kind == "blackhole":
            while self.mode.kind == "blackhole" and context.is_active() and not self.stopping.wait(0.1):
                pass
            context.abort(grpc.StatusCode.UNAVAILABLE, "blackhole released")
        if mode.kind == "status":
            context.abort(_HTTP_TO_GRPC.get(mode.status, grpc.StatusCode.UNKNOWN), f"receiver mode {mode.spec}")
        try:
            items = decode(signal, request)
        except Exception as exc:  # anything a hostile message provokes
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed OTLP protobuf: {type(exc).__name__}: {exc}")
        self.store.add(signal, items, request)
        return response

    def _handler(self, signal: str, method: str, response_type: Any) -> Any:
        def export(request: Any, context: grpc.ServicerContext) -> Any:
            return self._export(signal, method, request, context, response_type())

        return export

    def start(self) -> OTLPGrpcReceiver:
        """Bind and serve on gRPC's thread pool; returns self."""
        if self._server is not None:
            return self
        self.stopping.clear()
        options = [("grpc.max_receive_message_length", self.max_body), ("grpc.so_reuseport", 0)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="otlp-grpc"), options=options,
                             maximum_concurrent_rpcs=self.max_concurrent_rpcs)
        services = (
            ("spans", "opentelemetry.proto.collector.trace.v1.TraceService", trace_service_pb2.ExportTraceServiceResponse),
            ("logs", "opentelemetry.proto.collector.logs.v1.LogsService", logs_service_pb2.ExportLogsServiceResponse),
            ("metrics", "opentelemetry.proto.collector.metrics.v1.MetricsService",
             metrics_service_pb2.ExportMetricsServiceResponse),
        )
        for signal, service, response_type in services:
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self._handler(signal, f"/{service}/Export", response_type),
                    request_deserializer=_deserializer(signal, self.max_items, self.max_depth),
                    response_serializer=response_type.SerializeToString,
                ),
            }),))
        self._port = server.add_insecure_port(f"{self.host}:{self._requested_port}")
        if not self._port:
            raise OSError(f"cannot bind gRPC receiver to {self.host}:{self._requested_port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving (pending calls are cancelled) and close the JSON-lines file."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.stop(grace=0).wait(5)
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> OTLPGrpcReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
