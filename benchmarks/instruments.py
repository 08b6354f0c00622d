"""µs per histogram measurement: the SDK's Histogram.record against otel_showmax._instrumentation.instruments.

    .venv/bin/python benchmarks/instruments.py             # 7 alternated rounds of 20000 calls
    .venv/bin/python benchmarks/instruments.py --quick     # 3 rounds of 5000
    .venv/bin/python benchmarks/instruments.py --json      # one JSON object instead of the table

Each variant records into its own MeterProvider (one cumulative InMemoryMetricReader, as the OTLP
exporters' default) the duration histogram's 8 default-semconv attributes, cycling over 20 target
paths, with a sampled span in context (so the default trace_based filter offers exemplars) or
without. Variants alternate in every round; the report gives the median µs per call. Collections run
between rounds, untimed; at the end every variant's points must equal the SDK's (counts, sums, buckets).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_showmax._instrumentation.instruments import BoundHistogram, attribute_key

SETS = 20
VARIANTS = {
    "sdk": "SDK Histogram.record(value, dict, ctx)",
    "fast": "BoundHistogram.record(value, dict, ctx)",
    "fast_key": "BoundHistogram.record_key(value, key, ctx), key precomputed",
}


def attrs(i: int) -> dict[str, Any]:
    return {
        "http.method": "GET", "http.scheme": "http", "http.flavor": "1.1", "http.server_name": "localhost",
        "net.host.port": 8000, "http.status_code": 200 if i % 5 else 404, "http.target": f"/titles/{i}",
        "net.host.name": "127.0.0.1",
    }


def context(sampled: bool) -> Any:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return trace.set_span_in_context(NonRecordingSpan(SpanContext(0xABC, 0xDEF, False, flags)))


def make(variant: str) -> tuple[InMemoryMetricReader, Any]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    hist = provider.get_meter("bench").create_histogram("http.server.duration", unit="ms")
    if variant == "sdk":
        return reader, hist.record
    wrapper = BoundHistogram(hist)
    return reader, wrapper.record if variant == "fast" else wrapper.record_key


def timed(record: Any, n: int, args: list[tuple[Any, Any]], ctx: Any) -> float:
    gc.collect()
    values = [(i * 37) % 3000 for i in range(len(args))]
    t0 = time.perf_counter()
    for i in range(n):
        k = i % len(args)
        record(values[k], args[k][0], ctx)
    return (time.perf_counter() - t0) / n * 1e6


def points(reader: InMemoryMetricReader) -> list[tuple]:
    data = reader.get_metrics_data()
    found = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    return sorted((sorted(p.attributes.items()), p.count, p.sum, p.bucket_counts, p.min, p.max) for p in found)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--calls", type=int)
    opts = parser.parse_args()
    rounds = opts.rounds or (3 if opts.quick else 7)
    calls = opts.calls or (5000 if opts.quick else 20000)
    dicts = [attrs(i) for i in range(SETS)]
    per_variant = {"sdk": [(d, None) for d in dicts], "fast": [(d, None) for d in dicts],
                   "fast_key": [(attribute_key(d), None) for d in dicts]}
    results: dict[str, dict[str, float]] = {}
    for sampled in (True, False):
        ctx = context(sampled)
        made = {v: make(v) for v in VARIANTS}
        for variant, (_, record) in made.items():  # warm up: build the caches, SDK aggregations
            timed(record, SETS * 3, per_variant[variant], ctx)
        samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(rounds):
            for variant, (reader, record) in made.items():
                samples[variant].append(timed(record, calls, per_variant[variant], ctx))
                reader.collect()
        expected = points(made["sdk"][0])
        for variant, (reader, _) in made.items():
            assert points(reader) == expected, f"{variant}: points differ from the SDK's"
        label = "sampled span" if sampled else "no sampled span"
        results[label] = {v: statistics.median(s) for v, s in samples.items()}
    if opts.json:
        print(json.dumps({"rounds": rounds, "calls": calls, "python": sys.version.split()[0], "us": results}))
        return
    print(f"{rounds} alternated rounds x {calls} calls, median µs per measurement (8 attributes, {SETS} sets)")
    for label, row in results.items():
        print(f"\n{label}:")
        for variant, us in row.items():
            ratio = us / row["sdk"]
            print(f"  {variant:9s} {us:7.2f} µs  ({ratio:4.2f}x)  {VARIANTS[variant]}")


if __name__ == "__main__":
    main()
