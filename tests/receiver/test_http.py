"""The OTLP test receiver decodes exactly what the real OTLP exporters send, and survives abuse."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_showmax._receiver.decode import any_value
from otel_showmax._receiver.process import read_jsonl
from otel_showmax.receiver import Blackhole, OTLPGrpcReceiver, OTLPReceiver, ReceiverProcess, dead_port

RESOURCE = Resource.create({"service.name": "catalogue", "deployment.environment.name": "test"})


def tracer_provider(exporter):
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def logger_provider(exporter):
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider


def send_trace_and_logs(tracer_prov, logger_prov):
    """One server span with a child in error, a log inside the child and one outside any span."""
    tracer = tracer_prov.get_tracer("test-scope")
    otel_logger = logger_prov.get_logger("test-logs")
    with tracer.start_as_current_span(
        "GET /titles", kind=SpanKind.SERVER,
        attributes={"http.route": "/titles", "http.status": 500, "ratio": 0.5, "cached": False, "tags": ["a", "b"]},
    ) as root, tracer.start_as_current_span("db.query") as child:
        child.add_event("retry", {"attempt": 2})
        otel_logger.emit(body="query failed", severity_number=SeverityNumber.ERROR, severity_text="ERROR",
                         attributes={"code.function": "load"}, timestamp=1_700_000_000_000_000_000)
        child.set_status(Status(StatusCode.ERROR, "timeout"))
    otel_logger.emit(body={"event": "started", "workers": 2}, severity_number=SeverityNumber.INFO,
                     severity_text="INFO")
    return root, child


def check_trace_and_logs(received, root, child):
    spans = {s["name"]: s for s in received.spans}
    assert len(received.spans) == 2
    trace_id = f"{root.get_span_context().trace_id:032x}"
    r, c = spans["GET /titles"], spans["db.query"]
    assert r["trace_id"] == c["trace_id"] == trace_id
    assert r["span_id"] == f"{root.get_span_context().span_id:016x}"
    assert r["parent_span_id"] == ""
    assert c["parent_span_id"] == r["span_id"]
    assert r["kind"] == "SERVER" and c["kind"] == "INTERNAL"
    assert (r["status_code"], r["status_message"]) == ("UNSET", "")
    assert (c["status_code"], c["status_message"]) == ("ERROR", "timeout")
    assert r["attributes"] == {"http.route": "/titles", "http.status": 500, "ratio": 0.5, "cached": False,
                               "tags": ["a", "b"]}
    assert r["start_time_unix_nano"] == root.start_time and r["end_time_unix_nano"] == root.end_time
    assert [(e["name"], e["attributes"]) for e in c["events"]] == [("retry", {"attempt": 2})]
    assert r["resource"]["service.name"] == "catalogue"
    assert r["resource"]["deployment.environment.name"] == "test"
    assert r["scope"] == "test-scope"

    assert len(received.logs) == 2
    inside, outside = received.logs
    assert inside["body"] == "query failed"
    assert (inside["trace_id"], inside["span_id"]) == (trace_id, c["span_id"])
    assert (inside["severity_text"], inside["severity_number"]) == ("ERROR", 17)
    assert inside["attributes"] == {"code.function": "load"}
    assert inside["time_unix_nano"] == 1_700_000_000_000_000_000
    assert inside["scope"] == "test-logs"
    assert inside["resource"]["service.name"] == "catalogue"
    assert outside["body"] == {"event": "started", "workers": 2}
    assert (outside["trace_id"], outside["span_id"]) == ("", "")
    assert (outside["severity_text"], outside["severity_number"]) == ("INFO", 9)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_http_decodes_spans_and_logs_from_the_real_exporters(receiver, compression):
    tp = tracer_provider(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", compression=compression))
    lp = logger_provider(OTLPLogExporter(endpoint=f"{receiver.endpoint}/v1/logs", compression=compression))
    root, child = send_trace_and_logs(tp, lp)
    tp.shutdown()
    lp.shutdown()
    assert receiver.wait_for(spans=2, logs=2, timeout=5)
    check_trace_and_logs(receiver, root, child)
    assert receiver.requests == {"/v1/traces": 2, "/v1/logs": 2}


def test_grpc_decodes_spans_and_logs_from_the_real_exporters():
    with OTLPGrpcReceiver() as receiver:
        tp = tracer_provider(GrpcSpanExporter(endpoint=receiver.endpoint, insecure=True))
        lp = logger_provider(GrpcLogExporter(endpoint=receiver.endpoint, insecure=True))
        root, child = send_trace_and_logs(tp, lp)
        tp.shutdown()
        lp.shutdown()
        assert receiver.wait_for(spans=2, logs=2, timeout=5)
        check_trace_and_logs(receiver, root, child)
        assert receiver.requests["/opentelemetry.proto.collector.trace.v1.TraceService/Export"] == 2


def test_metrics_are_one_dict_per_data_point(receiver):
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{receiver.endpoint}/v1/metrics"),
                                           export_interval_millis=60_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    counter = provider.get_meter("test-meter").create_counter("requests", unit="1")
    counter.add(3, {"route": "/titles"})
    counter.add(1, {"route": "/health"})
    provider.force_flush()
    provider.shutdown()
    assert receiver.wait_for(metrics=2, timeout=5)
    points = {p["attributes"]["route"]: p for p in receiver.metrics if p["name"] == "requests"}
    assert {route: p["value"] for route, p in points.items()} == {"/titles": 3, "/health": 1}
    point = points["/titles"]
    assert (point["type"], point["unit"], point["is_monotonic"], point["scope"]) == ("sum", "1", True, "test-meter")
    assert point["resource"]["service.name"] == "catalogue"


def test_records_are_kept_raw_never_deduplicated(receiver):
    exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
    provider = tracer_provider(exporter)
    with provider.get_tracer("t").start_as_current_span("once") as span:
        pass
    exporter.export([span])  # the very same span a second time
    provider.shutdown()
    assert receiver.wait_for(spans=2, timeout=5)
    assert [s["span_id"] for s in receiver.spans] == [f"{span.get_span_context().span_id:016x}"] * 2
    receiver.clear()
    assert receiver.spans == [] and receiver.requests == {}
    assert receiver.wait_for(spans=1, timeout=0.2) is False


def test_any_value_converts_every_kind():
    value = AnyValue(kvlist_value=KeyValueList(values=[
        KeyValue(key="s", value=AnyValue(string_value="x")),
        KeyValue(key="i", value=AnyValue(int_value=-7)),
        KeyValue(key="d", value=AnyValue(double_value=1.25)),
        KeyValue(key="b", value=AnyValue(bool_value=True)),
        KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\xff")),
        KeyValue(key="list", value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue()]))),
    ]))
    assert any_value(value) == {"s": "x", "i": -7, "d": 1.25, "b": True, "raw": b"\x00\xff", "list": [1, None]}


def post(port, path, body, headers=None, timeout=5.0):
    with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)) as conn:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/x-protobuf", **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()


def valid_trace_request() -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "ok"
    return request.SerializeToString()


def test_malformed_and_oversized_bodies_are_rejected_and_the_receiver_keeps_answering():
    with OTLPReceiver(max_body=1024) as receiver:
        port = receiver.port
        assert post(port, "/v1/traces", b"\xff\xff\xff garbage")[0] == 400
        assert post(port, "/v1/traces", b"\x00" * 2048)[0] == 413
        assert post(port, "/v1/traces", gzip.compress(b"\x00" * 4096), {"Content-Encoding": "gzip"})[0] == 413
        assert post(port, "/v1/traces", b"not gzip", {"Content-Encoding": "gzip"})[0] == 400
        assert post(port, "/v1/traces", gzip.compress(valid_trace_request())[:-6], {"Content-Encoding": "gzip"})[0] == 400
        assert post(port, "/v1/traces", b"", {"Content-Encoding": "br"})[0] == 415
        assert post(port, "/v1/traces", b"{}", {"Content-Type": "application/json"})[0] == 415
        assert post(port, "/v1/nothing", valid_trace_request())[0] == 404
        with closing(socket.create_connection(("127.0.0.1", port))) as truncated:  # sender gives up mid-body
            truncated.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        chunked = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        with closing(socket.create_connection(("127.0.0.1", port), timeout=5)) as bad_chunks:
            bad_chunks.sendall(chunked)
            assert bad_chunks.recv(100).startswith(b"HTTP/1.1 400")
        assert receiver.spans == []
        status, headers, body = post(port, "/v1/traces", valid_trace_request())
        assert (status, headers["Content-Type"]) == (200, "application/x-protobuf")
        empty = trace_service_pb2.ExportTraceServiceResponse()
        assert trace_service_pb2.ExportTraceServiceResponse.FromString(body) == empty
        assert [(s["name"], s["trace_id"], s["span_id"]) for s in receiver.spans] == [("ok", "01" * 16, "02" * 8)]
        assert receiver.requests["/v1/traces"] == 10


def test_status_mode_answers_that_status_and_keeps_nothing(receiver):
    receiver.set_mode("status:503:2")
    status, headers, _ = post(receiver.port, "/v1/traces", valid_trace_request())
    assert (status, headers["Retry-After"]) == (503, "2")
    receiver.set_mode("status:429")
    status, headers, _ = post(receiver.port, "/v1/traces", valid_trace_request())
    assert status == 429 and "Retry-After" not in headers
    assert receiver.spans == [] and receiver.requests["/v1/traces"] == 2
    receiver.set_mode("live")
    assert post(receiver.port, "/v1/traces", valid_trace_request())[0] == 200
    assert len(receiver.spans) == 1
    with pytest.raises(ValueError, match="unknown receiver mode"):
        receiver.set_mode("status:abc")


def test_blackhole_mode_never_answers_and_does_not_block_stop():
    receiver = OTLPReceiver(mode="blackhole").start()
    with pytest.raises(TimeoutError):
        post(receiver.port, "/v1/traces", valid_trace_request(), timeout=0.5)
    assert receiver.requests["/v1/traces"] == 1 and receiver.spans == []
    with closing(socket.create_connection(("127.0.0.1", receiver.port))) as pending:
        pending.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        time.sleep(0.2)
        started = time.monotonic()
        receiver.stop()
        assert time.monotonic() - started < 2
        assert pending.recv(100) == b""  # closed unanswered


def test_blackhole_listener_accepts_and_stays_silent_and_dead_port_refuses():
    with Blackhole() as hole:
        assert hole.endpoint == f"http://127.0.0.1:{hole.port}"
        with closing(socket.create_connection(("127.0.0.1", hole.port), timeout=2)) as conn:
            conn.sendall(b"POST /v1/traces HTTP/1.1\r\n\r\n")
            conn.settimeout(0.3)
            with pytest.raises(TimeoutError):
                conn.recv(10)
        assert hole.accepted == 1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", dead_port()), timeout=2).close()


def test_grpc_fault_modes():
    with OTLPGrpcReceiver(mode="status:503") as receiver, grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(valid_trace_request())
        with pytest.raises(grpc.RpcError) as failed:
            stub.Export(request, timeout=5)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        receiver.set_mode("blackhole")
        with pytest.raises(grpc.RpcError) as failed:
            stub.Export(request, timeout=0.3)
        assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        receiver.set_mode("live")
        stub.Export(request, timeout=5)
        assert [s["name"] for s in receiver.spans] == ["ok"]


def test_jsonl_copy_is_written_per_request(tmp_path):
    path = tmp_path / "out.jsonl"
    with OTLPReceiver(jsonl_path=str(path)) as receiver:
        post(receiver.port, "/v1/traces", valid_trace_request())
        lines = [json.loads(line) for line in path.read_text().splitlines()]  # flushed already
    assert [(x["signal"], x["name"], x["span_id"]) for x in lines] == [("spans", "ok", "02" * 8)]
    assert read_jsonl(path)["spans"][0]["trace_id"] == "01" * 16


def test_receiver_process_runs_out_of_process_and_stops_by_pid():
    with ReceiverProcess(grpc=True) as proc:
        assert proc.pid != os.getpid()
        tp = tracer_provider(OTLPSpanExporter(endpoint=f"{proc.endpoint}/v1/traces"))
        tp.add_span_processor(SimpleSpanProcessor(GrpcSpanExporter(endpoint=proc.grpc_endpoint, insecure=True)))
        with tp.get_tracer("t").start_as_current_span("remote"):
            pass
        tp.shutdown()
        assert proc.wait_for(spans=2, timeout=5)
        proc.set_mode("status:503")
        assert post(proc.port, "/v1/traces", valid_trace_request())[0] == 503
        proc.set_mode("live")
        assert post(proc.port, "/v1/traces", valid_trace_request())[0] == 200
    received = proc.read_jsonl()  # kept after stop
    assert [s["name"] for s in received["spans"]] == ["remote", "remote", "ok"]
    assert received["logs"] == [] and received["metrics"] == []


def test_module_entry_point_writes_its_port_and_exits_cleanly_on_sigterm(tmp_path):
    port_file, jsonl = tmp_path / "port", tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "otel_showmax.receiver", "--port", "0", "--port-file", str(port_file),
                             "--jsonl", str(jsonl), "--mode", "status:503"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        port = int(port_file.read_text())
        assert post(port, "/v1/traces", valid_trace_request())[0] == 503
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert read_jsonl(jsonl) == {"spans": [], "logs": [], "metrics": []}


def test_otlp_json_lines_are_the_export_requests_with_hex_ids(tmp_path):
    path = tmp_path / "otlp.jsonl"
    with OTLPReceiver(otlp_json_path=str(path)) as receiver:
        post(receiver.port, "/v1/traces", valid_trace_request())
    [line] = path.read_text().splitlines()
    assert json.loads(line) == {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "01" * 16, "spanId": "02" * 8, "name": "ok"}]}]}]}
