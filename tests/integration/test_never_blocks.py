"""A dead or blackholed collector changes neither throughput nor latency of a gevent app.

One gevent-served Falcon process per run, loaded with wrk; the baseline is the same app against a
live receiver (in its own process), measured in the same test, before and after the fault runs.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from otel_showmax.receiver import Blackhole, ReceiverProcess
from tests._net import free_port, stop_process, wait_port
from tests._wrk import wrk

SERVER = Path(__file__).parent.parent / "scenarios" / "gevent_server.py"
pytestmark = pytest.mark.integration


def serve_and_load(protocol: str, endpoint: str, stats_file: Path):
    port = free_port()
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SHOWMAX_SHUTDOWN_TIMEOUT": "2",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
    }
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port), str(stats_file)], env=env)
    try:
        wait_port(port)
        wrk(f"http://127.0.0.1:{port}/titles", seconds=1)  # warm-up
        load = wrk(f"http://127.0.0.1:{port}/titles", seconds=4)
    finally:
        stop_process(proc, signal.SIGTERM, timeout=20)
    stats = json.loads(stats_file.read_text())
    return load, stats


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_dead_and_blackholed_collectors_do_not_slow_requests(protocol, tmp_path):
    runs: dict[str, list] = {"live": [], "dead": [], "blackhole": []}
    with ReceiverProcess(grpc=protocol == "grpc") as live, Blackhole() as hole:
        live_endpoint = live.grpc_endpoint if protocol == "grpc" else live.endpoint
        targets = {
            "live": live_endpoint,
            "dead": f"http://127.0.0.1:{free_port()}",
            "blackhole": hole.endpoint,
        }
        for i, mode in enumerate(["live", "dead", "blackhole", "live"]):
            runs[mode].append(serve_and_load(protocol, targets[mode], tmp_path / f"{i}-{mode}.json"))
        received = live.read_jsonl()

    served_live = sum(stats["served"] for _, stats in runs["live"])
    spans_live = len([s for s in received["spans"] if s["resource"]["service.name"] == "never-blocks"])
    # An honest baseline: the live runs exported one server span per request served.
    assert spans_live == served_live
    live_rps = statistics.mean(load.rps for load, _ in runs["live"])
    live_p50 = statistics.mean(load.p50_ms for load, _ in runs["live"])
    live_p99 = statistics.mean(load.p99_ms for load, _ in runs["live"])
    for mode in ("dead", "blackhole"):
        (load, stats) = runs[mode][0]
        assert load.errors == 0
        assert load.rps >= 0.8 * live_rps, (mode, load, live_rps)
        assert load.p50_ms <= 1.5 * live_p50 + 1.0, (mode, load, live_p50)
        assert load.p99_ms <= 2.5 * live_p99 + 5.0, (mode, load, live_p99)
        assert stats["max_lag_ms"] < 100, (mode, stats)
        assert stats["shutdown_s"] <= 2.5, (mode, stats)
        dropped = stats["dropped"]["traces"]
        assert sum(dropped.values()) == stats["served"], (mode, stats)  # every loss is counted
