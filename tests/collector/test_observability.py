"""Health endpoints and the collector's own metrics (what ops alert on) tell the truth."""

from __future__ import annotations

import urllib.request

import pytest

from ._otelcol import log_ids, post_logs, post_spans, span_ids, wait_until

pytestmark = [pytest.mark.collector, pytest.mark.integration]


def test_health_endpoints_answer_while_running_and_not_after(topology):
    for collector in (topology.agent, topology.gateway):
        with urllib.request.urlopen(collector.health_url, timeout=2) as resp:
            assert resp.status == 200
            assert b"Server available" in resp.read()
        assert collector.health_url.startswith("http://127.0.0.1:")
    topology.agent.stop()
    assert not topology.agent.healthy()
    assert topology.gateway.healthy()


def test_own_metrics_count_exactly_what_the_backend_received(topology, backend):
    n_spans, n_logs = 240, 90
    spans = post_spans(topology.agent_http_url, n_spans)
    logs = post_logs(topology.agent_http_url, n_logs)
    assert backend.wait_for(spans=n_spans, logs=n_logs, timeout=20)
    agent, gateway = topology.agent, topology.gateway
    # Counters are updated right after each export returns; give the last one a moment.
    wait_until(lambda: gateway.metric("otelcol_exporter_sent_spans") >= n_spans
               and gateway.metric("otelcol_exporter_sent_log_records") >= n_logs, timeout=10,
               what="the gateway's sent counters")
    # No faults in this test, so no retries and no duplicates: raw counts must match exactly.
    assert len(backend.spans) == n_spans and span_ids(backend.spans) == set(spans)
    assert len(backend.logs) == n_logs and log_ids(backend.logs) == set(logs)
    assert agent.metric("otelcol_receiver_accepted_spans", receiver="otlp", transport="http") == n_spans
    assert agent.metric("otelcol_receiver_accepted_log_records", receiver="otlp", transport="http") == n_logs
    assert agent.metric("otelcol_exporter_sent_spans", exporter="otlp_grpc/gateway") == n_spans
    assert agent.metric("otelcol_exporter_sent_log_records", exporter="otlp_grpc/gateway") == n_logs
    assert gateway.metric("otelcol_receiver_accepted_spans", receiver="otlp", transport="grpc") == n_spans
    assert gateway.metric("otelcol_receiver_accepted_log_records", receiver="otlp", transport="grpc") == n_logs
    assert gateway.metric("otelcol_exporter_sent_spans", exporter="otlp_http/backend") == len(backend.spans)
    assert gateway.metric("otelcol_exporter_sent_log_records", exporter="otlp_http/backend") == len(backend.logs)
    for c in (agent, gateway):
        for name in ("otelcol_exporter_send_failed_spans", "otelcol_exporter_enqueue_failed_spans",
                     "otelcol_exporter_send_failed_log_records", "otelcol_exporter_enqueue_failed_log_records",
                     "otelcol_receiver_refused_spans", "otelcol_receiver_refused_log_records"):
            assert c.metric(name) == 0, (c.name, name)
        # Queue size and capacity are exported per exporter and signal (what "queue filling up" alerts use).
        names = {n for n, _, _ in c.metrics()}
        assert {"otelcol_exporter_queue_size", "otelcol_exporter_queue_capacity"} <= names
        assert c.metric("otelcol_exporter_queue_capacity", data_type="traces") > 0


def test_own_metrics_show_the_queue_filling_while_the_gateway_is_down(topology, backend):
    """What an alert on queue size would see during an outage, and send_failed staying 0 (retrying)."""
    topology.gateway.stop()
    post_spans(topology.agent_http_url, 200, per_request=10)
    wait_until(lambda: topology.agent.metric("otelcol_exporter_queue_size", data_type="traces") > 0, timeout=10,
               what="the agent's queue size to grow")
    assert topology.agent.metric("otelcol_exporter_send_failed_spans") == 0
    assert topology.agent.metric("otelcol_receiver_accepted_spans") == 200
    topology.gateway.start()
    wait_until(lambda: topology.agent.metric("otelcol_exporter_queue_size", data_type="traces") == 0, timeout=30,
               what="the agent's queue to drain")
    assert backend.wait_for(spans=200, timeout=15)
