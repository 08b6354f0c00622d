"""The hub-block monitor on a real gevent hub in this process (not monkey-patched: blocking calls are real).

Each test starts a ``Monitor`` on the main thread's hub with an in-memory tracer, a list of log
records and a fake histogram, makes greenlets block (or not), and counts what was reported.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import gevent
import pytest
from gevent import monkey
from greenlet import getcurrent
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_showmax import ConfigError, _diag
from otel_showmax._config import resolve
from otel_showmax._instrumentation import hub_monitor
from otel_showmax._instrumentation.hub_monitor import SPAN_NAME, Monitor

real_sleep = monkey.get_original("time", "sleep")
THIS_FILE = __file__


class Records(logging.Handler):
    """Keeps each record and the trace context current when it was written."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[logging.LogRecord, trace.SpanContext]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record, trace.get_current_span().get_span_context()))


class Histogram:
    def __init__(self) -> None:
        self.points: list[tuple[float, dict]] = []

    def record(self, value: float, attributes: dict | None = None) -> None:
        self.points.append((value, dict(attributes or {})))


@pytest.fixture
def kit():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    logger = logging.getLogger("tests.hub_monitor")
    logger.propagate = False
    handler = Records()
    logger.addHandler(handler)
    monitors: list[Monitor] = []

    class Kit:
        tracer = provider.get_tracer("tests")
        spans = exporter
        records = handler.records
        histogram = Histogram()

        def monitor(self, threshold: float = 0.1, **kwargs) -> Monitor:
            m = Monitor(threshold, tracer=self.tracer, logger=logger, histogram=self.histogram, **kwargs)
            m.start()
            monitors.append(m)
            gevent.sleep(0.05)  # the loop runs: the heartbeat is armed
            return m

        def block_spans(self):
            return [s for s in exporter.get_finished_spans() if s.name == SPAN_NAME]

    yield Kit()
    for m in monitors:
        assert m.stop(timeout=2.0), "the watchdog thread did not stop"
    logger.removeHandler(handler)
    _diag.reset()


def settle(monitor: Monitor, reports: int, timeout: float = 3.0) -> None:
    """Let the hub run until ``reports`` were written (and a little longer, to catch extra ones)."""
    deadline = time.monotonic() + timeout
    while monitor.reports < reports and time.monotonic() < deadline:
        gevent.sleep(0.02)
    gevent.sleep(0.3)


def serve(monitor: Monitor, tracer, body, name: str = "GET /slow"):
    """Run ``body`` in a greenlet registered as a request with its own server span; returns the span."""
    span = tracer.start_span(name, kind=trace.SpanKind.SERVER)

    def request():
        g = getcurrent()
        monitor.requests[g] = span
        try:
            with trace.use_span(span, end_on_exit=False):
                body()
        finally:
            monitor.requests.pop(g, None)
            span.end()

    return span, gevent.spawn(request)


def test_one_report_per_block_tied_to_its_request(kit):
    monitor = kit.monitor()

    def blocking():
        real_sleep(0.3)  # BLOCKING LINE

    blocking_line = blocking.__code__.co_firstlineno + 1
    waiter_span, waiter = serve(monitor, kit.tracer, lambda: gevent.sleep(0.6), "GET /waits")
    span, blocker = serve(monitor, kit.tracer, blocking)
    gevent.joinall([blocker, waiter])
    settle(monitor, 1)

    assert monitor.reports == 1 and monitor.blocks == 1
    (block,) = kit.block_spans()
    assert block.context.trace_id == span.get_span_context().trace_id
    assert block.parent.span_id == span.get_span_context().span_id
    duration = (block.end_time - block.start_time) / 1e9
    assert 0.27 <= duration <= 0.33, duration
    attrs = block.attributes
    assert attrs["code.file.path"] == THIS_FILE
    assert attrs["code.line.number"] == blocking_line
    assert attrs["code.function.name"].endswith("blocking")
    assert attrs["gevent.hub.block.waiting_requests"] == 1  # GET /waits was in flight
    assert 0.27 <= attrs["gevent.hub.block.duration"] <= 0.33
    # The span is back-dated: it starts before the request's span ended, within the request.
    assert span.start_time <= block.start_time <= span.end_time

    warnings = [(r, ctx) for r, ctx in kit.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    record, ctx = warnings[0]
    assert (ctx.trace_id, ctx.span_id) == (span.get_span_context().trace_id, span.get_span_context().span_id)
    message = record.getMessage()
    assert f"{THIS_FILE}:{blocking_line}" in message and "this request" in message and "1 other request" in message
    assert getattr(record, "code.line.number") == blocking_line

    ((value, metric_attrs),) = kit.histogram.points
    assert 0.27 <= value <= 0.33
    assert metric_attrs == {"code.file.path": THIS_FILE, "code.line.number": blocking_line,
                            "code.function.name": attrs["code.function.name"]}
    assert waiter_span.get_span_context().trace_id not in {s.context.trace_id for s in kit.block_spans()}


def test_cooperative_sleep_is_not_a_block(kit):
    monitor = kit.monitor()
    _, g1 = serve(monitor, kit.tracer, lambda: gevent.sleep(0.3))
    _, g2 = serve(monitor, kit.tracer, lambda: gevent.sleep(0.3))
    gevent.joinall([g1, g2])
    settle(monitor, 0, timeout=0)
    assert (monitor.reports, monitor.blocks) == (0, 0)
    assert kit.block_spans() == [] and kit.records == [] and kit.histogram.points == []


def test_short_block_below_threshold_is_not_reported(kit):
    monitor = kit.monitor(threshold=0.2)
    _, g = serve(monitor, kit.tracer, lambda: real_sleep(0.08))
    g.join()
    settle(monitor, 0, timeout=0)
    assert (monitor.reports, monitor.blocks) == (0, 0)


def test_block_outside_a_request_names_the_greenlet(kit):
    monitor = kit.monitor()

    def nightly_cleanup():
        real_sleep(0.25)

    gevent.spawn(nightly_cleanup).join()
    settle(monitor, 1)

    assert monitor.reports == 1
    assert kit.block_spans() == []  # no request: no trace to put a span in
    ((record, ctx),) = kit.records
    assert not ctx.is_valid  # written without trace ids
    # Python 3.10 code objects have no co_qualname: there the greenlet goes by its bare name.
    name = "nightly_cleanup"
    if sys.version_info >= (3, 11):
        name = "test_block_outside_a_request_names_the_greenlet.<locals>.nightly_cleanup"
    assert getattr(record, "gevent.greenlet") == f"{name} (test_hub_monitor.py:{nightly_cleanup.__code__.co_firstlineno})"
    assert f"by greenlet {name} (" in record.getMessage()
    assert len(kit.histogram.points) == 1


def test_rate_limit_per_location_counts_what_it_left_out(kit):
    monitor = kit.monitor(report_limit=1, report_window=1.0)

    def hot():
        real_sleep(0.15)

    for _ in range(3):
        _, g = serve(monitor, kit.tracer, hot)
        g.join()
        gevent.sleep(0.1)  # the heartbeat runs between blocks: three separate blocks
    settle(monitor, 1)
    assert (monitor.blocks, monitor.reports) == (3, 1)
    assert len(kit.histogram.points) == 3  # every block is measured
    gevent.sleep(1.0)  # the window is over
    _, g = serve(monitor, kit.tracer, hot)
    g.join()
    settle(monitor, 2)
    assert (monitor.blocks, monitor.reports) == (4, 2)
    spans = kit.block_spans()
    assert len(spans) == 2
    assert "gevent.hub.block.suppressed" not in spans[0].attributes
    assert spans[1].attributes["gevent.hub.block.suppressed"] == 2


def test_a_long_block_is_reported_while_it_runs_and_only_once(kit):
    monitor = kit.monitor(ongoing_after=0.3)
    seen = []

    def long_block():  # 0.7 s without yielding; looks at the report count half-way
        real_sleep(0.5)
        seen.append(monitor.reports)
        real_sleep(0.2)

    _, g = serve(monitor, kit.tracer, long_block)
    g.join()
    settle(monitor, 1)
    assert seen == [1]  # written by the watchdog thread while the hub was still blocked
    assert (monitor.reports, monitor.blocks) == (1, 1)
    (block,) = kit.block_spans()
    assert block.attributes["gevent.hub.block.ongoing"] is True
    assert 0.25 <= (block.end_time - block.start_time) / 1e9 < 0.7  # as long as it had lasted then
    ((value, _),) = kit.histogram.points
    assert 0.65 <= value <= 0.77  # the whole block, measured when it ended


def test_a_cpu_bound_handler_is_a_block_with_its_cpu_time(kit):
    monitor = kit.monitor()

    def crunch():
        deadline = time.perf_counter() + 0.3
        n = 0
        while time.perf_counter() < deadline:  # pure Python: the watchdog still gets the GIL every 5 ms
            n += 1

    _, g = serve(monitor, kit.tracer, crunch)
    g.join()
    settle(monitor, 1)
    assert (monitor.blocks, monitor.reports, monitor.starved) == (1, 1, 0)
    (block,) = kit.block_spans()
    assert block.attributes["code.function.name"].endswith("crunch")
    assert block.attributes["gevent.hub.block.cpu_time"] >= 0.075  # computing (a share of a busy CPU), not waiting


def test_a_process_starved_of_the_gil_is_not_blamed_on_a_greenlet(kit):
    """Another thread holds the GIL in one long C call: the hub cannot run, nor can the watchdog.

    No greenlet blocked the hub, so nothing is reported (the gap is counted as starvation)."""
    monitor = kit.monitor()
    done = []

    def hog():  # sum() over a range runs in C without releasing the GIL
        start = time.perf_counter()
        sum(range(40_000_000))
        done.append(time.perf_counter() - start)

    _, g = serve(monitor, kit.tracer, lambda: gevent.sleep(0.1))  # a request in flight, waiting cooperatively
    thread = threading.Thread(target=hog)
    thread.start()
    while not done:
        gevent.sleep(0.01)
    thread.join()
    g.join()
    settle(monitor, 0, timeout=0)
    assert done[0] >= 0.2, "the GIL was held long enough"
    assert (monitor.blocks, monitor.reports, monitor.starved) == (0, 0, 1)
    assert kit.block_spans() == [] and kit.records == [] and kit.histogram.points == []


class Exploding:
    """A registry key whose state cannot be read, a tracer and a logger that raise."""

    @property
    def gr_frame(self):
        raise RuntimeError("boom")

    def start_span(self, *args, **kwargs):
        raise RuntimeError("tracer down")


def test_the_watchdog_survives_what_it_samples_and_its_own_failures(kit, capsys):
    logger = logging.getLogger("tests.hub_monitor.broken")
    logger.propagate = False

    class Raising(logging.Handler):
        def emit(self, record):
            raise RuntimeError("handler down")

        def handleError(self, record):
            raise RuntimeError("handler down")

    logger.addHandler(Raising())
    try:
        monitor = Monitor(0.1, tracer=Exploding(), logger=logger, histogram=None)
        monitor.start()
        gevent.sleep(0.05)
        monitor.requests[Exploding()] = object()  # not a greenlet, and reading it fails
        dead = gevent.spawn(lambda: None)
        dead.join()
        monitor.requests[dead] = trace.INVALID_SPAN  # a dead greenlet left behind
        _, g = serve(monitor, kit.tracer, lambda: real_sleep(0.2))
        g.join()
        settle(monitor, 1)
        _, g = serve(monitor, kit.tracer, lambda: real_sleep(0.2))
        g.join()
        settle(monitor, 2)
        assert (monitor.blocks, monitor.reports) == (2, 2)  # still sampling and reporting
        assert monitor.stop(timeout=2.0)
    finally:
        logger.handlers.clear()
    err = capsys.readouterr().err
    assert err.count("could not write its span") == 1  # rate-limited
    assert err.count("could not write its log record") == 1


def test_stop_ends_the_thread_and_the_heartbeat(kit):
    monitor = kit.monitor()
    assert monitor.stop(timeout=2.0)
    gevent.sleep(0.05)
    assert monitor._timer is None  # stopped in the hub's thread
    _, g = serve(monitor, kit.tracer, lambda: real_sleep(0.2))
    g.join()
    gevent.sleep(0.3)
    assert (monitor.blocks, monitor.reports) == (0, 0)


# -- the setting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("250", 250.0), ("0", 0.0), ("off", 0.0), ("OFF", 0.0),
                                               ("false", 0.0), ("12.5", 12.5)])
def test_threshold_setting(raw, expected):
    config = resolve({}, {"OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD": raw})
    assert config.hub_block_threshold == expected
    assert config.sources["hub_block_threshold"] == "env:OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD"


def test_threshold_default_and_keyword():
    assert resolve({}, {}).hub_block_threshold == 100.0
    assert resolve({"hub_block_threshold": False}, {}).hub_block_threshold == 0.0
    assert resolve({"hub_block_threshold": 300}, {"OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD": "50"}).hub_block_threshold == 300


@pytest.mark.parametrize("raw", ["5", "-1", "fast", "nan", "inf"])
def test_invalid_threshold_fails_naming_the_variable(raw):
    with pytest.raises(ConfigError) as info:
        resolve({}, {"OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD": raw})
    assert "OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD" in str(info.value)
    assert "milliseconds >= 10, or 0 / off to disable" in str(info.value)


# -- one monitor per process, in gevent-patched processes only ------------------------------------------


def test_not_started_without_gevent_patching_nor_where_threads_are_forbidden():
    hub_monitor.install(0.1)
    try:
        assert not hub_monitor.ensure_started()  # this test process never monkey-patched
        assert hub_monitor.tracker.enter(object()) is None  # the request path registers nothing
        assert hub_monitor.tracker.spans == {}
    finally:
        hub_monitor.uninstall()
    assert hub_monitor.tracker is None


_PATCHED = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import json, os, sys
    import otel_showmax
    from otel_showmax._instrumentation import hub_monitor
    forbid = len(sys.argv) > 1
    if forbid:  # as in a uWSGI master
        hub_monitor_install = hub_monitor.install
        def install(*a, **k):
            k["may_start"] = lambda: False
            hub_monitor_install(*a, **k)
        hub_monitor.install = install
    otel_showmax.setup(traces_exporter="none", logs_exporter="none", metrics_exporter="none")
    out = {"parent": hub_monitor.is_running()}
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        child = hub_monitor.current()
        os.write(w, json.dumps({"child": hub_monitor.is_running(),
                                "child_pid_ok": child is not None and child.pid == os.getpid()}).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    out.update(json.loads(os.read(r, 1000)))
    otel_showmax.shutdown()
    out["after_shutdown"] = hub_monitor.is_running()
    print(json.dumps(out))
""")


@pytest.mark.parametrize("forbid", [False, True], ids=["worker", "uwsgi-master"])
def test_started_once_per_gevent_process_and_again_after_fork(forbid):
    import json

    cmd = [sys.executable, "-c", _PATCHED] + (["forbid"] if forbid else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if forbid:
        assert result == {"parent": False, "child": False, "child_pid_ok": False, "after_shutdown": False}
    else:
        assert result == {"parent": True, "child": True, "child_pid_ok": True, "after_shutdown": False}


# -- otel-showmax doctor says whether the monitor is on --------------------------------------------------


@pytest.mark.parametrize(("value", "on"), [(None, True), ("250", True), ("off", False)])
def test_doctor_says_whether_the_monitor_is_on(value, on, receiver):
    import json

    from tests.cli.test_doctor import doctor

    code, report, stderr = doctor(receiver.endpoint, "--app", "good_app:app", "--no-connect",
                                  env={"OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD": value} if value else None)
    assert code == 0, (report, stderr)
    facts = report["hub_monitor"]
    assert facts["on"] is on
    assert facts["running_in_this_process"] is False  # the doctor is no gevent worker
    (finding,) = [f for f in report["findings"] if "hub-block monitor" in f["message"]]
    if on:
        threshold = value or "100"
        assert finding["severity"] == "ok"
        assert f"of at least {threshold} ms" in finding["message"], json.dumps(finding)
    else:
        assert finding["severity"] == "info"
        assert finding["message"] == (
            "hub-block monitor off (hub_block_threshold = 0.0 ← env:OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD)")
