"""Private OpenTelemetry SDK names used by the providers and the span fast path.

tests/test_compat.py fails loudly when an upstream release renames or removes any of them. The
other modules with private names, each with its own loud-failure test: _fastfalcon.py
(instrumentation-falcon's semconv helpers), _fastmetrics.py (SDK metric storages),
_lean_exporters.py (the OTLP/HTTP exporter's internals), _escape.py (the SDK's span containers).
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as SUPPRESS_KEY
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, Tracer, TracerProvider, _Span, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind

__all__ = [
    "SUPPRESS_KEY",
    "ShowmaxLoggerProvider",
    "ShowmaxMeterProvider",
    "ShowmaxTracer",
    "ShowmaxTracerProvider",
    "TrustedAttributes",
    "reset_globals",
    "set_resource",
    "set_trusted_attributes",
]


class ShowmaxTracerProvider(TracerProvider):
    """TracerProvider whose resource otel_showmax refreshes after fork (also under uWSGI).

    Upstream's own at-fork hook re-detects the resource and replaces a user-set
    ``service.instance.id``; ours keeps it and only resets the lock, as upstream does.
    """

    def _handle_fork(self) -> None:
        self._tracers_lock = threading.Lock()

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = super().get_tracer(*args, **kwargs)
        if type(tracer) is Tracer:  # the SDK's tracer, built and cached by the SDK: only its class changes
            tracer.__class__ = ShowmaxTracer
        return tracer


# -- attributes otel_showmax built itself, handed to the SDK span without re-validation ----------------


class TrustedAttributes(dict[str, Any]):
    """Span attributes already in the form the SDK would store them.

    Keys are non-empty str; values are None, bool, int, float, str or tuples of str (never lists).
    ``ShowmaxTracer.start_span`` and ``set_trusted_attributes`` store them as they are when that
    gives the same span as the SDK's validation would, and use the SDK's path otherwise.
    """

    __slots__ = ()


# Samplers whose decision ignores the attributes and which return the given ones unchanged.
_PLAIN_SAMPLERS = (
    sampling.StaticSampler, sampling._AlwaysOn, sampling._AlwaysOff, sampling.TraceIdRatioBased,
)
_PARENT_SAMPLERS = (
    sampling.ParentBased, sampling.ParentBasedTraceIdRatio, sampling._ParentBasedAlwaysOn,
    sampling._ParentBasedAlwaysOff,
)
_PARENT_DELEGATES = (
    "_root", "_remote_parent_sampled", "_remote_parent_not_sampled", "_local_parent_sampled",
    "_local_parent_not_sampled",
)


def _sampler_ignores_attributes(sampler: Any) -> bool:
    if type(sampler) in _PLAIN_SAMPLERS:
        return True
    if type(sampler) in _PARENT_SAMPLERS:
        return all(type(getattr(sampler, name, None)) in _PLAIN_SAMPLERS for name in _PARENT_DELEGATES)
    return False


def _quiet_on_start() -> frozenset[Any]:
    """``on_start`` methods that do nothing (a span's attributes set after them go unseen)."""
    from ._pipeline.traces import WorkerSpanProcessor

    return frozenset((SpanProcessor.on_start, SimpleSpanProcessor.on_start, BatchSpanProcessor.on_start,
                      WorkerSpanProcessor.on_start))


def _processors_ignore_start(multi: Any) -> bool:
    if type(multi) is not SynchronousMultiSpanProcessor:
        return False
    quiet = _quiet_on_start()
    return all(getattr(type(p), "on_start", None) in quiet for p in multi._span_processors)


def _short(values: Any, limit: int) -> bool:
    """Whether no str (alone or in a tuple) is longer than ``limit``."""
    for value in values:
        if type(value) is str:
            if len(value) > limit:
                return False
        elif type(value) is tuple:
            for item in value:
                if type(item) is str and len(item) > limit:
                    return False
    return True


class ShowmaxTracer(Tracer):
    """The SDK's Tracer; ``TrustedAttributes`` skip the SDK's re-validation when the result is the same.

    The fast path starts the span without attributes and stores the trusted ones right after. It is
    taken only when nothing could tell the difference: the sampler is an SDK built-in that ignores
    attributes, every span processor's ``on_start`` does nothing, and the span limits keep every
    attribute whole (count and string lengths). Otherwise the SDK's own path runs.
    """

    # (sampler, multi-processor, its processor tuple): whether they allow the fast path
    _checked: tuple[Any, Any, Any, bool] | None = None

    def _trusts(self, attributes: TrustedAttributes) -> bool:
        sampler, multi = self.sampler, self.span_processor
        processors = getattr(multi, "_span_processors", None)
        checked = self._checked
        if checked is None or checked[0] is not sampler or checked[1] is not multi or checked[2] is not processors:
            checked = self._checked = (
                sampler, multi, processors, _sampler_ignores_attributes(sampler) and _processors_ignore_start(multi),
            )
        if not checked[3]:
            return False
        limits = self._span_limits
        count = limits.max_span_attributes
        if count is not None and len(attributes) > count:
            return False
        length = limits.max_span_attribute_length
        return length is None or _short(attributes.values(), length)

    def start_span(self, name: str, context: Any = None, kind: Any = SpanKind.INTERNAL, attributes: Any = None,
                   links: Any = (), start_time: int | None = None, record_exception: bool = True,
                   set_status_on_exception: bool = True) -> Any:
        if type(attributes) is not TrustedAttributes or not attributes or not self._trusts(attributes):
            return super().start_span(name, context, kind, attributes, links, start_time, record_exception,
                                      set_status_on_exception)
        span = super().start_span(name, context, kind, None, links, start_time, record_exception,
                                  set_status_on_exception)
        if type(span) is _Span:
            span._attributes._dict.update(attributes)  # type: ignore[union-attr]
        return span


def set_trusted_attributes(span: Any, attributes: TrustedAttributes) -> None:
    """``span.set_attributes(attributes)``, storing them as they are when that gives the same span."""
    if type(span) is _Span:
        bounded: Any = span._attributes
        length = bounded.max_value_len
        if length is None or _short(attributes.values(), length):
            target = bounded._dict
            maxlen = bounded.maxlen
            with span._lock:
                if span._end_time is None and not bounded._immutable:
                    with bounded._lock:
                        if maxlen is None or len(target) + len(attributes) <= maxlen:
                            if target.keys().isdisjoint(attributes):
                                target.update(attributes)
                            else:
                                for key, value in attributes.items():
                                    target.pop(key, None)  # the SDK moves a key set again to the end
                                    target[key] = value
                            return
    span.set_attributes(attributes)


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
