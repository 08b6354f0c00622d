"""The two-service example: one user request is one distributed trace across both services.

The catalogue runs on gunicorn (gevent workers), the storefront on uWSGI (gevent, early
monkey-patching, lazy-apps) and calls the catalogue over HTTP with ``requests`` (instrumented, so
the W3C ``traceparent`` travels). Both export to one receiver. For every storefront request the
storefront's server span, its client span and the catalogue's server span share one trace id, and
each service's request log — exported and in its local JSON lines — carries that trace id.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from otel_showmax.receiver import ReceiverProcess
from tests.integration._servers import (
    drive,
    request_logs,
    server_spans,
    start_gunicorn,
    start_uwsgi,
    telemetry_env,
)

pytestmark = pytest.mark.integration

N = 60
STOREFRONT_MIX = (("/home", 200), ("/home?genre=drama", 200), ("/watch/7", 200), ("/watch/9999", 404))


def test_one_trace_across_storefront_and_catalogue(tmp_path):
    with ReceiverProcess() as receiver:
        catalogue_env = telemetry_env(receiver.endpoint, "catalogue")
        with start_gunicorn(catalogue_env, tmp_path / "catalogue.log") as catalogue:
            storefront_env = telemetry_env(receiver.endpoint, "storefront", CATALOGUE_URL=catalogue.base_url)
            with start_uwsgi(storefront_env, tmp_path / "storefront.log", module="frontend", lazy_apps=True,
                             extra=["--gevent-early-monkey-patch"]) as storefront:
                drive(storefront.base_url, N, mix=STOREFRONT_MIX, concurrency=4)
                storefront.stop("SIGTERM")  # uWSGI: die-on-term + SIGTERM
            catalogue.stop("SIGTERM")
        received = receiver.read_jsonl()

    front = server_spans(received, "storefront")
    back = server_spans(received, "catalogue")
    clients = [s for s in received["spans"] if s["kind"] == "CLIENT" and s["resource"]["service.name"] == "storefront"]
    # (the catalogue's own CLIENT spans are its SQLite queries: see test_whole_service.py)
    assert len(front) == len(back) == len(clients) == N
    traces = {s["trace_id"] for s in front}
    assert len(traces) == N, "one trace per user request"
    assert {s["trace_id"] for s in back} == traces == {s["trace_id"] for s in clients}

    spans_by_trace = defaultdict(list)
    for span in received["spans"]:
        spans_by_trace[span["trace_id"]].append(span)
    for trace_id in traces:
        spans = {s["span_id"]: s for s in spans_by_trace[trace_id]}
        (server,) = [s for s in spans.values() if s["kind"] == "SERVER" and s["resource"]["service.name"] == "storefront"]
        (client,) = [s for s in spans.values() if s["kind"] == "CLIENT" and s["resource"]["service.name"] == "storefront"]
        (upstream,) = [s for s in spans.values() if s["kind"] == "SERVER" and s["resource"]["service.name"] == "catalogue"]
        assert server["parent_span_id"] == ""
        assert client["parent_span_id"] == server["span_id"]
        assert upstream["parent_span_id"] == client["span_id"], "the catalogue continued the storefront's trace"

    # Each service's request logs carry the trace id of its own server span for that request.
    for service, spans in (("storefront", front), ("catalogue", back)):
        logs = request_logs(received, service)
        assert len(logs) == N, service
        assert {(lg["trace_id"], lg["span_id"]) for lg in logs} == {(s["trace_id"], s["span_id"]) for s in spans}

    # ... and so do the local log lines each service wrote (JSON, otel_showmax.correlation).
    for server, spans in ((storefront, front), (catalogue, back)):
        local = [line for line in server.json_lines() if line.get("logger") == "otel_showmax.request"]
        assert len(local) == N, server.kind
        assert {(line["trace_id"], line["span_id"]) for line in local} == {(s["trace_id"], s["span_id"]) for s in spans}
    app_lines = [line for line in storefront.json_lines() if line.get("logger") == "storefront"]
    assert len(app_lines) == N and {line["trace_id"] for line in app_lines} == traces
