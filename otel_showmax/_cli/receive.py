"""``otel-showmax receive``: the embedded receiver printing traces as they complete.

Spans and logs arrive in batches, from several processes, in any order; a trace is printed once it
has been quiet for ``quiet`` seconds and its root span is there (or after ``max_wait`` seconds of
quiet without one).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from .render import render_logs, render_trace, safe

__all__ = ["TraceAssembler", "run_receive"]

Item = dict[str, Any]


@dataclass
class _Pending:
    spans: list[Item] = field(default_factory=list)
    logs: list[Item] = field(default_factory=list)
    last: float = 0.0


class TraceAssembler:
    """Group incoming spans and logs by trace and write each trace once it is complete.

    Args:
        write: Called with each rendered block of text.
        quiet: Seconds without news for a trace before it is printed.
        max_wait: Seconds of quiet after which a trace without its root (or logs without a
            trace) is printed anyway.
        color: Render with ANSI colours.
        clock: Monotonic clock, replaceable in tests.
        max_trace_items: A trace holding this many spans and logs is printed at once (in parts if
            more come), so a trace that never goes quiet cannot grow without bound.
        max_pending: Most spans and logs held in all; beyond, the oldest traces are printed early.
    """

    def __init__(self, write: Callable[[str], None], *, quiet: float = 1.0, max_wait: float = 5.0,
                 color: bool = False, clock: Callable[[], float] = time.monotonic, max_trace_items: int = 10_000,
                 max_pending: int = 100_000) -> None:
        self._write = write
        self._max_trace_items = max_trace_items
        self._max_pending = max_pending
        self._held = 0
        self._quiet = quiet
        self._max_wait = max_wait
        self._color = color
        self._clock = clock
        self._lock = threading.Lock()
        self._traces: dict[str, _Pending] = {}
        self._loose = _Pending()

    def add(self, signal_name: str, items: list[Item]) -> None:
        """Receiver listener: take the items of one export request."""
        if signal_name not in ("spans", "logs"):
            return
        now = self._clock()
        with self._lock:
            for item in items:
                trace_id = item.get("trace_id") or ""
                pending = self._traces.setdefault(trace_id, _Pending()) if trace_id else self._loose
                (pending.spans if signal_name == "spans" else pending.logs).append(item)
                pending.last = now
            self._held += len(items)

    def flush(self, force: bool = False) -> int:
        """Write every trace that is ready (all of them when ``force``); returns how many."""
        now = self._clock()
        ready: list[_Pending] = []
        loose: list[Item] = []
        with self._lock:
            over = self._held - self._max_pending  # too much held: the oldest traces go first
            for trace_id, pending in sorted(self._traces.items(), key=lambda kv: kv[1].last):
                quiet_for = now - pending.last
                size = len(pending.spans) + len(pending.logs)
                has_root = any(not s.get("parent_span_id") for s in pending.spans)
                if (force or over > 0 or size >= self._max_trace_items
                        or (quiet_for >= self._quiet and (has_root or quiet_for >= self._max_wait))):
                    ready.append(self._traces.pop(trace_id))
                    over -= size
                    self._held -= size
            if self._loose.logs and (force or over > 0 or len(self._loose.logs) >= self._max_trace_items
                                     or now - self._loose.last >= self._quiet):
                loose, self._loose = self._loose.logs, _Pending()
                self._held -= len(loose)
        ready.sort(key=lambda p: min((s["start_time_unix_nano"] for s in p.spans), default=0))
        for pending in ready:
            if pending.spans:
                self._write(_render_or_say_why(render_trace, pending.spans, pending.logs, color=self._color) + "\n")
            else:
                loose.extend(pending.logs)
        if loose:
            self._write(_render_or_say_why(render_logs, loose, color=self._color) + "\n")
        return len(ready)


def _render_or_say_why(render: Callable[..., str], *items: list[Item], color: bool) -> str:
    """Render, or when the renderer fails on this input, one line saying so: the receiver carries on."""
    try:
        return render(*items, color=color)
    except Exception as exc:
        counts = " and ".join(f"{len(group)} items" for group in items)
        return f"(could not render {counts}: {type(exc).__name__}: {safe(exc)})\n"


def _printer(stream: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


def run_receive(host: str, port: int, grpc_port: int | None, jsonl: str | None, *, otlp_json: str | None = None,
                quiet: float = 1.0,
                duration: float | None = None, port_file: str | None = None, color: bool | None = None,
                stream: TextIO | None = None, max_body: int | None = None, max_items: int | None = None,
                max_depth: int | None = None, max_threads: int | None = None) -> int:
    """Serve OTLP on ``host`` and print traces until SIGINT/SIGTERM (or ``duration`` seconds).

    ``max_body``, ``max_items``, ``max_depth`` and ``max_threads`` override the receivers' limits
    (``max_threads`` bounds the gRPC calls in flight too); None keeps each default.

    Returns:
        The process exit status: 0, or 2 when a port cannot be bound.
    """
    from .._receiver.grpc import OTLPGrpcReceiver
    from .._receiver.http import OTLPReceiver
    from .._receiver.store import Store

    out = stream or sys.stdout
    if color is None:
        color = out.isatty() and "NO_COLOR" not in os.environ
    assembler = TraceAssembler(_printer(out), quiet=quiet, color=color)
    limits: dict[str, Any] = {k: v for k, v in (("max_body", max_body), ("max_items", max_items),
                                                 ("max_depth", max_depth)) if v is not None}
    grpc_limits = dict(limits, **({"max_concurrent_rpcs": max_threads} if max_threads is not None else {}))
    http_limits = dict(limits, **({"max_threads": max_threads} if max_threads is not None else {}))
    try:
        store = Store(jsonl, otlp_json, keep=False)  # printed and written, not kept: runs for days
    except OSError as exc:
        print(f"otel-showmax receive: cannot open an output file: {exc}", file=sys.stderr)
        return 2
    try:
        http = OTLPReceiver(host, port, store=store, **http_limits).start()
    except OSError as exc:
        store.close()
        print(f"otel-showmax receive: cannot listen on {host}:{port} for OTLP/HTTP: {exc}", file=sys.stderr)
        return 2
    http.store.add_listener(assembler.add)
    grpc_receiver = None
    try:
        if grpc_port is not None:
            try:
                grpc_receiver = OTLPGrpcReceiver(host, grpc_port, store=http.store, **grpc_limits).start()
            except (OSError, RuntimeError) as exc:
                print(f"otel-showmax receive: cannot listen on {host}:{grpc_port} for OTLP/gRPC: {exc} "
                      "(use --grpc-port PORT or --no-grpc)", file=sys.stderr)
                return 2
        if port_file:
            tmp = f"{port_file}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(str(http.port))
            os.replace(tmp, port_file)
        where = f"OTLP/HTTP on {http.endpoint}" + (f", OTLP/gRPC on {grpc_receiver.endpoint}" if grpc_receiver else "")
        print(f"otel-showmax receive: {where}; printing traces (Ctrl-C to stop)", file=sys.stderr, flush=True)
        _serve(assembler, duration)
    finally:
        if grpc_receiver is not None:
            grpc_receiver.stop()
        http.stop()
        store.close()
        assembler.flush(force=True)
    return 0


def _serve(assembler: TraceAssembler, duration: float | None) -> None:
    # The handler only appends to a list: a handler taking a lock (Event.set) can deadlock when the
    # signal arrives while this thread holds that lock inside Event.wait.
    stop: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, _frame: stop.append(signum))
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while not stop:
            time.sleep(0.2)
            if stop:
                break
            try:
                assembler.flush()
            except Exception as exc:  # never exit on what a client sent
                print(f"otel-showmax receive: {type(exc).__name__}: {safe(exc)}", file=sys.stderr, flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
