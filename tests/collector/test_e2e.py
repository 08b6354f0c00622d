"""End to end: the example catalogue service (gunicorn + gevent, configured by otel_showmax) -> agent ->
gateway -> a Python OTLP receiver standing in for the backend.

Every request carries a W3C ``traceparent`` with a trace id chosen here, so the test knows which
server span and which log records each request must produce. Sensitive values are sent in places
the application does NOT redact itself (the User-Agent and X-Request-Id headers it captures, a
query parameter outside its list) as well as in places it does (Authorization, Cookie): the
collector's redaction processor must remove them all before anything leaves the host.

Negative control: the same requests with the service exporting straight to a receiver (no
collector) show those secrets, so the redaction assertions can fail.

Delivery through the collector is at-least-once by design (retries); no fault is injected here,
but records are still compared by identity (span id; trace id + span id + timestamp + severity for
log records) so a harmless duplicate could not hide a missing record.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import gunicorn
import pytest

from otel_showmax.receiver import OTLPReceiver

from ._otelcol import REPO, free_port, wait_until

pytestmark = [pytest.mark.collector, pytest.mark.integration]

EXAMPLE = REPO / "examples" / "catalogue"
# gunicorn >= 27 opens a control socket at a fixed path in $HOME; two servers at once would share it.
NO_CONTROL_SOCKET = ["--no-control-socket"] if gunicorn.version_info >= (27,) else []
SECRETS = {
    "authorization": "s3cr3t-bearer-AAAA1111",       # Authorization header (app and collector redact)
    "cookie": "s3cr3t-cookie-BBBB2222",              # Cookie header (app and collector redact)
    "user_agent": "s3cr3t-ua-bearer-CCCC3333",       # "Bearer ..." inside User-Agent: only the collector
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzM2NyM3QtRERERDQ0NDQifQ.c2lnbmF0dXJlLUVFRUU1NTU1",  # X-Request-Id
    "query": "s3cr3t-query-FFFF6666",                # ?resettoken=...: not in the app's list
}
# Requests: path, expected status. /health is excluded from tracing and logs by otel_showmax.
REQUESTS = [
    (f"/titles?limit=5&resettoken={SECRETS['query']}", 200),
    ("/titles/7", 200),
    ("/titles/99999", 404),
    ("/search?q=river", 200),
] * 6


def start_catalogue(port: int, otlp_endpoint: str, log_path: Path) -> subprocess.Popen:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELCOL_"))},
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "OTEL_SERVICE_NAME": "catalogue",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *NO_CONTROL_SOCKET, "catalogue:app"],
            cwd=EXAMPLE, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise AssertionError(f"gunicorn not serving after 30s:\n{log_path.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM our gunicorn master (by PID): workers flush their telemetry in worker_exit."""
    if proc.poll() is None:
        os.kill(proc.pid, 15)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait(timeout=10)
            raise AssertionError("gunicorn ignored SIGTERM for 40s")


def drive(port: int) -> dict[str, tuple[str, str, int]]:
    """Send the requests with chosen trace ids; return {trace_id: (parent span id, path, status)}."""
    sent = {}
    for path, status in REQUESTS:
        trace_id, parent = f"{random.getrandbits(128):032x}", f"{random.getrandbits(64):016x}"
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={
            "traceparent": f"00-{trace_id}-{parent}-01",
            "Authorization": f"Bearer {SECRETS['authorization']}",
            "Cookie": f"session={SECRETS['cookie']}",
            "User-Agent": f"probe/1.0 (Bearer {SECRETS['user_agent']})",
            "X-Request-Id": SECRETS["jwt"],
        })
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                got = resp.status
        except urllib.error.HTTPError as exc:
            got = exc.code
        assert got == status, (path, got)
        sent[trace_id] = (parent, path, status)
    for _ in range(3):  # excluded from telemetry
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert resp.status == 200
    return sent


def log_identity(record: dict) -> tuple:
    return (record["trace_id"], record["span_id"], record["time_unix_nano"], record["severity_number"], record["scope"])


def run_catalogue(tmp_path: Path, name: str, otlp_endpoint: str, receiver: OTLPReceiver) -> dict:
    port = free_port()
    proc = start_catalogue(port, otlp_endpoint, tmp_path / f"{name}-gunicorn.log")
    try:
        sent = drive(port)
    finally:
        stop(proc)
    return sent


def per_trace(receiver: OTLPReceiver, sent: dict) -> tuple[dict, dict]:
    """Server spans and log records per sent trace id, deduplicated by identity."""
    spans: dict[str, dict] = {}
    for s in receiver.spans:
        if s["trace_id"] in sent:
            spans.setdefault(s["trace_id"], {})[s["span_id"]] = s
    logs: dict[str, dict] = {}
    for r in receiver.logs:
        if r["trace_id"] in sent:
            logs.setdefault(r["trace_id"], {})[log_identity(r)] = r
    return spans, logs


def secrets_found(receiver: OTLPReceiver) -> set[str]:
    everything = json.dumps([receiver.spans, receiver.logs, receiver.metrics], default=str)
    return {name for name, value in SECRETS.items() if value in everything}


def expected_shape(sent: dict, logs: dict) -> Counter:
    """How many log records per request path (learned from the direct run)."""
    shape: Counter = Counter()
    for trace_id, (_, path, _) in sent.items():
        shape[path.split("?")[0]] = len(logs.get(trace_id, {}))
    return shape


def test_catalogue_through_agent_and_gateway_delivers_everything_redacted(topology, backend, tmp_path):
    # Negative control first: straight to a receiver, the secrets the app does not redact are visible.
    with OTLPReceiver() as direct:
        sent_direct = run_catalogue(tmp_path, "direct", direct.endpoint, direct)
        wait_until(lambda: len(per_trace(direct, sent_direct)[0]) == len(sent_direct), timeout=20,
                   what="the direct run's spans")
        time.sleep(0.5)
        _, direct_logs = per_trace(direct, sent_direct)
        leaked = secrets_found(direct)
        assert {"user_agent", "jwt", "query"} <= leaked, f"negative control: expected visible secrets, got {leaked}"
        shape = expected_shape(sent_direct, direct_logs)
        direct_metric_names = {m["name"] for m in direct.metrics}
        # The app's own log line and otel_showmax's request log, per request: the collector run must
        # deliver exactly as many per request as the direct run produced.
        assert all(n >= 2 for n in shape.values()), f"an app log and a request log per request expected: {shape}"
        print(f"log records per request, by path: {dict(shape)}")

    # Through the collector: agent (redaction, persistent queue) -> gateway (TLS + token) -> backend.
    sent = run_catalogue(tmp_path, "collector", topology.agent_http_url, backend)
    want_logs = sum(shape[path.split("?")[0]] for _, path, _ in sent.values())

    def complete() -> bool:
        spans, logs = per_trace(backend, sent)
        return len(spans) == len(sent) and sum(len(v) for v in logs.values()) >= want_logs

    wait_until(complete, timeout=30, interval=0.2, what="every span and log of the catalogue at the backend")
    time.sleep(1)  # anything extra (duplicates, strays) would arrive now
    spans, logs = per_trace(backend, sent)
    for trace_id, (parent, path, status) in sent.items():
        server = [s for s in spans[trace_id].values() if s["kind"] == "SERVER"]
        assert len(server) == 1, (path, spans[trace_id])
        span = server[0]
        assert span["parent_span_id"] == parent  # the trace id and the caller's span id survived both hops
        assert span["resource"]["service.name"] == "catalogue"
        status_attr = span["attributes"].get("http.response.status_code", span["attributes"].get("http.status_code"))
        assert status_attr == status
        records = list(logs.get(trace_id, {}).values())
        assert len(records) == shape[path.split("?")[0]], (path, records)
        assert all(r["span_id"] == span["span_id"] for r in records), "log records lost their span id"
    # Nothing sensitive arrived, in any signal; the collector says how much it masked.
    assert secrets_found(backend) == set()
    assert any(s["attributes"].get("redaction.masked.count") for s in backend.spans)
    # Metrics take the same path (names as in the direct run; points are cumulative, not compared).
    wait_until(lambda: direct_metric_names <= {m["name"] for m in backend.metrics}, timeout=10,
               what=f"the metrics {sorted(direct_metric_names)} at the backend")
    assert all(m["resource"].get("service.name") == "catalogue" for m in backend.metrics)
    # The excluded health checks produced nothing.
    assert not any("/health" in json.dumps(s["attributes"]) for s in backend.spans)
