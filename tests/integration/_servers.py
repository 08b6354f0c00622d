"""Start and stop real gunicorn and uWSGI servers running the example services, drive requests.

Everything binds to 127.0.0.1 on free ports; every process started here is stopped here, by its
PID, with a bounded wait (a hung server fails the test instead of hanging it). Server output goes
to a file so the test can read the worker pids the server reports and the services' local log
lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests._net import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "catalogue"
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
GUNICORN = str(BIN / "gunicorn")
UWSGI = str(BIN / "uwsgi")
WRAPPER = str(BIN / "opentelemetry-instrument")
REDIS_SERVER = shutil.which("redis-server") or "redis-server"  # scripts/test.sh installs it when missing

REQUEST_LOGGER = "otel_showmax.request"
STOP_TIMEOUT = 30.0  # gunicorn's graceful timeout is 30 s; the telemetry budget is 5 s

_GUNICORN_WORKER = re.compile(r"Booting worker with pid: (\d+)")
_UWSGI_WORKER = re.compile(r"(?:spawned uWSGI worker \d+ \(pid: (\d+)|Respawned uWSGI worker \d+ \(new pid: (\d+))")


def telemetry_env(endpoint: str, service_name: str = "catalogue", *, long_delay: bool = False,
                  **extra: str) -> dict[str, str]:
    """Environment for a server exporting OTLP/HTTP to ``endpoint``.

    ``long_delay`` sets the batch delays to ten minutes: nothing is exported on schedule, so what
    arrives was sent by the exit path (flush at worker stop).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME=service_name,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_METRICS_EXPORTER="none",
        OTEL_SHOWMAX_SHUTDOWN_TIMEOUT="5",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), str(EXAMPLE), env.get("PYTHONPATH", "")) if p),
    )
    if long_delay:
        env.update(OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_BLRP_SCHEDULE_DELAY="600000")
    else:
        env.update(OTEL_BSP_SCHEDULE_DELAY="200", OTEL_BLRP_SCHEDULE_DELAY="200")
    env.update(extra)
    return env


@dataclass
class Server:
    """A running server (master process) and where its output goes."""

    kind: str  # "gunicorn" or "uwsgi"
    proc: subprocess.Popen[bytes]
    port: int
    output: Path
    fifo: Path | None = None
    lazy_apps: bool = False
    stop_seconds: float | None = None
    _out: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def master_pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def worker_pids(self) -> list[int]:
        """Every worker pid the server reported starting, in order (recycled ones included)."""
        pattern = _GUNICORN_WORKER if self.kind == "gunicorn" else _UWSGI_WORKER
        return [int(next(g for g in m.groups() if g)) for m in pattern.finditer(self.text())]

    def json_lines(self) -> list[dict[str, Any]]:
        """The services' local JSON log lines (otel_showmax.correlation.JSONFormatter) in the output."""
        out = []
        for line in self.text().splitlines():
            start = line.find('{"time"')
            if start < 0:
                continue
            try:
                out.append(json.loads(line[start:]))
            except ValueError:
                continue
        return out

    def wait_ready(self, workers: int, timeout: float = 30.0) -> None:
        """Wait until the port accepts, ``workers`` workers were started and /health answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_port(self.port, timeout=0.5)
                break
            except TimeoutError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} not listening (exit code {self.proc.poll()}):\n{self.text()[-4000:]}")
        while len(set(self.worker_pids())) < workers:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n{self.text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.kind}: {workers} workers not started in {timeout}s:\n{self.text()[-4000:]}")
            time.sleep(0.05)
        if self.kind == "uwsgi":
            # uWSGI handles signals in C from the start; wait for the apps to load (in each worker
            # with lazy-apps, once in the master without), then for one answer.
            while self.text().count("WSGI app 0 (mountpoint='') ready") < (workers if self.lazy_apps else 1):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uwsgi: app not loaded (exit code {self.proc.poll()}):\n{self.text()[-4000:]}")
                time.sleep(0.05)
            while self._health_pid() is None:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uwsgi: /health not answering:\n{self.text()[-4000:]}")
                time.sleep(0.05)
            return
        # gunicorn: every worker answers /health (it returns its pid): a worker still booting would
        # miss the stop signal (gunicorn installs a worker's signal handlers late in its boot).
        wanted = set(self.worker_pids()[-workers:])
        seen: set[int] = set()
        with ThreadPoolExecutor(max_workers=4) as pool:
            while not wanted <= seen:
                for future in [pool.submit(self._health_pid) for _ in range(4)]:
                    pid = future.result(timeout=15)
                    if pid is not None:
                        seen.add(pid)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.kind}: workers {wanted - seen} never answered /health "
                                       f"(only {seen} did):\n{self.text()[-4000:]}")
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n{self.text()[-4000:]}")

    def _health_pid(self) -> int | None:
        try:
            status, body = get(self.base_url + "/health", timeout=5)
        except OSError:
            return None
        return int(json.loads(body)["pid"]) if status == 200 else None

    def stop(self, method: str = "SIGTERM", timeout: float = STOP_TIMEOUT) -> float:
        """Stop the master and wait for it; returns the seconds it took.

        ``method``: ``SIGTERM`` (gunicorn; uWSGI only with ``die-on-term``), ``SIGINT``, or
        ``fifo`` (uWSGI master FIFO, ``q``: graceful shutdown).
        """
        self._settle()
        start = time.monotonic()
        if self.proc.poll() is None:
            if method == "fifo":
                assert self.fifo is not None, "server started without a master FIFO"
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                try:
                    os.write(fd, b"q")
                finally:
                    os.close(fd)
            else:
                os.kill(self.proc.pid, {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}[method])
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise TimeoutError(f"{self.kind} (pid {self.proc.pid}) did not stop within {timeout}s after {method}")
        self.stop_seconds = time.monotonic() - start
        self._close()
        return self.stop_seconds

    def _settle(self, timeout: float = 15.0) -> None:
        """uWSGI: let recycled workers be replaced, and new ones load the app, before the stop.

        A worker signalled while it still loads the app misses the signal (uWSGI sets its gevent
        signal handlers afterwards) and is only SIGKILLed after worker-reload-mercy.
        """
        if self.kind != "uwsgi":
            return
        deadline = time.monotonic() + timeout

        def settled() -> bool:
            text = self.text()
            # A worker recycled by max-requests has been replaced (uWSGI may otherwise respawn it
            # during the shutdown, and the new worker never hears of the stop).
            recycled = len(set(re.findall(r"The work of process (\d+) is done", text)))
            if text.count("Respawned uWSGI worker") < recycled:
                return False
            return not self.lazy_apps or text.count("WSGI app 0 (mountpoint='') ready") >= len(self.worker_pids())

        while not settled():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return
            time.sleep(0.05)
        time.sleep(0.2)  # from "ready" to the gevent loop's signal handlers

    def kill(self) -> None:
        """SIGKILL the master and any worker it reported that still runs (cleanup after a failure)."""
        for pid in [self.proc.pid, *self.worker_pids()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._close()

    def _close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._close()


def _spawn(kind: str, cmd: list[str], env: dict[str, str], port: int, output: Path, cwd: Path,
           fifo: Path | None = None, lazy_apps: bool = False) -> Server:
    out = open(output, "wb")  # noqa: SIM115 - closed by Server.stop/kill
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    return Server(kind=kind, proc=proc, port=port, output=output, fifo=fifo, lazy_apps=lazy_apps, _out=out)


def start_gunicorn(env: dict[str, str], output: Path, *, app: str = "catalogue:app", worker_class: str = "gevent",
                   workers: int = 2, preload: bool = False, wrapper: bool = False,
                   extra: Sequence[str] = (), conf: Path = EXAMPLE / "gunicorn.conf.py") -> Server:
    """gunicorn with the example's gunicorn.conf.py (its otel_showmax hooks), on a free port."""
    port = free_port()
    cmd = [GUNICORN, "-c", str(conf), "--chdir", str(EXAMPLE),
           "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", worker_class,
           "--no-control-socket", *extra]
    if worker_class == "gthread":
        cmd += ["--threads", "4"]
    if preload:
        cmd.append("--preload")
    cmd.append(app)
    if wrapper:
        cmd = [WRAPPER, *cmd]
    server = _spawn("gunicorn", cmd, env, port, output, EXAMPLE)
    try:
        server.wait_ready(workers)
    except BaseException:
        server.kill()
        raise
    return server


def start_uwsgi(env: dict[str, str], output: Path, *, module: str = "catalogue", lazy_apps: bool = True,
                workers: int = 2, gevent: int = 100, die_on_term: bool = True, fifo: bool = False,
                extra: Sequence[str] = (), pythonpath: Iterable[Path] = (), wrapper: bool = False) -> Server:
    """uWSGI, master + ``workers`` gevent workers, HTTP on a free port; options on the command line."""
    port = free_port()
    cmd = [UWSGI, "--module", module, "--callable", "app", "--http-socket", f"127.0.0.1:{port}",
           "--master", "--processes", str(workers), "--gevent", str(gevent), "--disable-logging",
           "--pythonpath", str(EXAMPLE), "--pythonpath", str(ROOT), "--worker-reload-mercy", "15",
           # http-socket closes after each response without saying so: a pooling client (the
           # storefront's requests.Session) could reuse a connection uWSGI is closing (reset, 502).
           "--add-header", "Connection: close"]
    for path in pythonpath:
        cmd += ["--pythonpath", str(path)]
    if lazy_apps:
        cmd.append("--lazy-apps")
    if die_on_term:
        cmd.append("--die-on-term")
    fifo_path = None
    if fifo:
        fifo_path = output.with_suffix(".fifo")
        cmd += ["--master-fifo", str(fifo_path)]
    cmd += list(extra)
    if wrapper:
        cmd = [WRAPPER, *cmd]
    server = _spawn("uwsgi", cmd, env, port, output, EXAMPLE, fifo_path, lazy_apps)
    try:
        server.wait_ready(workers)
    except BaseException:
        server.kill()
        raise
    return server


@contextlib.contextmanager
def start_redis(output: Path) -> Iterator[str]:
    """A redis-server on a free 127.0.0.1 port, nothing persisted; yields its URL, stops it by PID."""
    port = free_port()
    out = open(output, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--daemonize", "no"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{output.read_text(errors='replace')}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        out.close()


# -- requests -------------------------------------------------------------------------------------------


def get(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One GET on a new connection: (status, body); HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, headers={"Connection": "close", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# A mix of the catalogue's endpoints: (path, expected status). /health is excluded from telemetry.
CATALOGUE_MIX = (
    ("/titles", 200),
    ("/titles?genre=drama&limit=5", 200),
    ("/titles?offset=40&limit=10", 200),
    ("/titles/7", 200),
    ("/search?q=river", 200),
    ("/titles/9999", 404),
)


def drive(base_url: str, count: int, *, concurrency: int = 8, mix: Sequence[tuple[str, int]] = CATALOGUE_MIX,
          health_every: int = 10) -> Counter[str]:
    """Send ``count`` traced requests (cycling through ``mix``) plus a /health every ``health_every``.

    Asserts each status. Returns how many requests went to each path, ``/health`` included.
    """
    jobs = []
    for i in range(count):
        jobs.append(mix[i % len(mix)])
        if health_every and i % health_every == 0:
            jobs.append(("/health", 200))
    sent: Counter[str] = Counter()
    lock = threading.Lock()

    def one(job: tuple[str, int]) -> None:
        path, expected = job
        status, body = get(base_url + path)
        assert status == expected, (path, status, body[:300])
        with lock:
            sent[path] += 1

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(one, job) for job in jobs]:
            future.result(timeout=60)
    return sent


# -- what the receiver got ------------------------------------------------------------------------------


def server_spans(received: dict[str, list[dict[str, Any]]], service: str) -> list[dict[str, Any]]:
    return [s for s in received["spans"] if s["kind"] == "SERVER" and s["resource"].get("service.name") == service]


def request_logs(received: dict[str, list[dict[str, Any]]], service: str) -> list[dict[str, Any]]:
    return [lg for lg in received["logs"]
            if lg["scope"] == REQUEST_LOGGER and lg["resource"].get("service.name") == service]


def app_logs(received: dict[str, list[dict[str, Any]]], service: str, logger: str) -> list[dict[str, Any]]:
    return [lg for lg in received["logs"] if lg["scope"] == logger and lg["resource"].get("service.name") == service]


def pids(items: Iterable[dict[str, Any]]) -> set[int]:
    return {int(i["resource"]["process.pid"]) for i in items}


def assert_exactly_once(received: dict[str, list[dict[str, Any]]], service: str, served: int,
                        worker_pids: Iterable[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Exactly ``served`` server spans and request logs, nothing twice, each log tied to its span,
    every one from a worker (never the master, never a pid the server did not report)."""
    spans = server_spans(received, service)
    logs = request_logs(received, service)
    assert len(spans) == served, f"{len(spans)} server spans for {served} requests"
    assert len(logs) == served, f"{len(logs)} request logs for {served} requests"
    assert len({s["span_id"] for s in spans}) == served, "a span arrived twice"
    assert len({(lg["trace_id"], lg["span_id"]) for lg in logs}) == served, "a request log arrived twice"
    by_span = {(s["trace_id"], s["span_id"]): s for s in spans}
    for lg in logs:
        span = by_span.get((lg["trace_id"], lg["span_id"]))
        assert span is not None, f"request log without its server span: {lg}"
        assert lg["resource"]["process.pid"] == span["resource"]["process.pid"]
    workers = set(worker_pids)
    assert pids(spans) <= workers, (pids(spans), workers)
    assert pids(logs) <= workers, (pids(logs), workers)
    return spans, logs
