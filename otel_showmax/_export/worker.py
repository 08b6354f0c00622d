"""BatchWorker: a bounded queue drained by one real OS thread per signal and per process.

The request path only appends to a deque (and, once per batch, wakes the worker). Everything that
can wait — converting records, encoding, the network — happens on the worker thread. The worker
and its exporter are created lazily in each process, so a fork (gunicorn, uWSGI, os.fork) gets its
own pipeline on first use and the parent keeps its own.
"""

from __future__ import annotations

import os
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .. import _diag, _threads
from .._upstream import SUPPRESS_KEY, stop_retrying

# invalid_item: an item no encoder could take even escaped (docs/bad-input.md); dropped alone, its
# batch-mates exported.
REASONS = ("queue_full", "export_failed", "shutdown", "invalid_item")
MAX_BACKOFF = 30.0

# One start lock per process, created in that process (a lock inherited through fork may be held).
_START_LOCKS: dict[int, Any] = {}


class Event:
    """A minimal event on real locks (threading.Event may be gevent's after monkey-patching)."""

    def __init__(self) -> None:
        self._flag = False
        self._mutex = _threads.allocate_lock()
        self._waiters: list[Any] = []

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._mutex:
            self._flag = True
            for waiter in self._waiters:
                waiter.release()
            self._waiters.clear()

    def clear(self) -> None:
        with self._mutex:
            self._flag = False

    def wait(self, timeout: float | None) -> bool:
        with self._mutex:
            if self._flag:
                return True
            waiter = _threads.allocate_lock()
            waiter.acquire()
            self._waiters.append(waiter)
        got = waiter.acquire(True, -1 if timeout is None else max(timeout, 0.0))
        if not got:
            with self._mutex:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                else:  # set() released it just after the timeout
                    got = True
        return got


class Stats:
    """What one worker did in this process: items exported, and dropped by reason."""

    def __init__(self) -> None:
        self._lock = _threads.allocate_lock()
        self.exported = 0
        self.dropped = dict.fromkeys(REASONS, 0)

    def drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self.dropped[reason] += count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"exported": self.exported, **self.dropped}


class BatchWorker:
    """Bounded queue + one real OS thread exporting batches through an exporter.

    Args:
        signal: ``traces``, ``logs`` or ``metrics`` (for diagnostics).
        make_exporter: builds the exporter; called on the worker thread, once per process.
        max_queue_size: items held at most; more are dropped and counted as ``queue_full``.
        max_batch: items per export call.
        schedule_delay: seconds between exports when the batch is not full.
        prepare: turns queued items into what the exporter takes (runs on the worker thread).
        on_fork: called once in a forked child, on its first item (uWSGI forks in C, where
            os.register_at_fork hooks never run).
    """

    def __init__(
        self,
        signal: str,
        make_exporter: Callable[[], Any],
        *,
        max_queue_size: int,
        max_batch: int,
        schedule_delay: float,
        prepare: Callable[[list[Any]], Sequence[Any]] | None = None,
        on_fork: Callable[[], None] | None = None,
    ) -> None:
        self.signal = signal
        self._full_key = f"queue_full:{signal}"  # built once: the full-queue path runs per dropped item
        self._make_exporter = make_exporter
        self._max_queue = max_queue_size
        self._max_batch = max(1, min(max_batch, max_queue_size))
        self._delay = schedule_delay
        self._prepare = prepare
        self._on_fork = on_fork
        self._owner = os.getpid()  # the process this worker was made in
        self._pid = -1  # the process its thread runs in (-1: not started)
        self._reset_state()

    def _reset_state(self) -> None:
        self._queue: deque[Any] = deque()
        self.stats = Stats()
        self._wake = Event()
        self._flushed = Event()
        self._stopped = Event()
        self._closed = False  # no more items accepted
        self._final = False  # drain everything, then stop
        self._abandoned = False  # shutdown gave up waiting; the thread must not count again
        self._flush_requested = False
        self._inflight = 0
        self._retry_at = 0.0
        self._backoff = 0.0
        self._exporter: Any = None
        self._thread_ident: int | None = None
        self._held = False

    # -- producer side (request path) -------------------------------------------------------------

    def put(self, item: Any) -> None:
        """Queue one item for export; never blocks, never raises."""
        if self._pid != os.getpid():
            self._start()
        if self._closed:
            self.stats.drop("shutdown")
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            self.stats.drop("queue_full")
            _diag.warn(self._full_key, "%s queue full (%d): dropping; see otel_showmax.dropped()",
                       self.signal, self._max_queue)
            return
        queue.append(item)
        if len(queue) >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        pid = os.getpid()
        lock = _START_LOCKS.setdefault(pid, _threads.allocate_lock())
        with lock:
            if self._pid == pid:
                return
            if pid != self._owner:  # forked: the parent's queue and thread stay the parent's
                self._owner = pid
                self._reset_state()
                if self._on_fork is not None:
                    self._on_fork()
            self._pid = pid
            self._thread_ident = _threads.start_thread(self._run)

    def hold(self) -> bool:
        """Queue items without starting the export thread in this process until ``release()``.

        For a process that may still fork from C with the GIL released (a uWSGI master): a running
        Python thread there can leave the forked child waiting for the GIL forever. Forked children
        start their own thread as usual. Returns False when the thread already runs here.
        """
        pid = os.getpid()
        lock = _START_LOCKS.setdefault(pid, _threads.allocate_lock())
        with lock:
            if self._pid != -1 or self._owner != pid:
                return False
            self._pid = pid  # put() sees a started worker and only queues
            self._held = True
            return True

    def release(self) -> None:
        """Start the export thread held by ``hold()``; what was queued meanwhile is exported."""
        pid = os.getpid()
        if self._held and self._pid == pid and self._owner == pid and self._thread_ident is None:
            self._held = False
            self._pid = -1
            self._start()

    @property
    def inflight(self) -> int:
        """Items the thread has taken and is exporting now."""
        return self._inflight

    def pending(self) -> int:
        """Items queued or being exported in this process."""
        return len(self._queue) + self._inflight

    # -- control ----------------------------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Export what is queued now; wait at most ``timeout`` seconds. True when all went out."""
        if self._held:  # no thread may start here yet (see hold())
            return not self._queue
        if self._pid != os.getpid() or self._closed:
            return self._pid != os.getpid() or not self._queue
        self._flushed.clear()
        self._flush_requested = True
        self._wake.set()
        return self._flushed.wait(timeout)

    def begin_shutdown(self) -> None:
        """Stop accepting items and tell the thread to export what is queued, then stop."""
        if self._closed:
            return
        self.release()  # held in a process that may fork no longer: export what it queued
        self._closed = True
        if self._pid == os.getpid():
            self._final = True
            if self._exporter is not None:
                stop_retrying(self._exporter)  # one try per batch from now on
            self._wake.set()

    def wait_shutdown(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the final export; abandon and count what is left.

        Returns True when everything queued was exported or dropped for a reason already counted.
        """
        if self._pid != os.getpid() or self._abandoned:
            return True
        if self._stopped.wait(timeout):
            late = len(self._queue)  # appended while the thread was finishing
            if late:
                self._queue.clear()
                self.stats.drop("shutdown", late)
            return not late
        self._abandoned = True
        left = len(self._queue) + self._inflight
        self._queue.clear()
        if left:
            self.stats.drop("shutdown", left)
        _diag.warn(f"abandon:{self.signal}", "shutdown budget exhausted: abandoned %d %s", left, self.signal)
        exporter = self._exporter
        if exporter is not None:  # abort its retries without waiting for it
            _threads.start_thread(lambda: _quiet(exporter.shutdown))
        return False

    def shutdown(self, timeout: float) -> bool:
        """Both phases of shutdown for this worker alone."""
        if self._closed:
            return True
        self.begin_shutdown()
        return self.wait_shutdown(timeout)

    # -- worker thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        from opentelemetry.context import attach, set_value

        # Export calls must not be traced by instrumented HTTP clients, and what they log must not
        # be exported again: the bridge skips records logged while instrumentation is suppressed.
        attach(set_value(SUPPRESS_KEY, True))
        try:
            self._loop()
        except Exception as error:  # pragma: no cover - the loop itself catches export errors
            _diag.warn(f"worker:{self.signal}", "%s export worker stopped: %r", self.signal, error)
        finally:
            if not self._abandoned and self._exporter is not None:
                _quiet(self._exporter.shutdown)
            self._stopped.set()

    def _loop(self) -> None:
        queue = self._queue
        next_export = time.monotonic() + self._delay
        while True:
            if not (self._final or self._flush_requested):
                deadline = next_export if len(queue) < self._max_batch else 0.0
                timeout = max(deadline, self._retry_at) - time.monotonic()
                if timeout > 0:
                    self._wake.wait(timeout)
                    self._wake.clear()
                    continue
            if self._abandoned:
                return
            if self._final and time.monotonic() < self._retry_at:
                # The collector failed the last export and we are backing off: spending the
                # shutdown budget on it would only delay the exit. Count what is left and stop.
                left = len(queue)
                queue.clear()
                if left:
                    self.stats.drop("shutdown", left)
                    _diag.warn(f"abandon:{self.signal}", "collector unreachable at shutdown: dropped %d %s",
                               left, self.signal)
                return
            if self._final or self._flush_requested:
                while queue and not self._abandoned:
                    self._export_one()  # one try per batch: the shutdown budget bounds it
            else:
                self._export_one()
            if len(queue) < self._max_batch:
                next_export = time.monotonic() + self._delay
            if self._flush_requested and not queue:
                self._flush_requested = False
                self._flushed.set()
            if self._final and not queue:
                return

    def _export_one(self) -> bool:
        queue = self._queue
        batch = []
        for _ in range(min(self._max_batch, len(queue))):
            try:
                batch.append(queue.popleft())
            except IndexError:
                break
        if not batch:
            return True
        self._inflight = len(batch)
        ok = False
        invalid = 0  # items left out of the request because no encoder could take them
        try:
            if self._exporter is None:
                with _threads.IMPORTS:  # its first imports never overlap a request's (see _threads)
                    self._exporter = self._make_exporter()
            exporter = self._exporter
            items = self._prepare(batch) if self._prepare else batch
            invalid = len(batch) - len(items)  # what prepare could not convert, each counted once
            if hasattr(exporter, "invalid_items"):
                exporter.invalid_items = 0  # set by our exporters' encoding (see otlp_http.py)
            if items:
                result = exporter.export(items)
                invalid += getattr(exporter, "invalid_items", 0)
                ok = getattr(result, "name", "SUCCESS") == "SUCCESS"
            else:  # nothing left to send
                ok = True
        except Exception as error:  # never let the worker die
            _diag.warn(f"export_error:{self.signal}", "exporting %s failed: %r", self.signal, error)
        if self._abandoned:
            return ok
        self._inflight = 0
        invalid = min(max(invalid, 0), len(batch))
        if invalid:
            self.stats.drop("invalid_item", invalid)
            _diag.warn(f"invalid_item:{self.signal}", "dropped %d %s that could not be encoded, even escaped; "
                       "the rest of the batch was sent (see otel_showmax.dropped())", invalid, self.signal)
        sent = len(batch) - invalid
        if ok:
            with self.stats._lock:
                self.stats.exported += sent
            self._backoff = 0.0
            self._retry_at = 0.0
        else:
            self.stats.drop("export_failed", sent)
            self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff * random.uniform(0.8, 1.2)
            _diag.warn(
                f"export_failed:{self.signal}",
                "could not export %d %s to the collector; backing off %.0fs (drops are counted)",
                sent, self.signal, self._backoff,
            )
        return ok


def _quiet(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        pass
