"""The OTLP/HTTP receiver: a small server on 127.0.0.1 keeping every decoded record, raw.

Protobuf bodies (optionally gzip-compressed) on ``/v1/traces``, ``/v1/logs`` and ``/v1/metrics``;
fault modes (``live``, ``status:503[:retry-after]``, ``blackhole``) switch at run time with
``set_mode``. The public import path is ``otel_showmax.receiver``.

It is written to survive its clients: bodies are bounded on every framing (``max_body``, also after
decompression), the decode work by ``max_items`` and ``max_depth`` (checked on the wire bytes before
parsing), the handler threads by ``max_threads`` (more connections wait in the listen backlog, and
idle keep-alive connections give way to them), each request by ``request_timeout``, and the
per-path request counts by ``max_paths``. Framing headers are parsed strictly, and the connection is
closed after every error answer (so a body left unread is never parsed as a request). See
docs/receiver.md.
"""

from __future__ import annotations

import io
import re
import select
import socket
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .decode import REQUEST_TYPES, decode
from .limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITEMS, LimitExceeded, Malformed, check, schema_for
from .store import DEFAULT_MAX_PATHS, Mode, Store, StoreView

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_PATHS",
    "DEFAULT_MAX_THREADS",
    "DEFAULT_REQUEST_TIMEOUT",
    "OTLPReceiver",
]

#: Largest accepted request body in bytes, as sent and after decompression.
DEFAULT_MAX_BODY = 16 * 1024 * 1024
#: Most handler threads (one per connection being served); more connections wait in the backlog.
DEFAULT_MAX_THREADS = 64
#: Listen backlog: connections the kernel holds until a handler thread is free.
DEFAULT_BACKLOG = 1024
#: Seconds a client has to send one request, headers and body, once its first byte arrived.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Seconds an idle keep-alive connection is kept (less when others wait for a handler thread).
DEFAULT_IDLE_TIMEOUT = 60.0
#: An idle connection gives way to a waiting one after this many seconds without a request.
_GIVE_WAY_AFTER = 0.5

PATHS = {"/v1/traces": "spans", "/v1/logs": "logs", "/v1/metrics": "metrics"}
_RESPONSES = {
    "spans": ExportTraceServiceResponse().SerializeToString(),
    "logs": ExportLogsServiceResponse().SerializeToString(),
    "metrics": ExportMetricsServiceResponse().SerializeToString(),
}
_SCHEMAS = {signal: schema_for(request_type) for signal, request_type in REQUEST_TYPES.items()}
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_MAX_TRAILERS = 64


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise _BadRequest(415, f"unsupported Content-Encoding {encoding[:40]!r}")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _BadRequest(400, f"bad {encoding} body: {exc}")
    if len(out) > limit:
        raise _BadRequest(413, f"decompressed body exceeds max_body={limit} bytes")
    if not inflater.eof:
        raise _BadRequest(400, f"truncated {encoding} body")
    if inflater.unused_data:
        raise _BadRequest(400, f"data after the end of the {encoding} stream")
    return out


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream: waits for a request while idle, then gives it ``request_timeout``.

    Idle (between requests), it waits up to ``idle_timeout``, and returns EOF early when the server
    is stopping or when another connection waits for a handler thread (after a short grace). Once
    bytes of a request arrive, every read is bounded by that request's deadline (``TimeoutError``).
    """

    def __init__(self, sock: socket.socket, server: _Server) -> None:
        super().__init__()
        self._sock = sock
        self._server = server
        self.idle = True
        self.deadline = 0.0
        # poll, not select: select cannot watch a descriptor above 1023 (a busy process has those)
        self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is not None:
            self._poll.register(sock, select.POLLIN | select.POLLPRI)

    def _readable(self, seconds: float) -> bool:
        if self._poll is not None:
            return bool(self._poll.poll(seconds * 1000))
        return bool(select.select([self._sock], [], [], seconds)[0])

    def readable(self) -> bool:
        return True

    def expect_request(self) -> None:
        """Called before each request: the next read waits as an idle connection."""
        self.idle = True
        self.deadline = time.monotonic() + self._server.owner.request_timeout  # for pipelined bytes

    def _wait_idle(self) -> bool:
        owner = self._server.owner
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            if owner.stopping.is_set() or waited >= owner.idle_timeout:
                return False
            if self._server.waiting and waited >= _GIVE_WAY_AFTER:
                return False
            try:
                if self._readable(0.1):
                    return True
            except (OSError, ValueError):
                return False

    def readinto(self, buffer: Any) -> int:
        if self.idle:
            if not self._wait_idle():
                return 0  # EOF: the handler closes the connection
            self.idle = False
            self.deadline = time.monotonic() + self._server.owner.request_timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request_timeout")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Server(HTTPServer):
    """One thread per connection being served, at most ``max_threads``; the rest wait in the backlog."""

    def __init__(self, address: tuple[str, int], owner: OTLPReceiver) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(owner.max_threads)
        self.waiting = False  # a connection is accepted and waits for a handler thread
        self.request_queue_size = owner.backlog
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or stalls its connection is its own problem: no traceback, keep serving."""

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self.slots.acquire(timeout=0.05):
            self.waiting = True
            if self.owner.stopping.is_set():
                self.waiting = False
                self.shutdown_request(request)
                return
        self.waiting = False
        with self.conn_lock:
            self.connections.add(request)
        try:
            threading.Thread(target=self._serve_connection, args=(request, client_address),
                             name="otlp-receiver-conn", daemon=True).start()
        except RuntimeError:  # cannot start a thread: drop this connection, keep serving
            self.slots.release()
            self.shutdown_request(request)

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self.slots.release()

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
    default_request_version = "HTTP/1.0"  # an unparsable request line still gets a status line, not bare HTML
    server: _Server
    _reader: _DeadlineReader

    def setup(self) -> None:
        super().setup()
        self._reader = _DeadlineReader(self.connection, self.server)
        self.rfile = io.BufferedReader(self._reader, 65536)

    def handle(self) -> None:
        self.close_connection = True
        while True:
            self._reader.expect_request()
            self.handle_one_request()
            if self.close_connection:
                return

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if self.request_version == "HTTP/0.9":  # would be answered without a status line
            self.request_version = "HTTP/1.0"
            if ok:
                self.send_error(505, "HTTP/0.9 is not supported")
            return False
        return ok

    def _reply(self, status: int, body: bytes = b"", content_type: str = "text/plain",
               headers: dict[str, str] | None = None, close: bool = False) -> None:
        self.connection.settimeout(self.server.owner.request_timeout)
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
        lengths = self.headers.get_all("Content-Length") or []
        codings = self.headers.get_all("Transfer-Encoding") or []
        if codings:
            if lengths:
                raise _BadRequest(400, "both Content-Length and Transfer-Encoding")
            if len(codings) != 1 or codings[0].strip(" \t").lower() != "chunked":
                raise _BadRequest(501, "unsupported Transfer-Encoding: only a single 'chunked' is accepted")
            return self._read_chunked(limit)
        if not lengths:
            raise _BadRequest(411, "Content-Length or Transfer-Encoding: chunked required")
        if len(lengths) != 1:
            raise _BadRequest(400, "more than one Content-Length")
        text = lengths[0].strip(" \t")
        if not _DIGITS.fullmatch(text):
            raise _BadRequest(400, "invalid Content-Length: ASCII digits only")
        if len(text) > 18 or int(text) > limit:
            raise _BadRequest(413, f"body exceeds max_body={limit} bytes")
        length = int(text)
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BadRequest(400, "body shorter than Content-Length")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(4096)
            if not line.endswith(b"\n"):
                raise _BadRequest(400, "bad chunk size line (too long, or the body ended)")
            size_text = line.split(b";", 1)[0].strip(b" \t\r\n")
            if not _HEX.fullmatch(size_text):
                raise _BadRequest(400, "bad chunk size: hexadecimal digits expected")
            if len(size_text) > 16 or total + int(size_text, 16) > limit:
                raise _BadRequest(413, f"body exceeds max_body={limit} bytes")
            size = int(size_text, 16)
            total += size
            if size == 0:
                for _ in range(_MAX_TRAILERS):
                    trailer = self.rfile.readline(8192)
                    if not trailer.endswith(b"\n"):
                        raise _BadRequest(400, "bad chunked trailer (too long, or the body ended)")
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(parts)
                raise _BadRequest(400, f"more than {_MAX_TRAILERS} chunked trailer lines")
            data = self.rfile.read(size)
            if len(data) != size:
                raise _BadRequest(400, "chunked body ended within a chunk")
            parts.append(data)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BadRequest(400, "chunk data not followed by CRLF")

    def _content_encoding(self) -> str:
        encodings = self.headers.get_all("Content-Encoding") or []
        if len(encodings) > 1:
            raise _BadRequest(415, "more than one Content-Encoding")
        return encodings[0].strip(" \t").lower() if encodings else ""

    def do_POST(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        signal = PATHS.get(path)
        owner.store.count_request(path, known=signal is not None)
        mode = owner.mode
        try:
            if signal is None:
                shown = path if len(path) <= 100 else path[:100] + "..."
                raise _BadRequest(404, f"unknown path {shown!r}; use {', '.join(PATHS)}")
            body = self._read_body(owner.max_body)
            if mode.kind == "blackhole":
                # Never answer; the connection is closed unanswered when the mode changes or we stop.
                while owner.mode.kind == "blackhole" and not owner.stopping.wait(0.1):
                    pass
                self.close_connection = True
                return
            body = _decompress(body, self._content_encoding(), owner.max_body)
            if mode.kind == "status":
                headers = {"Retry-After": mode.retry_after} if mode.retry_after else None
                self._reply(mode.status, b"", headers=headers)
                return
            content_type = (self.headers.get("Content-Type") or "application/x-protobuf").split(";")[0].strip()
            if content_type != "application/x-protobuf":
                raise _BadRequest(415, f"unsupported Content-Type {content_type[:60]!r}; use application/x-protobuf")
            try:
                check(body, _SCHEMAS[signal], owner.max_items, owner.max_depth)
            except LimitExceeded as exc:
                raise _BadRequest(413 if exc.limit == "max_items" else 400, str(exc))
            except Malformed as exc:
                raise _BadRequest(400, f"malformed OTLP protobuf: {exc}")
            request = REQUEST_TYPES[signal]()
            try:
                request.ParseFromString(body)
                items = decode(signal, request)
            except Exception as exc:  # DecodeError and anything else a hostile body provokes
                raise _BadRequest(400, f"malformed OTLP protobuf: {type(exc).__name__}: {exc}")
        except TimeoutError:
            self._reply(408, b"request_timeout: the request was not received in time\n", close=True)
            return
        except _BadRequest as exc:
            # Closed whether or not the body was read: after an error, nothing more from this client
            # is parsed (when the body was not read, it would be taken for the next request).
            self._reply(exc.status, str(exc).encode(), close=True)
            return
        try:
            owner.store.add(signal, items, request)
        except Exception as exc:  # a file we cannot write: the client should retry, we keep serving
            self._reply(500, f"cannot store the request: {type(exc).__name__}".encode())
            return
        self._reply(200, _RESPONSES[signal], content_type="application/x-protobuf")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.owner.store.count_request(path, known=path in PATHS)
        # Whatever body came with it is not read: close rather than parse it as the next request.
        self._reply(405, b"POST OTLP protobuf to /v1/traces, /v1/logs or /v1/metrics\n", close=True)


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
        max_body: Largest accepted body in bytes (as sent, whatever the framing, and after
            decompression); larger → 413.
        max_items: Most protobuf messages in one request (spans, log records, data points,
            attributes, values …), counted before parsing; more → 413.
        max_depth: Deepest message nesting in one request; deeper → 400.
        max_threads: Most handler threads (connections served at once); more connections wait in
            the listen backlog, and idle keep-alive connections are closed to make room.
        backlog: Listen backlog (the kernel caps it at ``net.core.somaxconn``).
        request_timeout: Seconds a client has to send a request (headers and body) once it started;
            then 408 and the connection is closed.
        idle_timeout: Seconds an idle keep-alive connection is kept.
        max_paths: Distinct unknown paths counted in ``requests``; the others are counted together
            under ``"(other paths)"`` (the OTLP paths are always counted).
        store: Share storage with another receiver (e.g. an ``OTLPGrpcReceiver``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, mode: str = "live", *,
                 jsonl_path: str | None = None, otlp_json_path: str | None = None, max_body: int = DEFAULT_MAX_BODY,
                 max_items: int = DEFAULT_MAX_ITEMS, max_depth: int = DEFAULT_MAX_DEPTH,
                 max_threads: int = DEFAULT_MAX_THREADS, backlog: int = DEFAULT_BACKLOG,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_paths: int = DEFAULT_MAX_PATHS, store: Store | None = None) -> None:
        for name, value in (("max_body", max_body), ("max_items", max_items), ("max_depth", max_depth),
                            ("max_threads", max_threads), ("backlog", backlog), ("request_timeout", request_timeout),
                            ("idle_timeout", idle_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        self.host = host
        self.mode = Mode(mode)
        self.max_body = max_body
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_threads = max_threads
        self.backlog = backlog
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.store = store if store is not None else Store(jsonl_path, otlp_json_path, max_paths=max_paths)
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
