"""The catalogue on real gunicorn: exactly one server span and one request log per request.

gunicorn ``-k gevent -w 2`` with and without ``--preload``, configured by ``opentelemetry-instrument``
or by ``otel_showmax.setup()`` in the app; stopped with SIGTERM to the master (gunicorn's graceful
stop: workers finish, run the ``worker_exit`` hook from the example's gunicorn.conf.py, exit).
The receiver runs in its own process. sync and gthread workers are checked too.
"""

from __future__ import annotations

import pytest

from otel_showmax.receiver import ReceiverProcess
from tests.integration._servers import app_logs, assert_exactly_once, drive, pids, start_gunicorn, telemetry_env

pytestmark = pytest.mark.integration

N = 120


# Two of the four combinations are guarantee tests, run on every matrix leg: the wrapper configuring
# a --preload master that then forks, and setup() in each worker.
@pytest.mark.parametrize(("entry", "preload"), [
    pytest.param("wrapper", False, id="wrapper-no-preload"),
    pytest.param("wrapper", True, id="wrapper-preload", marks=pytest.mark.guarantee),
    pytest.param("setup", False, id="setup-no-preload", marks=pytest.mark.guarantee),
    pytest.param("setup", True, id="setup-preload"),
])
def test_gevent_workers_export_each_request_once(entry, preload, tmp_path):
    with ReceiverProcess() as receiver:
        env = telemetry_env(receiver.endpoint)
        server = start_gunicorn(env, tmp_path / "gunicorn.log", preload=preload, wrapper=entry == "wrapper")
        with server:
            sent = drive(server.base_url, N)
            workers = server.worker_pids()
            server.stop("SIGTERM")
        received = receiver.read_jsonl()

    assert sum(sent.values()) - sent["/health"] == N
    assert len(workers) == 2, server.text()[-3000:]
    spans, _ = assert_exactly_once(received, "catalogue", N, workers)
    assert pids(spans) == set(workers), "both workers served and each reported its own process.pid"
    # One application log line per request, too, tied to the same trace.
    app = [lg for lg in app_logs(received, "catalogue", "catalogue") if "app loaded" not in lg["body"]]
    assert len(app) == N
    assert {lg["trace_id"] for lg in app} == {s["trace_id"] for s in spans}
    # Who configured telemetry, and where: the wrapper in the master, or setup() where the app loads.
    loaded = [line for line in server.json_lines() if "app loaded" in line.get("message", "")]
    assert loaded, server.text()[-3000:]
    expected = "opentelemetry-instrument" if entry == "wrapper" else "setup()"
    assert all(f"configured by {expected}" in line["message"] for line in loaded), loaded
    assert "asked for a different configuration" not in server.text()
    assert server.stop_seconds is not None and server.stop_seconds < 10


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_sync_and_gthread_workers(worker_class, tmp_path):
    n = 60
    with ReceiverProcess() as receiver:
        env = telemetry_env(receiver.endpoint, long_delay=True)
        server = start_gunicorn(env, tmp_path / "gunicorn.log", worker_class=worker_class)
        with server:
            drive(server.base_url, n, concurrency=4)
            workers = server.worker_pids()
            server.stop("SIGTERM")
        received = receiver.read_jsonl()

    assert len(workers) == 2
    spans, _ = assert_exactly_once(received, "catalogue", n, workers)
    assert len(pids(spans)) >= 1
