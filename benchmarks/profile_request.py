"""Where each microsecond of per-request overhead goes: an in-process WSGI loop, step by step.

    .venv/bin/python benchmarks/profile_request.py                  # the step table (5 alternated rounds)
    .venv/bin/python benchmarks/profile_request.py --profile ours   # + cProfile of one step
    .venv/bin/python benchmarks/profile_request.py --steps bare,ours --rounds 9
    .venv/bin/python benchmarks/profile_request.py --steps ours --no-local-log   # no local log handler
    .venv/bin/python benchmarks/profile_request.py --steps ours --rounds 15 --baseline /path/to/main-checkout

The catalogue list endpoint (benchmarks/catalogue_app.py's handler: 20 titles as JSON, one
application log line) is called through its WSGI callable without a server, so only the app and
its instrumentation are measured. Each step runs in a fresh child process and adds one thing to
the step above (otel_showmax's steps are set with its own settings, upstream's are built as
``opentelemetry-instrument`` with opentelemetry-distro defaults builds them). Everything exports
OTLP/HTTP to a live receiver in its own process. Per request:

* **request µs** — CPU time of the request thread (what the request itself spends; wall time is
  recorded too, but on a shared 2-core machine it mostly measures the neighbours);
* **process CPU µs** — CPU of the whole process, export threads included, until all of it was
  exported: what a saturated single gevent worker pays (the GIL makes other threads' work
  this worker's work too).

Loops run in chunks of 250 requests with an untimed flush after each, so no queue overflows.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHUNK = 250

# step name -> (description, kind, environment for otel_showmax steps)
OURS_BASE = {"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
             "OTEL_SHOWMAX_REQUEST_LOG": "false"}
STEPS: dict[str, tuple[str, str, dict[str, str]]] = {
    "bare": ("bare Falcon (local log line only)", "bare", {}),
    "up_spans": ("upstream: FalconInstrumentor, spans created, no processor", "upstream", {}),
    "up_traces": ("upstream: + BatchSpanProcessor, OTLP/HTTP export", "upstream", {}),
    "up_metrics": ("upstream: + metrics (distro default otlp, 60 s reader)", "upstream", {}),
    "up_logs": ("upstream: + LoggingHandler exporting the app log (= opentelemetry-instrument)", "upstream", {}),
    "ours_spans": ("otel_showmax: setup(), spans created, nothing exported, no request log", "ours", OURS_BASE),
    "ours_traces": ("otel_showmax: + spans exported", "ours", {**OURS_BASE, "OTEL_TRACES_EXPORTER": "otlp"}),
    "ours_metrics": ("otel_showmax: + metrics", "ours",
                     {**OURS_BASE, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp"}),
    "ours_applog": ("otel_showmax: + app log exported through the bridge", "ours",
                    {**OURS_BASE, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
                     "OTEL_LOGS_EXPORTER": "otlp"}),
    "ours": ("otel_showmax: + request log (= setup() defaults)", "ours",
             {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp"}),
}


# --ablations: otel_showmax's defaults with one thing switched off each (what each feature costs).
_OURS_DEFAULT = STEPS["ours"][2]
ABLATIONS: dict[str, tuple[str, str, dict[str, str]]] = {
    "ours-no_exemplars": ("otel_showmax defaults, OTEL_METRICS_EXEMPLAR_FILTER=always_off", "ours",
                          {**_OURS_DEFAULT, "OTEL_METRICS_EXEMPLAR_FILTER": "always_off"}),
    "ours-no_metrics": ("otel_showmax defaults, OTEL_METRICS_EXPORTER=none", "ours",
                        {**_OURS_DEFAULT, "OTEL_METRICS_EXPORTER": "none"}),
    "ours-no_headers": ("otel_showmax defaults, no header capture", "ours",
                        {**_OURS_DEFAULT, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "",
                         "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": ""}),
    "ours-no_request_log": ("otel_showmax defaults, OTEL_SHOWMAX_REQUEST_LOG=false", "ours",
                            {**_OURS_DEFAULT, "OTEL_SHOWMAX_REQUEST_LOG": "false"}),
    "ours-no_correlation": ("otel_showmax defaults, OTEL_SHOWMAX_LOG_CORRELATION=false", "ours",
                            {**_OURS_DEFAULT, "OTEL_SHOWMAX_LOG_CORRELATION": "false"}),
}
STEPS.update(ABLATIONS)


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/titles", "RAW_URI": "/titles",  # gunicorn sets RAW_URI
        "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "wrk/4.2.0", "HTTP_ACCEPT": "*/*",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }


def _upstream(step: str, endpoint: str) -> Any:
    """Build what opentelemetry-instrument + opentelemetry-distro defaults build, up to ``step``."""
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.instrumentation.falcon import FalconInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "profile")})
    tracer_provider = TracerProvider(resource=resource)
    flushes = [tracer_provider.force_flush]
    if step in ("up_traces", "up_metrics", "up_logs"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(tracer_provider)
    if step in ("up_metrics", "up_logs"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    if step == "up_logs":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
        _logs.set_logger_provider(logger_provider)
        logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
        flushes.append(logger_provider.force_flush)
    FalconInstrumentor().instrument()

    def flush() -> None:
        for f in flushes:
            f()
    return flush


def child(step: str, requests: int, endpoint: str, profile: str | None) -> dict[str, Any]:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    local = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the child
    local.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    if os.environ.get("BENCH_LOCAL_LOG", "1") != "0":  # --no-local-log: the OTel bridge is the only handler
        root.addHandler(local)
    # steps added by a caller (extra settings on top of ours) run as otel_showmax steps
    kind = STEPS[step][1] if step in STEPS else ("ours" if step.startswith("ours") else "bare")
    flush: Any = lambda: None  # noqa: E731
    if kind == "ours":
        import otel_showmax

        otel_showmax.setup(endpoint=endpoint, protocol="http/protobuf")
        flush = lambda: otel_showmax.flush(30)  # noqa: E731
    elif kind == "upstream":
        flush = _upstream(step, endpoint)
    sys.path.insert(0, str(HERE))
    os.environ["BENCH_APP_MODE"] = "plain"
    import catalogue_app

    catalogue_app.logging.getLogger().removeHandler(catalogue_app._local)  # keep the devnull one only
    app = catalogue_app.app
    environ = _environ()

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        return None

    def loop(n: int) -> None:
        for _ in range(n):
            for _chunk in app(dict(environ), start_response):
                pass

    loop(CHUNK)
    flush()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    spent = thread_spent = 0.0
    cpu0 = time.process_time()
    done = 0
    while done < requests:
        t0, c0 = time.perf_counter(), time.thread_time()
        if profiler:
            profiler.enable()
        loop(CHUNK)
        if profiler:
            profiler.disable()
        spent += time.perf_counter() - t0
        thread_spent += time.thread_time() - c0
        flush()
        done += CHUNK
    cpu = time.process_time() - cpu0
    out: dict[str, Any] = {"request_wall_us": spent / done * 1e6, "request_us": thread_spent / done * 1e6,
                           "process_cpu_us": cpu / done * 1e6, "items": done + CHUNK}
    if profiler:
        import pstats

        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("tottime").print_stats(35)
        stats.sort_stats("cumulative").print_stats(45)
        Path(profile).write_text(stream.getvalue())
    return out


# Sampled profile (py-spy, --gil: only samples holding the GIL, i.e. CPU this worker really pays).
# Request-thread samples go to the first of these found walking from the leaf towards the root.
CATEGORIES = (  # needles match py-spy's short "dir/file.py" names (and a few function names)
    ("gevent/thread.py", "gevent-patched locks (SDK spans and metrics, logging handlers)"),
    ("log_bridge.py", "log bridge: queue the record"),  # otel_showmax/_pipeline/log_bridge.py
    ("_bridge.py", "log bridge: queue the record"),  # (before the layout change)
    ("correlation.py", "correlation fields (record factory)"),
    ("_export/worker.py", "export queue put"),
    ("_worker.py", "export queue put"),
    ("instruments.py", "otel_showmax instruments: duration histogram, active requests"),
    ("_pipeline/tracer.py", "otel_showmax tracer: span start/end, trusted attributes"),
    ("ddtrace", "ddtrace (tracer, integrations, log injection)"),
    ("metrics/_internal", "metrics: duration histogram + active-requests counter (SDK)"),
    ("_redact.py", "otel_showmax falcon.py: redaction, request log fields"),
    ("redaction.py", "otel_showmax falcon.py: redaction, request log fields"),
    ("falcon_app.py", "otel_showmax falcon_app (span, attributes, metrics calls)"),
    ("http/__init__.py", "opentelemetry.util.http: header capture, URL helpers"),
    ("wsgi/__init__.py", "instrumentation-wsgi: request/response attributes"),
    ("_semconv.py", "instrumentation semconv helpers"),
    ("instrumentation/utils", "instrumentation utils"),
    ("attributes/__init__.py", "attribute validation (BoundedAttributes)"),
    ("propagat", "context propagation (extract)"),
    ("context/", "context attach/detach"),
    ("trace/__init__.py", "span start/end, use_span (SDK + API)"),
    ("sampling.py", "span start/end, use_span (SDK + API)"),
    ("id_generator", "span start/end, use_span (SDK + API)"),
    ("logging/__init__.py", "stdlib logging: records + local line"),
    ("otel_showmax/falcon.py", "otel_showmax falcon.py: wrapper, redaction, request log fields"),
    ("falcon/__init__.py", "instrumentation-falcon middleware and app wrapper (upstream)"),
    ("json/", "JSON body (app)"),
    ("catalogue_app.py", "app handler"),
    ("falcon/", "Falcon framework"),
    ("gunicorn/", "server: gunicorn gevent worker"),
    ("gevent/", "server: gevent (pywsgi, hub, sockets)"),
    ("gunicorn_conf.py", "server: gunicorn gevent worker"),
)
WORKER_CATEGORIES = (
    ("_encode.py", "encode (otel_showmax encoder)"),
    ("protobuf.py", "encode (otel_showmax encoder)"),  # otel_showmax/_export/protobuf.py, utf8.py
    ("utf8.py", "encode (otel_showmax encoder)"),
    ("log_bridge.py", "convert/encode log records (bridge)"),
    ("ddtrace", "ddtrace writer / encoder / periodic threads"),
    ("_encoder", "encode (upstream encoder)"),
    ("trace_encoder", "encode (upstream encoder)"),
    ("common/_internal", "encode (upstream encoder)"),
    ("_bridge.py", "convert log records (bridge)"),
    ("sdk/metrics", "metrics collection"),
    ("requests/", "HTTP client (requests/urllib3/http.client)"),
    ("urllib3/", "HTTP client (requests/urllib3/http.client)"),
    ("http/client.py", "HTTP client (requests/urllib3/http.client)"),
    ("socket.py", "HTTP client (requests/urllib3/http.client)"),
    ("_export/otlp_http.py", "HTTP client (otel_showmax lean exporter)"),
    ("_worker.py", "batch worker loop"),
    ("_export/worker.py", "batch worker loop"),
)


def _categorize(frames: list[str], table: tuple[tuple[str, str], ...]) -> str:
    for frame in reversed(frames):
        if "utils.py" in frame and "instrumentation" not in frame and "(utils.py" in frame:
            return "instrumentation utils"
        for needle, name in table:
            if needle in frame:
                return name
    return "other"


def pyspy_report(raw: Path, cpu_us: float, loop_marker: str | None = ".loop (", main_tid: int | None = None) -> str:
    """Per-request µs by category from py-spy's raw (collapsed) output."""
    import collections

    per_thread: collections.Counter[str] = collections.Counter()
    request: collections.Counter[str] = collections.Counter()
    background: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        main = "MainThread" in frames[0] or (main_tid is not None and frames[0].startswith(f"thread ({main_tid})"))
        if main or any(f.startswith("child (profile_request.py") for f in frames):  # py-spy names it only sometimes
            if loop_marker is None or any(loop_marker in f for f in frames):
                per_thread["request thread"] += n
                request[_categorize(frames, CATEGORIES)] += n
            elif any("flush (" in f for f in frames) and any("child (" in f for f in frames):
                # upstream's force_flush exports on the calling thread: export work, counted as such
                per_thread["export work inside flush() (main thread, between chunks)"] += n
                background[_categorize(frames, WORKER_CATEGORIES)] += n
        else:
            if any("<module>" in f or "importlib" in f for f in frames):
                continue  # lazy imports on first export: start-up cost, not per request
            worker = next((f.split(" (")[0] for f in frames[1:] if "._run" in f or "_loop" in f), "other thread")
            per_thread[worker] += n
            background[_categorize(frames, WORKER_CATEGORIES)] += n
    total = sum(per_thread.values()) or 1
    # py-spy pauses the process to sample, which stretches wall time: shares are what to read;
    # µs are the shares of the process CPU per request measured in the same child.
    us = lambda n: n / total * cpu_us  # noqa: E731
    lines = [f"process CPU per request in this profiled run: {cpu_us:.0f} µs; {total} samples", "",
             "| where | µs per request |", "|---|---|"]
    for name, n in per_thread.most_common():
        lines.append(f"| **{name}** | **{us(n):.1f}** |")
    lines += ["", "| request thread, by category | µs per request |", "|---|---|"]
    lines += [f"| {name} | {us(n):.1f} |" for name, n in request.most_common()]
    lines += ["", "| export threads, by category | µs per request |", "|---|---|"]
    lines += [f"| {name} | {us(n):.1f} |" for name, n in background.most_common()]
    return "\n".join(lines)


def run_pyspy(step: str, requests: int, endpoint: str, pyspy: str, rate: int = 997) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_SERVICE_NAME": f"profile-{step}", "OTEL_TRACES_SAMPLER": "always_on", "PYTHONPATH": str(ROOT)})
    env.update(STEPS[step][2])
    raw = HERE / "results" / f"pyspy-{step}.raw"
    raw.parent.mkdir(exist_ok=True)
    cmd = [pyspy, "record", "--gil", "--threads", "--format", "raw", "-r", str(rate), "-o", str(raw), "--",
           sys.executable, __file__, "--child", step, str(requests), endpoint, ""]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=str(ROOT))
    result = next((json.loads(x[7:]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or not raw.exists() or result is None:
        raise RuntimeError(f"py-spy failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return pyspy_report(raw, result["process_cpu_us"])


def run_child(step: str, requests: int, endpoint: str, profile: str | None = None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_SERVICE_NAME": f"profile-{step}", "OTEL_TRACES_SAMPLER": "always_on", "PYTHONPATH": str(ROOT)})
    env.update(STEPS[step][2])
    cmd = [sys.executable, __file__, "--child", step, str(requests), endpoint, profile or ""]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{step} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        if os.environ.get("BENCH_GEVENT") == "1":  # as gunicorn's gevent worker does, before anything else
            from gevent import monkey

            monkey.patch_all()
        result = child(argv[1], int(argv[2]), argv[3], argv[4] or None)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default=",".join(s for s in STEPS if s not in ABLATIONS))
    parser.add_argument("--ablations", action="store_true",
                        help="bare, ours, and ours with one feature off each (metrics, exemplars, headers, …)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", help="also cProfile this step (its request loop), report written beside")
    parser.add_argument("--pyspy", help="also sample these steps (comma-separated) with py-spy, all threads")
    parser.add_argument("--pyspy-bin", default=os.environ.get("PYSPY", "py-spy"),
                        help="py-spy executable (pip install py-spy; PYSPY env var)")
    parser.add_argument("--gevent", action="store_true",
                        help="monkey-patch with gevent in each child first, as gunicorn -k gevent does")
    parser.add_argument("--quick", action="store_true", help="2 rounds x 1,000 requests")
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="also run each step with the otel_showmax of another checkout (e.g. main's), "
                             "alternated with ours child by child; prints the per-round differences")
    parser.add_argument("--no-local-log", action="store_true",
                        help="no local log handler on the root logger (records go to the OTel bridge only)")
    args = parser.parse_args(argv)
    if args.gevent:
        os.environ["BENCH_GEVENT"] = "1"  # children inherit it
    if args.no_local_log:
        os.environ["BENCH_LOCAL_LOG"] = "0"  # children inherit it
    if args.quick:
        args.rounds, args.requests = 2, 1000
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if args.ablations:
        steps = ["bare", "ours", *ABLATIONS, "up_logs"]

    if args.baseline:  # "<step>@base": the same step, the other checkout's package first on the path
        checkout = str(Path(args.baseline).resolve())
        for step in list(steps):
            desc, kind, env = STEPS[step]
            STEPS[f"{step}@base"] = (f"{desc} [{checkout}]", kind, {**env, "PYTHONPATH": checkout})
        steps = [name for step in steps for name in (f"{step}@base", step)]

    from otel_showmax.receiver import ReceiverProcess

    results: dict[str, list[dict[str, Any]]] = {s: [] for s in steps}
    with ReceiverProcess() as receiver:
        for rnd in range(1, args.rounds + 1):
            for step in steps:
                r = run_child(step, args.requests, receiver.endpoint)
                results[step].append(r)
                print(f"  round {rnd} {step:<13} request {r['request_us']:7.1f} µs  process CPU "
                      f"{r['process_cpu_us']:7.1f} µs", file=sys.stderr, flush=True)
        profile_text = ""
        if args.profile:
            out = HERE / "results" / f"profile-{args.profile}.txt"
            out.parent.mkdir(exist_ok=True)
            run_child(args.profile, args.requests, receiver.endpoint, str(out))
            profile_text = out.read_text()
        pyspy_text = []
        for step in [s.strip() for s in (args.pyspy or "").split(",") if s.strip()]:
            pyspy_text.append(f"\n### py-spy (--gil), step {step}: {STEPS[step][0]}\n\n"
                              + run_pyspy(step, args.requests, receiver.endpoint, args.pyspy_bin))

    base = results.get("bare")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {when}; "
             f"{args.rounds} alternated rounds x {args.requests} requests (medians)"
             f"{'; no local log handler' if args.no_local_log else ''}.", "",
             "| step | request µs | added | process CPU µs (export threads incl.) | added | CPU ratio to bare |",
             "|---|---|---|---|---|---|"]
    prev: dict[str, float] = {}
    for step in steps:
        rs = results[step]
        req = statistics.median(r["request_us"] for r in rs)
        cpu = statistics.median(r["process_cpu_us"] for r in rs)
        family = "up" if step.startswith("up") else "ours" if step.startswith("ours") else "bare"
        if step in ABLATIONS:
            family = "ablation"
            ref = prev.get("ours")
            added_req = f"{req - ref[0]:+.0f} vs ours" if ref else "—"
            added_cpu = f"{cpu - ref[1]:+.0f} vs ours" if ref else "—"
            ratio = statistics.median(r["process_cpu_us"] / b["process_cpu_us"] for r, b in zip(rs, base, strict=True))
            lines.append(f"| {STEPS[step][0]} | {req:.0f} | {added_req} | {cpu:.0f} | {added_cpu} | {ratio:.2f} |")
            continue
        ref = prev.get(family, prev.get("bare"))
        added_req = f"{req - ref[0]:+.0f}" if ref else "—"
        added_cpu = f"{cpu - ref[1]:+.0f}" if ref else "—"
        ratio = (statistics.median(r["process_cpu_us"] / b["process_cpu_us"] for r, b in zip(rs, base, strict=True))
                 if base else float("nan"))
        lines.append(f"| {STEPS[step][0]} | {req:.0f} | {added_req} | {cpu:.0f} | {added_cpu} | {ratio:.2f} |")
        prev[family] = (req, cpu)
        if family == "bare":
            prev["bare"] = (req, cpu)
    if args.baseline:
        lines += ["", "| step | round | request µs: ours - baseline | process CPU µs: ours - baseline |",
                  "|---|---|---|---|"]
        for step in steps[1::2]:
            pairs = list(zip(results[f"{step}@base"], results[step], strict=True))
            for rnd, (old, new) in enumerate(pairs, 1):
                lines.append(f"| {step} | {rnd} | {new['request_us'] - old['request_us']:+.1f} | "
                             f"{new['process_cpu_us'] - old['process_cpu_us']:+.1f} |")
            lines.append(f"| {step} | median | "
                         f"{statistics.median(n['request_us'] - o['request_us'] for o, n in pairs):+.1f} | "
                         f"{statistics.median(n['process_cpu_us'] - o['process_cpu_us'] for o, n in pairs):+.1f} |")
    print("\n".join(lines))
    for text in pyspy_text:
        print(text)
    if profile_text:
        print(f"\n## cProfile of step {args.profile} ({args.requests} requests)\n")
        print(profile_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
