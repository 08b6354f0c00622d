"""Spans whose text is not valid UTF-8 (lone surrogates), escaped instead of failing their batch.

Touches private names of the SDK's containers (``BoundedAttributes._dict``, ``BoundedList._dq``,
a span's ``_attributes``/``_events``/``_links``); tests/export/test_utf8.py fails loudly when they change.

A lone surrogate — from bytes decoded with ``surrogateescape`` (file names, ``sys.argv``, some
environments) — cannot be encoded as OTLP's UTF-8 strings: upstream's encoder then drops the
attribute with a logged traceback, or fails the whole batch when it is in a span or event name.
The span exporter escapes such text with backslashes (``\\udcff``) in a copy of the span and
exports the batch. Deliberate difference from upstream, as for log records in ``_pipeline/log_bridge.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, Status

from . import protobuf as _encode

__all__ = ["encode_spans", "valid_text"]


def valid_text(value: str) -> str:
    """``value`` as valid UTF-8: lone surrogates (from undecodable bytes) become backslash escapes.

    One such character would otherwise make the whole export batch fail to encode. Deliberate
    difference from upstream, whose batch is lost.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


_text = valid_text


def encode_spans(spans: Sequence[Any]) -> bytes:
    """``_encode.encode_spans``, with invalid text escaped instead of losing the batch."""
    if type(spans) is not list and type(spans) is not tuple:
        spans = list(spans)
    try:
        return _encode.encode_spans_strict(spans)
    except UnicodeEncodeError:
        spans = [escaped(span) for span in spans]
    except Exception:  # what only upstream's encoder handles (with its own rules)
        pass
    return _encode.encode_spans(spans)


def _value(value: Any) -> Any:
    if type(value) is str:
        return _text(value)
    if isinstance(value, (list, tuple)):
        return tuple(_value(v) for v in value)
    if isinstance(value, dict):
        return {_text(k) if isinstance(k, str) else k: _value(v) for k, v in value.items()}
    return value


def _attributes(attributes: Any) -> Any:
    if not attributes:
        return attributes
    cleaned = BoundedAttributes(None, None, immutable=False)
    cleaned._dict = {_text(k): _value(v) for k, v in attributes.items()}  # already valid: no re-validation
    cleaned._immutable = True
    cleaned.dropped = getattr(attributes, "dropped", 0)
    return cleaned


def _bounded(items: list[Any], original: Any) -> Any:
    out: Any = BoundedList(None)
    out._dq.extend(items)
    out.dropped = getattr(original, "dropped", 0)
    return out


def _resource(resource: Any) -> Any:
    if resource is None:
        return None
    attributes = dict(resource.attributes)
    fixed = {_text(k): _value(v) for k, v in attributes.items()}
    return resource if fixed == attributes else Resource(fixed, resource.schema_url)


def escaped(span: ReadableSpan) -> ReadableSpan:
    """``span`` itself when its text is valid UTF-8, else a copy with that text escaped."""
    try:
        _encode.encode_spans_strict([span])
        return span
    except UnicodeEncodeError:
        pass
    except Exception:
        return span
    events = [Event(_text(e.name), _attributes(e.attributes), e.timestamp) for e in span.events]
    links = [Link(link.context, _attributes(link.attributes)) for link in span.links]
    status = span.status
    if status.description:
        status = Status(status.status_code, _text(status.description))
    return ReadableSpan(
        name=_text(span.name), context=span.context, parent=span.parent, resource=_resource(span.resource),
        attributes=_attributes(span._attributes), events=_bounded(events, span._events),
        links=_bounded(links, span._links), kind=span.kind, status=status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope,
    )
