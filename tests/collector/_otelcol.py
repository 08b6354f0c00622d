"""Start and stop the real otel_showmax collector (agent and gateway) on free loopback ports.

Everything here runs on 127.0.0.1, in a per-test temporary folder: a test CA, a server
certificate for the gateway (SAN 127.0.0.1 and localhost) and a bearer token are generated at
test time with the ``openssl`` command line. Processes are started by this module and stopped by
their PID only (SIGTERM, then SIGKILL after a bound); nothing else is ever signalled.

    pki = make_pki(tmp_path / "pki")
    with Topology(tmp_path, backend_endpoint=receiver.endpoint) as topo:
        post_spans(topo.agent.otlp_http_url, n=10)

The binary is ``collector/_build/otelcol-showmax``, built by ``collector/build.sh`` (``make
collector``); ``ensure_built()`` runs that script and raises when Go is missing or the build fails,
so the tests fail -- they never skip -- without a collector.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COLLECTOR_DIR = REPO / "collector"
BUILD_SH = COLLECTOR_DIR / "build.sh"
BINARY = COLLECTOR_DIR / "_build" / "otelcol-showmax"
MANIFEST = COLLECTOR_DIR / "manifest.yaml"
AGENT_YAML = COLLECTOR_DIR / "agent.yaml"
GATEWAY_YAML = COLLECTOR_DIR / "gateway.yaml"
DEMO_YAML = COLLECTOR_DIR / "demo-agent.yaml"

# Short retry back-off for tests (production default 30s): a recovered hop is used again within 2s.
TEST_RETRY_MAX_INTERVAL = "2s"


class CollectorError(RuntimeError):
    """The build failed, or a collector did not start / stop as expected (message has its log)."""


# -- build -----------------------------------------------------------------------------------------


def ensure_built() -> Path:
    """Run collector/build.sh (a no-op when the manifest is unchanged) and return the binary path.

    Raises CollectorError with the script's output when Go is missing or the build fails.
    """
    proc = subprocess.run([str(BUILD_SH)], cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        raise CollectorError(f"collector/build.sh failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    if not os.access(BINARY, os.X_OK):
        raise CollectorError(f"collector/build.sh succeeded but {BINARY} is missing")
    return BINARY


def run_binary(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the collector binary with args (e.g. ``components``, ``validate --config X``) and capture output."""
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else clean_env(), check=False)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment without any OTELCOL_* variable (so tests see only what they set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTELCOL_")}
    env.update(extra or {})
    return env


# -- ports, PKI, tokens ----------------------------------------------------------------------------

_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never the same one twice)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


@dataclass(frozen=True)
class PKI:
    """A test CA, a server certificate signed by it (for 127.0.0.1/localhost) and token files."""

    dir: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    token: str
    token_file: Path  # the agent's token (one line)
    accepted_tokens_file: Path  # the gateway's list: the agent's token and a second, rotated-in one
    other_ca_cert: Path  # an unrelated CA, for "wrong CA" checks


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise CollectorError(f"openssl {' '.join(args)} failed: {proc.stderr}")


def make_pki(directory: Path) -> PKI:
    """Generate a CA, a TLS server certificate for 127.0.0.1 and localhost, and bearer tokens."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=otel_showmax test {name}",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=otel_showmax test gateway", cwd=d)
    (d / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)
    token = f"test-token-{random.getrandbits(96):024x}"
    (d / "agent.token").write_text(token + "\n")
    (d / "gateway.tokens").write_text(f"{token} # agents\nrotated-{random.getrandbits(64):016x} # next one\n")
    for key in ("ca.key", "other-ca.key", "server.key", "agent.token", "gateway.tokens"):
        (d / key).chmod(0o600)
    return PKI(d, d / "ca.pem", d / "server.pem", d / "server.key", token, d / "agent.token", d / "gateway.tokens",
               d / "other-ca.pem")


# -- one collector process -------------------------------------------------------------------------


class Collector:
    """One collector process (agent or gateway config) with its environment and log file."""

    def __init__(self, name: str, config: Path, env: dict[str, str], workdir: Path, health_port: int,
                 metrics_port: int, binary: Path | None = None) -> None:
        self.name = name
        self.binary = binary or BINARY  # the scale-out tier passes its own distribution
        self.overlays: list[Path] = []  # more --config files, merged on top of config
        self.config = config
        self.env = env
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.health_port = health_port
        self.metrics_port = metrics_port
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log(self) -> str:
        """Everything this collector wrote to stdout/stderr, over all its starts."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 20.0) -> Collector:
        """Start the process and wait until its health endpoint answers 200 (bounded)."""
        if self.proc is not None and self.proc.poll() is None:
            raise CollectorError(f"{self.name} is already running (pid {self.proc.pid})")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts} =====\n".encode())
            log.flush()
            cmd = [str(self.binary), "--config", str(self.config)]
            for overlay in self.overlays:
                cmd += ["--config", str(overlay)]
            self.proc = subprocess.Popen(cmd, env=self.env,
                                         cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CollectorError(f"{self.name} exited with {self.proc.returncode} during start:\n{self.log()[-4000:]}")
            if self.healthy():
                return self
            time.sleep(0.1)
        self.kill()
        raise CollectorError(f"{self.name} not healthy after {timeout}s:\n{self.log()[-4000:]}")

    def healthy(self) -> bool:
        """True when the health endpoint answers 200."""
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM our process (by PID), wait (bounded), SIGKILL if it hangs; returns the exit code."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                raise CollectorError(f"{self.name} (pid {proc.pid}) ignored SIGTERM for {timeout}s:\n{self.log()[-3000:]}")
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL our process (by PID): no shutdown, no flush -- a crash."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    # -- the collector's own metrics --

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return resp.read().decode()

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        """The Prometheus exposition parsed into (name, labels, value) triples."""
        return parse_prometheus(self.metrics_text())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` (with or without a ``_total`` suffix) matching labels; 0 if none."""
        names = {name, name + "_total", name.removesuffix("_total")}
        return sum(v for n, lab, v in self.metrics() if n in names and all(lab.get(k) == x for k, x in labels.items()))


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Parse Prometheus text exposition into (name, labels, value) triples (comments skipped)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


# -- agent + gateway topology ----------------------------------------------------------------------


class Topology:
    """A gateway (TLS 1.3 + bearer token) and an agent in front of it, exporting to ``backend_endpoint``.

    Every address is a free port on 127.0.0.1; storage, logs and PKI live under ``workdir``.
    """

    def __init__(self, workdir: Path, backend_endpoint: str, pki: PKI | None = None,
                 agent_env: dict[str, str] | None = None, gateway_env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.pki = pki or make_pki(self.workdir / "pki")
        self.gateway_port = free_port()
        gw_health, gw_metrics = free_port(), free_port()
        self.gateway = Collector("gateway", GATEWAY_YAML, clean_env({
            "OTELCOL_GATEWAY_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.gateway_port}",
            "OTELCOL_GATEWAY_HEALTH_ENDPOINT": f"127.0.0.1:{gw_health}",
            "OTELCOL_GATEWAY_METRICS_HOST": "127.0.0.1",
            "OTELCOL_GATEWAY_METRICS_PORT": str(gw_metrics),
            "OTELCOL_GATEWAY_STORAGE_DIR": str(self.workdir / "gateway-storage"),
            "OTELCOL_GATEWAY_TLS_CERT_FILE": str(self.pki.server_cert),
            "OTELCOL_GATEWAY_TLS_KEY_FILE": str(self.pki.server_key),
            "OTELCOL_GATEWAY_TOKEN_FILE": str(self.pki.accepted_tokens_file),
            "OTELCOL_GATEWAY_BACKEND_ENDPOINT": backend_endpoint,
            "OTELCOL_GATEWAY_RETRY_MAX_INTERVAL": TEST_RETRY_MAX_INTERVAL,
            **(gateway_env or {}),
        }), self.workdir, gw_health, gw_metrics)
        self.agent_grpc_port, self.agent_http_port = free_port(), free_port()
        ag_health, ag_metrics = free_port(), free_port()
        self.agent = Collector("agent", AGENT_YAML, clean_env({
            "OTELCOL_AGENT_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.agent_grpc_port}",
            "OTELCOL_AGENT_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.agent_http_port}",
            "OTELCOL_AGENT_HEALTH_ENDPOINT": f"127.0.0.1:{ag_health}",
            "OTELCOL_AGENT_METRICS_HOST": "127.0.0.1",
            "OTELCOL_AGENT_METRICS_PORT": str(ag_metrics),
            "OTELCOL_AGENT_STORAGE_DIR": str(self.workdir / "agent-storage"),
            "OTELCOL_AGENT_GATEWAY_ENDPOINT": f"127.0.0.1:{self.gateway_port}",
            "OTELCOL_AGENT_GATEWAY_CA_FILE": str(self.pki.ca_cert),
            "OTELCOL_AGENT_GATEWAY_TOKEN_FILE": str(self.pki.token_file),
            "OTELCOL_AGENT_RETRY_MAX_INTERVAL": TEST_RETRY_MAX_INTERVAL,
            **(agent_env or {}),
        }), self.workdir, ag_health, ag_metrics)

    @property
    def agent_http_url(self) -> str:
        """The agent's OTLP/HTTP base URL (what apps export to)."""
        return f"http://127.0.0.1:{self.agent_http_port}"

    def start(self) -> Topology:
        self.gateway.start()
        self.agent.start()
        return self

    def stop(self) -> None:
        errors = []
        for c in (self.agent, self.gateway):
            try:
                c.stop()
            except CollectorError as exc:
                errors.append(str(exc))
        if errors:
            raise CollectorError("\n".join(errors))

    def __enter__(self) -> Topology:
        try:
            return self.start()
        except BaseException:
            with contextlib.suppress(CollectorError):
                self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- OTLP/HTTP client: unique spans and logs with known ids ----------------------------------------


def _any(value: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[_any(v) for v in value]))
    return AnyValue(string_value=str(value))


def _kvs(attrs: dict[str, Any]) -> list[Any]:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    return [KeyValue(key=k, value=_any(v)) for k, v in attrs.items()]


def _post(url: str, body: bytes, timeout: float = 10.0) -> None:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if resp.status != 200:
            raise CollectorError(f"POST {url} answered {resp.status}")


def post_spans(base_url: str, n: int, service: str = "collector-test", attrs: dict[str, Any] | None = None,
               per_request: int = 50, resource: dict[str, Any] | None = None,
               events: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    """POST n spans (unique random ids) to an OTLP/HTTP endpoint; return their (trace_id, span_id) hex pairs.

    Each 200 answer from the agent means the data is in its (persistent) queue.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    ids: list[tuple[str, str]] = []
    now = time.time_ns()
    for start in range(0, n, per_request):
        spans = []
        for i in range(start, min(n, start + per_request)):
            trace_id, span_id = random.getrandbits(128).to_bytes(16, "big"), random.getrandbits(64).to_bytes(8, "big")
            ids.append((trace_id.hex(), span_id.hex()))
            spans.append(Span(trace_id=trace_id, span_id=span_id, name=f"span {i}", kind=Span.SPAN_KIND_SERVER,
                              start_time_unix_nano=now, end_time_unix_nano=now + 1000,
                              attributes=_kvs({"test.seq": i, **(attrs or {})}),
                              events=[Span.Event(name=name, time_unix_nano=now, attributes=_kvs(ev))
                                      for name, ev in (events or {}).items()]))
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
            resource=Resource(attributes=_kvs({"service.name": service, **(resource or {})})),
            scope_spans=[ScopeSpans(scope=InstrumentationScope(name="tests.collector"), spans=spans)])])
        _post(base_url.rstrip("/") + "/v1/traces", request.SerializeToString())
    return ids


def post_logs(base_url: str, n: int, service: str = "collector-test", attrs: dict[str, Any] | None = None,
              body: str = "log {i}", per_request: int = 50) -> list[str]:
    """POST n log records, each with a unique ``test.log_id`` attribute; return those ids."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    ids: list[str] = []
    now = time.time_ns()
    for start in range(0, n, per_request):
        records = []
        for i in range(start, min(n, start + per_request)):
            log_id = f"{random.getrandbits(64):016x}"
            ids.append(log_id)
            records.append(LogRecord(time_unix_nano=now, severity_text="INFO", severity_number=9,
                                     body=_any(body.format(i=i)), attributes=_kvs({"test.log_id": log_id, **(attrs or {})})))
        request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(
            resource=Resource(attributes=_kvs({"service.name": service})),
            scope_logs=[ScopeLogs(scope=InstrumentationScope(name="tests.collector"), log_records=records)])])
        _post(base_url.rstrip("/") + "/v1/logs", request.SerializeToString())
    return ids


def span_ids(items: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """(trace_id, span_id) of received spans, deduplicated (collector delivery is at-least-once)."""
    return {(s["trace_id"], s["span_id"]) for s in items}


def log_ids(items: Iterable[dict[str, Any]]) -> set[str]:
    """``test.log_id`` of received log records, deduplicated (collector delivery is at-least-once)."""
    return {r["attributes"].get("test.log_id") for r in items} - {None}


def wait_until(predicate: Any, timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    """Poll predicate() until true, or raise AssertionError naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    if predicate():
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextlib.contextmanager
def running(*collectors: Collector) -> Iterator[None]:
    """Start collectors in order and stop them (reverse order) at the end."""
    started = []
    try:
        for c in collectors:
            c.start()
            started.append(c)
        yield
    finally:
        for c in reversed(started):
            with contextlib.suppress(CollectorError):
                c.stop()
