"""Micro-benchmarks: setup() repeat calls, log call costs, span start/end, export encoding.

    .venv/bin/python benchmarks/micro.py            # 5 alternated rounds
    .venv/bin/python benchmarks/micro.py --quick    # 2 rounds, fewer calls

Every measurement runs in a fresh child process (otel_showmax configures once per process), and
the variants alternate A B C … A B C … over rounds; the report gives medians and, for log calls,
ratios to the plain logging call of the same round. Two costs per item:

* **caller µs** — wall time on the calling thread inside the timed loop (what a request waits for;
  it includes GIL hand-overs to the export thread while it runs);
* **process CPU µs** — CPU time of the whole process (export thread included) from the first call
  until everything was exported, divided by the items: what a saturated single worker pays.

Loops run in chunks of 256 calls followed by a flush outside the timed part, so bounded queues
never overflow (a dropped record would be a cheaper, dishonest record). Exporting variants send
OTLP/HTTP to a live receiver in its own process, and the run checks it received every item.
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)

CHUNK = 256
LOCAL_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CORRELATED_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace_id=%(trace_id)s span_id=%(span_id)s] %(message)s"
UPSTREAM_CORRELATED_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s"
)
ATTRS10 = {
    "http.request.method": "GET", "url.scheme": "http", "server.address": "127.0.0.1", "server.port": 8000,
    "network.protocol.version": "1.1", "url.path": "/titles", "http.route": "/titles",
    "user_agent.original": "wrk/4.2", "client.address": "127.0.0.1", "http.response.status_code": 200,
}

LOG_VARIANTS = {
    "plain": "plain logging call (local text line)",
    "correlation": "+ otel_showmax correlation fields in the local line",
    "bridge": "+ otel_showmax correlation + export through the bridge",
    "upstream": "upstream LoggingHandler + SDK BatchLogRecordProcessor (no correlation)",
    "upstream_corr": "upstream LoggingHandler + BatchLogRecordProcessor + inject_trace_context",
}
SPAN_VARIANTS = {
    "ours_bare": "otel_showmax setup(): start_span + end, no attributes",
    "ours_attrs": "otel_showmax setup(): start_span + end, 10 attributes",
    "ours_current": "otel_showmax setup(): start_as_current_span, 10 attributes",
    "upstream_bare": "SDK TracerProvider + BatchSpanProcessor(OTLP/HTTP): no attributes",
    "upstream_attrs": "SDK TracerProvider + BatchSpanProcessor(OTLP/HTTP): 10 attributes",
    "upstream_current": "SDK TracerProvider + BatchSpanProcessor(OTLP/HTTP): start_as_current_span, 10 attributes",
}


# ------------------------------------------------------------------------------------ child side
def _local_handler(fmt: logging.Formatter) -> logging.Handler:
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the child
    handler.setFormatter(fmt)
    return handler


def _timed_chunks(n: int, body, flush) -> dict[str, float]:
    """Run body(k) for k in chunks; time the calls only; flush between chunks (untimed)."""
    wall = thread_cpu = 0.0
    cpu0 = time.process_time()
    done = 0
    while done < n:
        k = min(CHUNK, n - done)
        t0, c0 = time.perf_counter(), time.thread_time()
        body(k)
        wall += time.perf_counter() - t0
        thread_cpu += time.thread_time() - c0
        flush()
        done += k
    cpu = time.process_time() - cpu0
    return {"caller_us": wall / n * 1e6, "caller_cpu_us": thread_cpu / n * 1e6, "process_cpu_us": cpu / n * 1e6}


def child_log(variant: str, n: int, endpoint: str, service: str) -> dict[str, Any]:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    flush = lambda: None  # noqa: E731
    tracer = None
    if variant == "plain":
        root.addHandler(_local_handler(logging.Formatter(LOCAL_FORMAT)))
    elif variant in ("correlation", "bridge"):
        import otel_showmax
        from otel_showmax import correlation

        if variant == "correlation":
            from opentelemetry.sdk.trace import TracerProvider

            correlation.install("plain", service_name=service)
            tracer = TracerProvider(shutdown_on_exit=False).get_tracer("micro")
        else:
            otel_showmax.setup(service_name=service, endpoint=endpoint, protocol="http/protobuf",
                               metrics_exporter="none", traces_exporter="none")
            from opentelemetry import trace

            tracer = trace.get_tracer("micro")
            flush = lambda: otel_showmax.flush(30)  # noqa: E731
        root.addHandler(_local_handler(logging.Formatter(CORRELATED_FORMAT)))
    elif variant in ("upstream", "upstream_corr"):
        from opentelemetry import _logs, trace
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        provider = LoggerProvider(resource=Resource.create({"service.name": service}))
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
        _logs.set_logger_provider(provider)
        trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": service})))
        tracer = trace.get_tracer("micro")
        fmt = LOCAL_FORMAT
        if variant == "upstream_corr":
            from opentelemetry.instrumentation.logging import LoggingInstrumentor

            LoggingInstrumentor().instrument(inject_trace_context=True, enable_log_auto_instrumentation=False)
            fmt = UPSTREAM_CORRELATED_FORMAT
        root.addHandler(_local_handler(logging.Formatter(fmt)))
        root.addHandler(LoggingHandler(logger_provider=provider))
        flush = lambda: provider.force_flush(30_000)  # noqa: E731
    else:
        raise SystemExit(f"unknown log variant {variant}")

    log = logging.getLogger("catalogue.api")
    extra = {"catalogue.genre": "", "catalogue.offset": 0}

    def body(k: int) -> None:
        for _ in range(k):
            log.info("listed %d of %d titles", 20, 120, extra=extra)

    span = tracer.start_span("GET /titles") if tracer else None
    if span is not None:
        from opentelemetry import trace as api

        with api.use_span(span, end_on_exit=True):
            body(CHUNK)  # warm-up (caches, connections)
            flush()
            result = _timed_chunks(n, body, flush)
    else:
        body(CHUNK)
        result = _timed_chunks(n, body, flush)
    result["items"] = n + CHUNK
    if variant == "bridge":
        import otel_showmax

        result["dropped"] = otel_showmax.dropped()
    return result


def child_span(variant: str, n: int, endpoint: str, service: str) -> dict[str, Any]:
    from opentelemetry import trace

    if variant.startswith("ours"):
        import otel_showmax

        otel_showmax.setup(service_name=service, endpoint=endpoint, protocol="http/protobuf",
                           metrics_exporter="none", logs_exporter="none")
        tracer = trace.get_tracer("micro")
        flush = lambda: otel_showmax.flush(30)  # noqa: E731
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
        trace.set_tracer_provider(provider)
        tracer = trace.get_tracer("micro")
        flush = lambda: provider.force_flush(30_000)  # noqa: E731
    kind = trace.SpanKind.SERVER
    shape = variant.split("_", 1)[1]

    if shape == "bare":
        def body(k: int) -> None:
            for _ in range(k):
                tracer.start_span("GET /titles", kind=kind).end()
    elif shape == "attrs":
        def body(k: int) -> None:
            for _ in range(k):
                tracer.start_span("GET /titles", kind=kind, attributes=ATTRS10).end()
    else:
        def body(k: int) -> None:
            for _ in range(k):
                with tracer.start_as_current_span("GET /titles", kind=kind, attributes=ATTRS10):
                    pass

    body(CHUNK)
    flush()
    result = _timed_chunks(n, body, flush)
    result["items"] = n + CHUNK
    if variant.startswith("ours"):
        import otel_showmax

        result["dropped"] = otel_showmax.dropped()
    return result


def child_setup(n: int, endpoint: str, service: str) -> dict[str, Any]:
    import otel_showmax

    logging.getLogger().addHandler(logging.NullHandler())
    t0 = time.perf_counter()
    otel_showmax.setup(service_name=service, endpoint=endpoint, metrics_exporter="none")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        otel_showmax.setup(service_name=service, endpoint=endpoint, metrics_exporter="none")
    same = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        otel_showmax.setup()
    no_args = (time.perf_counter() - t0) / n
    logging.getLogger("otel_showmax").disabled = True  # the "different configuration" warning, once
    t0 = time.perf_counter()
    for _ in range(n):
        otel_showmax.setup(service_name="other")
    different = (time.perf_counter() - t0) / n
    return {"first_ms": first * 1e3, "same_us": same * 1e6, "no_args_us": no_args * 1e6,
            "different_us": different * 1e6, "items": 0}


def child_encode(batch: int, rounds: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import encode  # benchmarks/encode.py: real Falcon spans and request-log records
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as up_logs
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as up_spans

    from otel_showmax._export import protobuf as _encode

    spans = encode.falcon_spans(batch)
    logs = encode.request_logs(batch)
    return {
        "spans": encode.measure(spans, _encode.encode_spans, lambda b: up_spans(b).SerializePartialToString(), rounds),
        "logs": encode.measure(logs, _encode.encode_logs, lambda b: up_logs(b).SerializeToString(), rounds),
        "span_attributes": len(spans[0].attributes),
        "items": 0,
    }


def child_main(argv: list[str]) -> None:
    kind, variant, n, endpoint, service = argv[0], argv[1], int(argv[2]), argv[3], argv[4]
    logging.getLogger("otel_showmax").setLevel(logging.ERROR)
    if kind == "log":
        out = child_log(variant, n, endpoint, service)
    elif kind == "span":
        out = child_span(variant, n, endpoint, service)
    elif kind == "setup":
        out = child_setup(n, endpoint, service)
    else:
        out = child_encode(n, int(variant))
    print("RESULT " + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------------- parent side
def run_child(kind: str, variant: str, n: int, endpoint: str, service: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.run([sys.executable, __file__, "--child", kind, variant, str(n), endpoint, service],
                          capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{kind}/{variant} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def count_received(receiver: Any) -> dict[str, int]:
    got = receiver.read_jsonl()
    counts: dict[str, int] = {}
    for signal in ("spans", "logs"):
        for item in got[signal]:
            name = item.get("resource", {}).get("service.name", "")
            counts[f"{signal}:{name}"] = counts.get(f"{signal}:{name}", 0) + 1
    return counts


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000, help="log calls / spans per child")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 5,000 calls")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls = 2, 5_000

    from otel_showmax.receiver import ReceiverProcess

    results: dict[str, dict[str, list[dict[str, Any]]]] = {"log": {}, "span": {}, "setup": {}, "encode": {}}
    expected: dict[str, int] = {}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with ReceiverProcess() as receiver:
        for rnd in range(1, args.rounds + 1):
            for kind, table in (("log", LOG_VARIANTS), ("span", SPAN_VARIANTS)):
                for variant in table:
                    service = f"micro-{kind}-{variant}-{rnd}"
                    r = run_child(kind, variant, args.calls, receiver.endpoint, service)
                    results[kind].setdefault(variant, []).append(r)
                    exports = (kind == "log" and variant in ("bridge", "upstream", "upstream_corr")) or kind == "span"
                    if exports:
                        expected[f"{'logs' if kind == 'log' else 'spans'}:{service}"] = r["items"]
                    print(f"  round {rnd} {kind:<5} {variant:<16} caller {r['caller_us']:6.2f} µs  "
                          f"process CPU {r['process_cpu_us']:6.2f} µs", file=sys.stderr, flush=True)
            r = run_child("setup", "-", 2000, receiver.endpoint, f"micro-setup-{rnd}")
            results["setup"].setdefault("setup", []).append(r)
        deadline = time.monotonic() + 60
        while True:
            got = count_received(receiver)
            if all(got.get(k, 0) >= v for k, v in expected.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(0.5)
        got = count_received(receiver)
    enc = run_child("encode", str(10 if args.quick else 30), 512, "-", "-")
    missing = {k: (got.get(k, 0), v) for k, v in expected.items() if got.get(k, 0) != v}

    lines = [f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; date {started}; "
             f"{args.rounds} alternated rounds, {args.calls:,} calls per variant and round (chunks of {CHUNK}, "
             "flushed between chunks)."]
    lines += ["", "#### Log call cost (one `log.info(\"listed %d of %d titles\", 20, 120, extra={...})` inside a span)", "",
              "| variant | caller µs (ratio to plain) | caller CPU µs | process CPU µs incl. export thread (ratio) |",
              "|---|---|---|---|"]
    plain = results["log"]["plain"]
    for variant, label in LOG_VARIANTS.items():
        rs = results["log"][variant]
        ratio = med([r["caller_us"] / p["caller_us"] for r, p in zip(rs, plain, strict=True)])
        cratio = med([r["process_cpu_us"] / p["process_cpu_us"] for r, p in zip(rs, plain, strict=True)])
        lines.append(f"| {label} | {med([r['caller_us'] for r in rs]):.2f} ({ratio:.2f}x) "
                     f"| {med([r['caller_cpu_us'] for r in rs]):.2f} "
                     f"| {med([r['process_cpu_us'] for r in rs]):.2f} ({cratio:.2f}x) |")
    lines += ["", "#### Span start/end", "", "| variant | caller µs | process CPU µs incl. export |", "|---|---|---|"]
    for variant, label in SPAN_VARIANTS.items():
        rs = results["span"][variant]
        caller, cpu = med([r["caller_us"] for r in rs]), med([r["process_cpu_us"] for r in rs])
        lines.append(f"| {label} | {caller:.2f} | {cpu:.2f} |")
    s = results["setup"]["setup"]
    lines += ["", "#### setup()", "",
              f"first call (builds the pipeline): {med([r['first_ms'] for r in s]):.1f} ms; repeat call, same options: "
              f"{med([r['same_us'] for r in s]):.2f} µs; "
              f"repeat call, no options: {med([r['no_args_us'] for r in s]):.2f} µs; "
              f"repeat call, different options (warns once): {med([r['different_us'] for r in s]):.2f} µs."]
    lines += ["", f"#### Export encoding (batch of 512; Falcon server span with {enc['span_attributes']} attributes; "
              "request-log-shaped record; CPU µs per item)", "",
              "| item | upstream encoder | otel_showmax._export.protobuf | speed-up |", "|---|---|---|---|"]
    for item in ("spans", "logs"):
        e = enc[item]
        lines.append(f"| {item[:-1]} | {e['upstream_median']:.2f} | {e['ours_median']:.2f} "
                     f"| {e['upstream_median'] / e['ours_median']:.1f}x |")
    lines += ["", "Every exported item reached the receiver." if not missing
              else f"MISSING at the receiver (got, expected): {missing}"]
    drops = [r.get("dropped") for k in ("log", "span") for rs in results[k].values() for r in rs if r.get("dropped")]
    if any(any(v for sig in d.values() for v in sig.values()) for d in drops):
        lines.append(f"otel_showmax dropped items: {drops}")
    text = "\n".join(lines)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "encode": enc, "missing": missing,
                                               "markdown": text}, indent=1))
    return 0 if not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
