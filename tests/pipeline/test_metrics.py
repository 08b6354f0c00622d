"""Metrics keep the same promises: once per process, per-worker identity, bounded shutdown, drops."""

from __future__ import annotations

import os
import time

import pytest
from opentelemetry import metrics

import otel_showmax


def points(receiver, name: str) -> list[dict]:
    return [m for m in receiver.metrics if m["name"] == name]


def test_metrics_are_exported_with_the_process_identity(receiver):
    otel_showmax.setup(endpoint=receiver.endpoint, metric_export_interval_ms=100, service_name="meters")
    counter = metrics.get_meter("catalogue").create_counter("catalogue.requests")
    counter.add(3, {"route": "/titles"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not points(receiver, "catalogue.requests"):
        time.sleep(0.05)
    (point, *_) = points(receiver, "catalogue.requests")
    assert point["value"] == 3
    assert point["attributes"] == {"route": "/titles"}
    assert point["resource"]["process.pid"] == os.getpid()
    assert point["resource"]["service.name"] == "meters"


def test_drop_counters_are_exported_as_metrics(receiver, blackhole):
    otel_showmax.setup(
        endpoint=blackhole.endpoint,
        metrics_endpoint=f"{receiver.endpoint}/v1/metrics",
        bsp_max_queue_size=5,
        bsp_max_export_batch_size=5,
        metric_export_interval_ms=100,
        logs_exporter="none",
        shutdown_timeout=0.5,
    )
    from opentelemetry import trace

    tracer = trace.get_tracer("drops")
    for _ in range(50):
        with tracer.start_as_current_span("s"):
            pass
    expected = otel_showmax.dropped()["traces"]["queue_full"]
    assert expected > 0
    deadline = time.monotonic() + 10
    seen = 0
    while time.monotonic() < deadline and seen < expected:
        seen = max(
            [p["value"] for p in points(receiver, "otel_showmax.dropped")
             if p["attributes"] == {"signal": "traces", "reason": "queue_full"}] or [0]
        )
        time.sleep(0.05)
    assert seen == expected


@pytest.mark.guarantee
def test_metrics_shutdown_is_bounded_against_a_blackhole(blackhole):
    otel_showmax.setup(
        endpoint=blackhole.endpoint, metric_export_interval_ms=60_000, shutdown_timeout=1.0,
        traces_exporter="none", logs_exporter="none",
    )
    metrics.get_meter("m").create_counter("c").add(1)
    start = time.monotonic()
    otel_showmax.shutdown()
    assert time.monotonic() - start <= 1.5
