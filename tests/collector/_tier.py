"""The scale-out tier (issue 18) on free loopback ports: Zipkin, N tier gateways, tier agents.

    with Zipkin(workdir) as zipkin, Tier(workdir, zipkin, gateways=2) as tier:
        traces = make_traces(100)
        post_traces(tier.agents[0].otlp_http_url, traces)
        zipkin.trace(traces[0].trace_id)

Everything listens on 127.0.0.1 (Zipkin included: ``--armeria.ports[0].ip=127.0.0.1``); every
process is started here and stopped by its PID only (SIGTERM, then SIGKILL after a bound).
``python -m tests.collector._tier`` is what ``make stack`` (scripts/stack.sh) runs: the same stack
plus the catalogue example, for a person to look at traces in Zipkin's UI.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _otelcol
from ._otelcol import COLLECTOR_DIR, PKI, REPO, Collector, CollectorError, clean_env, free_port, make_pki, wait_until

TIER_BUILD_SH = COLLECTOR_DIR / "build-tier.sh"
TIER_MANIFEST = COLLECTOR_DIR / "manifest-tier.yaml"
TIER_BINARY = COLLECTOR_DIR / "_build" / "tier" / "otelcol-showmax-tier"
TIER_AGENT_YAML = COLLECTOR_DIR / "tier-agent.yaml"
TIER_AGENT_DNS_YAML = COLLECTOR_DIR / "tier-agent-dns.yaml"  # overlay: DNS instead of the static list
TIER_GATEWAY_YAML = COLLECTOR_DIR / "tier-gateway.yaml"

# Test settings: decisions 2 s after a trace's first span (production 10 s), retries capped at 2 s,
# span metrics flushed every second.
TEST_DECISION_WAIT = "2s"
TEST_SLOW_THRESHOLD_MS = 500


def ensure_tier_built() -> tuple[Path, Path]:
    """Build the tier distribution and fetch Zipkin (both no-ops when up to date); (binary, zipkin jar)."""
    _otelcol.ensure_built()  # build.sh runs build-tier.sh as well
    proc = subprocess.run([str(TIER_BUILD_SH), "--zipkin-path"], cwd=REPO, capture_output=True, text=True,
                          timeout=900, check=False)
    if proc.returncode != 0:
        raise CollectorError(f"collector/build-tier.sh --zipkin-path failed:\n{proc.stdout}\n{proc.stderr}")
    jar = Path(proc.stdout.strip().splitlines()[-1])
    if not (os.access(TIER_BINARY, os.X_OK) and jar.is_file()):
        raise CollectorError(f"missing {TIER_BINARY} or {jar}")
    return TIER_BINARY, jar


# -- Zipkin ------------------------------------------------------------------------------------------


class Zipkin:
    """Zipkin server 3.5.1 with in-memory storage on 127.0.0.1:<port> (a Java process started here)."""

    def __init__(self, jar: Path, workdir: Path, port: int | None = None) -> None:
        self.jar = jar
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spans_endpoint(self) -> str:
        """What the gateways' zipkin exporter posts to."""
        return f"{self.url}/api/v2/spans"

    @property
    def ui_url(self) -> str:
        return f"{self.url}/zipkin/"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"zipkin-{self.port}.log"

    def start(self, timeout: float = 60.0) -> Zipkin:
        if self.proc is not None and self.proc.poll() is None:
            raise CollectorError(f"zipkin already running (pid {self.proc.pid})")
        self.starts += 1
        env = {**os.environ, "QUERY_PORT": str(self.port), "STORAGE_TYPE": "mem", "SELF_TRACING_ENABLED": "false",
               "JAVA_OPTS": ""}
        cmd = ["java", "-Xms64m", "-Xmx768m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar", str(self.jar),
               "--armeria.ports[0].ip=127.0.0.1", f"--armeria.ports[0].port={self.port}"]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CollectorError(f"zipkin exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if self.healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise CollectorError(f"zipkin not up after {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM Zipkin (by PID), SIGKILL after the bound. In-memory storage: its traces are gone."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> Zipkin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API --

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """GET /api/v2/trace/{id}: the trace's spans ([] when Zipkin does not have it)."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/trace/{trace_id}", timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return []
            raise

    def traces(self, trace_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The spans Zipkin has for each trace id (one GET each)."""
        return {tid: self.trace(tid) for tid in trace_ids}


def span_keys(spans: Iterable[dict[str, Any]]) -> set[str]:
    """Zipkin span ids, deduplicated: collector delivery is at-least-once, a retried batch may repeat spans."""
    return {s["id"] for s in spans}


# -- synthetic traces --------------------------------------------------------------------------------


@dataclass
class SpanSpec:
    service: str
    name: str
    span_id: str
    parent_id: str
    start_ns: int
    duration_ns: int
    kind: int = 2  # SERVER
    error: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TraceSpec:
    trace_id: str
    spans: list[SpanSpec]
    kind: str  # "ok", "error" or "slow"

    @property
    def span_ids(self) -> set[str]:
        return {s.span_id for s in self.spans}


def _hex(bits: int) -> str:
    return f"{random.getrandbits(bits):0{bits // 4}x}"


def make_trace(kind: str = "ok", duration_ms: float = 12.0, start_ns: int | None = None) -> TraceSpec:
    """A storefront -> catalogue trace: the storefront's server span, its client span, the catalogue's server span.

    kind "error": the catalogue's span has status ERROR (and the storefront answers 502);
    kind "slow": the whole trace takes ``TEST_SLOW_THRESHOLD_MS`` + 300 ms.
    """
    now = start_ns or time.time_ns()
    total = int(((TEST_SLOW_THRESHOLD_MS + 300) if kind == "slow" else duration_ms) * 1e6)
    trace_id = _hex(128)
    root, client, server = _hex(64), _hex(64), _hex(64)
    status = 502 if kind == "error" else 200
    route = random.choice(("/home", "/watch/{title_id}"))
    cat_route = "/titles" if route == "/home" else "/titles/{title_id}"
    spans = [
        SpanSpec("storefront", f"GET {route}", root, "", now, total, 2, False,
                 {"http.route": route, "http.request.method": "GET", "http.response.status_code": status}),
        SpanSpec("storefront", "GET", client, root, now + total // 10, total * 8 // 10, 3, False,
                 {"http.request.method": "GET", "http.response.status_code": 500 if kind == "error" else 200}),
        SpanSpec("catalogue", f"GET {cat_route}", server, client, now + total // 5, total * 6 // 10, 2,
                 kind == "error",
                 {"http.route": cat_route, "http.request.method": "GET",
                  "http.response.status_code": 500 if kind == "error" else 200}),
    ]
    return TraceSpec(trace_id, spans, kind)


def _request_for(spans: Sequence[SpanSpec]) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    by_service: dict[str, list[tuple[str, SpanSpec]]] = {}
    for item in spans:
        by_service.setdefault(item[1].service, []).append(item)  # type: ignore[index]
    resource_spans = []
    for service, items in by_service.items():
        pb = []
        for trace_id, s in items:
            pb.append(Span(
                trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(s.span_id),
                parent_span_id=bytes.fromhex(s.parent_id) if s.parent_id else b"", name=s.name, kind=s.kind,
                start_time_unix_nano=s.start_ns, end_time_unix_nano=s.start_ns + s.duration_ns,
                attributes=_otelcol._kvs(s.attrs),
                status=Status(code=Status.STATUS_CODE_ERROR if s.error else Status.STATUS_CODE_UNSET)))
        resource_spans.append(ResourceSpans(
            resource=Resource(attributes=_otelcol._kvs({"service.name": service})),
            scope_spans=[ScopeSpans(scope=InstrumentationScope(name="tests.collector.tier"), spans=pb)]))
    return ExportTraceServiceRequest(resource_spans=resource_spans).SerializeToString()


def post_traces(base_url: str, traces: Sequence[TraceSpec], per_request: int = 50,
                only_service: str | None = None) -> int:
    """POST the traces' spans (all, or one service's) to an OTLP/HTTP endpoint; returns the spans sent.

    Every 200 answer means the agent has them in its persistent queue.
    """
    items = [(t.trace_id, s) for t in traces for s in t.spans if only_service in (None, s.service)]
    for start in range(0, len(items), per_request):
        _otelcol._post(base_url.rstrip("/") + "/v1/traces", _request_for(items[start:start + per_request]))  # type: ignore[arg-type]
    return len(items)


# -- the tier ----------------------------------------------------------------------------------------


class Tier:
    """N tier gateways (TLS 1.3 + bearer token) and M tier agents routing to them by trace ID."""

    def __init__(self, workdir: Path, zipkin_spans_endpoint: str, gateways: int = 2, agents: int = 1,
                 pki: PKI | None = None, sampling_percentage: float = 100, gateway_env: dict[str, str] | None = None,
                 agent_env: dict[str, str] | None = None, binary: Path = TIER_BINARY) -> None:
        self.workdir = Path(workdir)
        self.pki = pki or make_pki(self.workdir / "pki")
        self.binary = binary
        self.gateways: list[Collector] = []
        self.gateway_ports: list[int] = []
        self.spanmetrics_ports: list[int] = []
        for i in range(gateways):
            name = f"tier-gateway-{chr(ord('a') + i)}"
            port, health, metrics, spanmetrics = free_port(), free_port(), free_port(), free_port()
            self.gateway_ports.append(port)
            self.spanmetrics_ports.append(spanmetrics)
            self.gateways.append(Collector(name, TIER_GATEWAY_YAML, clean_env({
                "OTELCOL_TIER_GATEWAY_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{port}",
                "OTELCOL_TIER_GATEWAY_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
                "OTELCOL_TIER_GATEWAY_METRICS_HOST": "127.0.0.1",
                "OTELCOL_TIER_GATEWAY_METRICS_PORT": str(metrics),
                "OTELCOL_TIER_GATEWAY_SPANMETRICS_ENDPOINT": f"127.0.0.1:{spanmetrics}",
                "OTELCOL_TIER_GATEWAY_STORAGE_DIR": str(self.workdir / f"{name}-storage"),
                "OTELCOL_TIER_GATEWAY_TLS_CERT_FILE": str(self.pki.server_cert),
                "OTELCOL_TIER_GATEWAY_TLS_KEY_FILE": str(self.pki.server_key),
                "OTELCOL_TIER_GATEWAY_TOKEN_FILE": str(self.pki.accepted_tokens_file),
                "OTELCOL_TIER_GATEWAY_ZIPKIN_ENDPOINT": zipkin_spans_endpoint,
                "OTELCOL_TIER_GATEWAY_RETRY_MAX_INTERVAL": _otelcol.TEST_RETRY_MAX_INTERVAL,
                "OTELCOL_TIER_GATEWAY_DECISION_WAIT": TEST_DECISION_WAIT,
                "OTELCOL_TIER_GATEWAY_SLOW_THRESHOLD_MS": str(TEST_SLOW_THRESHOLD_MS),
                "OTELCOL_TIER_GATEWAY_SAMPLING_PERCENTAGE": str(sampling_percentage),
                "OTELCOL_TIER_GATEWAY_SPANMETRICS_FLUSH_INTERVAL": "1s",
                # Which replica handled a span: a resource attribute, a tag in Zipkin.
                "OTELCOL_TIER_GATEWAY_TIER": name,
                **(gateway_env or {}),
            }), self.workdir, health, metrics, binary=binary))
        self.agents: list[TierAgent] = []
        for i in range(agents):
            self.agents.append(TierAgent(self, f"tier-agent-{i + 1}", agent_env or {}))

    def gateway_list(self, indexes: Iterable[int] | None = None) -> str:
        """The static resolver's list as the environment gives it (a YAML flow list)."""
        chosen = range(len(self.gateways)) if indexes is None else indexes
        return "[" + ", ".join(f"127.0.0.1:{self.gateway_ports[i]}" for i in chosen) + "]"

    def spanmetrics_text(self, i: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.spanmetrics_ports[i]}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def spanmetrics(self) -> list[tuple[str, dict[str, str], float]]:
        """The span metrics of every running replica, parsed (name, labels, value)."""
        out = []
        for i, gw in enumerate(self.gateways):
            if gw.running:
                out += _otelcol.parse_prometheus(self.spanmetrics_text(i))
        return out

    def gateway_metric(self, name: str, **labels: str) -> float:
        """A collector metric summed over the running replicas."""
        return sum(gw.metric(name, **labels) for gw in self.gateways if gw.running)

    def start(self) -> Tier:
        for gw in self.gateways:
            gw.start()
        for agent in self.agents:
            agent.collector.start()
        return self

    def stop(self) -> None:
        errors = []
        for c in [a.collector for a in self.agents] + self.gateways:
            try:
                c.stop()
            except CollectorError as exc:
                errors.append(str(exc))
        if errors:
            raise CollectorError("\n".join(errors))

    def __enter__(self) -> Tier:
        try:
            return self.start()
        except BaseException:
            with contextlib.suppress(CollectorError):
                self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TierAgent:
    """One tier agent (a host) in front of the tier's gateways."""

    def __init__(self, tier: Tier, name: str, extra_env: dict[str, str]) -> None:
        self.tier = tier
        self.grpc_port, self.http_port = free_port(), free_port()
        health, metrics = free_port(), free_port()
        self.collector = Collector(name, TIER_AGENT_YAML, clean_env({
            "OTELCOL_TIER_AGENT_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.grpc_port}",
            "OTELCOL_TIER_AGENT_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.http_port}",
            "OTELCOL_TIER_AGENT_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "OTELCOL_TIER_AGENT_METRICS_HOST": "127.0.0.1",
            "OTELCOL_TIER_AGENT_METRICS_PORT": str(metrics),
            "OTELCOL_TIER_AGENT_STORAGE_DIR": str(tier.workdir / f"{name}-storage"),
            "OTELCOL_TIER_AGENT_GATEWAYS": tier.gateway_list(),
            "OTELCOL_TIER_AGENT_CA_FILE": str(tier.pki.ca_cert),
            "OTELCOL_TIER_AGENT_TOKEN_FILE": str(tier.pki.token_file),
            "OTELCOL_TIER_AGENT_RETRY_MAX_INTERVAL": _otelcol.TEST_RETRY_MAX_INTERVAL,
            **extra_env,
        }), tier.workdir, health, metrics, binary=tier.binary)

    @property
    def otlp_http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def route_to(self, indexes: Iterable[int]) -> None:
        """Change the static list (takes effect at the next start: the static resolver reads it once)."""
        self.collector.env["OTELCOL_TIER_AGENT_GATEWAYS"] = self.tier.gateway_list(indexes)


def wait_for_decisions(tier: Tier, traces: int, timeout: float = 40) -> tuple[int, int]:
    """Until the replicas decided ``traces`` traces in total; returns (sampled, not sampled)."""
    def decided() -> tuple[int, int]:
        yes = int(tier.gateway_metric("otelcol_processor_tail_sampling_global_count_traces_sampled", sampled="true"))
        no = int(tier.gateway_metric("otelcol_processor_tail_sampling_global_count_traces_sampled", sampled="false"))
        return yes, no

    wait_until(lambda: sum(decided()) >= traces, timeout=timeout, interval=0.25,
               what=f"{traces} sampling decisions over the replicas")
    return decided()


def wait_for_zipkin(zipkin: Zipkin, traces: Sequence[TraceSpec], timeout: float = 40) -> dict[str, list[dict]]:
    """Until Zipkin has every span of every given trace (compared by span id); returns what it has."""
    pending = {t.trace_id: t for t in traces}
    found: dict[str, list[dict]] = {}

    def done() -> bool:
        for tid in list(pending):
            spans = zipkin.trace(tid)
            if span_keys(spans) >= pending[tid].span_ids:
                found[tid] = spans
                del pending[tid]
        return not pending

    try:
        wait_until(done, timeout=timeout, interval=0.5, what="the traces in Zipkin")
    except AssertionError:
        raise AssertionError(f"{len(pending)}/{len(traces)} traces incomplete in Zipkin after {timeout}s") from None
    return found


# -- make stack --------------------------------------------------------------------------------------


def _start_example(procs: Any, agent_http_url: str) -> dict[str, int]:
    """The catalogue example (storefront + catalogue, gunicorn -k gevent) exporting traces to the tier agent.

    As ``otel-showmax demo`` starts them (otel_showmax._demo), with traces only: the tier carries traces,
    so logs and metrics export are off (the request log still prints on each service's stderr).
    """
    from otel_showmax._cli import demo as _demo

    ports = {name: free_port() for name in _demo.SERVICES}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GUNICORN_"))}
    base.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": agent_http_url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SHOWMAX_SHUTDOWN_TIMEOUT": "3",
        "WEB_CONCURRENCY": "1",
        "PYTHONUNBUFFERED": "1",
        "EXAMPLE_LOG_FORMAT": "json",
    })
    modules = {"catalogue": "catalogue:app", "storefront": "frontend:app"}
    for name in ("catalogue", "storefront"):
        env = {**base, "OTEL_SERVICE_NAME": name, "CATALOGUE_URL": f"http://127.0.0.1:{ports['catalogue']}"}
        cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-k", "gevent", "-w", "1",
               "-b", f"127.0.0.1:{ports[name]}", "--graceful-timeout", "10", modules[name]]
        procs.start(name, cmd, env, _demo.EXAMPLE)
    for name, port in ports.items():
        def ready(port: int = port) -> bool:
            procs.check_alive()
            return _demo._get(f"http://127.0.0.1:{port}/health", 2) == 200

        _demo._wait_until(ready, 30, name)
    return ports


def request_log_trace_ids(log_text: str, path_prefix: str = "") -> list[tuple[str, str]]:
    """(url.path, trace_id) of each otel_showmax request log line (JSON) in a service's output."""
    out = []
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("logger") == "otel_showmax.request":
            path = str(rec.get("url.path") or "")
            if rec.get("trace_id") and path.startswith(path_prefix):
                out.append((path, rec["trace_id"]))
    return out


@dataclass
class Stack:
    """Zipkin + 2 tier gateways + 1 tier agent (+ the catalogue example) for ``make stack`` and the browser test."""

    zipkin: Zipkin
    tier: Tier
    procs: Any = None
    ports: dict[str, int] = field(default_factory=dict)

    def stop(self) -> None:
        if self.procs is not None:
            self.procs.stop_all()
        with contextlib.suppress(CollectorError):
            self.tier.stop()
        self.zipkin.stop()


def start_stack(workdir: Path, with_example: bool = True, sampling_percentage: float = 100,
                decision_wait: str = TEST_DECISION_WAIT) -> Stack:
    """Start Zipkin, two tier gateways and a tier agent (and the catalogue example) on free loopback ports."""
    from otel_showmax._cli import demo as _demo

    _, jar = ensure_tier_built()
    zipkin = Zipkin(jar, workdir)
    zipkin.start()
    tier = Tier(workdir, zipkin.spans_endpoint, gateways=2, agents=1, sampling_percentage=sampling_percentage,
                gateway_env={"OTELCOL_TIER_GATEWAY_DECISION_WAIT": decision_wait})
    stack = Stack(zipkin, tier)
    try:
        tier.start()
        if with_example:
            stack.procs = _demo._Processes(Path(workdir))
            stack.ports = _start_example(stack.procs, tier.agents[0].otlp_http_url)
    except BaseException:
        stack.stop()
        raise
    return stack


def main(argv: list[str] | None = None) -> int:
    """``make stack``: the tier and the catalogue example, some traffic, the Zipkin UI URL; Ctrl-C stops it."""
    import argparse
    import tempfile

    from otel_showmax._cli import demo as _demo

    parser = argparse.ArgumentParser(prog="make stack", description=main.__doc__)
    parser.add_argument("--sampling-percentage", type=float, default=100,
                        help="tail sampling: %% of OK traces kept (errors and slow traces are always kept)")
    parser.add_argument("--requests", type=int, default=7, help="requests sent to the storefront at start")
    parser.add_argument("--no-wait", action="store_true", help="stop after printing (for scripts)")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(f"stack: {text}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="otel-showmax-stack-"))
    say(f"starting Zipkin, 2 tier gateways, a tier agent and the catalogue example (logs in {workdir})")
    stack = start_stack(workdir, sampling_percentage=args.sampling_percentage, decision_wait="2s")
    try:
        storefront = stack.ports["storefront"]
        answers = _demo._traffic(storefront, max(1, args.requests))
        time.sleep(1.0)
        log = (workdir / "storefront.log").read_text(errors="replace")
        ids = request_log_trace_ids(log)
        say("requests: " + ", ".join(f"GET {p} → {s}" for p, s in answers))
        for path, tid in ids:
            print(f"  {path:24} trace {tid}  {stack.zipkin.ui_url}traces/{tid}")
        print(f"\nZipkin UI: {stack.zipkin.ui_url}  (traces appear ~3 s after a request: the gateways' "
              f"decision wait)\nstorefront: http://127.0.0.1:{storefront}/home  /watch/7  /watch/999 (404)\n"
              f"tier agent (OTLP/HTTP, traces): {stack.tier.agents[0].otlp_http_url}\n"
              f"span metrics: " + "  ".join(f"http://127.0.0.1:{p}/metrics" for p in stack.tier.spanmetrics_ports),
              flush=True)
        if not args.no_wait:
            say("running; Ctrl-C stops everything it started")
            while True:
                stack.procs.check_alive()
                time.sleep(1)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
        say("stopped everything it started")


if __name__ == "__main__":
    sys.exit(main())
