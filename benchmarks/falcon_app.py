"""Per-request cost of Falcon tracing: bare / upstream instrumentation / otel_showmax._instrumentation.falcon_app.

    .venv/bin/python benchmarks/falcon_app.py             # 7 alternated rounds of 2,000 requests
    .venv/bin/python benchmarks/falcon_app.py --quick     # 3 rounds of 500

One process, an in-process WSGI loop (no server, no sockets), the catalogue list endpoint of
benchmarks/catalogue_app.py (20 titles as JSON, one application log line to an in-memory handler).
The configurations alternate A B C … A B C … each round and share the global TracerProvider (a
processor that counts spans, so the run can check one span per traced request) and MeterProvider
(an in-memory reader, so upstream's HTTP metrics are aggregated as in production):

- ``bare``              falcon.App, no instrumentation;
- ``span-floor``        bare, plus one SDK span started with upstream's 13 request attributes and
  ended with its 4 response attributes — no context, no metrics: the SDK's share of the cost;
- ``upstream``          opentelemetry-instrumentation-falcon's app class (what FalconInstrumentor installs);
- ``fast``              otel_showmax._instrumentation.falcon_app.TracedApp (same spans and metrics);
- ``fast-validated``    the same on the SDK's TracerProvider and ``set_attributes``: every attribute
  validated by the SDK (the global provider is otel_showmax's, which takes ``TrustedAttributes`` as built);
- ``fast-sync-active``  the same, with upstream's synchronous active-requests counter (``active_requests="upstream"``);
- ``fast-no-histogram`` the same, without the duration histogram (``duration_histogram=False``);
- ``showmax-upstream``  otel_showmax.falcon as committed (redaction + request log; since the layout
  change it is built on TracedApp, so this and the next are the same class);
- ``showmax-fast``      otel_showmax.falcon on TracedApp, built explicitly.

Run it with the upstream virtualenv's python (``PYTHONPATH=. benchmarks/.venv-upstream/bin/python
benchmarks/falcon_app.py``) to compare against the newest upstream instrumentation and SDK.

Reported: median µs per request (wall and process CPU) and throughput ratios to ``bare`` of the
same round (bare CPU µs / config CPU µs: the cores are shared, so CPU time is the steadier
measure), medians over rounds. Span export and encoding are not included
(see benchmarks/micro.py for those).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ.setdefault("BENCH_APP_MODE", "plain")

import catalogue_app  # noqa: E402
import falcon  # noqa: E402
import falcon.app  # noqa: E402
import falcon.testing  # noqa: E402
from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.instrumentation.falcon import _InstrumentedFalconAPI as UpstreamApp  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider  # noqa: E402

from otel_showmax._pipeline.providers import ShowmaxTracerProvider  # noqa: E402

CONFIGS = (
    "bare", "span-floor", "upstream", "fast", "fast-validated", "fast-sync-active", "fast-no-histogram",
    "showmax-upstream", "showmax-fast",
)


class CountingProcessor(SpanProcessor):
    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span: Any) -> None:
        self.ended += 1


def build_apps() -> tuple[dict[str, Any], CountingProcessor]:
    counter = CountingProcessor()
    provider = ShowmaxTracerProvider()  # what otel_showmax.setup() installs
    provider.add_span_processor(counter)
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))

    from otel_showmax import falcon as showmax_falcon
    from otel_showmax._instrumentation import falcon_app as falcon_app

    showmax_falcon.instrument(redact_query_params=("token",), excluded_urls=("^/health",))
    apps: dict[str, Any] = {"bare": falcon.app.App()}  # Falcon's own class: never traced
    # Upstream's instrumented class as FalconInstrumentor().instrument() puts it in falcon.App (the
    # instrumentor is on, for otel_showmax.falcon, for the whole run).
    apps["upstream"] = UpstreamApp()
    apps["fast"] = falcon_app.TracedApp()
    validated_provider = TracerProvider()
    validated_provider.add_span_processor(counter)
    apps["fast-validated"] = falcon_app.TracedApp(_otel_opts={"tracer_provider": validated_provider})
    apps["fast-sync-active"] = falcon_app.TracedApp(_otel_opts={"active_requests": "upstream"})
    apps["fast-no-histogram"] = falcon_app.TracedApp(_otel_opts={"duration_histogram": False})
    apps["showmax-upstream"] = falcon.App()
    original = showmax_falcon.UpstreamApp
    showmax_falcon.UpstreamApp = falcon_app.TracedApp  # the proposed falcon.py change, for this run
    try:
        apps["showmax-fast"] = showmax_falcon._make_app_class(falcon_app.TracedApp)()
    finally:
        showmax_falcon.UpstreamApp = original
    for app in apps.values():
        app.add_route("/titles", catalogue_app.Titles())
    apps["span-floor"] = span_floor(apps["bare"], provider.get_tracer("floor"))
    apps["fast-validated"] = sdk_set_attributes(apps["fast-validated"])
    return apps, counter


def sdk_set_attributes(app: Any) -> Any:
    """``app`` with falcon_app's response attributes set through the SDK's ``set_attributes``."""
    from otel_showmax._instrumentation import falcon_app as falcon_app

    trusted = falcon_app.set_trusted_attributes

    def validated(span: Any, attributes: Any) -> None:
        span.set_attributes(attributes)

    def call(env: dict[str, Any], start_response: Any) -> Any:
        falcon_app.set_trusted_attributes = validated
        try:
            return app(env, start_response)
        finally:
            falcon_app.set_trusted_attributes = trusted

    return call


def span_floor(app: Any, tracer: Any) -> Any:
    request = {
        "http.method": "GET", "http.server_name": "localhost", "http.scheme": "http", "net.host.name": "localhost",
        "http.host": "localhost", "net.host.port": 80, "http.target": "/titles", "net.peer.ip": "127.0.0.1",
        "net.peer.port": 65133, "http.user_agent": "wrk", "http.flavor": "1.1",
        "http.request.header.user_agent": ["wrk"], "http.request.header.x_request_id": ["1"],
    }
    response = {"falcon.resource": "Titles", "http.status_code": 200, "http.route": "/titles",
                "http.response.header.content_type": ["application/json"]}

    def floor(env: dict[str, Any], start_response: Any) -> Any:
        span = tracer.start_span("GET /titles", kind=trace.SpanKind.SERVER, attributes=dict(request))
        try:
            return app(env, start_response)
        finally:
            span.set_attributes(response)
            span.update_name("GET /titles")
            span.end()

    return floor


def one_round(app: Any, env: dict[str, Any], n: int) -> tuple[float, float]:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        pass

    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        for _chunk in app(dict(env), start_response):
            pass
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-n", type=int, default=1000, help="requests per configuration per round")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.n = 3, 500

    sink = io.StringIO()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    local = logging.StreamHandler(sink)
    local.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(local)
    root.setLevel(logging.INFO)

    apps, counter = build_apps()
    env = falcon.testing.create_environ(path="/titles", headers={"User-Agent": "wrk"})
    env["RAW_URI"] = "/titles"
    for name in CONFIGS:  # warm up, and check the endpoint works everywhere
        one_round(apps[name], env, 50)
    wall: dict[str, list[float]] = {c: [] for c in CONFIGS}
    cpu: dict[str, list[float]] = {c: [] for c in CONFIGS}
    ratio: dict[str, list[float]] = {c: [] for c in CONFIGS}
    spans: dict[str, int] = {c: 0 for c in CONFIGS}
    for r in range(args.rounds):
        order = CONFIGS if r % 2 == 0 else CONFIGS[::-1]
        this: dict[str, float] = {}  # CPU µs
        for name in order:
            before = counter.ended
            w, c = one_round(apps[name], env, args.n)
            spans[name] += counter.ended - before
            this[name] = c
            wall[name].append(w)
            cpu[name].append(c)
            sink.seek(0)
            sink.truncate()
        for name in CONFIGS:
            ratio[name].append(this["bare"] / this[name])

    expected = {c: (0 if c == "bare" else args.rounds * args.n) for c in CONFIGS}
    results = {
        c: {"wall_us": statistics.median(wall[c]), "cpu_us": statistics.median(cpu[c]),
            "ratio_to_bare": statistics.median(ratio[c]), "spans": spans[c]}
        for c in CONFIGS
    }
    print(f"falcon {falcon.__version__}, {args.rounds} rounds x {args.n} requests, {os.cpu_count()} cores")
    print(f"{'config':18} {'wall µs/req':>12} {'cpu µs/req':>11} {'x bare':>7} {'added cpu µs':>13}")
    bare = results["bare"]["cpu_us"]
    for c in CONFIGS:
        res = results[c]
        print(f"{c:18} {res['wall_us']:12.1f} {res['cpu_us']:11.1f} {res['ratio_to_bare']:7.2f} "
              f"{res['cpu_us'] - bare:13.1f}")
    up, fast, validated = results["upstream"], results["fast"], results["fast-validated"]
    print(f"trusted attributes: {validated['cpu_us'] - bare:.1f} -> {fast['cpu_us'] - bare:.1f} CPU µs added per request")
    print(f"fast vs upstream: {up['cpu_us'] - bare:.1f} -> {fast['cpu_us'] - bare:.1f} CPU µs added per request "
          f"({fast['ratio_to_bare'] / up['ratio_to_bare']:.2f}x upstream's throughput ratio)")
    sm_up, sm_fast = results["showmax-upstream"], results["showmax-fast"]
    print(f"otel_showmax.falcon: {sm_up['cpu_us'] - bare:.1f} -> {sm_fast['cpu_us'] - bare:.1f} CPU µs added "
          f"per request (ratio {sm_up['ratio_to_bare']:.2f} -> {sm_fast['ratio_to_bare']:.2f})")
    bad = {c: (spans[c], expected[c]) for c in CONFIGS if spans[c] != expected[c]}
    if bad:
        print(f"WRONG SPAN COUNTS (got, expected): {bad}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "rounds": args.rounds, "n": args.n}, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
