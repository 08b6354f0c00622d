"""What the real agent does to the data, checked at the backend: both OTLP ingresses, the resource
processor, and redaction where the Python approximation in test_static.py cannot prove it (the
processor's own regex engine, resource and span-event attributes, no false positives)."""

from __future__ import annotations

import json
import random
import time

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from ._otelcol import _kvs, post_logs, post_spans, span_ids

pytestmark = [pytest.mark.collector, pytest.mark.integration]

SAFE = {
    "http.request.method": "GET", "http.route": "/titles/{title_id}", "url.path": "/titles/42",
    "url.query": "limit=20&offset=40&genre=drama", "http.response.status_code": 200,
    "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)", "client.address": "10.1.2.3",
    "catalogue.title": "The Last Basic Season 4", "book.author": "Naledi Khumalo", "server.port": 8000,
}


def test_agent_accepts_otlp_grpc_from_apps_too(topology, backend):
    span_id = random.getrandbits(64).to_bytes(8, "big")
    now = time.time_ns()
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=_kvs({"service.name": "grpc-app"})),
        scope_spans=[ScopeSpans(spans=[Span(trace_id=random.getrandbits(128).to_bytes(16, "big"), span_id=span_id,
                                            name="via grpc", start_time_unix_nano=now, end_time_unix_nano=now + 1)])])])
    with grpc.insecure_channel(f"127.0.0.1:{topology.agent_grpc_port}") as channel:
        TraceServiceStub(channel).Export(req, timeout=5)
    assert backend.wait_for(spans=1, timeout=15)
    assert backend.spans[0]["span_id"] == span_id.hex()
    assert topology.agent.metric("otelcol_receiver_accepted_spans", transport="grpc") == 1


def test_agent_resource_processing_and_redaction_as_run_by_the_collector(topology, backend):
    ids = post_spans(
        topology.agent_http_url, 3,
        attrs={**SAFE, "app.client_secret": "SECRET-1", "note": "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SECRET2x"},
        resource={"process.command_line": "gunicorn --db postgres://u:SECRET-3@db/x",
                  "process.command_args": ["--key", "SECRET-4"],
                  "deployment.environment.name": "staging", "db.password": "SECRET-5"},
        events={"exception": {"exception.message": "login failed for Bearer SECRET-6", "exception.type": "AuthError"}},
    )
    post_logs(topology.agent_http_url, 2, attrs={**SAFE, "api_key": "SECRET-7"}, body="GET /titles?apikey=SECRET-8 -> 200")
    assert backend.wait_for(spans=3, logs=2, timeout=15)
    assert span_ids(backend.spans) == set(ids)
    everything = json.dumps([backend.spans, backend.logs])
    assert "SECRET" not in everything
    span = backend.spans[0]
    # The command line is gone; an environment the app set is kept (insert only adds a missing one).
    assert "process.command_line" not in span["resource"] and "process.command_args" not in span["resource"]
    assert span["resource"]["deployment.environment.name"] == "staging"
    assert span["resource"]["db.password"] == "****"
    assert span["attributes"]["app.client_secret"] == "****"
    assert span["events"][0]["attributes"]["exception.type"] == "AuthError"
    # No false positives: ordinary HTTP and business attributes arrive unchanged (ints stay ints).
    for attrs in (span["attributes"], backend.logs[0]["attributes"]):
        for key, value in SAFE.items():
            assert attrs[key] == value, key
    assert backend.logs[0]["body"].startswith("GET /titles?") and backend.logs[0]["body"].endswith(" -> 200")
    # Only counts are added, never the names or values of what was masked.
    assert span["attributes"]["redaction.masked.count"] == 2
    assert not any(k.startswith("redaction.") and k.endswith(".keys") for k in span["attributes"])


def test_a_missing_environment_gets_the_agents_default(topology, backend):
    post_spans(topology.agent_http_url, 1)
    assert backend.wait_for(spans=1, timeout=15)
    assert backend.spans[0]["resource"]["deployment.environment.name"] == "unspecified"


def test_agent_reaches_the_gateway_through_a_dns_target_as_documented_for_scale_out(otelcol_binary, tmp_path, pki,
                                                                                     backend):
    """README: OTELCOL_AGENT_GATEWAY_ENDPOINT=dns:///name:port balances over the name's addresses (TLS still verified)."""
    from . import _otelcol

    topo = _otelcol.Topology(tmp_path, backend.endpoint, pki=pki)
    topo.agent.env["OTELCOL_AGENT_GATEWAY_ENDPOINT"] = f"dns:///127.0.0.1:{topo.gateway_port}"
    with topo:
        ids = post_spans(topo.agent_http_url, 10)
        assert backend.wait_for(spans=10, timeout=15)
        assert span_ids(backend.spans) == set(ids)
