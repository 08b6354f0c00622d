"""A dead or blackholed collector changes neither throughput nor latency of a gevent app.

One gevent-served Falcon process per run, loaded with wrk; the baseline is the same app against a
live receiver (in its own process), measured in the same test, before and after the fault runs.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from otel_showmax.receiver import Blackhole, ReceiverProcess
from tests._net import free_port, stop_process, wait_port
from tests._wrk import wrk

SCENARIOS = Path(__file__).parent.parent / "scenarios"
pytestmark = pytest.mark.integration
# scripts/matrix.sh runs one round in its extra legs (NEVER_BLOCKS_ROUNDS=1) to fit the CI time budget.
ROUNDS = int(os.environ.get("NEVER_BLOCKS_ROUNDS", "2"))


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def paced_load(port: int, seconds: float, clients: int = 4, pause: float = 0.01) -> list[float]:
    """Each client: one request, then a short pause; about 300 requests/s in all. Returns latencies in ms."""
    latencies: list[float] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            conn.request("GET", "/titles")
            assert conn.getresponse().read()
            latencies.append(1000.0 * (time.perf_counter() - start))
            time.sleep(pause)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return latencies


def serve_and_load(protocol: str, endpoint: str, stats_file: Path):
    """gunicorn -k gevent -w 1 against ``endpoint``; returns (wrk load, worker stats, exit seconds)."""
    port = free_port()
    env = {
        **os.environ,
        "STATS_FILE": str(stats_file),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "10",
        "OTEL_SHOWMAX_EXCLUDED_URLS": "/lag$",  # the probe's own endpoint: no span, no request log
    }
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"), "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}",
        "--chdir", str(SCENARIOS), "never_blocks_app:app",
    ]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_port(port)
        wrk(f"http://127.0.0.1:{port}/titles", seconds=1)  # warm-up
        # A saturated gevent worker serves its connections unfairly: its slowest request takes 0.3-1.1 s
        # here (live baseline too) and passed wrk's 2 s default on CI. 5 s is half the export timeout,
        # so a request that waited on the collector still fails. Hub stalls and the latency tail are
        # measured under a paced load instead.
        load = wrk(f"http://127.0.0.1:{port}/titles", seconds=4, timeout_s=5)
        get_json(port, "/lag")
        latencies = sorted(paced_load(port, seconds=3))
        load.paced_p99_ms = latencies[int(0.99 * (len(latencies) - 1))]
        load.max_lag_ms = get_json(port, "/lag")["max_lag_ms"]
    finally:
        exit_s = stop_process(proc, signal.SIGTERM, timeout=40)
    return load, json.loads(stats_file.read_text()), exit_s


# http/protobuf (the default) is a guarantee test, run on every matrix leg; grpc in the full suite.
@pytest.mark.parametrize("protocol", [pytest.param("http/protobuf", marks=pytest.mark.guarantee), "grpc"])
def test_dead_and_blackholed_collectors_do_not_slow_requests(protocol, tmp_path):
    runs: dict[str, list] = {"live": [], "dead": [], "blackhole": []}
    with ReceiverProcess(grpc=protocol == "grpc") as live, Blackhole() as hole:
        live_endpoint = live.grpc_endpoint if protocol == "grpc" else live.endpoint
        targets = {
            "live": live_endpoint,
            "dead": f"http://127.0.0.1:{free_port()}",
            "blackhole": hole.endpoint,
        }
        # Alternated rounds (two by default): the machine is shared and noisy; compare means of the same run.
        for i, mode in enumerate(["live", "dead", "blackhole"] * ROUNDS):
            runs[mode].append(serve_and_load(protocol, targets[mode], tmp_path / f"{i}-{mode}.json"))
        received = live.read_jsonl()

    served_live = sum(stats["served"] for _, stats, _ in runs["live"])
    spans_live = len([s for s in received["spans"] if s["name"] == "GET /titles"])
    # An honest baseline: the live runs exported one server span per request served.
    assert spans_live == served_live
    live_rps = statistics.mean(load.rps for load, _, _ in runs["live"])
    live_p50 = statistics.mean(load.p50_ms for load, _, _ in runs["live"])
    live_p99 = statistics.mean(load.paced_p99_ms for load, _, _ in runs["live"])
    for mode in ("dead", "blackhole"):
        rps = statistics.mean(load.rps for load, _, _ in runs[mode])
        p50 = statistics.mean(load.p50_ms for load, _, _ in runs[mode])
        p99 = statistics.mean(load.paced_p99_ms for load, _, _ in runs[mode])
        assert rps >= 0.8 * live_rps, (mode, runs[mode], live_rps)
        # Coarse latency ratios (2 noisy cores): a request waiting on the collector would add
        # the export timeout (10 s) to p50, to the paced p99 or to the saturated maximum. A saturated
        # gevent worker's p50 is bimodal between runs of the same set-up (~0.4 ms or ~one turn of the 16 connections,
        # 16 / rps): one such turn at the live rate is allowed on top.
        turn_ms = 1000.0 * 16 / live_rps
        assert p50 <= 2.0 * live_p50 + 2.0 + turn_ms, (mode, runs[mode], live_p50, turn_ms)
        assert p99 <= 3.0 * live_p99 + 10.0, (mode, runs[mode], live_p99)
        for load, stats, exit_s in runs[mode]:
            assert load.errors == 0
            assert load.max_ms < 5000, (mode, load)  # half the export timeout
            assert load.max_lag_ms < 100, (mode, load)
            assert exit_s <= 6.0, (mode, exit_s)  # SIGTERM to the master until it has exited
            dropped = stats["dropped"]["traces"]
            assert sum(dropped.values()) == stats["served"], (mode, stats)  # every loss is counted
