"""``otel-showmax receive`` as a process: hostile spans are printed escaped, it answers and carries on."""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otel_showmax._receiver.http import DEFAULT_MAX_BODY, DEFAULT_MAX_THREADS
from otel_showmax._receiver.limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITEMS
from otel_showmax.cli import build_parser

from ..receiver._wire import exchange, post_bytes, post_status, status_of

ESC_NAME = "name\x1b[2J\x1b]0;pwned\x07\nline two"


def hostile_traces() -> bytes:
    """A self-parent, a 2-cycle, a 1,100-deep chain and escape sequences in names and services."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    service = resource_spans.resource.attributes.add()
    service.key, service.value.string_value = "service.name", "svc\x1b[31m"
    spans = resource_spans.scope_spans.add().spans

    def add(trace: int, span_id: int, parent: int, name: str) -> None:
        span = spans.add()
        span.trace_id, span.span_id, span.name = trace.to_bytes(16, "big"), span_id.to_bytes(8, "big"), name
        span.parent_span_id = parent.to_bytes(8, "big") if parent else b""
        span.start_time_unix_nano, span.end_time_unix_nano = 1_000 + span_id, 2_000 + span_id

    add(1, 7, 7, "self-parent")
    add(2, 1, 2, "cycle-a")
    add(2, 2, 1, "cycle-b")
    for i in range(1, 1101):
        add(3, i, i - 1, f"level-{i}")
    add(4, 1, 0, ESC_NAME)
    return request.SerializeToString()


def hostile_log() -> bytes:
    request = logs_service_pb2.ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "log\x1b[1A\x1b[2Kbody\r\x9b"
    record.severity_text = "INFO\x1b[8m"
    return request.SerializeToString()


def start(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen, int, Path]:
    port_file, out_file = tmp_path / "port", tmp_path / "out.txt"
    with open(out_file, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "otel_showmax.cli", "receive", "--port", "0", "--no-grpc",
                                 "--port-file", str(port_file), "--quiet", "0.2", *flags],
                                stdout=out, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while not port_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    return proc, int(port_file.read_text()), out_file


def stop(proc: subprocess.Popen) -> str:
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    return stderr


def wait_for_text(path: Path, *needles: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(encoding="utf-8", errors="replace")  # the last line may be half written
        if all(n in text for n in needles) or time.monotonic() > deadline:
            return text


def test_receive_prints_hostile_traces_escaped_and_keeps_running(tmp_path):
    proc, port, out_file = start(tmp_path, "--no-color")
    try:
        assert post_status(port, hostile_traces()) == 200
        assert post_status(port, hostile_log(), path="/v1/logs") == 200
        wait_for_text(out_file, "self-parent", "cycle-b", "level-1100", "line two", "body")
        time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert post_status(port, b"") == 200  # still answering
    finally:
        stderr = stop(proc)
    assert proc.returncode == 0, stderr
    text = out_file.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text and "\r" not in text
    assert "name\\x1b[2J\\x1b]0;pwned\\x07\\x0aline two" in text and "svc\\x1b[31m" in text
    assert "log\\x1b[1A\\x1b[2Kbody\\x0d\\x9b" in text
    assert not any(line.startswith("line two") for line in text.splitlines())
    for name in ("self-parent", "cycle-a", "cycle-b", "level-1 ", "level-1100"):
        assert len(re.findall(rf"\b{name}", text)) == 1, name


def test_receive_limits_are_flags(tmp_path):
    proc, port, out_file = start(tmp_path, "--no-color", "--max-body", "262144", "--max-items", "5000",
                                 "--max-depth", "16", "--max-threads", "4")
    try:
        answer = exchange(port, post_bytes(b"\x0a\x00" * 6000))
        assert status_of(answer) == 413 and b"max_items=5000" in answer
        answer = exchange(port, post_bytes(gzip.compress(b"\x0a\x00" * 200_000), headers={"Content-Encoding": "gzip"}))
        assert status_of(answer) == 413 and b"max_body=262144" in answer
        assert post_status(port, hostile_traces()) == 200  # 1,102 messages, 5 deep
        wait_for_text(out_file, "level-1100")
    finally:
        stderr = stop(proc)
    assert proc.returncode == 0, stderr


def test_receive_flag_defaults_are_the_receiver_defaults():
    args = build_parser().parse_args(["receive"])
    assert (args.max_body, args.max_items, args.max_depth, args.max_threads) == (
        DEFAULT_MAX_BODY, DEFAULT_MAX_ITEMS, DEFAULT_MAX_DEPTH, DEFAULT_MAX_THREADS)
    done = subprocess.run([sys.executable, "-m", "otel_showmax.cli", "receive", "--max-items", "0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--max-items" in done.stderr and "not > 0" in done.stderr
