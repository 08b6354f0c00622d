"""otel_showmax.gevent: context-carrying spawn and monkey-patch order checks."""

from __future__ import annotations

import contextvars
import json
import logging
import subprocess
import sys
import textwrap

import gevent
import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_showmax
from otel_showmax import correlation
from otel_showmax.gevent import check_monkey_patch, spawn, spawn_later

TRACER = TracerProvider().get_tracer("test")


@pytest.fixture
def log():
    """A logger whose records are kept, with the correlation factory installed."""
    correlation.install("plain")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.Logger("test_gevent", logging.INFO)
    logger.propagate = False
    logger.addHandler(Keep())
    yield logger, records
    correlation.uninstall()


@pytest.mark.guarantee
def test_plain_spawn_loses_the_trace_id_ours_keeps_it(log):
    logger, records = log
    with TRACER.start_as_current_span("request") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        span_id = format(span.get_span_context().span_id, "016x")
        greenlets = [
            gevent.spawn(logger.info, "plain gevent.spawn"),  # the seed article's fix
            spawn(logger.info, "otel_showmax.gevent.spawn"),
            otel_showmax.spawn(logger.info, "otel_showmax.spawn"),
            spawn_later(0.01, logger.info, "otel_showmax.gevent.spawn_later"),
            otel_showmax.spawn_later(0.01, logger.info, "otel_showmax.spawn_later"),
        ]
    gevent.joinall(greenlets, raise_error=True)
    got = {r.getMessage(): (r.trace_id, r.span_id) for r in records}
    assert got == {
        "plain gevent.spawn": ("", ""),
        "otel_showmax.gevent.spawn": (trace_id, span_id),
        "otel_showmax.spawn": (trace_id, span_id),
        "otel_showmax.gevent.spawn_later": (trace_id, span_id),
        "otel_showmax.spawn_later": (trace_id, span_id),
    }


def test_spawn_is_a_drop_in_for_gevent_spawn():
    def add(a, b=0):
        return a + b

    greenlet = spawn(add, 1, b=2)
    assert isinstance(greenlet, gevent.Greenlet)
    assert (greenlet.args, greenlet.kwargs) == ((1,), {"b": 2})
    assert greenlet.get(timeout=1) == 3
    later = spawn_later(0.01, add, 5)
    assert later.get(timeout=1) == 5

    def fail():
        raise KeyError("x")

    failing = spawn(fail)
    failing.join(timeout=1)
    assert isinstance(failing.exception, KeyError)


def test_context_is_copied_not_shared():
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("parent")
    seen = []

    def child():
        seen.append(var.get())
        var.set("child")
        seen.append(var.get())

    spawn(child).join(timeout=1)
    assert seen == ["parent", "child"]
    assert var.get() == "parent"
    with TRACER.start_as_current_span("later") as span:
        greenlet = spawn_later(0.01, lambda: format(TRACER.start_span("x").get_span_context().trace_id, "032x"))
    assert greenlet.get(timeout=1) == format(span.get_span_context().trace_id, "032x")  # child span, same trace


def _check_in_subprocess(code: str) -> list[str]:
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json
        from otel_showmax.gevent import check_monkey_patch
        print(json.dumps(check_monkey_patch()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_check_monkey_patch_clean_process():
    assert _check_in_subprocess("from gevent import monkey; monkey.patch_all()") == []
    assert check_monkey_patch() == []  # this test process never patched


def test_check_monkey_patch_reports_ordering_problems():
    partial = _check_in_subprocess("from gevent import monkey; monkey.patch_all(thread=False, threading=False)")
    assert partial == [
        "gevent patched socket but not threading: call gevent.monkey.patch_all() first thing, "
        "before importing anything else"
    ]
    early_ssl = _check_in_subprocess(
        """
        import sys, types, ssl
        early = types.ModuleType("early_tls_client")
        early.SSLContext = ssl.SSLContext
        sys.modules["early_tls_client"] = early
        from gevent import monkey; monkey.patch_all()
        """
    )
    assert len(early_ssl) == 1
    assert early_ssl[0].startswith("ssl was imported before gevent.monkey.patch_all() by early_tls_client")
    sdk_threads = _check_in_subprocess(
        """
        from gevent import monkey; monkey.patch_all()
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        processor = BatchSpanProcessor(InMemorySpanExporter())  # its worker starts as a greenlet
        """
    )
    assert len(sdk_threads) == 1
    assert sdk_threads[0].startswith(
        "OpenTelemetry SDK worker threads run while gevent patched threading (OtelBatchSpanRecordProcessor)"
    )


@pytest.mark.guarantee
def test_concurrent_requests_in_greenlets_keep_their_own_ids(log):
    """Interleaved requests (as under gunicorn -k gevent): every line, also one logged from a greenlet
    the handler spawned (the seed's pattern), carries its own request's trace id."""
    import falcon
    import falcon.testing
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import otel_showmax.falcon as showmax_falcon

    logger, records = log
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    showmax_falcon.instrument(tracer_provider=provider, request_log=False)

    class Slow:
        def on_get(self, req, resp, n):
            logger.info("before %s", n)
            gevent.sleep(0.001 * (int(n) % 5))  # let the other requests run in between
            spawn(logger.info, "spawned %s", n).join()
            logger.info("after %s", n)

    app = falcon.App()
    app.add_route("/slow/{n}", Slow())

    def call(n):
        env = falcon.testing.create_environ(f"/slow/{n}")
        return b"".join(app(env, lambda status, headers, exc_info=None: None))

    gevent.joinall([gevent.spawn(call, n) for n in range(40)], raise_error=True)
    spans = {s.attributes["http.target"].rsplit("/", 1)[1]: format(s.context.trace_id, "032x")
             for s in exporter.get_finished_spans()}
    assert len(spans) == 40 and len(set(spans.values())) == 40
    assert len(records) == 120
    for record in records:
        assert record.trace_id == spans[record.args[0]]


_SPAN_LOCKS = """
from gevent import monkey; monkey.patch_all()
import _thread, json, threading
import gevent
import otel_showmax
from otel_showmax import testing
from opentelemetry import trace

otel_showmax.setup(traces_exporter="none", logs_exporter="none", metrics_exporter="none", request_log=False)
span = trace.get_tracer("t").start_span("s", attributes={"a": 1})
locks = [span._lock, span._attributes._lock, span._events._lock, span._links._lock]

def work(i):
    for j in range(25):
        span.set_attribute(f"g{i}.{j}", j)
        gevent.sleep(0)  # switch greenlets between sections, never inside one
        span.add_event(f"e{i}.{j}")

gevent.joinall([gevent.spawn(work, i) for i in range(4)], raise_error=True)
span.end()
from opentelemetry.sdk.metrics._internal import aggregation
from opentelemetry.sdk.metrics._internal.exemplar import exemplar_reservoir
agg_lock = aggregation.Lock()
# opentelemetry-sdk 1.40's reservoirs take no lock of their own
reservoir_locks = [exemplar_reservoir.Lock()] if hasattr(exemplar_reservoir, "Lock") else []
testing.reset()
after = trace.get_tracer("t")  # a no-op tracer after reset: check the SDK's lock factory itself
from opentelemetry.sdk import trace as sdk_trace
print(json.dumps({
    "real": [type(lock) is _thread.RLock for lock in locks + [agg_lock] + reservoir_locks],
    "aggregation_after_reset": type(aggregation.Lock()).__module__,
    "attributes": len(span.attributes), "events": len(span.events),
    "restored": sdk_trace.threading is threading,
    "gevent_lock_after_reset": type(threading.Lock()).__module__,
}))
"""


def test_span_locks_are_real_under_gevent_and_greenlets_still_share_a_span():
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", _SPAN_LOCKS], capture_output=True, text=True,
                         timeout=60, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["real"] and all(got["real"]) and len(got["real"]) in (5, 6)
    assert got == {"real": got["real"], "aggregation_after_reset": "gevent.thread", "attributes": 1 + 4 * 25,
                   "events": 4 * 25, "restored": True, "gevent_lock_after_reset": "gevent.thread"}
