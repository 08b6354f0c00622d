"""Coarse per-request cost regression test: export work stays off the request path.

Ratios only, with generous margins; never absolute times. Each configuration runs in its own
child process (otel_showmax configures once per process) and the configurations alternate over
rounds; the fastest run of each is compared (noise from other processes only adds time):

* a Falcon request (the catalogue list endpoint, one application log line) driven through the
  WSGI app in-process: time on the request thread with otel_showmax set up vs bare;
* a logging call: time on the calling thread with otel_showmax's bridge (and correlation) vs a
  plain logging call.

Negative control (so the test is known to be able to fail): the same app and logging call with
upstream's *synchronous* processors (``SimpleSpanProcessor``/``SimpleLogRecordProcessor`` with
the OTLP/HTTP exporters) — export on the request path — must land above the same limits.

The gain over upstream is protected in the same runs, against upstream's own batched set-up (the
Falcon instrumentation, ``BatchSpanProcessor``/``BatchLogRecordProcessor`` and its
``LoggingHandler``: what ``opentelemetry-instrument`` does with logs on): what otel_showmax adds to
a logging call stays well below what upstream adds, on the calling thread and in CPU time of the
whole process (export threads included); what it adds to a request, although it writes one more
record (the request log) and records the duration metric, stays at most upstream's within the
noise in process CPU, and within a guard on the calling thread (where the two are at par).

Everything exports to a live OTLP receiver in its own process; loops run in chunks followed by an
untimed flush, so the queues never overflow and every item is really exported (checked).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 5
REQUESTS = 1500
LOG_CALLS = 4000
CHUNK = 250

# Limits on the ratio of the calling thread's wall time to the uninstrumented run. Measured on a
# busy 2-core machine (2026-11-27): otel_showmax 3-9x per request (the uninstrumented in-process
# request is cheap, 70-130 µs; Falcon instrumentation, metrics and two log records add the rest)
# and 1.1-1.8x per log call; synchronous export 30-65x per request and 75-180x per log call.
# Again 2026-12-05 (load average ~3, after the per-request CPU work): 3.3-4.5x per request (bare
# 35-63 µs), 1.1-1.6x per log call; synchronous export 52-74x and 71-141x.
REQUEST_LIMIT = 10.0
LOG_LIMIT = 5.0
# Limits on what otel_showmax adds per item as a share of what upstream's batched set-up adds,
# median over 5 rounds of the same-round ratio. Calling thread: a logging call 0.12-0.34x; a request
# is at par, 0.70-1.14x here and 1.27x in one CI run (2026-12-06; ours also writes the request log
# and records the metric), so its limit is a guard: export on the request path adds far more.
# Process CPU, the export threads' encoding and sending included (where the request gain is): a
# request 0.63-0.89x here, ~0.97x in that CI run; a logging call 0.28-0.44x. With upstream's encoder
# in place of ours (contain.ENCODER_ON and log_bridge.DIRECT_ON off) they measured 1.74x and 0.95x.
GAIN_REQUEST_LIMIT = 1.5
GAIN_LOG_LIMIT = 0.5
GAIN_REQUEST_CPU_LIMIT = 1.1
GAIN_LOG_CPU_LIMIT = 0.7

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# ------------------------------------------------------------------------------------- the child
def _app(log: logging.Logger):
    import falcon

    titles = [{"id": i, "title": f"Title {i}", "year": 1995 + i % 30, "cast": ["A", "B"]} for i in range(120)]

    class Titles:
        def on_get(self, req, resp):
            page = titles[:20]
            log.info("listed %d of %d titles", len(page), len(titles))
            resp.media = {"titles": page, "total": len(titles)}

    app = falcon.App()
    app.add_route("/titles", Titles())
    return app


def _environ() -> dict:
    import io

    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/titles", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "perf-regression/1.0", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }


def _upstream(endpoint: str, batched: bool) -> tuple[object, object]:
    """Upstream's own set-up with the OTLP/HTTP exporters: the Falcon instrumentation and its
    ``LoggingHandler``; batched processors (what ``opentelemetry-instrument`` does with logs on, what
    otel_showmax must stay cheaper than) or synchronous ones (the negative control: export on the
    request path)."""
    from opentelemetry import _logs, trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.falcon import FalconInstrumentor
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    span_processor, log_processor = ((BatchSpanProcessor, BatchLogRecordProcessor) if batched
                                     else (SimpleSpanProcessor, SimpleLogRecordProcessor))
    resource = Resource.create({"service.name": os.environ["OTEL_SERVICE_NAME"]})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(span_processor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(log_processor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
    _logs.set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
    FalconInstrumentor().instrument(tracer_provider=tracer_provider)
    return tracer_provider, logger_provider


def child(mode: str, what: str, endpoint: str, total: int) -> dict:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    local = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the child
    local.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(local)
    flush = lambda: None  # noqa: E731
    if mode == "ours":
        import otel_showmax

        otel_showmax.setup(endpoint=endpoint, protocol="http/protobuf")
        flush = lambda: otel_showmax.flush(30)  # noqa: E731
    elif mode in ("sync", "upstream"):
        tracer_provider, logger_provider = _upstream(endpoint, batched=mode == "upstream")

        def flush() -> None:
            tracer_provider.force_flush()
            logger_provider.force_flush()
    elif mode != "bare":
        raise SystemExit(f"unknown mode {mode}")
    log = logging.getLogger("catalogue.api")

    if what == "request":
        app = _app(log)
        environ = _environ()

        def start_response(status, headers, exc_info=None):
            return None

        def once() -> None:
            for _ in app(dict(environ), start_response):
                pass
    else:
        from opentelemetry import trace

        span = trace.get_tracer("perf").start_span("GET /titles")
        trace.use_span(span).__enter__()  # a request context, as in a handler

        def once() -> None:
            log.info("listed %d of %d titles", 20, 120)

    chunk = min(CHUNK, total)
    for _ in range(chunk):  # warm-up: caches, connections, lazily started threads
        once()
    flush()
    spent = spent_cpu = 0.0
    done = 0
    p0 = time.process_time()  # every thread of the process: the export threads' encoding and sending too
    while done < total:
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(chunk):
            once()
        spent += time.perf_counter() - t0
        spent_cpu += time.thread_time() - c0
        flush()
        done += chunk
    process_cpu = time.process_time() - p0
    out = {"per_item_us": spent / done * 1e6, "cpu_us": spent_cpu / done * 1e6,
           "process_cpu_us": process_cpu / done * 1e6, "items": done + chunk}
    if mode == "ours":
        import otel_showmax

        out["dropped"] = otel_showmax.dropped()
    return out


# -------------------------------------------------------------------------------------- the test
def _run_child(mode: str, what: str, endpoint: str, service: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_SERVICE_NAME": service, "OTEL_TRACES_SAMPLER": "always_on", "PYTHONPATH": str(ROOT)})
    # Batches are exported when flushed between chunks, not in the middle of a timed chunk: the
    # test measures what the request path itself does, not GIL hand-overs on a busy machine.
    env.update({"OTEL_BSP_SCHEDULE_DELAY": "60000", "OTEL_BLRP_SCHEDULE_DELAY": "60000",
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "2048"})
    total = REQUESTS if what == "request" else LOG_CALLS
    if mode == "sync":
        total //= 10  # export on the request path is slow; fewer items give its per-item cost just as well
    proc = subprocess.run([sys.executable, __file__, mode, what, endpoint, str(total)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(what: str, receiver) -> dict[str, list[float]]:
    """Per item, per mode, over alternated rounds: wall time on the calling thread (``mode``) and
    CPU time of the whole process, export included (``mode + "_cpu"``)."""
    modes = ("bare", "ours", "upstream", "sync")
    times: dict[str, list[float]] = {key: [] for mode in modes for key in (mode, f"{mode}_cpu")}
    expected: dict[str, int] = {}
    for rnd in range(ROUNDS):
        for mode in modes:
            service = f"perf-{what}-{mode}-{rnd}"
            result = _run_child(mode, what, receiver.endpoint, service)
            times[mode].append(result["per_item_us"])
            times[f"{mode}_cpu"].append(result["process_cpu_us"])
            if mode == "ours":
                assert not any(n for reasons in result["dropped"].values() for n in reasons.values()), result
            if mode != "bare":
                expected[service] = result["items"]
    # Honest: every exported item reached the receiver (spans for requests, log records for both).
    signal = "spans" if what == "request" else "logs"
    deadline = time.monotonic() + 30
    while True:
        got = receiver.read_jsonl()[signal]
        counts: dict[str, int] = {}
        for item in got:
            name = item["resource"].get("service.name", "")
            counts[name] = counts.get(name, 0) + 1
        if all(counts.get(s, 0) >= n for s, n in expected.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for service, n in expected.items():
        assert counts.get(service, 0) == n, (service, counts.get(service, 0), n)
    return times


@pytest.fixture(scope="module")
def live_receiver():
    from otel_showmax.receiver import ReceiverProcess

    with ReceiverProcess() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def measured(live_receiver):
    """One alternated measurement per kind of item, shared by the tests below."""
    cache: dict[str, dict[str, list[float]]] = {}

    def get(what: str) -> dict[str, list[float]]:
        if what not in cache:
            cache[what] = _measure(what, live_receiver)
        return cache[what]

    return get


@pytest.mark.parametrize(("what", "limit"), [("request", REQUEST_LIMIT), ("log", LOG_LIMIT)])
def test_export_stays_off_the_request_path(what, limit, measured):
    times = measured(what)
    # The least disturbed run of each mode (noise from other processes only adds time).
    best = {mode: min(values) for mode, values in times.items()}
    ours, sync = best["ours"] / best["bare"], best["sync"] / best["bare"]
    detail = (f"{what}: otel_showmax {ours:.2f}x, synchronous upstream {sync:.2f}x bare; "
              f"µs per item: {json.dumps({m: [round(v, 1) for v in vs] for m, vs in times.items()})}")
    # Negative control: export on the request path shows up above the limit, so the limit can catch it.
    assert sync > limit, "the negative control did not exceed the limit; the test cannot fail: " + detail
    assert ours <= limit, "per-item cost regressed (export work back on the request path?): " + detail
    print(detail)


@pytest.mark.parametrize(("what", "figure", "limit"), [
    ("request", "", GAIN_REQUEST_LIMIT), ("log", "", GAIN_LOG_LIMIT),
    ("request", "_cpu", GAIN_REQUEST_CPU_LIMIT), ("log", "_cpu", GAIN_LOG_CPU_LIMIT),
])
def test_adds_less_than_upstream(what, figure, limit, measured):
    """What otel_showmax adds per item stays below what upstream's batched set-up adds: on the calling
    thread (``figure`` ""), and in CPU of the whole process with the export included (``"_cpu"``)."""
    times = measured(what)
    # Paired within each round (the three runs of a round are seconds apart, so they share the
    # machine's state), then the median over rounds: one disturbed round moves neither.
    bare, ours, upstream = (times[mode + figure] for mode in ("bare", "ours", "upstream"))
    added = [(o - b, u - b) for b, o, u in zip(bare, ours, upstream, strict=True)]
    assert all(u > 0 for _, u in added), times
    ratio = statistics.median(o / u for o, u in added)
    kind = "process CPU" if figure else "calling-thread time"
    detail = (f"{what} {kind}: otel_showmax adds {ratio:.2f}x what upstream adds (median of rounds; "
              f"µs added per round, ours/upstream: {[(round(o), round(u)) for o, u in added]}); "
              f"µs per item: {json.dumps({m: [round(v, 1) for v in vs] for m, vs in times.items()})}")
    assert ratio <= limit, "the gain over upstream regressed: " + detail
    print(detail)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))))
