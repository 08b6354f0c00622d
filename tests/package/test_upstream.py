"""Fails loudly when an upstream release renames a private OpenTelemetry name we rely on.

Every private name is imported from otel_showmax/_upstream.py only (tests/package/test_private_names.py);
this exercises each of its names and functions on the installed version. The CI matrix runs it on
the oldest supported release (tests/constraints/oldest.txt) and the newest. Where releases differ,
a test branches on the installed version and asserts what that version does.
"""

from __future__ import annotations

import inspect
import logging

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_showmax import _upstream
from otel_showmax._pipeline import providers
from otel_showmax._pipeline import tracer as trusted

SDK_MINOR = _upstream._minor(_upstream.installed_versions()["opentelemetry-sdk"])


def test_providers_still_have_the_fork_hook_we_override():
    for cls in (TracerProvider, LoggerProvider, MeterProvider):
        if _upstream.TRACK_MADE:  # opentelemetry-sdk 1.40: no resource update, no fork hook on MeterProvider
            assert getattr(cls, "_update_resource", None) is None, cls
        else:
            assert callable(getattr(cls, "_handle_fork", None)), cls
            assert callable(getattr(cls, "_update_resource", None)), cls


def test_set_resource_reaches_what_the_providers_made_before():
    from otel_showmax._pipeline.providers import ShowmaxLoggerProvider, ShowmaxMeterProvider

    tp = providers.ShowmaxTracerProvider(resource=Resource({"process.pid": 1}), shutdown_on_exit=False)
    lp = ShowmaxLoggerProvider(resource=Resource({"process.pid": 1}), shutdown_on_exit=False)
    mp = ShowmaxMeterProvider(resource=Resource({"process.pid": 1}), shutdown_on_exit=False)
    tracer, logger = tp.get_tracer("a"), lp.get_logger("a")
    for provider in (tp, lp, mp):
        _upstream.set_resource(provider, Resource({"process.pid": 2, "service.instance.id": "x"}))
    assert tracer.start_span("s").resource.attributes["process.pid"] == 2
    assert tp.get_tracer("b").start_span("s").resource.attributes["service.instance.id"] == "x"
    assert lp.resource.attributes["process.pid"] == 2 and logger.resource.attributes["process.pid"] == 2
    assert mp._sdk_config.resource.attributes["process.pid"] == 2


def test_versions_and_ranges():
    versions = _upstream.installed_versions()
    assert {"opentelemetry-api", "opentelemetry-sdk", "opentelemetry-instrumentation-falcon", "falcon"} <= set(versions)
    assert _upstream.out_of_range() == {}  # CI installs supported releases only
    assert _upstream.out_of_range({"opentelemetry-sdk": "1.39.1", "opentelemetry-instrumentation": "0.67b0",
                                   "opentelemetry-api": "1.45.9", "falcon": "9.0"}) == {
        "opentelemetry-sdk": "1.39.1", "opentelemetry-instrumentation": "0.67b0"}
    assert _upstream.out_of_range({"opentelemetry-sdk": "garbage"}) == {"opentelemetry-sdk": "garbage"}


def test_every_lazy_name_resolves():
    for name, (module, attribute) in _upstream.LAZY_NAMES.items():
        value = getattr(_upstream, name)
        assert value is not None, (name, module, attribute)
    with pytest.raises(AttributeError):
        _upstream.not_a_name  # noqa: B018


def test_log_names_and_limits():
    limits = _upstream.LogRecordLimits(max_attributes=3, max_attribute_length=9)
    assert _upstream.log_record_limits(limits) == (3, 9)
    provider = _upstream.LoggerProvider(shutdown_on_exit=False, **_upstream.logger_provider_options(limits))
    assert isinstance(provider, LoggerProvider)
    record = _upstream.ReadWriteLogRecord(_upstream.APILogRecord(body="b", attributes={"a": "0123456789"}),
                                          limits=limits)
    assert record.log_record.attributes["a"] == "012345678"
    assert _upstream.LogRecordExportResult.SUCCESS.name == "SUCCESS"
    assert issubclass(_upstream.LogRecordDroppedAttributesWarning, Warning)
    assert issubclass(_upstream.ConsoleLogRecordExporter, object)
    assert _upstream.std_to_otel(logging.ERROR).name == "ERROR"
    assert callable(_upstream.logs_api.get_logger_provider)


def test_attribute_cleaning_and_metric_keys():
    assert tuple(_upstream.clean_attribute_value(["a", "b"], None)) == ("a", "b")  # 1.40 keeps the list
    key = _upstream.hash_attributes({"a": 1})
    assert key == _upstream.hash_attributes({"a": 1}) and key != _upstream.hash_attributes({"a": 2})
    assert hash(key) is not None
    assert _upstream.SDK_KEEPS_NONE is (SDK_MINOR >= (1, 41))


def test_entry_points_selects_by_group():
    names = {ep.name for ep in _upstream.entry_points(group="opentelemetry_distro")}
    assert "otel_showmax" in names


def test_semconv_mode_reads_the_environment(monkeypatch):
    _upstream.reset_semconv_mode()
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    try:
        assert _upstream.semconv_mode() is _upstream.StabilityMode.HTTP
    finally:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN")
        _upstream.reset_semconv_mode()
    assert _upstream.semconv_mode() is _upstream.StabilityMode.DEFAULT


def test_set_resource_updates_tracer_provider_resource():
    provider = providers.ShowmaxTracerProvider(resource=Resource({"process.pid": 1}), shutdown_on_exit=False)
    tracer = provider.get_tracer("compat")
    _upstream.set_resource(provider, Resource({"process.pid": 2}))
    assert provider.resource.attributes["process.pid"] == 2
    span = tracer.start_span("s")
    assert span.resource.attributes["process.pid"] == 2


def test_processor_lists_are_readable():
    tp = TracerProvider(shutdown_on_exit=False)
    lp = LoggerProvider(shutdown_on_exit=False)
    assert _upstream.span_processors(tp) == []
    assert _upstream.log_processors(lp) == []


def test_suppress_key_and_metric_preferences_exist():
    assert _upstream.SUPPRESS_KEY
    temporality, aggregation = _upstream.metric_preferences()
    assert temporality and aggregation


def test_reset_globals_allows_setting_providers_again():
    from opentelemetry import trace

    _upstream.reset_globals()
    first = TracerProvider(shutdown_on_exit=False)
    trace.set_tracer_provider(first)
    _upstream.reset_globals()
    second = TracerProvider(shutdown_on_exit=False)
    trace.set_tracer_provider(second)
    assert trace.get_tracer_provider() is second
    _upstream.reset_globals()


def test_upstream_log_handler_translation_matches_our_reserved_names():
    from opentelemetry.instrumentation.logging import handler

    from otel_showmax._pipeline.log_bridge import RESERVED

    assert frozenset(handler._RESERVED_ATTRS) == RESERVED
    assert "record" in inspect.signature(handler.LoggingHandler._translate).parameters


def test_stop_retrying_reaches_every_otlp_exporter():
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    for exporter in (
        OTLPSpanExporter(endpoint="http://127.0.0.1:1/v1/traces"),
        OTLPMetricExporter(endpoint="http://127.0.0.1:1/v1/metrics"),
        GrpcSpans(endpoint="http://127.0.0.1:1", insecure=True),
    ):
        assert _upstream.stop_retrying(exporter) is True
        exporter.shutdown()
    # The OTLP/HTTP log exporter 1.40-1.44 sleeps between retries with no event to cut it short.
    logs = OTLPLogExporter(endpoint="http://127.0.0.1:1/v1/logs")
    assert _upstream.stop_retrying(logs) is hasattr(logs, "_client")
    logs.shutdown()


def test_one_try_after_stop_retrying(blackhole):
    import time

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from otel_showmax.receiver import dead_port

    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{dead_port()}/v1/traces", timeout=10)
    _upstream.stop_retrying(exporter)
    start = time.monotonic()
    assert exporter.export([]).name == "FAILURE"
    assert time.monotonic() - start < 1.0  # no retry back-off (it would take ~7 s of the 10 s timeout)


def test_sdk_names_behind_trusted_attributes_still_exist():
    """ShowmaxTracer and set_trusted_attributes read and write these SDK internals directly."""
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.trace import SpanLimits, SynchronousMultiSpanProcessor, Tracer, _Span, sampling
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = providers.ShowmaxTracerProvider(shutdown_on_exit=False, span_limits=SpanLimits(max_attribute_length=9))
    tracer = provider.get_tracer("compat")
    assert type(tracer) is trusted.ShowmaxTracer and Tracer in type(tracer).__mro__
    # opentelemetry-sdk >= 1.41 caches tracers; 1.40 makes one per call (set_resource then tracks them)
    assert (provider.get_tracer("compat") is tracer) is not _upstream.TRACK_MADE
    assert type(TracerProvider(shutdown_on_exit=False).get_tracer("compat")) is Tracer
    assert tracer._span_limits.max_span_attribute_length == 9 and tracer._span_limits.max_span_attributes == 128
    assert type(tracer.span_processor) is SynchronousMultiSpanProcessor
    assert tracer.span_processor._span_processors == ()
    assert tracer.sampler is provider.sampler
    for cls in (SimpleSpanProcessor, BatchSpanProcessor):  # their on_start still does nothing
        body = inspect.getsource(cls.on_start).split(":\n", 1)[1].strip()
        assert body == "pass", (cls, body)
    for name in ("StaticSampler", "TraceIdRatioBased", "ParentBased", "ParentBasedTraceIdRatio", "_AlwaysOn",
                 "_AlwaysOff", "_ParentBasedAlwaysOn", "_ParentBasedAlwaysOff"):
        assert isinstance(getattr(sampling, name), type), name
    parent_based = sampling.ParentBased(sampling.ALWAYS_ON)
    for name in trusted._PARENT_DELEGATES:
        assert isinstance(getattr(parent_based, name), sampling.Sampler), name

    span = tracer.start_span("s")
    assert type(span) is _Span
    bounded = span._attributes
    assert type(bounded) is BoundedAttributes and bounded._dict == {} and bounded.dropped == 0
    assert (bounded.maxlen, bounded.max_value_len, bounded._immutable) == (128, 9, False)
    assert span._end_time is None and callable(span._lock.acquire) and callable(bounded._lock.acquire)
    if SDK_MINOR >= (1, 41):
        assert type(span._lock) is type(bounded._lock)
    span.end()
    assert span._end_time is not None
    assert bounded._immutable is (SDK_MINOR >= (1, 41))  # 1.40 leaves an ended span's attributes mutable


def test_sdk_still_stores_what_trusted_attributes_hold():
    """The SDK turns lists into tuples, keeps None and orders keys by first insertion, moving a key set again."""
    from opentelemetry.attributes import BoundedAttributes

    bounded = BoundedAttributes(128, {"a": ["x"], "b": None, "c": 1, "d": True, "e": "s", "f": 1.5}, immutable=False)
    expected = {"a": ("x",), "b": None, "c": 1, "d": True, "e": "s", "f": 1.5}
    if not _upstream.SDK_KEEPS_NONE:  # opentelemetry-sdk 1.40 leaves a None value out
        del expected["b"]
    assert bounded._dict == expected
    for key, value in {"c": 2, "g": "t"}.items():
        bounded[key] = value
    assert list(bounded._dict.items())[-2:] == [("c", 2), ("g", "t")]


def test_builtin_samplers_ignore_attributes_and_return_them():
    """What makes it safe to start a span without its trusted attributes and add them after."""
    from opentelemetry.sdk.trace import sampling

    attributes = {"k": "v"}
    for sampler in (sampling.ALWAYS_ON, sampling.ALWAYS_OFF, sampling.TraceIdRatioBased(0.5),
                    sampling.ParentBased(sampling.ALWAYS_ON), sampling.ParentBasedTraceIdRatio(0.5),
                    sampling.DEFAULT_ON, sampling.DEFAULT_OFF):
        assert trusted._sampler_ignores_attributes(sampler), sampler
        for trace_id in (1, 1 << 63, (1 << 64) - 1):
            with_attrs = sampler.should_sample(None, trace_id, "n", attributes=attributes)
            without = sampler.should_sample(None, trace_id, "n")
            assert with_attrs.decision is without.decision
            assert dict(without.attributes) == {}
            assert dict(with_attrs.attributes) == (attributes if with_attrs.decision.is_sampled() else {})


def test_a_release_without_a_private_class_loses_only_the_fast_path(monkeypatch):
    assert _upstream._private("opentelemetry.sdk.trace", "_NoSuchClass") is _upstream.Missing
    assert _upstream._private("opentelemetry.no_such_module", "X", 5) == 5
    for name in ("SDKSpan", "SDKCounter", "SDKHistogram", "SynchronousMeasurementConsumer", "SumAggregation"):
        assert getattr(_upstream, name) is not _upstream.Missing, name  # every supported release has them
    monkeypatch.setattr(trusted, "SDKSpan", _upstream.Missing)  # as if a release renamed _Span
    provider = providers.ShowmaxTracerProvider(shutdown_on_exit=False)
    span = provider.get_tracer("compat").start_span("s", attributes=trusted.TrustedAttributes({"k": "v"}))
    assert dict(span.attributes) == {"k": "v"}  # stored by the SDK's own path
    trusted.set_trusted_attributes(span, trusted.TrustedAttributes({"n": 1}))
    assert dict(span.attributes) == {"k": "v", "n": 1}
