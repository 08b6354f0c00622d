"""The gateway refuses clients without TLS 1.3 or without a valid bearer token; the right client gets in.

Each refusal is checked next to a positive control (same client code, correct credentials), so a
test that cannot connect at all would fail rather than pass for the wrong reason.
"""

from __future__ import annotations

import random
import socket
import ssl
import time

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from . import _otelcol
from ._otelcol import _kvs, post_spans, span_ids, wait_until

pytestmark = [pytest.mark.collector, pytest.mark.integration]


def one_span_request() -> tuple[ExportTraceServiceRequest, str]:
    span_id = random.getrandbits(64).to_bytes(8, "big")
    now = time.time_ns()
    span = Span(trace_id=random.getrandbits(128).to_bytes(16, "big"), span_id=span_id, name="direct",
                start_time_unix_nano=now, end_time_unix_nano=now + 1)
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=_kvs({"service.name": "security-test"})), scope_spans=[ScopeSpans(spans=[span])])])
    return req, span_id.hex()


def export(topology: _otelcol.Topology, *, tls: bool, token: str | None,
           ca: bytes | None = None) -> tuple[grpc.StatusCode, str]:
    """Call the gateway's TraceService/Export directly; return (status code, span id sent)."""
    target = f"127.0.0.1:{topology.gateway_port}"
    if tls:
        creds = grpc.ssl_channel_credentials(root_certificates=ca or topology.pki.ca_cert.read_bytes())
        channel = grpc.secure_channel(target, creds)
    else:
        channel = grpc.insecure_channel(target)
    req, span_id = one_span_request()
    metadata = [("authorization", f"Bearer {token}")] if token is not None else []
    try:
        TraceServiceStub(channel).Export(req, metadata=metadata, timeout=5)
        return grpc.StatusCode.OK, span_id
    except grpc.RpcError as exc:
        return exc.code(), span_id
    finally:
        channel.close()


def test_gateway_accepts_tls_with_the_token_and_refuses_the_rest(topology, backend):
    code, good_id = export(topology, tls=True, token=topology.pki.token)
    assert code == grpc.StatusCode.OK  # positive control
    refused = {}
    for label, kwargs in {
        "missing token": {"tls": True, "token": None},
        "wrong token": {"tls": True, "token": "not-" + topology.pki.token},
        "empty token": {"tls": True, "token": ""},
        "no TLS, right token": {"tls": False, "token": topology.pki.token},
    }.items():
        code, span_id = export(topology, **kwargs)
        refused[label] = span_id
        if kwargs["tls"]:
            assert code == grpc.StatusCode.UNAUTHENTICATED, label
        else:
            assert code == grpc.StatusCode.UNAVAILABLE, label  # the TLS handshake never completes
    # A second token in the gateway's file is accepted too (token rotation).
    rotated = topology.pki.accepted_tokens_file.read_text().splitlines()[1].split()[0]
    code, rotated_id = export(topology, tls=True, token=rotated)
    assert code == grpc.StatusCode.OK
    assert backend.wait_for(spans=2, timeout=15)
    time.sleep(1.5)  # anything wrongly let in would arrive with the same batching delay
    received = {s["span_id"] for s in backend.spans}
    assert {good_id, rotated_id} <= received
    assert not received & set(refused.values()), refused


def tls_handshake(port: int, ca: str, max_version: ssl.TLSVersion) -> str:
    """Handshake with the gateway capped at max_version; return the negotiated version or the error."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.maximum_version = max_version
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.version() or "?"
        except (ssl.SSLError, ConnectionError) as exc:
            return f"refused: {exc}"


def test_gateway_refuses_tls_below_1_3(topology):
    ca = str(topology.pki.ca_cert)
    assert tls_handshake(topology.gateway_port, ca, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"  # positive control
    assert tls_handshake(topology.gateway_port, ca, ssl.TLSVersion.TLSv1_2).startswith("refused")


def test_agent_with_a_wrong_token_gets_nothing_through(otelcol_binary, tmp_path, pki, backend):
    """An agent configured with a token the gateway does not list: refused, counted as send_failed."""
    bad = tmp_path / "bad.token"
    bad.write_text("definitely-not-the-token\n")
    with _otelcol.Topology(tmp_path, backend.endpoint, pki=pki,
                           agent_env={"OTELCOL_AGENT_GATEWAY_TOKEN_FILE": str(bad)}) as topo:
        ids = post_spans(topo.agent_http_url, 5)
        wait_until(lambda: topo.agent.metric("otelcol_exporter_send_failed_spans") >= 5, timeout=20,
                   what="the agent to count its refused spans as send_failed")
        assert topo.gateway.metric("otelcol_receiver_accepted_spans") == 0
        assert "Unauthenticated" in topo.agent.log() or "Unauthenticated" in topo.gateway.log()
    assert not span_ids(backend.spans) & set(ids)
