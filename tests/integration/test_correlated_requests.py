"""Issue 3 end to end: gunicorn with 2 gevent workers, N >= 300 requests, some with a traceparent.

Exactly N request log records reach the receiver, each with its server span's trace id; a valid
incoming traceparent continues that trace; a malformed one starts a new trace and the request
still succeeds; an application log line carries the same trace id in the exported record and in
the process's local JSON line.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from otel_showmax.receiver import ReceiverProcess
from tests.integration._servers import app_logs, assert_exactly_once, get, start_gunicorn, telemetry_env

pytestmark = pytest.mark.integration

N = 300
MALFORMED = [
    "00-zz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # not hex
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "garbage",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
]


@pytest.mark.guarantee
def test_request_logs_carry_their_trace_and_incoming_context_is_continued(tmp_path):
    rng = random.Random(1234)
    jobs = []
    for i in range(N):
        headers: dict[str, str] = {"User-Agent": f"client-{i}"}
        kind = "none"
        if i % 3 == 1:
            trace_id, parent = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}"
            headers["traceparent"] = f"00-{trace_id}-{parent}-01"
            kind = "valid"
        elif i % 3 == 2 and i % 2 == 0:
            headers["traceparent"] = MALFORMED[i % len(MALFORMED)]
            kind = "malformed"
        jobs.append((f"/titles/{i % 20 + 1}", headers, kind))

    with ReceiverProcess() as receiver:
        server = start_gunicorn(telemetry_env(receiver.endpoint), tmp_path / "gunicorn.log")
        with server:
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(lambda job: get(server.base_url + job[0], headers=job[1])[0], jobs))
            workers = server.worker_pids()
            local = server.json_lines()
            server.stop("SIGTERM")
        received = receiver.read_jsonl()

    assert statuses == [200] * N  # malformed traceparent never breaks a request
    assert len(workers) == 2
    spans, logs = assert_exactly_once(received, "catalogue", N, workers)
    # Default (old) HTTP semantic conventions name it http.user_agent; the stable ones user_agent.original.
    by_agent = {s["attributes"].get("http.user_agent") or s["attributes"]["user_agent.original"]: s for s in spans}
    for i, (_, headers, kind) in enumerate(jobs):
        span = by_agent[f"client-{i}"]
        if kind == "valid":
            _, trace_id, parent, _ = headers["traceparent"].split("-")
            assert (span["trace_id"], span["parent_span_id"]) == (trace_id, parent)
        else:
            assert span["parent_span_id"] == ""  # a new trace
            assert span["trace_id"] not in {h.get("traceparent", "") for _, h, _ in jobs}
    # Each request log has its server span's ids (assert_exactly_once); the app's own line carries
    # the same trace id in the exported record and in the local JSON line the worker wrote.
    trace_ids = {s["trace_id"] for s in spans}
    exported = [lg for lg in app_logs(received, "catalogue", "catalogue") if lg["trace_id"]]
    local_lines = [line for line in local if line.get("logger") == "catalogue" and line.get("trace_id")]
    assert len(exported) == N
    assert len(local_lines) == N, "one local JSON line with a trace id per request"
    assert {lg["trace_id"] for lg in exported} == trace_ids
    assert {line["trace_id"] for line in local_lines} == trace_ids
    assert {lg["trace_id"] for lg in logs} == trace_ids
