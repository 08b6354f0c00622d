"""Faults between the tiers lose nothing: backend 503 / down, gateway down, agent SIGKILLed.

Delivery through the collector is AT-LEAST-ONCE by design: a batch whose answer was lost (or
that was in flight when a process died) is sent again, so the backend may see duplicates. These
tests therefore compare DEDUPLICATED ids -- (trace_id, span_id) for spans, a unique ``test.log_id``
attribute for log records -- with what the agent acknowledged; the raw counts are reported too.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from otel_showmax.receiver import OTLPReceiver

from . import _otelcol
from ._otelcol import AGENT_YAML, Collector, log_ids, post_logs, post_spans, span_ids, wait_until

pytestmark = [pytest.mark.collector, pytest.mark.integration]

DELIVERY_TIMEOUT = 30  # seconds; retries back off to at most 2s in the tests (TEST_RETRY_MAX_INTERVAL)


def assert_all_delivered(backend, spans: list[tuple[str, str]], logs: list[str], timeout: float = DELIVERY_TIMEOUT):
    """Every acknowledged span and log reaches the backend, compared by id (duplicates allowed, see above)."""
    want_spans, want_logs = set(spans), set(logs)

    def done() -> bool:
        return want_spans <= span_ids(backend.spans) and want_logs <= log_ids(backend.logs)

    try:
        wait_until(done, timeout=timeout, interval=0.2, what="every span and log at the backend")
    except AssertionError:
        missing_spans = len(want_spans - span_ids(backend.spans))
        missing_logs = len(want_logs - log_ids(backend.logs))
        raise AssertionError(f"lost {missing_spans}/{len(want_spans)} spans and {missing_logs}/{len(want_logs)} logs")
    return len(backend.spans) - len(span_ids(backend.spans)), len(backend.logs) - len(log_ids(backend.logs))


def test_backend_answering_503_then_down_then_back(otelcol_binary, tmp_path, pki):
    first = OTLPReceiver(mode="status:503").start()
    port, store = first.port, first.store
    second = None
    try:
        with _otelcol.Topology(tmp_path, first.endpoint, pki=pki) as topo:
            spans = post_spans(topo.agent_http_url, 300)
            logs = post_logs(topo.agent_http_url, 120)
            # The gateway keeps retrying the 503s (a retryable answer) and the backend stores nothing.
            wait_until(lambda: store.requests["/v1/traces"] >= 2 and store.requests["/v1/logs"] >= 2, timeout=15,
                       what="the gateway to retry against the 503-answering backend")
            assert first.spans == [] and first.logs == []
            # Then the backend goes away completely (connection refused) for a while.
            first.stop()
            time.sleep(3)
            assert topo.gateway.metric("otelcol_exporter_send_failed_spans") == 0  # still retrying, not dropped
            second = OTLPReceiver(port=port, store=store).start()  # back, same address, same records list
            dup_spans, dup_logs = assert_all_delivered(second, spans, logs)
            assert topo.gateway.metric("otelcol_exporter_send_failed_spans") == 0
            assert topo.gateway.metric("otelcol_exporter_send_failed_log_records") == 0
            print(f"duplicates after the outage (allowed, at-least-once): {dup_spans} spans, {dup_logs} logs")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        store.close()


def test_gateway_down_then_back(topology, backend):
    warmup = post_spans(topology.agent_http_url, 5)
    assert_all_delivered(backend, warmup, [])
    topology.gateway.stop()
    spans = post_spans(topology.agent_http_url, 300)
    logs = post_logs(topology.agent_http_url, 120)
    time.sleep(3)  # the agent retries against a closed port
    assert not set(spans) & span_ids(backend.spans)
    assert topology.agent.metric("otelcol_exporter_send_failed_spans") == 0
    topology.gateway.start()
    assert_all_delivered(backend, spans, logs)
    assert topology.agent.metric("otelcol_exporter_enqueue_failed_spans") == 0


def in_memory_agent_config(tmp_path: Path) -> Path:
    """The agent config with its persistent queue turned into an in-memory one (negative control)."""
    cfg = yaml.safe_load(AGENT_YAML.read_text())
    for exp in cfg["exporters"].values():
        exp["sending_queue"].pop("storage", None)
    path = tmp_path / "agent-in-memory-queue.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def kill_agent_while_gateway_down(topo: _otelcol.Topology, n_spans: int, n_logs: int):
    """Stop the gateway, have the agent acknowledge data, SIGKILL the agent, restart both."""
    topo.gateway.stop()
    spans = post_spans(topo.agent_http_url, n_spans)
    logs = post_logs(topo.agent_http_url, n_logs)
    # Let the queue consumers pick batches up and start retrying them (in flight, not just queued).
    wait_until(lambda: "Exporting failed" in topo.agent.log() or "retry" in topo.agent.log().lower(), timeout=15,
               what="the agent to be retrying against the stopped gateway")
    time.sleep(1)
    topo.agent.kill()
    topo.agent.start()
    topo.gateway.start()
    return spans, logs


def test_agent_sigkilled_while_gateway_down_delivers_its_backlog_after_restart(topology, backend):
    spans, logs = kill_agent_while_gateway_down(topology, 400, 150)
    dup_spans, dup_logs = assert_all_delivered(backend, spans, logs)
    print(f"duplicates after the crash (allowed, at-least-once): {dup_spans} spans, {dup_logs} logs")


def test_negative_control_in_memory_queue_loses_the_backlog_on_sigkill(otelcol_binary, tmp_path, pki, backend):
    """The same crash with the queue in memory loses the data: the test above can fail."""
    topo = _otelcol.Topology(tmp_path, backend.endpoint, pki=pki)
    topo.agent = Collector("agent-in-memory", in_memory_agent_config(tmp_path), topo.agent.env, tmp_path,
                           topo.agent.health_port, topo.agent.metrics_port)
    with topo:
        spans, logs = kill_agent_while_gateway_down(topo, 100, 40)
        wait_until(lambda: topo.agent.healthy(), timeout=10, what="the restarted agent")
        time.sleep(5)  # longer than a retry round after the gateway is back
        assert not set(spans) & span_ids(backend.spans), "an in-memory queue cannot survive SIGKILL"
        assert not set(logs) & log_ids(backend.logs)


def test_gateway_sigkilled_while_backend_down_delivers_its_backlog_after_restart(otelcol_binary, tmp_path, pki):
    """The gateway's own persistent queue: what it acknowledged to the agent survives its crash."""
    first = OTLPReceiver(mode="status:503").start()
    port, store = first.port, first.store
    second = None
    try:
        with _otelcol.Topology(tmp_path, first.endpoint, pki=pki) as topo:
            spans = post_spans(topo.agent_http_url, 300)
            logs = post_logs(topo.agent_http_url, 100)
            # Everything has left the agent (the gateway acknowledged it) while the backend refuses it.
            wait_until(lambda: topo.agent.metric("otelcol_exporter_sent_spans") == 300
                       and topo.agent.metric("otelcol_exporter_sent_log_records") == 100, timeout=20,
                       what="the agent to hand everything to the gateway")
            first.stop()
            topo.gateway.kill()
            topo.gateway.start()
            second = OTLPReceiver(port=port, store=store).start()
            dup_spans, dup_logs = assert_all_delivered(second, spans, logs)
            print(f"duplicates after the gateway crash (allowed, at-least-once): {dup_spans} spans, {dup_logs} logs")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        store.close()
