"""gunicorn settings for the benchmark: count requests served by the worker and report them at exit.

The count comes from a thin WSGI wrapper installed in every configuration alike (one function
call per request), so the runner can check that the receiver got one span per request served.
Each worker writes ``$BENCH_STATS.<pid>`` (JSON) when it exits.
"""

import gc
import json
import os
import time

# wrapper/setup configurations use otel_showmax's gunicorn hooks, as its README asks users to.
OTEL_SHOWMAX = os.environ.get("BENCH_OTEL_SHOWMAX") == "1"


def post_fork(server, worker):
    if OTEL_SHOWMAX:
        from otel_showmax import gunicorn as hooks

        hooks.post_fork(server, worker)

loglevel = "warning"
accesslog = None


def post_worker_init(worker):
    inner = worker.wsgi
    count = [0]

    def counted(environ, start_response):
        count[0] += 1
        return inner(environ, start_response)

    worker.wsgi = counted
    worker.bench_count = count
    worker.bench_gc = _gc_timer()


def _gc_timer():
    """Seconds the worker spends in the cyclic garbage collector, per generation."""
    spent = [0.0, 0.0, 0.0]
    counts = [0, 0, 0]
    started = [0.0]

    def callback(phase, info):
        if phase == "start":
            started[0] = time.thread_time()
        else:
            gen = info["generation"]
            spent[gen] += time.thread_time() - started[0]
            counts[gen] += 1

    gc.callbacks.append(callback)
    return {"seconds": spent, "collections": counts}


def worker_exit(server, worker):
    cpu = os.times()
    telemetry = None
    if os.environ.get("BENCH_DDTRACE") == "1":  # ddtrace-run: send what the tracer holds (as our hook does)
        from ddtrace.trace import tracer

        tracer.flush()
    if OTEL_SHOWMAX:
        import sys

        import otel_showmax
        from otel_showmax import gunicorn as hooks

        hub = sys.modules.get("otel_showmax._instrumentation.hub_monitor")  # benchmarks/hub_monitor.py
        monitor = hub.current() if hub is not None else None
        hub_monitor = {"running": monitor is not None, "blocks": monitor.blocks if monitor else 0,
                       "reports": monitor.reports if monitor else 0}
        hooks.worker_exit(server, worker)  # the final export
        telemetry = {"dropped": otel_showmax.dropped(), "hub_monitor": hub_monitor}
    path = os.environ.get("BENCH_STATS")
    if path:  # one file per worker: BENCH_STATS.<pid>
        write_stats(f"{path}.{os.getpid()}", worker, cpu.user + cpu.system, telemetry)


def write_stats(path, worker, cpu_s, telemetry):
    count = getattr(worker, "bench_count", [0])[0]
    with open(path, "w") as f:
        json.dump({"served": count, "pid": os.getpid(), "cpu_s": cpu_s, "gc": getattr(worker, "bench_gc", None),
                   "otel_showmax": telemetry}, f)
