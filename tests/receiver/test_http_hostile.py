"""The OTLP/HTTP receiver against hostile clients, over raw sockets on 127.0.0.1.

Each test ends by checking that the receiver still accepts a valid export and counts its records.
"""

from __future__ import annotations

import gc
import gzip
import socket
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing

import pytest

from otel_showmax.receiver import OTLPReceiver

from ._wire import (
    HOST,
    descriptors,
    exchange,
    post_bytes,
    post_status,
    read_all,
    read_response,
    status_of,
    trace_body,
)

MiB = 1024 * 1024
DEFAULT_MAX_THREADS = 64


def still_serving(receiver: OTLPReceiver, before: int | None = None) -> None:
    """A valid POST is answered 200 and its one span is kept."""
    before = len(receiver.spans) if before is None else before
    assert post_status(receiver.port, trace_body("still-here")) == 200
    assert len(receiver.spans) == before + 1
    assert receiver.spans[-1]["name"] == "still-here"


def test_a_negative_chunk_size_is_rejected_without_reading_to_eof():
    with OTLPReceiver() as receiver, closing(socket.create_connection((HOST, receiver.port), timeout=5)) as conn:
        conn.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n")
        try:
            conn.sendall(b"\0" * MiB)  # the connection stays open: an unfixed receiver waits for EOF
        except OSError:
            pass
        answer, closed = read_all(conn, timeout=5)
        assert status_of(answer) == 400 and b"chunk size" in answer
        assert closed
        still_serving(receiver)


def test_chunk_sizes_beyond_max_body_are_413_before_the_data_is_sent():
    with OTLPReceiver(max_body=1024) as receiver:
        for chunks in (b"FFFFFFFFFFFFFFFF\r\n", b"7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\r\n",
                       b"258\r\n" + b"\0" * 600 + b"\r\n258\r\n"):
            with closing(socket.create_connection((HOST, receiver.port), timeout=5)) as conn:
                conn.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
                answer, closed = read_all(conn, timeout=5)
                assert status_of(answer) == 413 and b"max_body" in answer and closed
        still_serving(receiver)


def test_a_valid_chunked_body_is_accepted():
    with OTLPReceiver() as receiver:
        body = trace_body("chunked")
        data = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{5:x};ext=1\r\n".encode() + body[:5] + b"\r\n"
                + f"{len(body) - 5:X}\r\n".encode() + body[5:] + b"\r\n0\r\nX-Trailer: 1\r\n\r\n")
        assert status_of(exchange(receiver.port, data)) == 200
        assert [s["name"] for s in receiver.spans] == ["chunked"]


def test_a_gzip_bomb_is_refused_quickly_naming_the_limit():
    bomb = gzip.compress(b"\x0a\x00" * (8 * MiB - 8), 9)  # 16 MiB of empty ResourceSpans
    assert len(bomb) < 20 * 1024
    with OTLPReceiver() as receiver:
        started = time.monotonic()
        answer = exchange(receiver.port, post_bytes(bomb, headers={"Content-Encoding": "gzip"}), timeout=30)
        took = time.monotonic() - started
        assert status_of(answer) == 413 and b"max_items" in answer
        assert took < 3, f"{took:.1f}s"
        still_serving(receiver)


def test_more_items_or_deeper_nesting_than_configured_are_refused():
    with OTLPReceiver(max_items=100, max_depth=8) as receiver:
        assert post_status(receiver.port, trace_body(spans=97)) == 200  # 1 resource + 1 scope + 97 spans = 99
        answer = exchange(receiver.port, post_bytes(trace_body(spans=99)))
        assert status_of(answer) == 413 and b"max_items" in answer
        # ResourceSpans > ScopeSpans > Span > KeyValue > AnyValue > ArrayValue > AnyValue > ArrayValue > AnyValue
        value = b"\x0a\x01x"  # AnyValue{string_value: "x"}
        for _ in range(3):
            array = b"\x0a" + bytes([len(value)]) + value  # ArrayValue{values: [value]}
            value = b"\x2a" + bytes([len(array)]) + array  # AnyValue{array_value: array}
        key_value = b"\x0a\x01k\x12" + bytes([len(value)]) + value
        ids = b"\x0a\x10" + b"\x01" * 16 + b"\x12\x08" + b"\x02" * 8
        span = ids + b"\x2a\x01s\x4a" + bytes([len(key_value)]) + key_value
        scope = b"\x12" + bytes([len(span)]) + span
        resource = b"\x12" + bytes([len(scope)]) + scope
        deep = b"\x0a" + bytes([len(resource)]) + resource
        answer = exchange(receiver.port, post_bytes(deep))
        assert status_of(answer) == 400 and b"max_depth" in answer
        still_serving(receiver)


@pytest.mark.parametrize("value", ["\u00b2", "\uff11\uff12", "+5", "-1", "0x10", "5 5", "1e3", "", "9" * 5000])
def test_content_length_must_be_ascii_digits(value):
    with OTLPReceiver() as receiver:
        data = f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n".encode() + b"12345"
        with closing(socket.create_connection((HOST, receiver.port), timeout=5)) as conn:
            conn.sendall(data)
            answer, closed = read_all(conn, timeout=5)
        assert status_of(answer) in (400, 413), answer[:200]
        assert closed
        still_serving(receiver)


@pytest.mark.parametrize("headers", [
    "Content-Length: 5\r\nContent-Length: 5\r\n",
    "Content-Length: 5\r\nContent-Length: 6\r\n",
    "Content-Length: 5, 5\r\n",
    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip, chunked\r\n",
    "Transfer-Encoding: identity\r\n",
])
def test_conflicting_framing_headers_are_400_and_close(headers):
    with OTLPReceiver() as receiver, closing(socket.create_connection((HOST, receiver.port), timeout=5)) as conn:
        conn.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + b"5\r\nabcde\r\n0\r\n\r\n")
        answer, closed = read_all(conn, timeout=5)
        assert status_of(answer) in (400, 501) and answer.count(b"HTTP/1.1 ") == 1 and closed
        still_serving(receiver)


def test_after_an_error_with_an_unread_body_the_connection_is_closed():
    smuggled = post_bytes(trace_body("smuggled"))
    with OTLPReceiver() as receiver:
        for first in (
            f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}x\r\n\r\n".encode(),
            f"POST /v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode(),
            f"GET /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode(),
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
        ):
            with closing(socket.create_connection((HOST, receiver.port), timeout=5)) as conn:
                conn.sendall(first + smuggled)
                answer, closed = read_all(conn, timeout=5)
            assert 400 <= status_of(answer) < 500
            assert answer.count(b"HTTP/1.1 ") == 1, answer  # the body was not parsed as a second request
            assert closed
        assert receiver.spans == []
        still_serving(receiver)


def test_a_thousand_simultaneous_posts_are_all_answered():
    body = trace_body("many")
    data = post_bytes(body, headers={"Connection": "close"})
    with descriptors(4096), OTLPReceiver() as receiver, ExitStack() as stack:
        baseline = threading.active_count()
        started = time.monotonic()
        conns = []

        def connect(_: int) -> socket.socket:
            conn = socket.create_connection((HOST, receiver.port), timeout=30)
            conn.sendall(data)
            return conn

        with ThreadPoolExecutor(64) as pool:
            conns = list(pool.map(connect, range(1000)))  # all connected and sent before any answer is read
        for conn in conns:
            stack.enter_context(closing(conn))
        peak_threads = threading.active_count() - baseline

        def answer(conn: socket.socket) -> int:
            return status_of(read_response(conn, timeout=30))

        with ThreadPoolExecutor(64) as pool:
            statuses = list(pool.map(answer, conns))
        took = time.monotonic() - started
        assert statuses.count(200) == 1000, {s: statuses.count(s) for s in set(statuses)}
        assert took < 60, f"{took:.1f}s"
        assert peak_threads <= DEFAULT_MAX_THREADS + 2, peak_threads  # handler threads are capped
        assert receiver.wait_for(spans=1000, timeout=5) and len(receiver.spans) == 1000
        assert receiver.requests["/v1/traces"] == 1000
        still_serving(receiver, 1000)


def test_handler_threads_are_capped_and_idle_connections_give_way():
    with OTLPReceiver(max_threads=4) as receiver, ExitStack() as stack:
        baseline = threading.active_count()
        for _ in range(50):  # connect, send nothing
            stack.enter_context(closing(socket.create_connection((HOST, receiver.port), timeout=5)))
        time.sleep(0.3)
        assert threading.active_count() - baseline <= 4
        started = time.monotonic()
        assert post_status(receiver.port, trace_body("through"), timeout=15) == 200
        assert time.monotonic() - started < 10
        assert [s["name"] for s in receiver.spans] == ["through"]


def test_a_thousand_unique_long_paths_leave_bounded_state():
    with OTLPReceiver() as receiver:
        assert post_status(receiver.port, b"", path="/warm-up") == 404
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(1000):
                assert post_status(receiver.port, b"", path=f"/{i:04d}/" + "p" * 8000) == 404
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 1024 * 1024, f"{grown} bytes kept for 1,000 paths of 8 KB"
        requests = receiver.requests
        assert sum(requests.values()) == 1001
        assert len(requests) <= 65
        assert sum(len(path) for path in requests) < 64 * 1024
        still_serving(receiver)
        assert receiver.requests["/v1/traces"] == 1


def test_a_slow_client_does_not_block_others_and_is_cut_off():
    with OTLPReceiver(request_timeout=2.0) as receiver:
        slow_answer: list[bytes] = []
        data = post_bytes(trace_body("slow"))

        def trickle() -> None:
            with closing(socket.create_connection((HOST, receiver.port), timeout=10)) as conn:
                try:
                    for byte in data[:4]:  # 1 byte a second, cut off after request_timeout (2 s)
                        conn.sendall(bytes([byte]))
                        time.sleep(1.0)
                except OSError:
                    pass
                slow_answer.append(read_all(conn, timeout=6)[0])

        slow = threading.Thread(target=trickle)
        slow.start()
        started = time.monotonic()
        for i in range(20):
            assert post_status(receiver.port, trace_body(f"fast-{i}"), timeout=5) == 200
        assert time.monotonic() - started < 5
        slow.join(15)
        assert not slow.is_alive()
        assert status_of(slow_answer[0]) in (0, 408)  # cut off after request_timeout, with or without a 408
        assert [s["name"] for s in receiver.spans] == [f"fast-{i}" for i in range(20)]
        still_serving(receiver, 20)


def test_a_stalled_body_is_cut_off_after_request_timeout():
    with OTLPReceiver(request_timeout=1.0) as receiver, closing(socket.create_connection((HOST, receiver.port))) as conn:
        conn.sendall(post_bytes(b"\0" * 100)[:-60])
        started = time.monotonic()
        answer, closed = read_all(conn, timeout=5)
        assert closed and time.monotonic() - started < 3
        assert status_of(answer) in (0, 408)
        still_serving(receiver)


@pytest.mark.parametrize(("body", "headers"), [
    (b"\xff\xff\xff garbage", {}),
    (trace_body()[:-3], {}),
    (gzip.compress(trace_body())[:-6], {"Content-Encoding": "gzip"}),
    (b"\x1f\x8b not gzip", {"Content-Encoding": "gzip"}),
    (gzip.compress(trace_body()) + b"trailing", {"Content-Encoding": "gzip"}),
    (b"\x0b\x00\x0c", {}),  # a group, which OTLP never uses
], ids=["garbage", "truncated", "truncated-gzip", "not-gzip", "gzip-then-trailing-bytes", "group"])
def test_truncated_and_garbage_bodies_are_400(body, headers):
    with OTLPReceiver() as receiver:
        answer = exchange(receiver.port, post_bytes(body, headers=headers))
        assert status_of(answer) == 400, answer
        assert receiver.spans == []
        still_serving(receiver)


def test_a_body_shorter_than_its_content_length_is_400():
    with OTLPReceiver() as receiver:
        answer = exchange(receiver.port, post_bytes(b"0123456789", headers={"Content-Length": "100"}), shut_wr=True)
        assert status_of(answer) == 400
        still_serving(receiver)


def test_the_receiver_serves_when_the_process_has_more_than_1024_descriptors_open():
    with descriptors(4096), ExitStack() as stack:
        for _ in range(1100):  # a busy process: descriptors beyond select()'s FD_SETSIZE
            stack.enter_context(closing(socket.socket()))
        with OTLPReceiver() as receiver:
            for i in range(3):
                assert post_status(receiver.port, trace_body(f"high-fd-{i}")) == 200
            assert len(receiver.spans) == 3
