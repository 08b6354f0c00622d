"""``otel-showmax demo``: the two-service catalogue example, its traces and its logs, in under a minute.

Starts, on free 127.0.0.1 ports: the embedded OTLP receiver (in this process), the built collector
agent in front of it when ``collector/_build/otelcol-showmax`` exists, the catalogue API and the
storefront (``examples/catalogue``) under ``gunicorn -k gevent``; sends a few requests (one of them
failing); prints each trace as a tree with its log lines; stops everything it started, by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._receiver.http import OTLPReceiver
from .render import render_traces

__all__ = ["ROOT", "run_demo"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "catalogue"
COLLECTOR = ROOT / "collector" / "_build" / "otelcol-showmax"
COLLECTOR_CONFIG = ROOT / "collector" / "demo-agent.yaml"
SERVICES = ("storefront", "catalogue")
DEADLINE_S = 50.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return int(error.code)


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


class _Processes:
    """The processes the demo started, stopped by their PIDs in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log_file,
                                    stderr=subprocess.STDOUT)
        self.started.append((name, proc, log_path))
        return proc

    def check_alive(self) -> None:
        for name, proc, log_path in self.started:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with status {proc.returncode}:\n{tail}")

    def stop_all(self, timeout: float = 15.0) -> None:
        for _name, proc, _ in reversed(self.started):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _name, proc, _ in reversed(self.started):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _start_collector(procs: _Processes, receiver: OTLPReceiver, say: Callable[[str], None]) -> str | None:
    """Start the built agent in front of the receiver; its OTLP/HTTP endpoint, or None if it did not come up."""
    http_port, grpc_port, health_port, metrics_port = (_free_port() for _ in range(4))
    env = {
        **os.environ,
        "OTELCOL_DEMO_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "OTELCOL_DEMO_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        "OTELCOL_DEMO_RECEIVER_ENDPOINT": receiver.endpoint,
        "OTELCOL_DEMO_HEALTH_ENDPOINT": f"127.0.0.1:{health_port}",
        "OTELCOL_DEMO_METRICS_HOST": "127.0.0.1",
        "OTELCOL_DEMO_METRICS_PORT": str(metrics_port),
        "OTELCOL_DEMO_STORAGE_DIR": str(procs.workdir / "collector-queue"),
    }
    proc = procs.start("collector", [str(COLLECTOR), "--config", str(COLLECTOR_CONFIG)], env, procs.workdir)
    try:
        _wait_until(lambda: proc.poll() is None and _get(f"http://127.0.0.1:{health_port}/", 1) == 200, 15,
                    "collector agent")
    except TimeoutError:
        say(f"the collector agent did not start (see below); using the embedded receiver directly\n"
            f"{(procs.workdir / 'collector.log').read_text(errors='replace')[-1500:]}")
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)
        return None
    return f"http://127.0.0.1:{http_port}"


def _start_services(procs: _Processes, endpoint: str) -> dict[str, int]:
    ports = {name: _free_port() for name in SERVICES}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GUNICORN_"))}
    base.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SHOWMAX_SHUTDOWN_TIMEOUT": "3",
        "WEB_CONCURRENCY": "1",
        "PYTHONUNBUFFERED": "1",
    })
    modules = {"catalogue": "catalogue:app", "storefront": "frontend:app"}
    for name in ("catalogue", "storefront"):
        env = {**base, "OTEL_SERVICE_NAME": name, "CATALOGUE_URL": f"http://127.0.0.1:{ports['catalogue']}"}
        cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-k", "gevent", "-w", "1",
               "-b", f"127.0.0.1:{ports[name]}", "--graceful-timeout", "10", modules[name]]
        procs.start(name, cmd, env, EXAMPLE)
    for name, port in ports.items():
        def ready(port: int = port) -> bool:
            procs.check_alive()
            return _get(f"http://127.0.0.1:{port}/health", 2) == 200

        _wait_until(ready, 25, name)
    return ports


def _traffic(storefront: int, successful: int) -> list[tuple[str, int]]:
    paths = ["/home", "/home?genre=drama", "/watch/7", "/watch/12", "/home?genre=kids", "/watch/42", "/watch/3"]
    chosen = [paths[i % len(paths)] for i in range(successful)] + ["/watch/999"]  # 999: not in the catalogue
    return [(path, _get(f"http://127.0.0.1:{storefront}{path}")) for path in chosen]


def _wait_for_telemetry(receiver: OTLPReceiver, spans: int, minimum: int, deadline: float) -> None:
    """Until ``spans`` arrived and a second passed without news; or 3 s without news after ``minimum``."""
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        got = len(receiver.spans)
        count = got + len(receiver.logs)
        if count != last:
            last, last_change = count, time.monotonic()
        quiet = time.monotonic() - last_change
        if (got >= spans and quiet >= 1.0) or (got >= minimum and quiet >= 3.0):
            return
        time.sleep(0.1)


def _keep_running(receiver: OTLPReceiver, procs: _Processes, ports: dict[str, int], color: bool,
                  say: Callable[[str], None]) -> None:
    """Print new traces as they complete until Ctrl-C (or SIGTERM)."""
    from .receive import TraceAssembler

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    assembler = TraceAssembler(write, color=color)
    receiver.store.add_listener(assembler.add)
    say(f"still running: try http://127.0.0.1:{ports['storefront']}/home or /watch/7 — new traces print as "
        "they complete; Ctrl-C stops everything")
    while True:
        procs.check_alive()
        assembler.flush()
        time.sleep(0.25)


def run_demo(args: Any) -> int:
    """Run the demo for the ``otel-showmax demo`` arguments; returns the exit status."""
    started = time.monotonic()
    out = sys.stdout
    color = not args.no_color and out.isatty() and "NO_COLOR" not in os.environ

    def say(text: str) -> None:
        print(f"demo: {text}", file=sys.stderr, flush=True)

    if not (EXAMPLE / "catalogue.py").exists():
        say(f"the catalogue example is missing ({EXAMPLE}); run the demo from a source checkout")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="otel-showmax-demo-"))
    procs = _Processes(workdir)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    receiver = OTLPReceiver(jsonl_path=str(workdir / "received.jsonl")).start()
    try:
        use_collector = args.receiver != "embedded" and COLLECTOR.exists() and COLLECTOR_CONFIG.exists()
        if args.receiver == "collector" and not use_collector:
            say(f"no collector at {COLLECTOR}: build it with `make collector`")
            return 2
        endpoint = _start_collector(procs, receiver, say) if use_collector else None
        path = "apps → collector agent (collector/demo-agent.yaml) → embedded receiver" if endpoint else \
            "apps → embedded receiver (build the collector agent with `make collector` to put it in between)"
        endpoint = endpoint or receiver.endpoint
        say(f"telemetry path: {path}")
        ports = _start_services(procs, endpoint)
        say(f"storefront on http://127.0.0.1:{ports['storefront']}, catalogue on http://127.0.0.1:{ports['catalogue']} "
            "(gunicorn -k gevent)")
        answers = _traffic(ports["storefront"], max(1, args.requests))
        say("requests: " + ", ".join(f"GET {p} → {s}" for p, s in answers))
        _wait_for_telemetry(receiver, 3 * len(answers), len(answers), started + DEADLINE_S - 8)
        spans = [s for s in receiver.spans if s["resource"].get("service.name") in SERVICES]
        logs = [r for r in receiver.logs if r["resource"].get("service.name") in SERVICES]
        out.write(render_traces(spans, logs, color=color))
        correlated = sum(1 for r in logs if r["span_id"])
        traces = len({s["trace_id"] for s in spans})
        out.write(f"\n{traces} traces, {len(spans)} spans and {len(logs)} log records ({correlated} under their span) "
                  f"from {', '.join(sorted({s['resource']['service.name'] for s in spans}))}\n")
        out.flush()
        if args.keep_running:
            _keep_running(receiver, procs, ports, color, say)
        return 0 if traces else 1
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, TimeoutError) as error:
        say(f"failed: {error}")
        for name, _, log_path in procs.started:
            say(f"--- {name} output ---\n{log_path.read_text(errors='replace')[-1500:]}")
        return 1
    finally:
        procs.stop_all()
        receiver.stop()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)
        say(f"stopped everything it started ({time.monotonic() - started:.1f} s)")
