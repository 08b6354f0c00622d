"""CPU per OTLP/HTTP export: upstream's requests transport against its urllib3 transport.

    .venv/bin/python benchmarks/transport.py

Posts the same ExportTraceServiceRequest bodies (empty and ~260 KB, about a batch of 512 spans) to a
live receiver in its own process, alternating the two transports over rounds; prints the calling
thread's CPU per export (medians). otel_showmax switches plain-http endpoints to urllib3
(otel_showmax/_export/otlp_http.py, use_urllib3).
"""

from __future__ import annotations

import os
import statistics
import time

from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_showmax.receiver import ReceiverProcess

ROUNDS, CALLS = 5, 40


def body(size: int) -> bytes:
    request = ExportTraceServiceRequest()
    if size:
        scope = request.resource_spans.add().scope_spans.add()
        for _ in range(size // 600):
            span = scope.spans.add()
            span.name, span.trace_id, span.span_id = "x" * 500, os.urandom(16), os.urandom(8)
    return request.SerializeToString()


def main() -> None:
    receiver = ReceiverProcess().start()
    try:
        endpoint = receiver.endpoint.rstrip("/") + "/v1/traces"
        with_requests = OTLPSpanExporter(endpoint=endpoint)
        with_urllib3 = OTLPSpanExporter(endpoint=endpoint)
        with_urllib3._client._transport = Urllib3HTTPTransport(verify=True)
        print("| body bytes | requests: CPU ms per export | urllib3: CPU ms per export |\n|---|---|---|")
        for size in (0, 300_000):
            data = body(size)
            spent: dict[str, list[float]] = {"requests": [], "urllib3": []}
            for _ in range(ROUNDS):
                for name, exporter in (("requests", with_requests), ("urllib3", with_urllib3)):
                    assert exporter._client.export(data).success
                    start = time.thread_time()
                    for _ in range(CALLS):
                        exporter._client.export(data)
                    spent[name].append((time.thread_time() - start) / CALLS * 1e3)
            print(f"| {len(data):,} | {statistics.median(spent['requests']):.3f} | "
                  f"{statistics.median(spent['urllib3']):.3f} |")
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
