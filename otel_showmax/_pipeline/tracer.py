"""The SDK's Tracer, storing attributes otel_showmax built itself without re-validating them.

Reaches into the SDK span's attribute container (``_Span._attributes``) and the built-in samplers'
private classes; tests/pipeline/test_tracer.py fails loudly when an SDK release changes them.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, Tracer, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from .._export.processors import WorkerSpanProcessor
from .._upstream import SDK_KEEPS_NONE, SDKSpan

__all__ = ["ShowmaxTracer", "TrustedAttributes", "set_trusted_attributes"]


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
        if not SDK_KEEPS_NONE and None in attributes.values():  # opentelemetry-sdk 1.40 leaves them out
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
        if type(span) is SDKSpan:
            span._attributes._dict.update(attributes)  # type: ignore[attr-defined, union-attr, unused-ignore]
        else:  # not the SDK's span class (another release, or not recording): its own method
            span.set_attributes(attributes)
        return span


def set_trusted_attributes(span: Any, attributes: TrustedAttributes) -> None:
    """``span.set_attributes(attributes)``, storing them as they are when that gives the same span."""
    if type(span) is SDKSpan:
        bounded: Any = span._attributes
        length = bounded.max_value_len
        if (length is None or _short(attributes.values(), length)) and (
                SDK_KEEPS_NONE or None not in attributes.values()):
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
