"""Benchmark runner: instrumentation overhead and faulty collectors, one command.

    .venv/bin/python benchmarks/run.py                 # overhead + faults, 3 rounds x 10 s
    .venv/bin/python benchmarks/run.py --quick         # 1 round x 3 s, to iterate
    .venv/bin/python benchmarks/run.py --only overhead --rounds 5 --seconds 15

Serves the catalogue endpoint (20 titles as JSON, one application log line per request) with
``gunicorn -k gevent -w 1`` on a free 127.0.0.1 port and loads it with wrk, alternating the
configurations A B C ... A B C ... for several rounds. Each instrumented run exports to a live
OTLP receiver in its own process (``python -m otel_showmax.receiver``, never sharing the
benchmarked GIL); after the server has exited the runner checks that the receiver got exactly one
server span, and the expected log records, per request the worker served. A run that lost
telemetry is reported and marked as not counting.

Ratios are always taken against the uninstrumented (or, for faults, the live) run of the same
round; the tables give medians over rounds. CPU per request is the worker process's user+system
time (from /proc/PID/stat, export threads included) over the measured wrk phase divided by the
requests wrk completed in it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAIN_BIN = Path(sys.executable).parent  # the main virtualenv (otel_showmax installed)
RESULTS = HERE / "results"

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
# Every child (gunicorn workers, the receiver) imports otel_showmax from the tree this runner is in,
# e.g. a `git archive` snapshot of a commit while the main checkout is being edited.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)

import ddtrace_env  # noqa: E402
import upstream_env  # noqa: E402

from tests._net import free_port  # noqa: E402
from tests._wrk import wrk  # noqa: E402  (one wrk runner and parser for tests and benchmarks)

SERVICE = "catalogue-bench"
APP_LOGGER = "catalogue.api"
APP_LOG_TEXT = "listed 20 of 120 titles"
REQUEST_LOGGER = "otel_showmax.request"
URL_PATH = "/titles"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------- helpers
def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def proc_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process (all its threads), from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process's main thread only (its other threads export)."""
    text = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> float:
    """Signal a process we started, by PID; return seconds until it exited (SIGKILL after timeout)."""
    start = time.monotonic()
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return float("inf")
    return time.monotonic() - start


# ----------------------------------------------------------------------------------- configurations
@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    python_bin: Path  # the virtualenv's bin/
    wrapper: bool  # run under opentelemetry-instrument
    app_mode: str  # catalogue_app BENCH_APP_MODE
    spans: int  # expected server spans per request
    app_logs: int  # expected exported application log records per request
    request_logs: int  # expected exported request log records per request
    gunicorn_args: tuple[str, ...] = ()  # added to the gunicorn command line
    ddtrace: bool = False  # run under ddtrace-run (its own virtualenv), to benchmarks/dd_agent.py
    env: tuple[tuple[str, str], ...] = ()  # added to the server's environment


def has_request_log() -> bool:
    """Whether this checkout's otel_showmax writes a request log per request (otel_showmax/falcon.py)."""
    return (ROOT / "otel_showmax" / "falcon.py").exists()


def variants() -> dict[str, Variant]:
    up = upstream_env.VENV / "bin"
    dd = ddtrace_env.VENV / "bin"
    req = 1 if has_request_log() else 0
    return {
        "bare": Variant("bare", "uninstrumented", MAIN_BIN, False, "plain", 0, 0, 0),
        "upstream": Variant("upstream", "upstream opentelemetry-instrument (distro defaults, logs on)",
                            up, True, "plain", 1, 1, 0),
        "ddtrace": Variant("ddtrace", "ddtrace-run (traces + log injection, to a stand-in agent)", dd, False, "plain",
                           1, 0, 0, ddtrace=True),
        "wrapper": Variant("wrapper", "otel_showmax via opentelemetry-instrument", MAIN_BIN, True, "plain", 1, 1, req),
        "setup": Variant("setup", "otel_showmax via setup()", MAIN_BIN, False, "setup", 1, 1, req),
        # setup() in the app, the app loaded in the master before the fork (as the wrapper sets up)
        "setup_preload": Variant("setup_preload", "otel_showmax via setup(), gunicorn --preload", MAIN_BIN, False,
                                 "setup", 1, 1, req, ("--preload",)),
        # the fast-path audit: setup() with one of its fast paths switched back to upstream's code
        "setup_upenc": Variant("setup_upenc", "otel_showmax via setup(), upstream's encoder (fast path off)", MAIN_BIN,
                               False, "setup", 1, 1, req, env=(("BENCH_ABLATE", "encoder"),)),
        "setup_requests": Variant("setup_requests", "otel_showmax via setup(), requests transport (fast path off)",
                                  MAIN_BIN, False, "setup", 1, 1, req, env=(("BENCH_ABLATE", "transport"),)),
        "naive": Variant("naive", "seed's synchronous remote log handler", MAIN_BIN, False, "naive", 0, 1, 0),
        # setup() with otel_showmax imported from another tree (--ref-tree): an older commit, side by side
        "setup_ref": Variant("setup_ref", "otel_showmax via setup(), reference tree (--ref-tree)", MAIN_BIN, False,
                             "setup", 1, 1, req),
    }


def base_env() -> dict[str, str]:
    """The parent environment without anything that would configure telemetry differently."""
    drop = ("OTEL_", "BENCH_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONUNBUFFERED"] = "0"
    return env


def telemetry_env(endpoint: str, protocol: str) -> dict[str, str]:
    """The same OTel settings for every instrumented configuration (honest baselines)."""
    return {
        "OTEL_SERVICE_NAME": SERVICE,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",
        "OTEL_TRACES_SAMPLER": "always_on",
    }


def ddtrace_env_vars(agent: str) -> dict[str, str]:
    """ddtrace's settings: traces to the (stand-in) agent, trace ids injected into log records."""
    return {
        "DD_SERVICE": SERVICE,
        "DD_TRACE_AGENT_URL": agent,
        "DD_LOGS_INJECTION": "true",
        "DD_TRACE_REMOVE_INTEGRATION_SERVICE_NAMES_ENABLED": "true",
        "DD_TRACE_SAMPLING_RULES": '[{"sample_rate": 1.0}]',  # keep every trace, as always_on does
        "BENCH_DDTRACE": "1",  # benchmarks/gunicorn_conf.py: flush the tracer in worker_exit
    }


# ------------------------------------------------------------------------------------------ one run
@dataclass
class Run:
    config: str
    round: int
    load: dict[str, Any] = field(default_factory=dict)
    warmup_requests: int = 0
    served: int | None = None
    cpu_us_per_req: float | None = None
    main_thread_cpu_us_per_req: float | None = None  # the request thread (gevent hub + greenlets)
    total_cpu_us_per_req: float | None = None  # every server process: gunicorn master + worker(s)
    workers: int = 1
    receiver_cpu_us_per_req: float | None = None
    gc_us_per_req: float | None = None  # cyclic GC time in the worker, over all requests served
    gc_collections: list[int] = field(default_factory=list)
    gc_us_by_generation: list[float] = field(default_factory=list)
    exit_s: float | None = None
    received: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)
    verified: bool | None = None  # None: nothing to verify (uninstrumented)
    note: str = ""
    profile: str = ""
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # otel_showmax.dropped() at worker exit


def receiver_cpu_s(receiver: LiveReceiver | SinkReceiver | DDAgent) -> float:
    """CPU seconds the receiver process has used so far (0 once it is gone)."""
    try:
        return proc_cpu_s(receiver.proc.pid)
    except (OSError, RuntimeError):
        return 0.0


class LiveReceiver:
    """The package's OTLP receiver in its own process (HTTP, optionally gRPC), for one run."""

    def __init__(self, grpc: bool = False) -> None:
        from otel_showmax.receiver import ReceiverProcess

        self.proc = ReceiverProcess(grpc=grpc).start()

    def counts(self) -> dict[str, int]:
        got = self.proc.read_jsonl()
        spans = [s for s in got["spans"] if s.get("resource", {}).get("service.name") == SERVICE]
        logs = got["logs"]
        return {
            "spans": sum(1 for s in spans if s.get("kind") in ("SERVER", "SPAN_KIND_SERVER", "2")),
            "spans_total": len(spans),
            "app_logs": sum(1 for r in logs if APP_LOG_TEXT in str(r.get("body"))),
            "request_logs": sum(1 for r in logs if r.get("scope") == REQUEST_LOGGER),
            "logs_total": len(logs),
            "metric_points": len(got["metrics"]),
        }

    @property
    def endpoint(self) -> str:
        return str(self.proc.endpoint)

    def close(self) -> None:
        self.proc.stop()


class SinkReceiver:
    """benchmarks/sink.py in its own process: parses and counts, keeps nothing (the overhead suite)."""

    def __init__(self) -> None:
        cmd = [sys.executable, str(HERE / "sink.py"), "--service", SERVICE, "--app-log-text", APP_LOG_TEXT,
               "--request-logger", REQUEST_LOGGER]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        self.endpoint = self.proc.stdout.readline().strip()
        if not self.endpoint.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"sink did not start: {self.endpoint!r}")

    def counts(self) -> dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}/counts", timeout=10) as reply:
            return dict(json.loads(reply.read()))

    def close(self) -> None:
        stop(self.proc, signal.SIGTERM, timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class DDAgent:
    """benchmarks/dd_agent.py in its own process (the ddtrace virtualenv's python): counts spans."""

    def __init__(self) -> None:
        cmd = [str(ddtrace_env.python()), str(HERE / "dd_agent.py"), "--service", SERVICE]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd="/")
        assert self.proc.stdout is not None
        self.endpoint = self.proc.stdout.readline().strip()
        if not self.endpoint.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"dd_agent did not start: {self.endpoint!r}")

    def counts(self) -> dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}/counts", timeout=10) as reply:
            got = dict(json.loads(reply.read()))
        return {"app_logs": 0, "request_logs": 0, **got}  # ddtrace exports no log records (injection only)

    def close(self) -> None:
        stop(self.proc, signal.SIGTERM, timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_pyspy(args: argparse.Namespace, worker: int, config: str, rnd: int) -> tuple[subprocess.Popen, Path] | None:
    """Sample the worker (all threads, only while holding the GIL) during the measured phase."""
    if not args.pyspy or config not in args.pyspy:
        return None
    RESULTS.mkdir(exist_ok=True)
    raw = RESULTS / f"pyspy-gunicorn-{config.replace('/', '_')}-{rnd}.raw"
    cmd = [args.pyspy_bin, "record", "--pid", str(worker), "--gil", "--threads", "--nonblocking", "--format", "raw",
           "-r", "250", "-d", str(max(1, round(args.seconds))), "-o", str(raw)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), raw


def serve(variant: Variant, env_extra: dict[str, str], log_path: Path, stats_path: Path,
          port: int, workers: int = 1) -> subprocess.Popen:
    env = {**base_env(), **dict(variant.env), **env_extra, "BENCH_APP_MODE": variant.app_mode,
           "BENCH_STATS": str(stats_path)}
    if variant.python_bin != MAIN_BIN:
        env.pop("PYTHONPATH", None)  # the upstream virtualenv must not see otel_showmax
    if variant.python_bin == MAIN_BIN and (variant.wrapper or variant.app_mode == "setup"):
        env["BENCH_OTEL_SHOWMAX"] = "1"  # otel_showmax's gunicorn hooks, as its README says
    gunicorn = [str(variant.python_bin / "gunicorn"), "-k", "gevent", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                "-c", str(HERE / "gunicorn_conf.py"), "--chdir", str(HERE), *variant.gunicorn_args,
                "catalogue_app:app"]
    cmd = ([str(variant.python_bin / "opentelemetry-instrument")] if variant.wrapper else []) + gunicorn
    if variant.ddtrace:
        cmd = [str(variant.python_bin / "ddtrace-run"), *gunicorn]
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, env=env, cwd=str(HERE), stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def one_run(variant: Variant, rnd: int, args: argparse.Namespace, *, endpoint: str | None = None,
            protocol: str = "http/protobuf", receiver: LiveReceiver | SinkReceiver | DDAgent | None = None,
            name: str | None = None, env_over: dict[str, str] | None = None, workers: int = 1) -> Run:
    """Serve, warm up, load, SIGTERM the master (load stopped first), verify what the receiver got."""
    run = Run(config=name or variant.name, round=rnd, workers=workers)
    tmp = Path(tempfile.mkdtemp(prefix="otel-showmax-bench-"))
    log_path, stats_path = tmp / "server.log", tmp / "stats.json"
    port = free_port()
    env_extra: dict[str, str] = {}
    if endpoint is not None and variant.ddtrace:
        env_extra.update(ddtrace_env_vars(endpoint))
    elif endpoint is not None:
        env_extra.update(telemetry_env(endpoint, protocol))
    if variant.app_mode == "naive" and receiver is not None:
        env_extra["BENCH_NAIVE_ENDPOINT"] = receiver.endpoint
        env_extra["OTEL_SERVICE_NAME"] = SERVICE
    env_extra.update(env_over or {})
    proc = serve(variant, env_extra, log_path, stats_path, port, workers)
    url = f"http://127.0.0.1:{port}{URL_PATH}"
    ok = False
    try:
        wait_port(port, proc)
        warm = wrk(url, args.warmup, args.connections)
        run.warmup_requests = warm.requests
        pids = children(proc.pid)
        if len(pids) != workers:
            raise RuntimeError(f"expected {workers} worker(s), found {pids}")
        worker = pids[0] if pids else None
        rcv0 = receiver_cpu_s(receiver) if receiver else 0.0
        spy = start_pyspy(args, worker, run.config, rnd) if worker else None
        cpu0 = sum(proc_cpu_s(p) for p in pids)
        main0 = sum(thread_cpu_s(p) for p in pids)
        master0 = proc_cpu_s(proc.pid)
        load = wrk(url, args.seconds, args.connections)
        cpu1 = sum(proc_cpu_s(p) for p in pids)
        main1 = sum(thread_cpu_s(p) for p in pids)
        master1 = proc_cpu_s(proc.pid)
        rcv1 = receiver_cpu_s(receiver) if receiver else 0.0
        if children(proc.pid) != pids:
            run.note += f"workers changed during the load ({pids} -> {children(proc.pid)}); "
        if spy is not None:
            spy[0].wait(timeout=args.seconds + 30)
        run.load = asdict(load)
        if load.requests and worker:
            run.cpu_us_per_req = (cpu1 - cpu0) / load.requests * 1e6
            run.main_thread_cpu_us_per_req = (main1 - main0) / load.requests * 1e6
            run.total_cpu_us_per_req = (cpu1 - cpu0 + master1 - master0) / load.requests * 1e6
            if spy is not None and spy[1].exists():
                from profile_request import pyspy_report

                run.profile = pyspy_report(spy[1], run.cpu_us_per_req, loop_marker=None, main_tid=worker)
        if load.requests and receiver:
            run.receiver_cpu_us_per_req = (rcv1 - rcv0) / load.requests * 1e6
        ok = True
    finally:
        run.exit_s = stop(proc, signal.SIGTERM, timeout=60)
        if not ok:
            sys.stderr.write(log_path.read_text(errors="replace")[-3000:])
    try:
        # one file per worker (benchmarks/gunicorn_conf.py writes BENCH_STATS.<pid>)
        files = sorted(stats_path.parent.glob(stats_path.name + ".*"))
        every = [json.loads(f.read_text()) for f in files]
        if len(every) != workers:
            raise ValueError(f"{len(every)} worker stats for {workers} workers")
        run.served = sum(stats["served"] for stats in every)
        gcs = [stats["gc"] for stats in every if stats.get("gc")]
        if gcs and run.served:
            seconds = [sum(g["seconds"][i] for g in gcs) for i in range(3)]
            run.gc_us_per_req = sum(seconds) / run.served * 1e6
            run.gc_collections = [sum(g["collections"][i] for g in gcs) for i in range(3)]
            run.gc_us_by_generation = [round(x / run.served * 1e6, 2) for x in seconds]
        for stats in every:
            telemetry = stats.get("otel_showmax") or {}
            for sig, reasons in telemetry.get("dropped", {}).items():
                for reason, n in reasons.items():
                    if n:
                        run.dropped.setdefault(sig, {})[reason] = run.dropped.get(sig, {}).get(reason, 0) + n
        if run.dropped:
            run.note += f"otel_showmax dropped {run.dropped}; "
    except (OSError, ValueError, KeyError):
        run.note += "worker(s) wrote no stats; "
    if receiver is not None and run.served is not None:
        want = {
            "spans": variant.spans * run.served,
            "app_logs": variant.app_logs * run.served,
            "request_logs": variant.request_logs * run.served,
        }
        run.expected = want
        deadline = time.monotonic() + args.settle
        while True:
            got = receiver.counts()
            if all(got[k] >= n for k, n in want.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(0.3)  # anything late (duplicates) shows up too
        run.received = receiver.counts()
        run.verified = all(run.received[k] == n for k, n in want.items())
        if not run.verified:
            run.note += "telemetry mismatch: " + ", ".join(
                f"{k} {run.received[k]}/{n}" for k, n in want.items() if run.received[k] != n) + "; "
    errors = run.load.get("errors", 0)
    if errors:
        run.note += f"{errors} wrk errors; "
    failed = not run.load.get("requests") or run.served is None
    if failed:
        run.verified = False if run.verified is not None or receiver is not None else None
        run.note += "RUN FAILED (no requests served or the worker did not exit cleanly); "
    if not args.keep_logs and not failed and run.verified is not False:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        run.note += f"logs in {tmp}; "
    return run


# ------------------------------------------------------------------------------------- the suites
def overhead(args: argparse.Namespace) -> list[Run]:
    table = variants()
    names = args.configs
    runs: list[Run] = []
    for workers in args.workers:
        for rnd in range(1, args.rounds + 1):
            for name in names:
                variant = table[name]
                receiver: LiveReceiver | SinkReceiver | DDAgent | None = None
                if variant.ddtrace:
                    receiver = DDAgent()
                elif name != "bare":
                    receiver = SinkReceiver() if args.receiver == "sink" else LiveReceiver()
                try:
                    env_over = {"PYTHONPATH": args.ref_tree} if name == "setup_ref" else None
                    run = one_run(variant, rnd, args, endpoint=receiver.endpoint if receiver else None,
                                  receiver=receiver, env_over=env_over, workers=workers,
                                  name=config_name(name, workers, args.workers))
                finally:
                    if receiver:
                        receiver.close()
                runs.append(run)
                progress(run)
    return runs


def config_name(name: str, workers: int, all_workers: list[int]) -> str:
    """``setup`` for the usual -w 1 run alone; ``setup -w2`` when several worker counts are compared."""
    return name if all_workers == [1] else f"{name} -w{workers}"


def base_name(config: str) -> str:
    return config.split(" -w")[0]


def bare_of(config: str) -> str:
    """The baseline of a configuration: bare with the same number of workers."""
    return "bare" + config[len(base_name(config)):]


def faults(args: argparse.Namespace) -> list[Run]:
    from otel_showmax.receiver import Blackhole

    table = variants()
    runs: list[Run] = []
    targets = args.fault_configs
    if "upstream" in targets:
        upstream_env.ensure()
    for protocol in args.protocols:
        for rnd in range(1, args.rounds + 1):
            for target in targets:
                variant = table[target]
                for mode in ("live", "dead", "blackhole"):
                    name = f"{target}/{protocol}/{mode}"
                    receiver = hole = None
                    try:
                        if mode == "live":
                            receiver = LiveReceiver(grpc=protocol == "grpc")
                            endpoint = receiver.proc.grpc_endpoint if protocol == "grpc" else receiver.proc.endpoint
                        elif mode == "dead":
                            endpoint = f"http://127.0.0.1:{free_port()}"
                        else:
                            hole = Blackhole().start()
                            endpoint = hole.endpoint
                        run = one_run(variant, rnd, args, endpoint=endpoint, protocol=protocol, receiver=receiver,
                                      name=name)
                    finally:
                        if receiver:
                            receiver.close()
                        if hole:
                            hole.stop()
                    runs.append(run)
                    progress(run)
    return runs


def progress(run: Run) -> None:
    load = run.load
    ver = {None: "-", True: "ok", False: "MISMATCH"}[run.verified]
    cpu = f"{run.cpu_us_per_req:.0f}" if run.cpu_us_per_req else "?"
    total = f"{run.total_cpu_us_per_req:.0f}" if run.total_cpu_us_per_req else "?"
    print(f"  round {run.round} {run.config:<28} {load.get('rps', 0):8.0f} req/s  p50 {load.get('p50_ms', 0):6.2f} ms"
          f"  p99 {load.get('p99_ms', 0):7.2f} ms  cpu {cpu:>4} us/req (+master {total:>4})  exit {run.exit_s:5.2f} s"
          f"  telemetry {ver} {run.received.get('spans', '')}/{run.expected.get('spans', '')}"
          + (f"  ({run.note.strip()})" if run.note else ""), file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ report
def med(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def summarize(runs: list[Run], baseline_of: Any) -> list[dict[str, Any]]:
    """Per configuration: medians over rounds, and median of per-round ratios to its baseline run."""
    by_round: dict[tuple[str, int], Run] = {(r.config, r.round): r for r in runs}
    out = []
    for config in dict.fromkeys(r.config for r in runs):
        mine = [r for r in runs if r.config == config]
        ratios, p50r, p99r, cpur = [], [], [], []
        for r in mine:
            base = by_round.get((baseline_of(config), r.round))
            if base and base.load.get("rps") and r.load.get("rps"):
                ratios.append(r.load["rps"] / base.load["rps"])
                p50r.append(r.load["p50_ms"] / base.load["p50_ms"])
                p99r.append(r.load["p99_ms"] / base.load["p99_ms"])
                if r.cpu_us_per_req and base.cpu_us_per_req:
                    cpur.append(r.cpu_us_per_req / base.cpu_us_per_req)
        failed = [r for r in mine if not r.load.get("rps")]
        mine = [r for r in mine if r.load.get("rps")] or mine
        out.append({
            "config": config,
            "rounds": len(mine),
            "failed_runs": len(failed),
            "rps": med([r.load.get("rps") for r in mine]),
            "p50_ms": med([r.load.get("p50_ms") for r in mine]),
            "p99_ms": med([r.load.get("p99_ms") for r in mine]),
            "rps_ratio": med(ratios),
            "rps_ratio_min": min(ratios) if ratios else float("nan"),
            "p50_ratio": med(p50r),
            "p99_ratio": med(p99r),
            "cpu_us_per_req": med([r.cpu_us_per_req for r in mine]),
            "cpu_ratio": med(cpur),
            "main_cpu_us_per_req": med([r.main_thread_cpu_us_per_req for r in mine]),
            "total_cpu_us_per_req": med([r.total_cpu_us_per_req for r in mine]),
            "workers": mine[0].workers,
            "gc_us_per_req": med([r.gc_us_per_req for r in mine]),
            "receiver_cpu_us_per_req": med([r.receiver_cpu_us_per_req for r in mine]),
            "exit_s_max": max((r.exit_s for r in mine + failed if r.exit_s is not None), default=float("nan")),
            "verified": ("-" if all(r.verified is None for r in mine + failed)
                         else f"{sum(1 for r in mine if r.verified)}/{len(mine) + len(failed)}"),
            "requests_served": sum(r.served or 0 for r in mine),
            "received": {k: sum(r.received.get(k, 0) for r in mine) for k in ("spans", "app_logs", "request_logs")},
            "expected": {k: sum(r.expected.get(k, 0) for r in mine) for k in ("spans", "app_logs", "request_logs")},
            "errors": sum(r.load.get("errors", 0) for r in mine),
        })
    return out


def overhead_table(rows: list[dict[str, Any]], labels: dict[str, str]) -> str:
    lines = [
        "| configuration | req/s | ratio to bare | p50 ms (ratio) | p99 ms (ratio) | worker CPU µs/req (ratio) "
        "| of which request thread / GC µs | telemetry verified (spans / app logs / request logs received÷expected) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rec, exp = r["received"], r["expected"]
        tel = "—" if r["verified"] == "-" else (
            f"{r['verified']} runs ok; " + " / ".join(f"{rec[k]}÷{exp[k]}" for k in ("spans", "app_logs", "request_logs")))
        if r["failed_runs"]:
            tel += f"; **{r['failed_runs']} run(s) failed** (served nothing / hung, see notes)"
        lines.append(
            f"| {labels.get(base_name(r['config']), r['config'])}{r['config'][len(base_name(r['config'])):]} "
            f"| {r['rps']:,.0f} | {r['rps_ratio']:.2f} "
            f"(min {r['rps_ratio_min']:.2f}) | {r['p50_ms']:.2f} ({r['p50_ratio']:.2f}) "
            f"| {r['p99_ms']:.2f} ({r['p99_ratio']:.2f}) | {r['cpu_us_per_req']:.0f} ({r['cpu_ratio']:.2f}) "
            f"| {r['main_cpu_us_per_req']:.0f} / {r['gc_us_per_req']:.0f} | {tel} |")
    return "\n".join(lines)


def headline_table(rows: list[dict[str, Any]], labels: dict[str, str]) -> str:
    """The side-by-side table: req/s, ratio to bare, CPU per request (workers; workers + master), delivered."""
    lines = [
        "| configuration | workers | req/s (median) | ratio to bare (min) | CPU µs/req, worker(s) (ratio) "
        "| CPU µs/req, master + worker(s) | delivered (server spans ÷ requests served; runs ok) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rec, exp = r["received"], r["expected"]
        tel = "—" if r["verified"] == "-" else f"{rec['spans']:,}÷{exp['spans']:,}; {r['verified']}"
        if r["failed_runs"]:
            tel += f"; **{r['failed_runs']} run(s) failed**"
        lines.append(
            f"| {labels.get(base_name(r['config']), r['config'])} | {r['workers']} | {r['rps']:,.0f} "
            f"| {r['rps_ratio']:.2f} ({r['rps_ratio_min']:.2f}) | {r['cpu_us_per_req']:.0f} ({r['cpu_ratio']:.2f}) "
            f"| {r['total_cpu_us_per_req']:.0f} | {tel} |")
    return "\n".join(lines)


def faults_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| configuration / protocol / collector | req/s | ratio to live | p50 ms (ratio) | p99 ms (ratio) "
        "| worker CPU µs/req | exit after SIGTERM, max s | telemetry (live runs) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rec, exp = r["received"], r["expected"]
        tel = "—" if r["verified"] == "-" else (
            f"{r['verified']} ok; spans {rec['spans']}÷{exp['spans']}")
        if r["failed_runs"]:
            tel += f"; **{r['failed_runs']} run(s) failed**"
        lines.append(
            f"| {r['config']} | {r['rps']:,.0f} | {r['rps_ratio']:.2f} (min {r['rps_ratio_min']:.2f}) "
            f"| {r['p50_ms']:.2f} ({r['p50_ratio']:.2f}) | {r['p99_ms']:.2f} ({r['p99_ratio']:.2f}) "
            f"| {r['cpu_us_per_req']:.0f} | {r['exit_s_max']:.2f} | {tel} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("overhead", "faults"), help="run one suite (default: both)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured wrk phase per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up per run (not measured)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", default="1", help="gunicorn worker counts, comma-separated (e.g. 1,2: both, "
                        "each its own alternated rounds)")
    parser.add_argument("--configs", default="bare,upstream,wrapper,setup,naive",
                        help="overhead configurations, in alternation order (bare is the baseline)")
    parser.add_argument("--ref-tree", help="a checkout (e.g. `git archive <commit> | tar -x -C DIR`) whose "
                        "otel_showmax the setup_ref configuration imports")
    parser.add_argument("--fault-configs", default="setup", help="configurations for the fault suite (setup, upstream…)")
    parser.add_argument("--protocols", default="http/protobuf,grpc")
    parser.add_argument("--receiver", choices=("sink", "full"), default="sink",
                        help="overhead suite's receiver: sink (benchmarks/sink.py, counts only) or full "
                             "(python -m otel_showmax.receiver, every record decoded to JSON)")
    parser.add_argument("--settle", type=float, default=20.0, help="max seconds to wait for the receiver to catch up")
    parser.add_argument("--quick", action="store_true", help="1 round x 3 s, 1 s warm-up")
    parser.add_argument("--keep-logs", action="store_true", help="keep each run's server log")
    parser.add_argument("--pyspy", default="", help="sample these configurations' worker with py-spy (comma-separated)")
    parser.add_argument("--pyspy-bin", default=os.environ.get("PYSPY", "py-spy"), help="py-spy executable (PYSPY)")
    parser.add_argument("--json", help="write all runs and summaries here (default: benchmarks/results/<utc>.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 3.0, 1.0
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    args.fault_configs = [c.strip() for c in args.fault_configs.split(",") if c.strip()]
    args.protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    args.pyspy = [c.strip() for c in args.pyspy.split(",") if c.strip()]
    unknown = set(args.configs + args.fault_configs) - set(variants())
    if unknown:
        parser.error(f"unknown configuration(s) {sorted(unknown)}; use {sorted(variants())}")
    if "setup_ref" in args.configs and not args.ref_tree:
        parser.error("setup_ref needs --ref-tree DIR")
    if "bare" not in args.configs and args.only != "faults":
        parser.error("--configs must include bare (the baseline)")

    info = machine()
    exe = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    info["command"] = " ".join([exe, os.path.relpath(__file__, ROOT), *(sys.argv[1:] if argv is None else argv)])
    info["settings"] = {k: getattr(args, k) for k in ("rounds", "seconds", "warmup", "connections", "workers")}
    # What each configuration ran: the newest upstream / ddtrace releases at the time of the run.
    info["versions"] = {"main": upstream_env.versions(MAIN_BIN / "python")}
    if "upstream" in args.configs or "upstream" in args.fault_configs:
        upstream_env.ensure()
        info["versions"]["upstream"] = upstream_env.versions()
    if "ddtrace" in args.configs:
        ddtrace_env.ensure()
        info["versions"]["ddtrace"] = upstream_env.versions(ddtrace_env.python())
    for env_name, found in info["versions"].items():
        print(f"# {env_name}: " + ", ".join(f"{k} {v}" for k, v in found.items()), file=sys.stderr)
    print(f"# benchmarks {info['date_utc']}, nproc {info['nproc']}, load {info['loadavg_start']}, "
          f"{args.rounds} rounds x {args.seconds:g} s, wrk -t1 -c{args.connections}", file=sys.stderr)
    report: dict[str, Any] = {"machine": info}
    out_lines = [f"Machine: {info['nproc']} cores, Python {info['python']}, {info['platform']}; "
                 f"date {info['date_utc']}; {args.rounds} rounds x {args.seconds:g} s (+{args.warmup:g} s warm-up), "
                 f"wrk -t1 -c{args.connections}; load average at start {info['loadavg_start'][0]:.2f}."]
    labels = {k: v.label for k, v in variants().items()}
    RESULTS.mkdir(exist_ok=True)
    path = Path(args.json) if args.json else RESULTS / f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"

    def save() -> None:  # after each suite: a crash later keeps what was measured
        report["markdown"] = "\n".join(out_lines)
        path.write_text(json.dumps(report, indent=1, default=str))

    if args.only in (None, "overhead"):
        print("## overhead", file=sys.stderr)
        runs = overhead(args)
        rows = summarize(runs, bare_of)
        report["overhead"] = {"runs": [asdict(r) for r in runs], "summary": rows}
        out_lines += ["", "### Side by side (ratios to the uninstrumented run of the same round; medians)", "",
                      headline_table(rows, labels), "",
                      "### Overhead (ratios to the uninstrumented run of the same round; medians)", "",
                      overhead_table(rows, labels)]
        out_lines += ["", "Versions: " + "; ".join(
            f"{env_name}: " + ", ".join(f"{k} {v}" for k, v in found.items())
            for env_name, found in info["versions"].items())]
        for r in runs:
            if r.profile:
                out_lines += ["", f"#### py-spy of the gunicorn worker under load: {labels.get(r.config, r.config)}, "
                                  f"round {r.round}", "", r.profile]
        configs = {r.config for r in runs}
        for config in dict.fromkeys(r.config for r in runs):
            base = base_name(config)
            up = "upstream" + config[len(base):]
            if base not in ("setup", "setup_preload", "wrapper", "setup_ref", "ddtrace") or up not in configs:
                continue
            per_round = []
            for r in runs:
                if r.config == config:
                    u = next((x for x in runs if x.config == up and x.round == r.round), None)
                    if u and u.load.get("rps") and r.load.get("rps"):
                        per_round.append(r.load["rps"] / u.load["rps"])  # = its ratio ÷ upstream's ratio
            out_lines += ["", f"{labels[base]}{config[len(base):]}: ratio ÷ upstream ratio, per round: "
                              f"{', '.join(f'{x:.2f}' for x in per_round)} (median {med(per_round):.2f})"]
        save()
    if args.only in (None, "faults"):
        print("## faults", file=sys.stderr)
        runs = faults(args)
        rows = summarize(runs, lambda c: c.rsplit("/", 1)[0] + "/live")
        report["faults"] = {"runs": [asdict(r) for r in runs], "summary": rows}
        out_lines += ["", "### Faulty collectors (ratios to the live run of the same round; medians)", "",
                      faults_table(rows)]
    save()
    print(report["markdown"])
    print(f"\n(full results: {path})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
