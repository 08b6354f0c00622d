"""The OTLP/gRPC twin of ``OTLPReceiver``: same storage interface, same fault modes."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from .decode import decode
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


class OTLPGrpcReceiver(StoreView):
    """An OTLP/gRPC receiver (TraceService, LogsService, MetricsService) keeping every record.

    Args:
        host: Address to bind; loopback by default.
        port: Port to bind; 0 picks a free one.
        mode: ``live``, ``blackhole`` (never answers until the deadline or stop) or
            ``status:CODE`` (HTTP code mapped to a gRPC status, e.g. 503 → UNAVAILABLE).
        jsonl_path: Append each decoded item as a JSON line (see ``OTLPReceiver``).
        otlp_json_path: Append each export request as one line of OTLP/JSON.
        max_body: Largest accepted message in bytes.
        store: Share storage with another receiver.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, mode: str = "live", *,
                 jsonl_path: str | None = None, otlp_json_path: str | None = None, max_body: int = 16 * 1024 * 1024,
                 store: Store | None = None) -> None:
        self.host = host
        self.mode = Mode(mode)
        self.max_body = max_body
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
        mode = self.mode
        if mode.kind == "blackhole":
            while self.mode.kind == "blackhole" and context.is_active() and not self.stopping.wait(0.1):
                pass
            context.abort(grpc.StatusCode.UNAVAILABLE, "blackhole released")
        if mode.kind == "status":
            context.abort(_HTTP_TO_GRPC.get(mode.status, grpc.StatusCode.UNKNOWN), f"receiver mode {mode.spec}")
        self.store.add(signal, decode(signal, request), request)
        return response

    def start(self) -> OTLPGrpcReceiver:
        """Bind and serve on gRPC's thread pool; returns self."""
        if self._server is not None:
            return self
        self.stopping.clear()
        options = [("grpc.max_receive_message_length", self.max_body), ("grpc.so_reuseport", 0)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="otlp-grpc"), options=options)
        receiver = self

        class Trace(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                return receiver._export("spans", "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                        request, context, trace_service_pb2.ExportTraceServiceResponse())

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                return receiver._export("logs", "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                                        request, context, logs_service_pb2.ExportLogsServiceResponse())

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                return receiver._export("metrics", "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                                        request, context, metrics_service_pb2.ExportMetricsServiceResponse())

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Trace(), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
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
