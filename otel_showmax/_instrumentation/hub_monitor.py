"""Blocked-hub detection: name the request (or greenlet) that froze every other request in a gevent worker.

Under gevent one blocking call — an unpatched C driver, ``time.sleep`` bound before patching,
synchronous DNS, a CPU-heavy handler, a logging handler doing synchronous network I/O — stalls
every greenlet of the worker. This module finds such blocks and reports each one once, tied to
the request that held the hub.

How it works, cheaply:

* **Heartbeat.** A repeating, unreferenced timer in the hub's loop stamps ``perf_counter()`` every
  ``interval`` (threshold / 10, between 2 and 50 ms). While the loop runs, consecutive stamps are
  about ``interval`` apart; a gap means nothing returned control to the hub for that long. The
  callback reads the clock and the thread's CPU time; a gap of at least half the threshold is queued
  (start, end, CPU used) for the watchdog.
* **Watchdog.** A real OS thread (``_threads``, never a greenlet, whatever gevent patched) wakes
  every threshold / 4. When the last stamp is older than half the threshold, it samples the hub
  thread's stack (``sys._current_frames()``) and finds which registered request greenlet is
  running (the one that is alive and has no saved frame: a greenlet's ``gr_frame`` is None only
  while it runs). No frame is kept past the sample: only (file, line, function) tuples.
* **Request registry.** The Falcon request path registers ``greenlet → server span`` while a
  request runs (one dict insert and one delete per request). The span's context is read from the
  watchdog thread — a greenlet's ``gr_context`` cannot be read from another thread.
* **Blocked, or starved?** A gap is a block when the hub's thread computed for at least a quarter
  of it, or was seen (``/proc/self/task/<tid>``) waiting in a blocking system call — sleep, I/O, DNS,
  connect. A thread that was runnable (the machine short of CPU) or in ``futex`` (usually the GIL,
  held by another thread) was starved, not blocked: counted, reported once on stderr, not blamed on a
  greenlet. The block ends at the first sample after the blocking call returned, when one was taken
  before the hub ran again.
* **Report.** When the gap ends (the heartbeat runs again) and lasted at least the threshold, the
  watchdog reports it, once: a ``gevent.hub.block`` span, child of the request's server span and
  back-dated to the start of the block; one WARNING record on ``otel_showmax.hub_monitor`` written
  with that request's context current (so local and exported logs carry its trace and span ids);
  one ``gevent.hub.block.duration`` histogram point (seconds). A block that lasts longer than
  ``ongoing_after`` (10 s, or 10 thresholds) is reported while it still runs, so a worker killed
  for its timeout still leaves a trace; it is not reported again when it ends.

Reports are written from the watchdog thread, never from the hub: a slow logging handler (the
classic cause) must not block the hub a second time for our own warning.

Durations are measured between heartbeats: a reported duration overstates the block by at most
one heartbeat interval (10 ms at the default 100 ms threshold). Blocks before the hub's loop
first ran (start-up, before the server serves) are not reported; blocks in a background greenlet
or in the hub's own callbacks are, without trace ids, naming the greenlet by its outermost
function.

Per location (file and line of the innermost frame) at most ``report_limit`` reports are written
per ``report_window`` seconds; the rest only feed the histogram and are counted in the next report
(``gevent.hub.block.suppressed``). The histogram's location attributes are bounded too
(``MAX_METRIC_LOCATIONS`` distinct locations, then ``_OTHER``).

Nothing here raises into the application: the watchdog survives whatever it samples (dead
greenlets, C frames, greenlets without trace context), and its own failures are reported through
``_diag``, rate-limited.

Self-contained: it gets the tracer, logger and histogram it reports through as arguments, and
imports nothing from otel_showmax but ``_diag`` and ``_threads``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import _diag, _threads

__all__ = [
    "LOGGER_NAME",
    "METRIC_NAME",
    "SPAN_NAME",
    "BlockReport",
    "Monitor",
    "install",
    "is_running",
    "stop",
    "tracker",
    "uninstall",
]

SPAN_NAME = "gevent.hub.block"
METRIC_NAME = "gevent.hub.block.duration"
METRIC_UNIT = "s"
METRIC_DESCRIPTION = "How long one greenlet kept the gevent hub from running (every other greenlet waited)."
#: Histogram bucket boundaries (seconds): the threshold is 0.1 s by default.
METRIC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LOGGER_NAME = "otel_showmax.hub_monitor"
#: Distinct (file, line, function) sets on the histogram before the rest become ``_OTHER``.
MAX_METRIC_LOCATIONS = 100
#: Frames kept from the innermost one outwards (``code.stacktrace``).
STACK_LIMIT = 8
#: Frames walked at most to find a greenlet's outermost function.
_WALK_LIMIT = 256
#: Samples kept per block (the most frequent location wins).
_MAX_SAMPLES = 256

Frame = tuple[str, int, str]  # (file, line, function)
#: ``futex`` system call numbers (futex, futex_waitv) of this machine: a thread there waits for a lock,
#: usually the GIL held by another thread — not for the blocking call of its greenlet.
_FUTEX = {"x86_64": {202, 449}, "aarch64": {98, 449}, "arm64": {98, 449}}.get(
    __import__("platform").machine(), {202, 98, 449})


def _perf_ns_offset() -> int:
    """Nanoseconds to add to ``perf_counter() * 1e9`` for wall-clock (epoch) time."""
    return time.time_ns() - int(time.perf_counter() * 1e9)


def _real(module: str, name: str) -> Any:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original(module, name)
    return getattr(__import__(module), name)


@dataclass(frozen=True)
class BlockReport:
    """One block of the hub, as reported."""

    duration: float
    """Seconds between the last heartbeat before the block and the first after it (or now, if ongoing)."""
    start: float
    """``perf_counter()`` of the last heartbeat before the block."""
    end: float
    stack: tuple[Frame, ...]
    """Innermost frame first; empty when no sample could be taken."""
    greenlet: str
    """The running greenlet's outermost function, ``file:line`` of its definition."""
    span: Any
    """The server span of the request that held the hub, or None (a block outside any request)."""
    waiting: int
    """Other requests in flight in this worker, which waited."""
    ongoing: bool = False
    cpu: float | None = None
    """CPU seconds the hub's thread used during the block (about the duration: computing; about 0: waiting)."""
    suppressed: int = 0
    """Reports of this location left out by the rate limit since the last one written."""

    @property
    def location(self) -> Frame | None:
        return self.stack[0] if self.stack else None

    def attributes(self) -> dict[str, Any]:
        """Span and log attributes (semantic-convention ``code.*`` names where they exist)."""
        attrs: dict[str, Any] = {"gevent.hub.block.duration": round(self.duration, 6)}
        if self.stack:
            file, line, function = self.stack[0]
            attrs["code.file.path"] = file
            attrs["code.line.number"] = line
            attrs["code.function.name"] = function
            attrs["code.stacktrace"] = "\n".join(f"{f}:{n} in {fn}" for f, n, fn in self.stack)
        attrs["gevent.greenlet"] = self.greenlet
        attrs["gevent.hub.block.waiting_requests"] = self.waiting
        if self.cpu is not None:
            attrs["gevent.hub.block.cpu_time"] = round(self.cpu, 6)
        if self.ongoing:
            attrs["gevent.hub.block.ongoing"] = True
        if self.suppressed:
            attrs["gevent.hub.block.suppressed"] = self.suppressed
        return attrs

    def message(self) -> tuple[str, tuple[Any, ...]]:
        """The log message and its arguments."""
        where = "{}:{} in {}".format(*self.stack[0]) if self.stack else "an unknown location (no sample)"
        who = "this request" if self.span is not None else f"greenlet {self.greenlet}"
        state = " and still is" if self.ongoing else ""
        return (
            "gevent hub blocked for %.3f s%s by %s at %s; %d other request(s) waited",
            (self.duration, state, who, where, self.waiting),
        )


@dataclass
class _Sample:
    key: int  # id() of the running request greenlet, or 0
    span: Any
    stack: tuple[Frame, ...]
    greenlet: str
    waiting: int
    at: float = 0.0  # perf_counter() of the sample
    held: bool = False  # the hub's thread was in a blocking system call


class _RateLimit:
    """At most ``limit`` reports per location per ``window`` seconds; counts the rest."""

    _MAX_KEYS = 1024

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[Any, list[float | int]] = {}  # key -> [window start, written, suppressed]

    def allow(self, key: Any, now: float) -> tuple[bool, int]:
        """(whether to write the report, how many were suppressed before it)."""
        entry = self._windows.get(key)
        if entry is None or now - entry[0] >= self.window:
            suppressed = int(entry[2]) if entry is not None else 0
            if len(self._windows) >= self._MAX_KEYS:
                self._windows.clear()
            self._windows[key] = [now, 1, 0]
            return True, suppressed
        if entry[1] < self.limit:
            entry[1] += 1
            suppressed, entry[2] = int(entry[2]), 0
            return True, suppressed
        entry[2] += 1
        return False, 0


class Monitor:
    """The heartbeat and the watchdog of one hub, in one process.

    Args:
        threshold: seconds; blocks at least this long are reported.
        tracer: an OpenTelemetry tracer for the ``gevent.hub.block`` spans, or None.
        logger: the logger for the WARNING record, or None.
        histogram: an instrument with ``record(value, attributes)``, or None.
        requests: the registry ``greenlet → server span`` (shared with the request path).
        report_limit, report_window: the per-location rate limit.
        ongoing_after: seconds after which a block still in progress is reported.
    """

    def __init__(self, threshold: float, *, tracer: Any = None, logger: logging.Logger | None = None,
                 histogram: Any = None, requests: dict[Any, Any] | None = None, report_limit: int = 10,
                 report_window: float = 60.0, ongoing_after: float | None = None) -> None:
        if threshold <= 0:
            raise ValueError("threshold must be > 0 seconds")
        self.threshold = threshold
        self.interval = min(max(threshold / 10, 0.002), 0.05)
        self.period = threshold / 4
        self.fine = max(0.002, threshold / 20)  # the watchdog's period while the hub is held
        self.arm = threshold / 2
        self.ongoing_after = ongoing_after if ongoing_after is not None else max(10.0, 10 * threshold)
        self.tracer = tracer
        self.logger = logger
        self.histogram = histogram
        self.requests: dict[Any, Any] = requests if requests is not None else {}
        self._limit = _RateLimit(report_limit, report_window)
        self._metric_locations: set[Frame] = set()
        self._last: float | None = None  # perf_counter() of the last heartbeat; None until the loop ran
        self._last_cpu = 0.0  # the hub thread's CPU time then
        self._ended: deque[tuple[float, float, float]] = deque()  # (start, end, hub CPU s) gaps, for the watchdog
        self._stall_start: float | None = None
        self._samples: list[_Sample] = []
        self._evidence = 0  # on-time looks at the current gap that found the hub thread not runnable
        self._reported_ongoing: float | None = None  # start of the block reported while in progress
        self._timer: Any = None
        self._hub_ident: int | None = None
        self._hub_proc: str | None = None  # /proc/self/task/<tid> of the hub's thread
        self._hub_run_code: Any = None
        self._stop_lock: Any = None
        self._exited: Any = None
        self._stopping = False
        self.pid: int | None = None
        self.reports = 0  # written reports (tests, doctor)
        self.blocks = 0  # blocks at least the threshold long, reported or not
        self.starved = 0  # gaps at least the threshold long where the process, not a greenlet, was held up

    # -- in the hub's thread -----------------------------------------------------------------------

    def start(self, hub: Any = None) -> None:
        """Install the heartbeat in ``hub`` (default: this thread's) and start the watchdog thread.

        Call from the hub's thread.
        """
        if hub is None:
            from gevent import get_hub

            hub = get_hub()
        self.pid = os.getpid()
        self._hub_ident = hub.thread_ident
        try:
            task = f"/proc/self/task/{_real('_thread', 'get_native_id')()}"
            self._hub_proc = task if os.path.exists(task + "/stat") else None
        except Exception:  # no native thread ids, no /proc: the thread's state is not looked at
            self._hub_proc = None
        self._hub_run_code = getattr(getattr(type(hub), "run", None), "__code__", None)
        self._timer = hub.loop.timer(self.interval, self.interval, ref=False)
        self._timer.start(self._beat)
        self._stop_lock = _threads.allocate_lock()
        self._stop_lock.acquire()
        self._exited = _threads.allocate_lock()
        self._exited.acquire()
        _threads.start_thread(self._watch)

    def _beat(self) -> None:
        """The heartbeat (a hub callback: two clock reads, one compare)."""
        if self._stopping:
            self._stop_timer()
            return
        now = time.perf_counter()
        cpu = time.thread_time()
        last, last_cpu = self._last, self._last_cpu
        self._last, self._last_cpu = now, cpu
        if last is not None and now - last >= self.arm:
            self._ended.append((last, now, cpu - last_cpu))

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            try:
                timer.stop()
                timer.close()
            except Exception:  # pragma: no cover - a loop already destroyed
                pass

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop the watchdog (waits at most ``timeout`` seconds) and the heartbeat. From any thread."""
        if self._stopping:
            return True
        self._stopping = True
        if self._hub_ident is not None and _real("_thread", "get_ident")() == self._hub_ident:
            self._stop_timer()  # else the next heartbeat stops it, in the hub's thread
        if self._stop_lock is None or self.pid != os.getpid():
            return True
        try:
            self._stop_lock.release()
        except RuntimeError:  # pragma: no cover - released already
            pass
        return bool(self._exited.acquire(True, timeout))

    # -- the watchdog thread ----------------------------------------------------------------------

    def _watch(self) -> None:
        try:
            target = time.perf_counter() + self.period
            while not self._stop_lock.acquire(True, max(0.0, target - time.perf_counter())):
                now = time.perf_counter()
                target = now + (self.period if self._stall_start is None else self.fine)
                try:
                    self._tick(now)
                except Exception as error:
                    _diag.warn("hub_monitor_tick", "the gevent hub monitor skipped a check: %r", error)
        finally:
            self._exited.release()

    def _tick(self, now: float) -> None:
        while self._ended:  # blocks that ended first: a new one may have begun since
            start, end, cpu = self._ended.popleft()
            ours = start == self._stall_start
            samples, evidence = (self._samples, self._evidence) if ours else ([], 0)
            if ours:
                self._stall_start, self._samples, self._evidence = None, [], 0
            self._finish(start, end, cpu, samples, evidence)
        last = self._last
        if last is not None and now - last >= self.arm:
            if self._stall_start != last:
                self._stall_start, self._samples, self._evidence = last, [], 0
            self._sample(last, self._hub_held())
            if now - last >= self.ongoing_after and self._reported_ongoing != last and self._evidence:
                self._reported_ongoing = last
                self._report(last, now, self._samples, ongoing=True)

    def _sample(self, stall_start: float, held: bool = False) -> None:
        if len(self._samples) >= _MAX_SAMPLES:
            self._samples.pop(0)
        running = None
        in_flight = 0
        for greenlet, span in list(self.requests.items()):
            in_flight += 1
            try:
                if running is None and greenlet.gr_frame is None and not greenlet.dead and greenlet:
                    running = (greenlet, span)
            except Exception:  # a greenlet in a state we do not know: skip it
                continue
        frame = sys._current_frames().get(self._hub_ident)  # type: ignore[arg-type]
        try:
            stack, outermost = _walk(frame)
        finally:
            del frame
        if self._last != stall_start:
            return  # the hub moved on while we looked: this sample may mix two greenlets
        if running is None and stack and self._hub_run_code is not None and outermost is not None \
                and outermost[0] is self._hub_run_code and len(stack) == 1:
            return  # the hub itself, waiting in its loop: not a block (the process was starved or paused)
        if held:
            self._evidence += 1  # the hub's thread waits in a blocking call: it is held, not starved
        name = "-" if outermost is None else outermost[1]
        now = time.perf_counter()
        if running is not None:
            self._samples.append(_Sample(id(running[0]), running[1], stack, name, in_flight - 1, now, held))
        else:
            self._samples.append(_Sample(0, None, stack, name, in_flight, now, held))

    def _hub_held(self) -> bool:
        """Whether the hub's thread waits in a blocking system call (sleep, I/O, DNS, connect …).

        Not when it is runnable (waiting for a CPU: the machine is starved), stopped, nor in ``futex`` (most
        often waiting for the GIL that another thread holds). Without /proc (not Linux): True.
        """
        if self._hub_proc is None:
            return True
        try:
            with open(self._hub_proc + "/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
            if text[text.rindex(")") + 2] in "RTt":  # runnable (short of CPU), stopped, traced
                return False
            with open(self._hub_proc + "/syscall", encoding="ascii", errors="replace") as f:
                call = f.read().split(" ", 1)[0]
        except (OSError, ValueError, IndexError):
            return True
        return call.lstrip("-").isdigit() and int(call) not in _FUTEX

    def _finish(self, start: float, end: float, cpu: float, samples: list[_Sample], evidence: int) -> None:
        end = _end_of_blocking_call(samples, end)
        if end - _not_before_request(start, self._best(samples)) < self.threshold:
            return  # shorter, or most of the gap came before the request that was running at its end
        duration = end - start
        if cpu < duration / 4 and not evidence:
            # Neither computing nor ever seen in a blocking call: the hub's thread waited for a CPU or for
            # the GIL — the machine or the process was starved, no greenlet blocked the hub.
            self.starved += 1
            _diag.warn("hub_monitor_starved", "the gevent hub did not run for %.3f s, but it was starved of CPU "
                       "(the monitor's own thread was held up too), not blocked by a greenlet: not reported", duration)
            return
        self.blocks += 1
        if self._reported_ongoing == start:
            self._reported_ongoing = None
            best = self._best(samples)  # reported while it ran; the histogram gets the whole block
            self._record(end - _not_before_request(start, best), best)
            return
        self._report(start, end, samples, ongoing=False, cpu=cpu)

    @staticmethod
    def _best(samples: list[_Sample]) -> _Sample | None:
        if not samples:
            return None
        counts = Counter((s.key, s.stack[:1]) for s in samples)
        (key, top), _ = counts.most_common(1)[0]
        best = next(s for s in reversed(samples) if s.key == key and s.stack[:1] == top)
        best.waiting = max(s.waiting for s in samples)
        return best

    def _report(self, start: float, end: float, samples: list[_Sample], *, ongoing: bool,
                cpu: float | None = None) -> None:
        sample = self._best(samples)
        start = _not_before_request(start, sample)
        if not ongoing:
            self._record(end - start, sample)
        location = sample.stack[0][:2] if sample is not None and sample.stack else None
        allowed, suppressed = self._limit.allow(location, end)
        if not allowed:
            return
        report = BlockReport(
            duration=end - start, start=start, end=end,
            stack=sample.stack if sample is not None else (),
            greenlet=sample.greenlet if sample is not None else "-",
            span=sample.span if sample is not None else None,
            waiting=sample.waiting if sample is not None else len(self.requests),
            ongoing=ongoing, cpu=cpu, suppressed=suppressed,
        )
        self.reports += 1
        self._write(report)

    def _record(self, duration: float, sample: _Sample | None) -> None:
        if self.histogram is None:
            return
        attrs: dict[str, Any] = {}
        if sample is not None and sample.stack:
            location = sample.stack[0]
            if location in self._metric_locations or len(self._metric_locations) < MAX_METRIC_LOCATIONS:
                self._metric_locations.add(location)
                attrs = {"code.file.path": location[0], "code.line.number": location[1],
                         "code.function.name": location[2]}
            else:
                attrs = {"code.function.name": "_OTHER"}
        try:
            self.histogram.record(duration, attrs)
        except Exception as error:
            _diag.warn("hub_monitor_metric", "the gevent hub monitor could not record a block: %r", error)

    def _write(self, report: BlockReport) -> None:
        """The span and the log record, written from this (watchdog) thread with the request's context."""
        from opentelemetry import context as context_api
        from opentelemetry import trace

        offset = _perf_ns_offset()
        attributes = report.attributes()
        parent = trace.set_span_in_context(report.span) if report.span is not None else None
        if self.tracer is not None and report.span is not None:
            start_ns = offset + round(report.start * 1e9)
            began = getattr(report.span, "start_time", None)
            if isinstance(began, int):  # never before its parent (rounding of the clocks' offset)
                start_ns = max(start_ns, began)
            try:
                span = self.tracer.start_span(SPAN_NAME, context=parent, kind=trace.SpanKind.INTERNAL,
                                              attributes=attributes, start_time=start_ns)
                span.end(end_time=max(start_ns, offset + round(report.end * 1e9)))
            except Exception as error:
                _diag.warn("hub_monitor_span", "the gevent hub monitor could not write its span: %r", error)
        if self.logger is not None:
            token = context_api.attach(parent if parent is not None else context_api.Context())
            try:
                message, args = report.message()
                self.logger.warning(message, *args, extra=attributes)
            except Exception as error:
                _diag.warn("hub_monitor_log", "the gevent hub monitor could not write its log record: %r", error)
            finally:
                context_api.detach(token)


def _end_of_blocking_call(samples: list[_Sample], end: float) -> float:
    """When the block ended: at the first sample after the last one that found the hub's thread in a
    blocking system call, if the hub had not run again by then. What the greenlet did afterwards until
    it yielded (a millisecond of work, or much longer on a machine short of CPU) is not the block."""
    last = next((i for i in range(len(samples) - 1, -1, -1) if samples[i].held), None)
    if last is None or last + 1 == len(samples):
        return end
    return min(end, samples[last + 1].at)


def _not_before_request(start: float, sample: _Sample | None) -> float:
    """The block's start (``perf_counter``), not before its request started: the heartbeat before the
    block may precede the request's span by up to one interval."""
    began = getattr(sample.span, "start_time", None) if sample is not None else None
    if not isinstance(began, int):
        return start
    return max(start, (began - _perf_ns_offset()) / 1e9)


def _walk(frame: Any) -> tuple[tuple[Frame, ...], tuple[Any, str] | None]:
    """(innermost frames, (outermost code object, its name)) of a thread's stack; no frame kept."""
    stack: list[Frame] = []
    outer = None
    depth = 0
    while frame is not None and depth < _WALK_LIMIT:
        code = frame.f_code
        if len(stack) < STACK_LIMIT:
            stack.append((code.co_filename, frame.f_lineno or 0, getattr(code, "co_qualname", code.co_name)))
        outer = code
        frame = frame.f_back
        depth += 1
    if outer is None:
        return (), None
    name = f"{getattr(outer, 'co_qualname', outer.co_name)} ({os.path.basename(outer.co_filename)}:{outer.co_firstlineno})"
    return tuple(stack), (outer, name)


# -- one monitor per process: configured by setup(), started in the worker that serves -------------------


class Tracker:
    """The request path's side: ``greenlet → server span`` while a request runs, and the lazy start.

    ``enter`` is called by the Falcon request path with the server span; it returns a key for
    ``exit`` (None when the monitor does not run in this process). The first request of a process
    decides whether the monitor runs here (a gevent-patched worker whose hub serves requests) and
    starts it.
    """

    def __init__(self, start: Callable[[], bool]) -> None:
        self._start = start
        self._pid = -1
        self._on = False
        self.spans: dict[Any, Any] = {}
        from greenlet import getcurrent

        self._getcurrent = getcurrent

    def enter(self, span: Any) -> Any:
        if self._pid != os.getpid():
            self._new_process()
        if not self._on:
            return None
        greenlet = self._getcurrent()
        self.spans[greenlet] = span
        return greenlet

    def exit(self, key: Any) -> None:
        self.spans.pop(key, None)

    def _new_process(self) -> None:
        self._pid = os.getpid()
        self.spans = {}
        try:
            self._on = _served_by_hub() and bool(self._start())
        except Exception as error:
            self._on = False
            _diag.warn("hub_monitor_start", "the gevent hub monitor did not start: %r", error)

    def started(self) -> None:
        """The monitor runs in this process (started outside the request path)."""
        self._pid = os.getpid()
        self._on = True


def _served_by_hub() -> bool:
    """Whether the current greenlet was started by this thread's gevent hub (a gevent worker's request:
    gunicorn -k gevent, uWSGI --gevent — which does not monkey-patch unless told to)."""
    from gevent._hub_local import get_hub_if_exists

    hub = get_hub_if_exists()
    current = getcurrent_greenlet()
    return hub is not None and current is not hub and getattr(current, "parent", None) is hub


def getcurrent_greenlet() -> Any:
    from greenlet import getcurrent

    return getcurrent()


@dataclass
class _Options:
    threshold: float
    tracer: Any
    logger: logging.Logger | None
    histogram: Any
    may_start: Callable[[], bool]


_options: _Options | None = None
_monitor: Monitor | None = None
#: The request path's registry; None while the monitor is not configured (then it costs nothing).
tracker: Tracker | None = None


def install(threshold: float, *, tracer: Any = None, logger: logging.Logger | None = None, histogram: Any = None,
            may_start: Callable[[], bool] = lambda: True) -> None:
    """Configure the monitor for this process and its forks; it starts with ``ensure_started()``
    (setup, after fork) once gevent patched the process, else at the first request.

    Args:
        threshold: seconds (> 0).
        may_start: False where no thread may run (a uWSGI master that forks workers).
    """
    global _options, tracker
    _options = _Options(threshold, tracer, logger, histogram, may_start)
    tracker = Tracker(_start_here)


def ensure_started() -> bool:
    """Start the monitor in this process if it is configured, gevent patched ``threading`` and
    ``may_start()`` says yes; True when it runs. Safe to call any number of times. (Otherwise the
    first request served by a gevent hub starts it.)"""
    if not _threads.gevent_patched():
        return False
    ok = _start_here()
    if ok and tracker is not None:
        tracker.started()
    return ok


def _start_here() -> bool:
    global _monitor
    options = _options
    if options is None:
        return False
    pid = os.getpid()
    if _monitor is not None and _monitor.pid == pid and not _monitor._stopping:
        return True
    if not options.may_start():
        return False
    old, _monitor = _monitor, None
    if old is not None:
        old.stop(timeout=0)  # a fork's inherited monitor: its thread is not in this process
    monitor = Monitor(options.threshold, tracer=options.tracer, logger=options.logger, histogram=options.histogram,
                      requests=tracker.spans if tracker is not None else None)
    if tracker is not None:
        tracker.spans = monitor.requests
    monitor.start()
    _monitor = monitor
    return True


def is_running() -> bool:
    """Whether the monitor runs in this process."""
    monitor = _monitor
    return monitor is not None and monitor.pid == os.getpid() and not monitor._stopping


def current() -> Monitor | None:
    """This process's monitor, if it runs (tests, doctor)."""
    return _monitor if is_running() else None


def stop(timeout: float = 1.0) -> None:
    """Stop this process's monitor (shutdown); a later request does not restart it."""
    global _monitor
    monitor = _monitor
    if monitor is not None and monitor.pid == os.getpid():
        monitor.stop(timeout)
    if tracker is not None:
        tracker._pid, tracker._on = os.getpid(), False


def uninstall() -> None:
    """Stop and forget the configuration (tests)."""
    global _options, _monitor, tracker
    stop(timeout=1.0)
    _options = None
    _monitor = None
    tracker = None
