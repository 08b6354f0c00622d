"""The demo agent (collector/demo-agent.yaml): apps -> agent -> a local OTLP/HTTP receiver, no TLS, no gateway.

This is the path `otel-showmax demo` takes when the collector is built; it must redact like the
production agent and print what passed through with the debug exporter.
"""

from __future__ import annotations

import json

import pytest

from ._otelcol import DEMO_YAML, Collector, clean_env, free_port, post_logs, post_spans, span_ids, wait_until

pytestmark = [pytest.mark.collector, pytest.mark.integration]


def test_demo_agent_forwards_to_the_local_receiver_redacted(otelcol_binary, tmp_path, backend):
    http_port, health, metrics = free_port(), free_port(), free_port()
    demo = Collector("demo-agent", DEMO_YAML, clean_env({
        "OTELCOL_DEMO_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "OTELCOL_DEMO_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "OTELCOL_DEMO_RECEIVER_ENDPOINT": backend.endpoint,
        "OTELCOL_DEMO_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
        "OTELCOL_DEMO_METRICS_PORT": str(metrics),
        "OTELCOL_DEMO_STORAGE_DIR": str(tmp_path / "queue"),
        "OTELCOL_DEMO_LOG_LEVEL": "info",
    }), tmp_path, health, metrics)
    demo.start()
    try:
        url = f"http://127.0.0.1:{http_port}"
        spans = post_spans(url, 20, attrs={"http.request.header.authorization": ["Bearer demo-secret-1"],
                                           "db.password": "demo-secret-2"})
        post_logs(url, 5, body="token=demo-secret-3 used")
        assert backend.wait_for(spans=20, logs=5, timeout=15)
        assert span_ids(backend.spans) == set(spans)
        everything = json.dumps([backend.spans, backend.logs])
        assert "demo-secret" not in everything
        wait_until(lambda: "Traces" in demo.log() and "spans" in demo.log(), timeout=10,
                   what="the debug exporter's summary on stderr")
    finally:
        demo.stop()
