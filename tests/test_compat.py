"""Fails loudly when an upstream release renames a private OpenTelemetry name we rely on.

Everything private is used from otel_showmax/_compat.py only; this checks each name still exists
and behaves as we assume.
"""

from __future__ import annotations

import inspect

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_showmax import _compat


def test_providers_still_have_the_fork_hook_we_override():
    for cls in (TracerProvider, LoggerProvider, MeterProvider):
        assert callable(getattr(cls, "_handle_fork", None)), cls
        assert callable(getattr(cls, "_update_resource", None)), cls


def test_set_resource_updates_tracer_provider_resource():
    provider = _compat.ShowmaxTracerProvider(resource=Resource({"process.pid": 1}), shutdown_on_exit=False)
    tracer = provider.get_tracer("compat")
    _compat.set_resource(provider, Resource({"process.pid": 2}))
    assert provider.resource.attributes["process.pid"] == 2
    span = tracer.start_span("s")
    assert span.resource.attributes["process.pid"] == 2


def test_processor_lists_are_readable():
    tp = TracerProvider(shutdown_on_exit=False)
    lp = LoggerProvider(shutdown_on_exit=False)
    assert _compat.span_processors(tp) == []
    assert _compat.log_processors(lp) == []


def test_suppress_key_and_metric_preferences_exist():
    assert _compat.SUPPRESS_KEY
    temporality, aggregation = _compat.metric_preferences()
    assert temporality and aggregation


def test_reset_globals_allows_setting_providers_again():
    from opentelemetry import trace

    _compat.reset_globals()
    first = TracerProvider(shutdown_on_exit=False)
    trace.set_tracer_provider(first)
    _compat.reset_globals()
    second = TracerProvider(shutdown_on_exit=False)
    trace.set_tracer_provider(second)
    assert trace.get_tracer_provider() is second
    _compat.reset_globals()


def test_upstream_log_handler_translation_matches_our_reserved_names():
    from opentelemetry.instrumentation.logging import handler

    from otel_showmax._bridge import RESERVED

    assert frozenset(handler._RESERVED_ATTRS) == RESERVED
    assert "record" in inspect.signature(handler.LoggingHandler._translate).parameters


def test_stop_retrying_reaches_every_otlp_exporter():
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    for exporter in (
        OTLPSpanExporter(endpoint="http://127.0.0.1:1/v1/traces"),
        OTLPLogExporter(endpoint="http://127.0.0.1:1/v1/logs"),
        OTLPMetricExporter(endpoint="http://127.0.0.1:1/v1/metrics"),
        GrpcSpans(endpoint="http://127.0.0.1:1", insecure=True),
    ):
        assert _compat.stop_retrying(exporter) is True
        exporter.shutdown()


def test_one_try_after_stop_retrying(blackhole):
    import time

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from otel_showmax.receiver import dead_port

    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{dead_port()}/v1/traces", timeout=10)
    _compat.stop_retrying(exporter)
    start = time.monotonic()
    assert exporter.export([]).name == "FAILURE"
    assert time.monotonic() - start < 1.0  # no retry back-off (it would take ~7 s of the 10 s timeout)
