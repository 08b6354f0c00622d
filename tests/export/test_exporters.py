"""Export never blocks the caller; drops are exact and counted; shutdown is bounded."""

from __future__ import annotations

import logging
import time

import pytest
from opentelemetry import trace

import otel_showmax
from otel_showmax import _setup


def make_spans(n: int, tracer_name: str = "t") -> None:
    tracer = trace.get_tracer(tracer_name)
    for i in range(n):
        with tracer.start_as_current_span(f"span-{i}"):
            pass


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_shutdown_delivers_everything_queued_to_a_live_receiver(receiver):
    n = 2000  # all fit in the default queue of 2048: everything queued must arrive
    otel_showmax.setup(
        endpoint=receiver.endpoint,
        bsp_schedule_delay_ms=60_000,  # nothing leaves before shutdown unless a batch fills
        blrp_schedule_delay_ms=60_000,
        metrics_exporter="none",
    )
    log = logging.getLogger("export-test")
    log.setLevel(logging.INFO)
    tracer = trace.get_tracer("t")
    for i in range(n):
        with tracer.start_as_current_span("work"):
            log.info("record %d", i)
    assert otel_showmax.shutdown() is True
    assert receiver.wait_for(spans=n, logs=n, timeout=10)
    bodies = [r["body"] for r in receiver.logs if r["scope"] == "export-test"]
    assert sorted(bodies) == sorted(f"record {i}" for i in range(n))
    assert len(receiver.spans) == n
    assert otel_showmax.dropped()["traces"] == {"queue_full": 0, "export_failed": 0, "shutdown": 0, "invalid_item": 0}


@pytest.mark.guarantee
def test_shutdown_returns_within_its_budget_against_a_blackhole(blackhole):
    otel_showmax.setup(endpoint=blackhole.endpoint, shutdown_timeout=1.0, metrics_exporter="none")
    make_spans(50)
    logging.getLogger("bh").warning("queued")
    start = time.monotonic()
    otel_showmax.shutdown()
    elapsed = time.monotonic() - start
    assert elapsed <= 1.5
    dropped = otel_showmax.dropped()
    assert dropped["traces"]["shutdown"] + dropped["traces"]["export_failed"] == 50


@pytest.mark.guarantee
def test_overflow_reports_exactly_the_number_dropped(blackhole):
    queue = 100
    otel_showmax.setup(
        endpoint=blackhole.endpoint,
        bsp_max_queue_size=queue,
        bsp_max_export_batch_size=10,
        bsp_schedule_delay_ms=10,
        logs_exporter="none",
        metrics_exporter="none",
        shutdown_timeout=0.5,
    )
    worker = _setup.get_state().workers["traces"]
    make_spans(1)
    # The worker takes the first span and hangs on the blackhole: the queue is now empty.
    assert wait_until(lambda: worker.inflight == 1)
    produced = 1000
    make_spans(produced)
    assert otel_showmax.dropped()["traces"]["queue_full"] == produced - queue
    assert worker.pending() == queue + 1
    otel_showmax.shutdown()
    dropped = otel_showmax.dropped()["traces"]
    assert dropped == {"queue_full": produced - queue, "export_failed": 0, "shutdown": queue + 1, "invalid_item": 0}


def test_unsampled_spans_are_not_queued(receiver):
    otel_showmax.setup(endpoint=receiver.endpoint, sampler="always_off", metrics_exporter="none")
    make_spans(20)
    assert _setup.get_state().workers["traces"].pending() == 0
    otel_showmax.shutdown()
    assert receiver.spans == []


@pytest.mark.guarantee
def test_the_collector_answering_503_never_raises_into_the_app(receiver):
    receiver.set_mode("status:503")
    otel_showmax.setup(endpoint=receiver.endpoint, timeout=0.5, shutdown_timeout=2, metrics_exporter="none")
    make_spans(5)
    logging.getLogger("x").error("still fine")
    otel_showmax.flush(3)
    otel_showmax.shutdown()
    dropped = otel_showmax.dropped()
    assert dropped["traces"]["export_failed"] + dropped["traces"]["shutdown"] == 5


def test_exporter_errors_go_to_stderr_not_to_the_log_pipeline(receiver, capsys):
    receiver.set_mode("status:503")
    otel_showmax.setup(endpoint=receiver.endpoint, timeout=0.3, metrics_exporter="none", shutdown_timeout=2)
    make_spans(1)
    otel_showmax.flush(3)
    receiver.set_mode("live")
    otel_showmax.shutdown()
    err = capsys.readouterr().err
    assert "otel_showmax:" in err
    # Nothing the export path logged was exported as a log record.
    assert not [r for r in receiver.logs if r["scope"].startswith(("opentelemetry", "otel_showmax.diag"))]


def test_shutdown_does_not_wait_for_a_collector_known_to_be_down():
    from otel_showmax.receiver import dead_port

    otel_showmax.setup(
        endpoint=f"http://127.0.0.1:{dead_port()}",
        timeout=0.2,
        bsp_schedule_delay_ms=10,
        logs_exporter="none",
        metrics_exporter="none",
    )
    make_spans(1)
    worker = _setup.get_state().workers["traces"]
    assert wait_until(lambda: otel_showmax.dropped()["traces"]["export_failed"] == 1)
    make_spans(30)  # queued while backing off
    start = time.monotonic()
    otel_showmax.shutdown()
    assert time.monotonic() - start < 1.0  # not the 5 s budget
    assert otel_showmax.dropped()["traces"] == {"queue_full": 0, "export_failed": 1, "shutdown": 30, "invalid_item": 0}
    assert worker.pending() == 0
