"""Measure the tier's sizing numbers for collector/README.md ("Sizing the tier").

    .venv/bin/python -m tests.collector.sizing [--traces 40000] [--held 40000]

1. Throughput per core: one tier agent and one tier gateway replica (10% sampling, Zipkin behind it);
   ``--traces`` synthetic storefront -> catalogue traces (3 spans, 3-5 attributes each, as
   tests/collector/_tier.make_trace) are posted to the agent as fast as this process can. The CPU
   seconds each collector process used (from /proc) give spans per CPU-second = spans/s per core at
   saturation, independent of how fast the Python load generator is.
2. Memory held for the decision: a replica with decision_wait 120 s receives ``--held`` traces; its
   Go heap in use and RSS (the collector's own metrics) before and after, per 1,000 traces held.

Not a test: run it by hand on an otherwise idle machine; it prints one line per number.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import _tier
from ._otelcol import wait_until


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post_all(url: str, traces: list[_tier.TraceSpec]) -> float:
    start = time.monotonic()
    for i in range(0, len(traces), 100):  # 300 spans per request, like a busy SDK's batches
        _tier.post_traces(url, traces[i:i + 100], per_request=300)
    return time.monotonic() - start


def throughput(jar: Path, workdir: Path, n: int) -> None:
    with _tier.Zipkin(jar, workdir / "zipkin") as zipkin, _tier.Tier(
            workdir / "throughput", zipkin.spans_endpoint, gateways=1, agents=1, sampling_percentage=10) as tier:
        gw, agent = tier.gateways[0], tier.agents[0].collector
        traces = [_tier.make_trace("ok") for _ in range(n)]
        gw0, ag0 = cpu_seconds(gw.proc.pid), cpu_seconds(agent.proc.pid)
        took = post_all(tier.agents[0].otlp_http_url, traces)
        _tier.wait_for_decisions(tier, n, timeout=600)
        gw1, ag1 = cpu_seconds(gw.proc.pid), cpu_seconds(agent.proc.pid)
        spans = 3 * n
        print(f"throughput: {spans} spans ({n} traces) posted in {took:.1f} s; "
              f"agent {ag1 - ag0:.1f} CPU-s = {spans / (ag1 - ag0):,.0f} spans/s per core; "
              f"gateway (decide + span metrics + export 10%) {gw1 - gw0:.1f} CPU-s = "
              f"{spans / (gw1 - gw0):,.0f} spans/s per core")


def held_memory(jar: Path, workdir: Path, n: int) -> None:
    with _tier.Tier(workdir / "held", "http://127.0.0.1:9/api/v2/spans", gateways=1, agents=1,
                    gateway_env={"OTELCOL_TIER_GATEWAY_DECISION_WAIT": "120s",
                                 "OTELCOL_TIER_GATEWAY_NUM_TRACES": str(2 * n)}) as tier:
        gw = tier.gateways[0]
        time.sleep(3)
        heap0 = gw.metric("otelcol_process_runtime_heap_alloc_bytes")
        rss0 = gw.metric("otelcol_process_memory_rss")
        traces = [_tier.make_trace("ok") for _ in range(n)]
        post_all(tier.agents[0].otlp_http_url, traces)
        wait_until(lambda: gw.metric("otelcol_processor_tail_sampling_new_trace_id_received") >= n, timeout=300,
                   what="every trace at the replica")
        time.sleep(5)  # a GC cycle or two
        heap1 = gw.metric("otelcol_process_runtime_heap_alloc_bytes")
        rss1 = gw.metric("otelcol_process_memory_rss")
        held = gw.metric("otelcol_processor_tail_sampling_sampling_traces_on_memory")
        print(f"held for decision: {held:.0f} traces ({3 * n} spans); Go heap +{(heap1 - heap0) / 2**20:.1f} MiB "
              f"= {(heap1 - heap0) / 2**20 / (n / 1000):.2f} MiB per 1,000 traces; RSS +{(rss1 - rss0) / 2**20:.1f} MiB "
              f"= {(rss1 - rss0) / 2**20 / (n / 1000):.2f} MiB per 1,000 traces")
        # No backend behind this replica: a SIGTERM would decide and try to export the held traces, retrying
        # until its stop timeout. This is a measurement, not a drill: end it with SIGKILL (by PID).
        gw.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=40000)
    parser.add_argument("--held", type=int, default=40000)
    args = parser.parse_args()
    _, jar = _tier.ensure_tier_built()
    workdir = Path(tempfile.mkdtemp(prefix="otel-showmax-sizing-"))
    try:
        throughput(jar, workdir, args.traces)
        held_memory(jar, workdir, args.held)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
