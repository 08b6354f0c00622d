"""The OTLP/HTTP receiver: a small server on 127.0.0.1 keeping every decoded record, raw.

Protobuf bodies (optionally gzip-compressed) on ``/v1/traces``, ``/v1/logs`` and ``/v1/metrics``;
fault modes (``live``, ``status:503[:retry-after]``, ``blackhole``) switch at run time with
``set_mode``. The public import path is ``otel_showmax.receiver``.
"""

from __future__ import annotations

import socket
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .decode import REQUEST_TYPES, decode
from .store import Mode, Store, StoreView

__all__ = ["DEFAULT_MAX_BODY", "OTLPReceiver"]

#: Largest accepted request body (after decompression), in bytes.
DEFAULT_MAX_BODY = 16 * 1024 * 1024

PATHS = {"/v1/traces": "spans", "/v1/logs": "logs", "/v1/metrics": "metrics"}
_RESPONSES = {
    "spans": ExportTraceServiceResponse().SerializeToString(),
    "logs": ExportLogsServiceResponse().SerializeToString(),
    "metrics": ExportMetricsServiceResponse().SerializeToString(),
}


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise _BadRequest(415, f"unsupported Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _BadRequest(400, f"bad {encoding} body: {exc}")
    if len(out) > limit:
        raise _BadRequest(413, f"decompressed body exceeds {limit} bytes")
    if not inflater.eof:
        raise _BadRequest(400, f"truncated {encoding} body")
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: OTLPReceiver) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or stalls its connection is its own problem: no traceback, keep serving."""

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections and stalled senders
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", content_type: str = "text/plain",
               headers: dict[str, str] | None = None, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise _BadRequest(400, "missing or invalid Content-Length")
        if int(length) > limit:
            raise _BadRequest(413, f"body exceeds {limit} bytes")
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise _BadRequest(400, "body shorter than Content-Length")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise _BadRequest(400, "bad chunk size")
            total += size
            if total > limit:
                raise _BadRequest(413, f"body exceeds {limit} bytes")
            if size == 0:
                self.rfile.readline(1024)
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def do_POST(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        owner.store.count_request(path)
        mode = owner.mode
        signal = PATHS.get(path)
        try:
            if signal is None:
                raise _BadRequest(404, f"unknown path {path}; use {', '.join(PATHS)}")
            body = self._read_body(owner.max_body)
            if mode.kind == "blackhole":
                # Never answer; the connection is closed unanswered when the mode changes or we stop.
                while owner.mode.kind == "blackhole" and not owner.stopping.wait(0.1):
                    pass
                self.close_connection = True
                return
            body = _decompress(body, self.headers.get("Content-Encoding", "").strip().lower(), owner.max_body)
            if mode.kind == "status":
                headers = {"Retry-After": mode.retry_after} if mode.retry_after else None
                self._reply(mode.status, b"", headers=headers)
                return
            content_type = self.headers.get("Content-Type", "application/x-protobuf").split(";")[0].strip()
            if content_type != "application/x-protobuf":
                raise _BadRequest(415, f"unsupported Content-Type {content_type!r}; use application/x-protobuf")
            request = REQUEST_TYPES[signal]()
            try:
                request.ParseFromString(body)
                items = decode(signal, request)
            except Exception as exc:  # DecodeError and anything else a hostile body provokes
                raise _BadRequest(400, f"malformed OTLP protobuf: {type(exc).__name__}: {exc}")
        except _BadRequest as exc:
            self._reply(exc.status, str(exc).encode(), close=exc.status in (404, 413))
            return
        owner.store.add(signal, items, request)
        self._reply(200, _RESPONSES[signal], content_type="application/x-protobuf")

    def do_GET(self) -> None:
        self.server.owner.store.count_request(self.path)
        self._reply(405, b"POST OTLP protobuf to /v1/traces, /v1/logs or /v1/metrics\n")


class OTLPReceiver(StoreView):
    """An OTLP/HTTP protobuf receiver on a thread, keeping every decoded record.

    Args:
        host: Address to bind; loopback by default.
        port: Port to bind; 0 picks a free one (read it back from ``port``).
        mode: Initial fault mode: ``live``, ``blackhole`` or ``status:CODE[:RETRY_AFTER]``.
        jsonl_path: If set, append each decoded item as one JSON object per line (with a
            ``signal`` key: spans, logs or metrics), flushed after each request.
        otlp_json_path: If set, append each export request as one line of OTLP/JSON (hex ids), the
            format of the collector's file exporter.
        max_body: Largest accepted body in bytes (compressed and decompressed); larger → 413.
        store: Share storage with another receiver (e.g. an ``OTLPGrpcReceiver``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, mode: str = "live", *,
                 jsonl_path: str | None = None, otlp_json_path: str | None = None, max_body: int = DEFAULT_MAX_BODY,
                 store: Store | None = None) -> None:
        self.host = host
        self.mode = Mode(mode)
        self.max_body = max_body
        self.store = store if store is not None else Store(jsonl_path, otlp_json_path)
        self._owns_store = store is None
        self.stopping = threading.Event()
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def set_mode(self, mode: str) -> None:
        """Switch the fault mode for the requests that arrive from now on."""
        self.mode = Mode(mode)

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._server is None:
            raise RuntimeError("receiver not started")
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """The OTLP/HTTP base endpoint, e.g. ``http://127.0.0.1:4318``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> OTLPReceiver:
        """Bind and serve on a daemon thread; returns self."""
        if self._server is None:
            self.stopping.clear()
            self._server = _Server((self.host, self._requested_port), self)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"otlp-receiver-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release blackholed requests unanswered, close connections and the file."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

