"""Our fast paths checked against the installed OpenTelemetry, once per process, at ``setup()``.

Each fast path that rests on upstream internals is run side by side with upstream's public path on
a small sample (a few milliseconds in all): the OTLP encoder (spans with events, links and every
attribute type; log records), the log bridge's direct encoding, the bound metric instruments, the
OTLP/HTTP exporters' hand-over of our bytes, and the instrumentation-falcon helpers the traced app
uses. A fast path whose output differs, or that raises, is turned off — upstream's public path is
used for that piece — and ONE warning names what fell back and the installed versions. An
OpenTelemetry outside the supported range (docs/versions.md) gets one warning and the public path
for everything. ``get_config().upstream`` and ``otel-showmax doctor`` report the result.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import _diag, _upstream

__all__ = ["CHECKS", "UpstreamReport", "report", "reset", "run"]

ON = "on"


@dataclass
class UpstreamReport:
    """The installed OpenTelemetry versions and which of our fast paths are on (``on``, or why not)."""

    versions: dict[str, str] = field(default_factory=dict)
    out_of_range: dict[str, str] = field(default_factory=dict)
    """Installed packages outside the supported ranges, with their versions."""
    fast_paths: dict[str, str] = field(default_factory=dict)
    """Fast path → ``on``, or ``off: <why>`` (upstream's public path is used for it)."""
    milliseconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"versions": dict(self.versions), "out_of_range": dict(self.out_of_range),
                "fast_paths": dict(self.fast_paths), "milliseconds": round(self.milliseconds, 2),
                "supported": {"opentelemetry": _range(_upstream.SDK_RANGE),
                              "instrumentation": _range(_upstream.INSTRUMENTATION_RANGE, beta=True)}}


def _range(bounds: tuple[tuple[int, int], tuple[int, int]], beta: bool = False) -> str:
    (a, b), (c, d) = bounds
    return f"{a}.{b}b0-{c}.{d}bN" if beta else f"{a}.{b}-{c}.{d}"


# -- samples ----------------------------------------------------------------------------------------

_ATTRIBUTES: dict[str, Any] = {
    "s": "text ü", "b": True, "i": -7, "big": 2**62, "f": 0.25, "e": "",
    "ss": ("a", "b"), "bs": (True, False), "is": (1, 2, 3), "fs": (1.5, -2.0),
}


def _sample_spans() -> list[Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        set_span_in_context,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "check", "n": 1}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("otel_showmax.check", "1.0", schema_url="https://opentelemetry.io/schemas/1.11.0")
    other = provider.get_tracer("otel_showmax.other")
    remote = SpanContext(0x1234567890ABCDEF1234567890ABCDEF, 0x1234567890ABCDEF, True, TraceFlags(1))
    link = Link(SpanContext(1, 2, True, TraceFlags(1)), {"l": 1, "ls": ("x",)})
    span = tracer.start_span("GET /check/{id}", context=set_span_in_context(NonRecordingSpan(remote)),
                             kind=SpanKind.SERVER, attributes=_ATTRIBUTES, links=[link])
    span.add_event("event", {"k": "v", "n": 2}, timestamp=1_700_000_000_000_000_001)
    span.set_status(Status(StatusCode.ERROR, "boom"))
    span.end()
    child = other.start_span("child", context=set_span_in_context(span), kind=SpanKind.CLIENT)
    child.end()
    provider.shutdown()
    return list(exporter.get_finished_spans())


def _sample_logs() -> list[Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    exporter = _upstream.InMemoryLogRecordExporter()
    provider = _upstream.LoggerProvider(resource=Resource({"service.name": "check"}), shutdown_on_exit=False)
    provider.add_log_record_processor(_upstream.SimpleLogRecordProcessor(exporter))
    context = set_span_in_context(NonRecordingSpan(SpanContext(3, 4, True, TraceFlags(1))))
    bodies: tuple[Any, ...] = ("line", 7, {"k": ["v", 1]})
    for i, body in enumerate(bodies):
        provider.get_logger(f"app.{i % 2}").emit(_upstream.APILogRecord(
            timestamp=1_700_000_000_000_000_000 + i, observed_timestamp=1_700_000_000_000_000_100 + i,
            context=context if i else None, severity_text="WARN", severity_number=_upstream.SeverityNumber.WARN,
            body=body, attributes=dict(_ATTRIBUTES, i=i, nested={"n": None, "m": {"k": [1, 2]}, "s": "v"})))
    provider.shutdown()
    return list(exporter.get_finished_logs())


# -- checks: each returns None when the fast path gives upstream's output, else why not ------------


def _check_encoder() -> str | None:
    from ._export import protobuf as encoder

    spans, logs = _sample_spans(), _sample_logs()
    if encoder.encode_spans_strict(spans) != encoder._upstream_spans(spans):
        return "span bytes differ from upstream's encoder"
    if encoder.encode_prepared_logs(logs) != encoder._upstream_logs(logs):
        return "log bytes differ from upstream's encoder"
    return None


def _check_log_bridge() -> str | None:
    import warnings

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    from ._export import protobuf as encoder
    from ._pipeline.log_bridge import Converter, _Pending

    resource = Resource({"service.name": "check"})
    context = set_span_in_context(NonRecordingSpan(SpanContext(5, 6, True, TraceFlags(1))))
    extras: list[dict[str, Any]] = [
        {"user_id": 1, "ratio": 0.5, "tags": ["a", "b"], "ok": True, "http.route": "/x"},
        {"s": "x" * 40, "nested": {"a": "y" * 20, "b": ["z" * 12, 1]}, "t": ("abcdefgh",)},
        {f"k{i}": f"value-{i}" for i in range(6)},
    ]
    for limits in (_upstream.LogRecordLimits(), _upstream.LogRecordLimits(max_attributes=3, max_attribute_length=9)):
        converter = Converter(lambda: resource, limits, frozenset(), direct=True)
        batch = []
        for i, level in enumerate((logging.INFO, logging.WARNING, logging.ERROR)):
            record = logging.LogRecord(f"app.{i % 2}", level, "/srv/app.py", 10 + i, "message %s", (i,), None)
            record.__dict__.update(extras[i])
            batch.append(_Pending(record, context if i else None, record.getMessage(), 1_700_000_000_000_000_000 + i))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            direct = converter.encode(batch).data
            reference = encoder._upstream_logs(converter.convert_batch(batch))
        if direct != reference:
            return "direct log bytes differ from upstream's encoder"
    return None


def _points(reader: Any) -> list[tuple[Any, ...]]:
    out = []
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    values = tuple(getattr(p, name, None) for name in ("value", "count", "sum", "min", "max"))
                    buckets = tuple(getattr(p, "bucket_counts", ()) or ())
                    out.append((metric.name, tuple(sorted(p.attributes.items())), values, buckets))
    return sorted(out, key=repr)


def _check_instruments() -> str | None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from ._instrumentation import instruments

    if instruments.ENABLED is not True and not instruments.supported_sdk():
        instruments.ENABLED = True  # bind() below must take the fast path to be compared
    results = []
    for bound in (False, True):
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        meter = provider.get_meter("otel_showmax.check")
        histogram = meter.create_histogram("h", unit="s")
        counter = meter.create_counter("c")
        record: Callable[..., Any] = instruments.BoundHistogram(histogram).record if bound else histogram.record
        add: Callable[..., Any] = instruments.BoundCounter(counter).add if bound else counter.add
        for i in range(6):
            attributes = {"route": f"/r{i % 2}", "code": 200 + i % 3, "ok": i % 2 == 0}
            record(0.001 * (i + 1), attributes)
            add(i, attributes)
        results.append(_points(reader))
        provider.shutdown()
    return None if results[0] == results[1] else "bound instrument points differ from the SDK's"


def _check_http() -> str | None:
    module: Any = sys.modules.get("otel_showmax._export.otlp_http")
    if module is None:
        return None  # OTLP/HTTP not used: nothing to check
    return None if module.ENCODER_ON else "upstream's OTLP/HTTP export() no longer takes serialized bytes"


def _check_falcon() -> str | None:
    names = ("InstrumentedFalconAPI", "FALCON_SPAN_KEY", "FALCON_EXC_KEY", "get_schema_url", "StabilityMode",
             "server_duration_attrs_new", "server_duration_attrs_old")
    for name in names:
        getattr(_upstream, name)
    _upstream.semconv_mode()
    return None


def _off_encoder() -> None:
    from ._export import contain

    contain.ENCODER_ON = False


def _off_log_bridge() -> None:
    from ._pipeline import log_bridge

    log_bridge.DIRECT_ON = False


def _off_instruments() -> None:
    from ._instrumentation import instruments

    instruments.ENABLED = False


def _off_http() -> None:
    module: Any = sys.modules.get("otel_showmax._export.otlp_http")
    if module is not None:
        module.ENCODER_ON = False


def _off_falcon() -> None:
    pass  # reported only: the traced app needs these names at import (docs/versions.md)


CHECKS: dict[str, tuple[Callable[[], str | None], Callable[[], None]]] = {
    "otlp_encoder": (_check_encoder, _off_encoder),
    "log_bridge_direct": (_check_log_bridge, _off_log_bridge),
    "bound_instruments": (_check_instruments, _off_instruments),
    "otlp_http_bytes": (_check_http, _off_http),
    "falcon_helpers": (_check_falcon, _off_falcon),
}

_report: UpstreamReport | None = None


def run() -> UpstreamReport:
    """Check every fast path once per process (later calls return the first report). Never raises."""
    global _report
    if _report is not None:
        return _report
    started = time.perf_counter()
    report = UpstreamReport(versions=_upstream.installed_versions(), out_of_range=_upstream.out_of_range())
    if report.out_of_range:
        for name, (_check, off) in CHECKS.items():
            _safely(off)
            report.fast_paths[name] = "off: OpenTelemetry outside the supported range"
        installed = ", ".join(f"{k} {v}" for k, v in sorted(report.out_of_range.items()))
        _diag.once("upstream_out_of_range",
                   "otel_showmax supports OpenTelemetry %s with instrumentation %s; installed: %s. "
                   "Using upstream's public API path for encoding, log export and metrics (docs/versions.md)",
                   _range(_upstream.SDK_RANGE), _range(_upstream.INSTRUMENTATION_RANGE, beta=True), installed)
    else:
        for name, (check, off) in CHECKS.items():
            try:
                with _quiet_upstream():
                    why = check()
            except Exception as error:
                why = f"{type(error).__name__}: {error}"
            if why is None:
                report.fast_paths[name] = ON
            else:
                _safely(off)
                report.fast_paths[name] = f"off: {why}"
        fell_back = {k: v for k, v in report.fast_paths.items() if v != ON}
        if fell_back:
            versions = ", ".join(f"{k} {v}" for k, v in sorted(report.versions.items()))
            _diag.once("upstream_fallback",
                       "upstream's public path is used for %s (%s); installed: %s",
                       ", ".join(fell_back), "; ".join(f"{k} {v}" for k, v in fell_back.items()), versions)
    report.milliseconds = (time.perf_counter() - started) * 1000
    _report = report
    return report


def report() -> UpstreamReport | None:
    """The report of this process's check, if it ran."""
    return _report


def reset() -> None:
    """Forget the check's result and turn every fast path back to its default (tests)."""
    global _report
    _report = None
    from ._export import contain
    from ._instrumentation import instruments
    from ._pipeline import log_bridge

    contain.ENCODER_ON = True
    log_bridge.DIRECT_ON = True
    instruments.ENABLED = instruments.supported_sdk()
    module: Any = sys.modules.get("otel_showmax._export.otlp_http")
    if module is not None:
        module.ENCODER_ON = _upstream.http_passthrough()


@contextlib.contextmanager
def _quiet_upstream() -> Iterator[None]:
    """OpenTelemetry's own loggers silenced while a check runs (its samples truncate and drop on purpose)."""
    names = {"opentelemetry.attributes", "opentelemetry.sdk._logs._internal"}
    names.update(name for name in logging.Logger.manager.loggerDict if name.startswith("opentelemetry"))
    loggers = [logging.getLogger(name) for name in sorted(names)]
    before = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, disabled in zip(loggers, before, strict=True):
            lg.disabled = disabled


def _safely(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:  # pragma: no cover - turning a fast path off must never fail setup()
        pass
