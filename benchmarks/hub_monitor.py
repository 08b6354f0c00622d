"""The hub-block monitor's overhead: the same instrumented service with the monitor on and off, same run.

    .venv/bin/python benchmarks/hub_monitor.py                     # 6 rounds x 10 s, on/off alternating
    .venv/bin/python benchmarks/hub_monitor.py --rounds 2 --seconds 3   # to iterate

Serves the catalogue list endpoint (benchmarks/catalogue_app.py, ``otel_showmax.setup()`` in the app,
a log line per request) with ``gunicorn -k gevent -w 1`` (benchmarks/gunicorn_conf.py) on a free
127.0.0.1 port, exporting spans, logs and metrics over OTLP/HTTP to benchmarks/sink.py in its own
process, and loads it with wrk. Two configurations differ only in
``OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD``: unset (the monitor on, 100 ms) and ``off``. Rounds alternate
the order (on-off, off-on, ...) so a drift of the shared machine hits both alike; each round gives
one throughput ratio on/off, and the summary is the median ratio over rounds.

Each worker reports at exit whether the monitor ran in it and how many blocks it saw (none are
expected: nothing in this service blocks). Also prints the request path's own cost of the
greenlet → span registry (enter + exit), measured in-process.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import run as bench  # noqa: E402  (benchmarks/run.py: serve, receivers, process helpers)

from tests._net import free_port  # noqa: E402
from tests._wrk import wrk  # noqa: E402

CONFIGS = {"on": {}, "off": {"OTEL_SHOWMAX_HUB_BLOCK_THRESHOLD": "off"}}


def one(name: str, args: argparse.Namespace) -> dict:
    variant = bench.variants()["setup"]
    receiver = bench.SinkReceiver()
    tmp = Path(tempfile.mkdtemp(prefix="otel-showmax-hub-bench-"))
    stats_path = tmp / "stats.json"
    port = free_port()
    env = {**bench.telemetry_env(receiver.endpoint, "http/protobuf"), **CONFIGS[name]}
    proc = bench.serve(variant, env, tmp / "server.log", stats_path, port)
    try:
        bench.wait_port(port, proc)
        url = f"http://127.0.0.1:{port}{bench.URL_PATH}"
        wrk(url, args.warmup, args.connections)
        workers = bench.children(proc.pid)
        cpu0 = bench.proc_cpu_s(workers[0])
        load = wrk(url, args.seconds, args.connections)
        cpu1 = bench.proc_cpu_s(workers[0])
    finally:
        bench.stop(proc, signal.SIGTERM, timeout=60)
        receiver.close()
    stats = json.loads(stats_path.read_text())
    return {"config": name, "rps": load.rps, "requests": load.requests, "errors": load.errors,
            "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "cpu_us_per_req": (cpu1 - cpu0) / load.requests * 1e6,
            "hub_monitor": (stats.get("otel_showmax") or {}).get("hub_monitor"), "log": str(tmp)}


def registry_cost_ns() -> float:
    """ns per request of the request path's hub-monitor hook (Tracker.enter + exit), in a greenlet."""
    import gevent

    from otel_showmax._instrumentation.hub_monitor import Tracker

    tracker = Tracker(lambda: True)
    result = []

    def measure():
        tracker._pid, tracker._on = __import__("os").getpid(), True  # as in a worker where it runs
        span = object()
        n = 200_000
        result.append(timeit.timeit(lambda: tracker.exit(tracker.enter(span)), number=n) / n * 1e9
                      - timeit.timeit(lambda: None, number=n) / n * 1e9)

    gevent.spawn(measure).join()
    return result[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", help="write every run here")
    args = parser.parse_args(argv)

    runs = []
    ratios, cpu_ratios = [], []
    for rnd in range(1, args.rounds + 1):
        order = ("on", "off") if rnd % 2 else ("off", "on")
        got = {}
        for name in order:
            result = one(name, args)
            result["round"] = rnd
            runs.append(result)
            got[name] = result
            print(f"round {rnd} {name:>3}: {result['rps']:8.1f} req/s  {result['cpu_us_per_req']:6.1f} µs CPU/req  "
                  f"p99 {result['p99_ms']:.2f} ms  errors {result['errors']}  monitor {result['hub_monitor']}",
                  flush=True)
            time.sleep(0.5)
        ratios.append(got["on"]["rps"] / got["off"]["rps"])
        cpu_ratios.append(got["on"]["cpu_us_per_req"] / got["off"]["cpu_us_per_req"])
    ok = all(r["errors"] == 0 for r in runs)
    ran = all((r["hub_monitor"] or {}).get("running") is (r["config"] == "on") for r in runs)
    blocks = sum((r["hub_monitor"] or {}).get("blocks", 0) for r in runs)
    median = {name: statistics.median(r["rps"] for r in runs if r["config"] == name) for name in CONFIGS}
    print()
    print(f"median req/s: on {median['on']:.1f}, off {median['off']:.1f}")
    print(f"throughput on/off per round: {', '.join(f'{x:.3f}' for x in ratios)}; median {statistics.median(ratios):.3f}")
    print(f"CPU per request on/off per round: {', '.join(f'{x:.3f}' for x in cpu_ratios)}; "
          f"median {statistics.median(cpu_ratios):.3f}")
    print(f"monitor ran in every 'on' worker and in no 'off' worker: {ran}; blocks seen: {blocks}; wrk errors: "
          f"{'none' if ok else 'SOME'}")
    print(f"request-path hook (registry enter + exit): {registry_cost_ns():.0f} ns per request")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "ratios": ratios, "cpu_ratios": cpu_ratios}, indent=2))
    return 0 if ok and ran else 1


if __name__ == "__main__":
    sys.exit(main())
