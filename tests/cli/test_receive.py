"""``otel-showmax receive``: trace trees with correlated logs, and a receiver that survives abuse."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_showmax._cli.receive import TraceAssembler
from otel_showmax._cli.render import render_traces

DATA = Path(__file__).parents[1] / "data" / "render"


def fixture():
    data = json.loads((DATA / "two_services.json").read_text())
    return data["spans"], data["logs"]


def test_two_service_trace_renders_exactly_as_the_golden_file():
    spans, logs = fixture()
    assert render_traces(spans, logs) == (DATA / "two_services.txt").read_text(encoding="utf-8")


def test_rendering_does_not_depend_on_arrival_order():
    spans, logs = fixture()
    expected = render_traces(spans, logs)
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(spans)
        rng.shuffle(logs)
        assert render_traces(spans, logs) == expected


def test_a_span_received_twice_is_shown_once_and_counted():
    spans, logs = fixture()
    expected = render_traces(spans, logs).splitlines()
    again = render_traces([*spans, dict(spans[2])], logs).splitlines()  # at-least-once delivery resent it
    assert again[0] == expected[0] + " · 1 duplicate span received"
    assert again[1:] == expected[1:]


def test_errors_are_red_when_colour_is_on():
    spans, logs = fixture()
    coloured = render_traces(spans, logs, color=True)
    red = [line for line in coloured.splitlines() if "\x1b[31m" in line]
    assert len(red) == 4  # three failing spans and the ERROR log line
    assert all("ERROR" in line for line in red)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_trace_is_printed_once_quiet_with_its_root_or_after_max_wait():
    spans, logs = fixture()
    trace_1 = [s for s in spans if s["trace_id"].startswith("4bf9")]
    root = next(s for s in trace_1 if not s["parent_span_id"])
    children = [s for s in trace_1 if s is not root]
    out: list[str] = []
    clock = FakeClock()
    assembler = TraceAssembler(out.append, quiet=1.0, max_wait=5.0, clock=clock)
    assembler.add("spans", children)  # the callee's batch arrives first
    assembler.add("logs", [log for log in logs if log["trace_id"].startswith("4bf9")])
    clock.now += 2
    assert assembler.flush() == 0 and out == []  # no root yet, not quiet for max_wait
    assembler.add("spans", [root])
    clock.now += 0.5
    assert assembler.flush() == 0  # root present, but not quiet for a second yet
    clock.now += 0.6
    assert assembler.flush() == 1
    assert out == [render_traces(trace_1, [log for log in logs if log["trace_id"].startswith("4bf9")]) + "\n"]

    out.clear()
    assembler.add("spans", children[1:])  # a trace whose root never comes
    assembler.add("logs", [log for log in logs if not log["trace_id"]])
    clock.now += 1.1
    assert assembler.flush() == 0
    assert out and out[0].startswith("Logs without a span")
    clock.now += 5
    assert assembler.flush() == 1
    assert "(parent not received)" in out[1]


def post(port, body, headers):
    with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=5)) as conn:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf", **headers})
        response = conn.getresponse()
        response.read()
        return response.status


def send_two_service_trace(endpoint):
    """storefront (server span) calls catalogue (server span, failing, with a log under it)."""
    providers = {}
    for service in ("storefront", "catalogue"):
        tp = TracerProvider(resource=Resource.create({"service.name": service}))
        tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
        lp = LoggerProvider(resource=Resource.create({"service.name": service}))
        lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
        providers[service] = (tp, lp)
    front, back = providers["storefront"], providers["catalogue"]
    name = "GET /titles/{title_id}"
    with (
        front[0].get_tracer("t").start_as_current_span(name, kind=SpanKind.SERVER) as root,
        back[0].get_tracer("t").start_as_current_span(name, kind=SpanKind.SERVER) as inner,
    ):
        back[1].get_logger("catalogue.app").emit(body="title 7 not found", severity_number=SeverityNumber.ERROR,
                                                 severity_text="ERROR")
        inner.set_status(Status(StatusCode.ERROR, "KeyError"))
    for tp, lp in providers.values():
        tp.shutdown()
        lp.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


def test_receive_command_prints_trees_and_survives_malformed_and_oversized_posts(tmp_path):
    port_file, out_file, jsonl = tmp_path / "port", tmp_path / "out.txt", tmp_path / "got.jsonl"
    with open(out_file, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "otel_showmax.cli", "receive", "--port", "0", "--no-grpc", "--port-file",
             str(port_file), "--quiet", "0.3", "--no-color", "--jsonl", str(jsonl)],
            stdout=out, stderr=subprocess.PIPE, text=True,
        )
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        port = int(port_file.read_text())
        assert post(port, b"\x0a\xff\xff\xff\xff garbage", {}) == 400
        assert post(port, b"x" * 10, {"Content-Length": str(17 * 1024 * 1024)}) == 413
        assert post(port, b"\x1f\x8b not really gzip", {"Content-Encoding": "gzip"}) == 400
        trace_id = send_two_service_trace(f"http://127.0.0.1:{port}")  # still answering
        deadline = time.monotonic() + 10
        while f"Trace {trace_id}" not in out_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    lines = out_file.read_text().splitlines()
    header = lines.index(next(line for line in lines if line.startswith(f"Trace {trace_id}")))
    assert lines[header].endswith("· 1 error") and "2 services (catalogue, storefront)" in lines[header]
    assert lines[header + 1].startswith("storefront  GET /titles/{title_id}  ")
    assert lines[header + 2].startswith("└─ catalogue  GET /titles/{title_id}  ")
    assert lines[header + 2].endswith("ERROR: KeyError")
    assert lines[header + 3].strip().endswith("ERROR title 7 not found")
    assert len(jsonl.read_text().splitlines()) == 3
