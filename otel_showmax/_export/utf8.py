"""Spans whose text is not valid UTF-8 (lone surrogates), escaped instead of failing their batch.

Touches private names of the SDK's containers (``BoundedAttributes._dict``, ``BoundedList._dq``,
a span's ``_attributes``/``_events``/``_links``); tests/export/test_utf8.py fails loudly when they change.

A lone surrogate — from bytes decoded with ``surrogateescape`` (file names, ``sys.argv``, some
environments) — cannot be encoded as OTLP's UTF-8 strings: upstream's encoder then drops the
attribute with a logged traceback, or fails the whole batch when it is in a span or event name.
The span exporter escapes such text with backslashes (``\\udcff``) in a copy of the span and
exports the batch. Deliberate difference from upstream, as for log records in ``_pipeline/log_bridge.py``.

``sanitized_span`` and ``sanitized_log`` make such copies for ``contain.py``: every text field
escaped (names, scope, resource, attribute keys and values, event names, status description,
severity text, bodies), a name that is not a str (an event name of 123, bytes) made one
with ``text_of``, and an int past int64 in a log body made its decimal text (in an attribute,
upstream's encoder skips that attribute, as it always has). What the copy still cannot encode
(a body of an unsupported type, say) is dropped alone there and counted (docs/bad-input.md).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, Status

from . import protobuf as _encode

__all__ = ["escaped", "sanitized_log", "sanitized_span", "text_of", "valid_text"]


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


def text_of(value: Any) -> str | None:
    """``value`` as valid text for a name field (event name, span name, severity text); None stays None.

    A str is escaped as ``valid_text`` does; bytes are decoded as UTF-8 with invalid bytes as
    ``\\xNN``; anything else (an int, a float, a list) becomes ``str(value)``. Never raises.
    """
    if value is None:
        return None
    if type(value) is str:
        return _text(value)
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "backslashreplace")
        return _text(str(value))
    except Exception:
        return f"<{type(value).__name__}>"


def _key(key: Any) -> Any:
    return _text(key) if type(key) is str else text_of(key)


def _value(value: Any) -> Any:
    if type(value) is str:
        return _text(value)
    if isinstance(value, (list, tuple)):
        return tuple(_value(v) for v in value)
    if isinstance(value, dict):
        return {_key(k): _value(v) for k, v in value.items()}
    return value


_I64 = 1 << 63


def _body(value: Any) -> Any:
    """``_value`` for a log body, where an int past int64 (which no encoder takes, and which would
    cost the whole record: there is no attribute to skip) becomes its decimal text."""
    if type(value) is int and not -_I64 <= value < _I64:
        return str(value)
    if isinstance(value, (list, tuple)):
        return tuple(_body(v) for v in value)
    if isinstance(value, dict):
        return {_key(k): _body(v) for k, v in value.items()}
    return _value(value)


def _attributes(attributes: Any) -> Any:
    if not attributes:
        return attributes
    cleaned = BoundedAttributes(None, None, immutable=False)
    cleaned._dict = {_key(k): _value(v) for k, v in attributes.items()}  # already valid: no re-validation
    cleaned._immutable = True
    cleaned.dropped = getattr(attributes, "dropped", 0)
    return cleaned


def _scope(scope: Any) -> Any:
    if scope is None:
        return None
    name, version, schema_url = text_of(scope.name) or "", text_of(scope.version), text_of(scope.schema_url)
    attributes = scope.attributes
    fixed = {_key(k): _value(v) for k, v in attributes.items()} if attributes else None
    if (name, version, schema_url) == (scope.name, scope.version, scope.schema_url) and (
        not attributes or fixed == dict(attributes)
    ):
        return scope
    return InstrumentationScope(name, version, schema_url, fixed)


def _bounded(items: list[Any], original: Any) -> Any:
    out: Any = BoundedList(None)  # type: ignore[arg-type, unused-ignore]
    out._dq.extend(items)
    out.dropped = getattr(original, "dropped", 0)
    return out


def _resource(resource: Any) -> Any:
    if resource is None:
        return None
    attributes = dict(resource.attributes)
    fixed = {_key(k): _value(v) for k, v in attributes.items()}
    schema_url = text_of(resource.schema_url)
    if fixed == attributes and schema_url == resource.schema_url:
        return resource
    return Resource(fixed, schema_url)


def escaped(span: ReadableSpan) -> ReadableSpan:
    """``span`` itself when the lean encoder takes it, else ``sanitized_span(span)``."""
    try:
        _encode.encode_spans_strict([span])
        return span
    except Exception:
        return sanitized_span(span)


def sanitized_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` with every text field valid UTF-8 and every name a str (see the module doc)."""
    events = [Event(text_of(e.name) or "", _attributes(e.attributes), e.timestamp) for e in span.events]
    links = [Link(link.context, _attributes(link.attributes)) for link in span.links]
    status = span.status
    if status is not None and status.description is not None:
        status = Status(status.status_code, text_of(status.description))
    return ReadableSpan(
        name=text_of(span.name) or "", context=span.context, parent=span.parent, resource=_resource(span.resource),
        attributes=_attributes(span._attributes), events=_bounded(events, span._events),
        links=_bounded(links, span._links), kind=span.kind, status=status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=_scope(span.instrumentation_scope),
    )


_LOG_FIELDS = ("timestamp", "observed_timestamp", "trace_id", "span_id", "trace_flags", "severity_number")


def sanitized_log(readable: Any) -> Any:
    """A copy of an SDK log record with every text field valid UTF-8 and the event name a str.

    The copy has what both encoders read (``log_record`` with its fields, ``resource``,
    ``instrumentation_scope``, ``dropped_attributes``); a body of a type OTLP has no value for is
    left as it is (the record is then dropped and counted by the caller).
    """
    record = readable.log_record
    fields = {name: getattr(record, name, None) for name in _LOG_FIELDS}
    attributes = record.attributes
    fixed = SimpleNamespace(
        **fields,
        body=_body(record.body),
        severity_text=text_of(record.severity_text),
        attributes={_key(k): _value(v) for k, v in attributes.items()} if attributes else attributes,
        event_name=text_of(getattr(record, "event_name", None)),
    )
    return SimpleNamespace(
        log_record=fixed, resource=_resource(readable.resource),
        instrumentation_scope=_scope(readable.instrumentation_scope),
        dropped_attributes=getattr(readable, "dropped_attributes", 0),
    )
