"""Connectivity check for ``otel-showmax doctor``: one test item per configured OTLP endpoint.

Runs in a fresh process (``python -m otel_showmax._cli.probe`` reading the targets as JSON on stdin)
so that whatever the inspected app did to this interpreter — gevent monkey-patching, a gRPC
channel created before patching — cannot hang or skew the check.
"""

from __future__ import annotations

import gzip
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from typing import Any

__all__ = ["build_request", "probe", "probe_in_subprocess"]

TEST_NAME = "otel-showmax doctor connectivity check"


def build_request(signal: str, service_name: str) -> Any:
    """One export request for ``signal`` holding a single test span, log record or gauge point."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    now = time.time_ns()
    trace_id, span_id = os.urandom(16), os.urandom(8)
    service = KeyValue(key="service.name")
    service.value.string_value = service_name
    if signal == "traces":
        request: Any = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        rs.resource.attributes.append(service)
        span = rs.scope_spans.add().spans.add()
        span.trace_id, span.span_id, span.name = trace_id, span_id, TEST_NAME
        span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1000
    elif signal == "logs":
        request = ExportLogsServiceRequest()
        rl = request.resource_logs.add()
        rl.resource.attributes.append(service)
        record = rl.scope_logs.add().log_records.add()
        record.time_unix_nano = record.observed_time_unix_nano = now
        record.severity_number, record.severity_text = 9, "INFO"
        record.body.string_value = TEST_NAME
        record.trace_id, record.span_id = trace_id, span_id
    else:
        request = ExportMetricsServiceRequest()
        rm = request.resource_metrics.add()
        rm.resource.attributes.append(service)
        metric = rm.scope_metrics.add().metrics.add()
        metric.name = "otel_showmax.doctor.check"
        point = metric.gauge.data_points.add()
        point.time_unix_nano, point.as_int = now, 1
    return request


def _ssl_context(target: dict[str, Any]) -> ssl.SSLContext | None:
    if not target["endpoint"].startswith("https://"):
        return None
    context = ssl.create_default_context(cafile=target.get("certificate") or None)
    if target.get("client_certificate"):
        context.load_cert_chain(target["client_certificate"], target.get("client_key") or None)
    return context


def _http(target: dict[str, Any], body: bytes, timeout: float) -> tuple[bool, str]:
    headers = {"Content-Type": "application/x-protobuf", **dict(target.get("headers") or {})}
    if target.get("compression") == "gzip":
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    request = urllib.request.Request(target["endpoint"], data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_ssl_context(target)) as response:
            response.read()
            return 200 <= response.status < 300, f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"HTTP {error.code} {error.reason}"
    except urllib.error.URLError as error:
        return False, str(error.reason)
    except (OSError, ValueError) as error:
        return False, str(error) or type(error).__name__


def _grpc(target: dict[str, Any], request: Any, signal: str, timeout: float) -> tuple[bool, str]:
    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    endpoint = target["endpoint"]
    address = endpoint.split("://", 1)[-1].rstrip("/")
    if endpoint.startswith("https://") or target.get("certificate"):
        def read(path: str | None) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as f:
                return f.read()

        credentials = grpc.ssl_channel_credentials(read(target.get("certificate")), read(target.get("client_key")),
                                                   read(target.get("client_certificate")))
        channel = grpc.secure_channel(address, credentials)
    else:
        channel = grpc.insecure_channel(address)
    stub_class: Any = {"traces": trace_service_pb2_grpc.TraceServiceStub, "logs": logs_service_pb2_grpc.LogsServiceStub,
                  "metrics": metrics_service_pb2_grpc.MetricsServiceStub}[signal]
    with channel:
        try:
            stub_class(channel).Export(request, timeout=timeout, metadata=list((target.get("headers") or {}).items()))
            return True, "gRPC OK"
        except grpc.RpcError as error:
            return False, f"gRPC {error.code().name}: {error.details()}"


def probe(target: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one test item to ``target`` (signal, protocol, endpoint, headers …); report the answer."""
    request = build_request(target["signal"], target.get("service_name") or "otel-showmax-doctor")
    started = time.perf_counter()
    if target["protocol"] == "grpc":
        ok, answer = _grpc(target, request, target["signal"], timeout)
    else:
        ok, answer = _http(target, request.SerializeToString(), timeout)
    return {**target, "headers": sorted(target.get("headers") or {}), "ok": ok, "answer": answer,
            "ms": round((time.perf_counter() - started) * 1000, 1)}


def probe_in_subprocess(targets: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Run ``probe`` for each target in a fresh interpreter; a hung probe is reported, not waited on."""
    import subprocess

    payload = json.dumps({"targets": targets, "timeout": timeout})
    try:
        done = subprocess.run([sys.executable, "-m", "otel_showmax._cli.probe"], input=payload, capture_output=True,
                              text=True, timeout=timeout * max(1, len(targets)) + 15)
        return json.loads(done.stdout)
    except (subprocess.TimeoutExpired, ValueError) as error:
        return [{**t, "headers": sorted(t.get("headers") or {}), "ok": False, "answer": f"probe failed: {error}",
                 "ms": None} for t in targets]


if __name__ == "__main__":
    spec = json.load(sys.stdin)
    json.dump([probe(t, spec["timeout"]) for t in spec["targets"]], sys.stdout)
