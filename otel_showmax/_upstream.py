"""Private OpenTelemetry names behind small functions: context keys, provider internals, globals.

tests/test_upstream.py fails loudly when an upstream release renames or removes any of them. Other
modules that touch upstream internals, each with its own loud-failure test:
``_pipeline/providers.py`` and ``_pipeline/tracer.py`` (SDK provider locks, span attribute storage),
``_instrumentation/falcon_app.py`` (instrumentation-falcon's semconv helpers),
``_instrumentation/instruments.py`` (SDK metric storages), ``_export/otlp_http.py`` (the OTLP/HTTP
exporter's internals) and ``_export/utf8.py`` (the SDK's span containers).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as SUPPRESS_KEY

try:  # opentelemetry-instrumentation >= 0.62b0
    from opentelemetry.instrumentation.log_utils import std_to_otel
except ImportError:  # older: the SDK's own (private) copy of the same mapping
    from opentelemetry.sdk._logs._internal import std_to_otel  # type: ignore[no-redef, unused-ignore]
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import _Span as SDK_SPAN
from opentelemetry.trace.propagation import _SPAN_KEY as SPAN_KEY

__all__ = [
    "SDK_SPAN",
    "SPAN_KEY",
    "SUPPRESS_KEY",
    "log_processors",
    "logger_provider_options",
    "metric_preferences",
    "reset_globals",
    "set_resource",
    "span_processors",
    "std_to_otel",
    "stop_retrying",
]


def set_resource(provider: Any, resource: Resource) -> None:
    """Merge ``resource`` into a provider's resource (and its tracers', loggers', meters')."""
    provider._update_resource(resource)


def reset_globals() -> None:
    """Forget the global tracer, logger and meter providers (tests only)."""
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    _logs._internal._LOGGER_PROVIDER_SET_ONCE = Once()
    _logs._internal._LOGGER_PROVIDER = None
    metrics._internal._METER_PROVIDER_SET_ONCE = Once()
    metrics._internal._METER_PROVIDER = None


def metric_preferences() -> tuple[dict[type, Any], dict[type, Any]]:
    """Temporality and aggregation preferred by the OTLP metric exporters (their env variables)."""
    from opentelemetry.exporter.otlp.common._aggregation import _get_aggregation, _get_temporality

    return _get_temporality(None), _get_aggregation(None)


def span_processors(provider: Any) -> list[Any]:
    """The span processors of an SDK TracerProvider (for checks and the doctor)."""
    return list(provider._active_span_processor._span_processors)


def log_processors(provider: Any) -> list[Any]:
    """The log record processors of an SDK LoggerProvider (for checks and the doctor)."""
    return list(provider._multi_log_record_processor._log_record_processors)


def reads_no_metrics(provider: Any) -> bool:
    """Whether ``provider`` is an SDK MeterProvider built without readers (they are fixed at construction)."""
    from opentelemetry.sdk.metrics import MeterProvider

    return isinstance(provider, MeterProvider) and not provider._metric_readers


def stop_retrying(exporter: Any) -> bool:
    """Make an OTLP exporter give up retry back-off: each later export is one attempt.

    Used when shutdown starts: the budget is better spent on one try per batch than on sleeping
    between retries to a collector that is down. Returns False for exporters without retries.
    """
    client = getattr(exporter, "_client", None)  # OTLP/HTTP: _OTLPHTTPClient
    event = getattr(client, "_shutdown_event", None)
    if event is None:
        event = getattr(exporter, "_shutdown_in_progress", None)  # OTLP/gRPC mixin
    if event is None:
        return False
    event.set()
    return True


def logger_provider_options(limits: Any) -> dict[str, Any]:
    """``LoggerProvider`` keyword arguments for ``limits`` (opentelemetry-sdk >= 1.41 takes them there)."""
    import inspect

    from opentelemetry.sdk._logs import LoggerProvider

    if "log_record_limits" in inspect.signature(LoggerProvider.__init__).parameters:
        return {"log_record_limits": limits}
    return {}
