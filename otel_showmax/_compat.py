"""The one module that touches private OpenTelemetry names.

tests/test_compat.py fails loudly when an upstream release renames or removes any of them.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as SUPPRESS_KEY
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

__all__ = [
    "SUPPRESS_KEY",
    "ShowmaxLoggerProvider",
    "ShowmaxMeterProvider",
    "ShowmaxTracerProvider",
    "reset_globals",
    "set_resource",
]


class ShowmaxTracerProvider(TracerProvider):
    """TracerProvider whose resource otel_showmax refreshes after fork (also under uWSGI).

    Upstream's own at-fork hook re-detects the resource and replaces a user-set
    ``service.instance.id``; ours keeps it and only resets the lock, as upstream does.
    """

    def _handle_fork(self) -> None:
        self._tracers_lock = threading.Lock()


class ShowmaxLoggerProvider(LoggerProvider):
    """LoggerProvider whose resource otel_showmax refreshes after fork."""

    def _handle_fork(self) -> None:
        self._logger_cache_lock = threading.Lock()
        self._active_loggers_lock = threading.Lock()


class ShowmaxMeterProvider(MeterProvider):
    """MeterProvider whose resource otel_showmax refreshes after fork."""

    def _handle_fork(self) -> None:
        self._lock = threading.Lock()
        self._meter_lock = threading.Lock()
        type(self)._all_metric_readers_lock = threading.Lock()


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
