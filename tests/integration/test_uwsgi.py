"""The catalogue on real uWSGI with gevent: every request's span and log arrive once, also at stop.

uWSGI ``--gevent 100``, master + 2 workers, HTTP on a free port, otel_showmax configured by the
``setup()`` call in catalogue.py (which installs the uWSGI hooks by itself). uWSGI forks in C and,
in gevent mode, never runs Python's ``atexit`` handlers in a worker: upstream OpenTelemetry, which
flushes from ``atexit``, loses what is queued when a worker stops — the negative control below
shows it in the same test run.

Stop methods (plain SIGTERM means *reload* to uWSGI 2.0): each test names the one it uses —
``--die-on-term`` + SIGTERM, SIGINT, or the master FIFO's ``q`` (graceful shutdown).
"""

from __future__ import annotations

import time

import pytest

from otel_showmax.receiver import ReceiverProcess
from tests.integration._servers import (
    HERE,
    app_logs,
    assert_exactly_once,
    drive,
    pids,
    start_uwsgi,
    telemetry_env,
)

pytestmark = pytest.mark.integration

N = 120


@pytest.mark.guarantee
@pytest.mark.parametrize(
    ("lazy_apps", "stop"),
    [(True, "SIGTERM"), (False, "SIGINT")],
    ids=["lazy-apps/die-on-term+SIGTERM", "no-lazy-apps/SIGINT"],
)
def test_gevent_workers_export_each_request_once(lazy_apps, stop, tmp_path):
    with ReceiverProcess() as receiver:
        # Metrics on too: no reader thread may run in a master that forks (see otel_showmax.uwsgi).
        env = telemetry_env(receiver.endpoint, OTEL_METRICS_EXPORTER="otlp")
        with start_uwsgi(env, tmp_path / "uwsgi.log", lazy_apps=lazy_apps, die_on_term=stop == "SIGTERM") as server:
            sent = drive(server.base_url, N)
            workers = server.worker_pids()
            server.stop(stop)
        received = receiver.read_jsonl()

    assert sum(sent.values()) - sent["/health"] == N
    assert len(workers) == 2, server.text()[-3000:]
    spans, _ = assert_exactly_once(received, "catalogue", N, workers)
    # Each span names the worker that served it (assert_exactly_once: only worker pids). uWSGI's
    # accept is first come, first served: under a loaded CI machine one gevent worker may take every
    # connection, so "both served" is not asserted here (tests/integration/test_whole_service.py checks
    # it over 2 workers on gunicorn).
    assert pids(spans) <= set(workers) and pids(spans), "each span reported its own worker's process.pid"
    assert server.master_pid not in pids(spans)
    app = [lg for lg in app_logs(received, "catalogue", "catalogue") if "app loaded" not in lg["body"]]
    assert len(app) == N
    if not lazy_apps:  # configured in the master: otel_showmax says so once
        assert "configured in the uWSGI master (no lazy-apps, no py-call-uwsgi-fork-hooks)" in server.text()


@pytest.mark.parametrize(
    ("lazy_apps", "stop"),
    [(True, "fifo"), (False, "SIGINT")],
    ids=["lazy-apps/master-fifo-q", "no-lazy-apps/SIGINT"],
)
def test_long_batch_delay_everything_queued_arrives_at_stop(lazy_apps, stop, tmp_path):
    """Batch delays of ten minutes: nothing leaves on schedule, only the exit path can deliver."""
    with ReceiverProcess() as receiver:
        env = telemetry_env(receiver.endpoint, long_delay=True)
        with start_uwsgi(env, tmp_path / "uwsgi.log", lazy_apps=lazy_apps, die_on_term=False, fifo=True) as server:
            drive(server.base_url, N)
            workers = server.worker_pids()
            time.sleep(0.5)
            before = receiver.read_jsonl()
            server.stop(stop)
        received = receiver.read_jsonl()

    # Nothing left on schedule: everything below was sent by the exit path.
    assert before["spans"] == [] and before["logs"] == []
    assert_exactly_once(received, "catalogue", N, workers)
    loaded = [lg for lg in app_logs(received, "catalogue", "catalogue") if "app loaded" in lg["body"]]
    if lazy_apps:  # each worker loaded the app (and configured telemetry) itself
        assert sorted(pids(loaded)) == sorted(set(workers))
    else:
        # The master loaded it. Known limitation: uWSGI 2.0's master runs neither uwsgi.atexit nor
        # Python's atexit when it stops, and otel_showmax starts no export thread there (a worker
        # forked while a master thread holds the GIL would hang), so the master's own line is lost.
        assert loaded == []


def test_upstream_opentelemetry_loses_what_is_queued_at_stop(tmp_path):
    """Negative control, same conditions with plain upstream OpenTelemetry (no otel_showmax).

    With a short batch delay upstream delivers every span and log (the set-up works); with the long
    delay, everything still queued when the workers stop is lost: uWSGI's gevent workers exit
    without running Python's atexit handlers, where upstream flushes.
    """
    results = {}
    for delay in ("short", "long"):
        with ReceiverProcess() as receiver:
            env = telemetry_env(receiver.endpoint, service_name="upstream", long_delay=delay == "long",
                                OTEL_PYTHON_FALCON_EXCLUDED_URLS="health")
            with start_uwsgi(env, tmp_path / f"upstream-{delay}.log", module="_upstream_app", lazy_apps=True,
                             pythonpath=[HERE]) as server:
                drive(server.base_url, N, mix=(("/titles", 200),))
                if delay == "short":
                    assert receiver.wait_for(spans=N, logs=N, timeout=10), receiver.read_jsonl().keys()
                server.stop("SIGTERM")  # die-on-term + SIGTERM
            received = receiver.read_jsonl()
        spans = [s for s in received["spans"] if s["kind"] == "SERVER"]
        logs = [lg for lg in received["logs"] if lg["scope"] == "catalogue"]
        results[delay] = (len(spans), len(logs))

    assert results["short"] == (N, N), results
    assert results["long"] == (0, 0), results


@pytest.mark.parametrize(
    ("lazy_apps", "stop"),
    [(True, "SIGTERM"), (False, "fifo")],
    ids=["lazy-apps/die-on-term+SIGTERM", "no-lazy-apps/master-fifo-q"],
)
def test_max_requests_recycling_loses_nothing(lazy_apps, stop, tmp_path):
    """Workers recycled every 20 requests, long batch delay: each recycled worker flushes on its way out.

    (``min-worker-lifetime 0``: uWSGI otherwise keeps a worker for at least 10 s whatever max-requests says.)
    """
    n = 80
    with ReceiverProcess() as receiver:
        env = telemetry_env(receiver.endpoint, long_delay=True)
        with start_uwsgi(env, tmp_path / "uwsgi.log", lazy_apps=lazy_apps, die_on_term=stop == "SIGTERM",
                         fifo=stop == "fifo", extra=["--max-requests", "20", "--min-worker-lifetime", "0"]) as server:
            drive(server.base_url, n, concurrency=4)
            server.stop(stop)
            workers = server.worker_pids()
        received = receiver.read_jsonl()

    assert len(set(workers)) > 3, "workers were recycled during the test"
    spans, _ = assert_exactly_once(received, "catalogue", n, workers)
    assert len(pids(spans)) > 2, pids(spans)
