"""Raw-socket helpers for the hostile-input tests: requests as bytes, answers as bytes."""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

HOST = "127.0.0.1"


def trace_body(name: str = "ok", spans: int = 1) -> bytes:
    """A valid ExportTraceServiceRequest with ``spans`` spans named ``name``."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = b"\x01" * 16, (i + 1).to_bytes(8, "big"), name
    return request.SerializeToString()


def post_bytes(body: bytes, path: str = "/v1/traces", headers: dict[str, str] | None = None) -> bytes:
    """One POST request, Content-Length framed, as bytes."""
    head = {"Host": "x", "Content-Type": "application/x-protobuf", "Content-Length": str(len(body)), **(headers or {})}
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    return f"POST {path} HTTP/1.1\r\n{lines}\r\n".encode() + body


def read_all(conn: socket.socket, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Read until the peer closes (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got, False
        conn.settimeout(left)
        try:
            data = conn.recv(65536)
        except TimeoutError:
            return got, False
        except ConnectionResetError:
            return got, True
        if not data:
            return got, True
        got += data


def read_response(conn: socket.socket, timeout: float = 5.0) -> bytes:
    """Read one HTTP response (headers and a Content-Length body); b"" when none came within ``timeout``."""
    deadline = time.monotonic() + timeout
    got = b""
    while b"\r\n\r\n" not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        conn.settimeout(left)
        try:
            data = conn.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return b""
        if not data:
            return got
        got += data
    head, _, body = got.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        data = conn.recv(65536)
        if not data:
            break
        body += data
    return head + b"\r\n\r\n" + body


def status_of(response: bytes) -> int:
    """The status code of a raw response, 0 when there is none."""
    if not response.startswith(b"HTTP/1."):
        return 0
    return int(response[9:12])


def exchange(port: int, data: bytes, timeout: float = 5.0, shut_wr: bool = False) -> bytes:
    """Send ``data`` on a new connection and return the first response (b"" when none)."""
    with closing(socket.create_connection((HOST, port), timeout=timeout)) as conn:
        conn.sendall(data)
        if shut_wr:
            conn.shutdown(socket.SHUT_WR)
        return read_response(conn, timeout)


def post_status(port: int, body: bytes, path: str = "/v1/traces", headers: dict[str, str] | None = None,
                timeout: float = 5.0) -> int:
    """POST on a new connection; the status code (0 when no answer came)."""
    return status_of(exchange(port, post_bytes(body, path, headers), timeout))


@contextmanager
def descriptors(wanted: int) -> Iterator[None]:
    """Raise this process's soft limit on open files to at least ``wanted`` (up to the hard limit) for a while."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
