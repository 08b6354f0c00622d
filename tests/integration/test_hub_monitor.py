"""The hub-block monitor on real servers: gunicorn -k gevent and uWSGI --gevent, one worker each.

The service (``_hub_app.py``) has a route that blocks the hub with an unpatched 300 ms sleep, one
that sleeps cooperatively for as long (the negative control), and one that logs through the seed's
bug: a remote logging handler that sends the line on an unpatched socket to a log server (here, in
this test process) which acknowledges after 300 ms. The receiver runs in its own process. Each
block must give exactly one report tied to its request: a ``gevent.hub.block`` span under the
request's server span, one WARNING record with the request's trace and span ids (exported and in
the local JSON lines), one histogram point; the cooperative requests none.
"""

from __future__ import annotations

import os
import socketserver
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from otel_showmax.receiver import ReceiverProcess
from tests.integration._servers import HERE, ROOT, get, server_spans, start_gunicorn, start_uwsgi, telemetry_env

pytestmark = pytest.mark.integration

SERVICE = "hubapp"
MONITOR_LOGGER = "otel_showmax.hub_monitor"
APP_FILE = str(HERE / "_hub_app.py")  # not imported here: it configures telemetry when imported


def route(span: dict) -> str:
    """``/block`` for a server span named ``GET /block``."""
    return span["name"].split(" ", 1)[-1]


def marked_line(name: str) -> int:
    """The line number of ``# MARK: <name>`` in the app."""
    lines = Path(APP_FILE).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.rstrip().endswith(f"# MARK: {name}"))
ACK_DELAY = 0.3


class _SlowAck(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()
        time.sleep(ACK_DELAY)
        self.wfile.write(b"ok\n")


class LogServer(socketserver.ThreadingTCPServer):
    """A remote log collector on 127.0.0.1 that reads a line and acknowledges it after ACK_DELAY."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SlowAck)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> LogServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def _start(kind: str, env: dict[str, str], output: Path):
    if kind == "gunicorn":
        return start_gunicorn(env, output, app="tests.integration._hub_app:app", workers=1)
    return start_uwsgi(env, output, module="tests.integration._hub_app", workers=1, lazy_apps=False,
                       pythonpath=[ROOT])


@pytest.mark.parametrize("kind", ["gunicorn", "uwsgi"])
def test_each_block_is_reported_once_with_its_request(kind, tmp_path):
    with ReceiverProcess() as receiver, LogServer() as log_server:
        env = telemetry_env(receiver.endpoint, SERVICE, OTEL_METRICS_EXPORTER="otlp",
                            OTEL_METRIC_EXPORT_INTERVAL="300",
                            HUB_TEST_LOG_SERVER=f"127.0.0.1:{log_server.server_address[1]}")
        with _start(kind, env, tmp_path / f"{kind}.log") as server:
            base = server.base_url
            assert get(base + "/ok")[0] == 200  # the first traced request (starts the monitor in uWSGI)
            time.sleep(0.3)  # the hub's heartbeat is running
            with ThreadPoolExecutor(max_workers=2) as pool:
                waiting = pool.submit(get, base + "/wait")  # in flight while /block holds the hub
                time.sleep(0.2)
                assert get(base + "/block")[0] == 200
                assert waiting.result(timeout=10)[0] == 200
            for path in ("/block", "/coop", "/coop", "/slowlog", "/spawn"):
                assert get(base + path)[0] == 200, path
            time.sleep(0.5)  # the background greenlet blocks after /spawn answered
            assert get(base + "/monitor") == (200, b'{"running": true}')
            assert receiver.wait_for(spans=12, logs=4, timeout=15)
            time.sleep(1.0)  # one more metric export, and anything reported twice would be here
            workers = server.worker_pids()
            master = server.master_pid
            master_threads = len(os.listdir(f"/proc/{master}/task")) if kind == "uwsgi" else None
            server.stop("SIGTERM")
        received = receiver.read_jsonl()

    served = Counter(route(s) for s in server_spans(received, SERVICE))
    assert served == {"/ok": 1, "/wait": 1, "/block": 2, "/coop": 2, "/slowlog": 1, "/spawn": 1, "/monitor": 1}, \
        server.text()[-3000:]
    by_trace = {s["trace_id"]: s for s in server_spans(received, SERVICE)}

    blocks = [s for s in received["spans"] if s["name"] == "gevent.hub.block"]
    reports = [lg for lg in received["logs"] if lg["scope"] == MONITOR_LOGGER]
    # The background greenlet's block: reported without trace ids, naming the greenlet, no span.
    (background,) = [lg for lg in reports if not lg["trace_id"]]
    reports.remove(background)
    assert background["span_id"] == ""
    assert background["attributes"]["gevent.greenlet"] == f"nightly_cleanup (_hub_app.py:{marked_line('cleanup')})"
    assert background["attributes"]["code.line.number"] == marked_line("background")
    assert "by greenlet nightly_cleanup (" in background["body"]
    # Exactly one report per blocking request, none for any other request (nor outside requests).
    assert sorted(route(by_trace[b["trace_id"]]) for b in blocks) == [
        "/block", "/block", "/slowlog"], [b["attributes"] for b in blocks]
    assert sorted(route(by_trace[lg["trace_id"]]) for lg in reports) == [
        "/block", "/block", "/slowlog"], [lg["body"] for lg in reports]
    for block in blocks:
        request = by_trace[block["trace_id"]]
        assert block["parent_span_id"] == request["span_id"]
        assert request["start_time_unix_nano"] <= block["start_time_unix_nano"] <= request["end_time_unix_nano"]
        attrs = block["attributes"]
        duration = (block["end_time_unix_nano"] - block["start_time_unix_nano"]) / 1e9
        assert 0.27 <= duration <= 0.33, duration
        assert attrs["code.file.path"] == APP_FILE
        if route(request) == "/block":
            assert attrs["code.line.number"] == marked_line("block")
            assert attrs["code.function.name"] == "Block.on_get"
        else:  # the seed's bug: the remote handler's synchronous round trip, inside the request
            assert attrs["code.line.number"] == marked_line("remote-ack")
            assert attrs["code.function.name"] == "RemoteLogHandler.emit"
    waited = sorted(b["attributes"]["gevent.hub.block.waiting_requests"] for b in blocks)
    assert waited == [0, 0, 1], "the first /block held the hub while /wait was in flight"

    for report in reports:  # the WARNING record carries its request's server span ids
        request = by_trace[report["trace_id"]]
        assert report["span_id"] == request["span_id"]
        assert report["severity_text"] == "WARN"
        assert f"{APP_FILE}:" in report["body"] and "gevent hub blocked for 0." in report["body"]
    # ... and so do the local log lines
    local = [line for line in server.json_lines() if line.get("logger") == MONITOR_LOGGER]
    assert sorted(line["trace_id"] for line in local) == sorted(["", *(lg["trace_id"] for lg in reports)]), local

    points = [m for m in received["metrics"] if m["name"] == "gevent.hub.block.duration"]
    assert points and {m["unit"] for m in points} == {"s"}
    latest: dict[tuple, dict] = {}
    for point in sorted(points, key=lambda m: m["time_unix_nano"]):
        latest[tuple(sorted(point["attributes"].items()))] = point
    counts = {dict(key)["code.line.number"]: p["count"] for key, p in latest.items()}
    assert counts == {marked_line("block"): 2, marked_line("remote-ack"): 1, marked_line("background"): 1}, counts

    assert len(workers) == 1
    if kind == "uwsgi":
        assert master_threads == 1, "no thread in the uWSGI master (it forks workers from C)"
