"""The OTLP/protobuf encoder for spans and log records: upstream's bytes with less work per item.

Upstream's ``encode_spans(spans).SerializePartialToString()`` builds a protobuf object for every
span, attribute, key and value, then serializes them: ~60 µs for a typical Falcon server span. Under
the GIL that CPU is taken from requests even though it runs on the export thread. This module writes
the same wire format directly as bytes, with small caches for what repeats between spans (attribute
keys, short key/value pairs, span names) and the resource and scope blocks encoded once
per batch.

The output is byte-identical to upstream's encoder (opentelemetry-exporter-otlp-proto-common) for
the same input: the same grouping and order of resource and scope blocks, fields in field-number
order as upb writes them, and the same presence rules (proto3 scalars omitted when zero/empty,
oneof values and sub-messages written when set). tests/export/test_protobuf.py proves it against upstream.

Anything this module does not handle exactly — a value type upstream rejects or coerces, an integer
out of range, a string that is not valid UTF-8 — makes ``encode_spans``/``encode_logs`` hand the
whole batch to upstream's encoder instead (``fallbacks`` counts how often), so upstream's behaviour
(skipping and logging a bad attribute, or failing the batch) is kept too. The exporters do not use
those two: they encode through ``contain.py``, which calls the strict functions here and, when one
fails, goes item by item so that a bad item never fails its batch.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from types import MappingProxyType
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import SpanKind, StatusCode

__all__ = [
    "EncodedLogs", "encode_logs", "encode_prepared_logs", "encode_scoped_logs", "encode_spans", "encode_spans_strict",
    "fallbacks",
    "plain_attributes",
]

#: How many batches each signal handed to upstream's encoder (see the module docstring).
fallbacks = {"spans": 0, "logs": 0}


class _Fallback(Exception):
    """Input this encoder does not reproduce exactly; upstream's encoder takes the batch."""


# --- wire primitives -------------------------------------------------------------------------------

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U32_MAX = (1 << 32) - 1
_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1
_U64 = 1 << 64
_M64 = _U64 - 1

_IDS = struct.Struct(">BBQQBBQ").pack  # trace_id (1) and span_id (2), both 'bytes' fields
_PARENT = struct.Struct(">BBQ").pack  # parent_span_id (4)
_FIXED64 = struct.Struct("<BQ").pack  # tag, fixed64
_TWO_FIXED64 = struct.Struct("<BQBQ").pack
_FIXED32 = struct.Struct("<BI").pack
_DOUBLE = struct.Struct("<Bd").pack  # AnyValue.double_value (4)


def _varint_loop(n: int) -> bytes:
    if n < 0:
        raise _Fallback
    if 0x4000 <= n < 0x200000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINT = [_varint_loop(i) for i in range(4096)]


def _uvarint(n: int) -> bytes:
    return _VARINT[n] if 0 <= n < 4096 else _varint_loop(n)


def _int64(n: int) -> bytes:
    """Varint of an int64 field (negative values as ten-byte two's complement)."""
    if 0 <= n < 4096:
        return _VARINT[n]
    if n < 0:
        if n < _I64_MIN:
            raise _Fallback
        n += _U64
    elif n > _I64_MAX:
        raise _Fallback
    return _uvarint(n)


def _int32(n: int) -> bytes:
    """Varint of an int32 or enum field."""
    if type(n) is not int or not _I32_MIN <= n <= _I32_MAX:
        raise _Fallback
    return _uvarint(n if n >= 0 else n + _U64)


def _uint32(n: int) -> bytes:
    if type(n) is not int or not 0 <= n <= _U32_MAX:
        raise _Fallback
    return _uvarint(n)


def _string(tag: bytes, s: Any) -> bytes:
    """A string field, or b"" when unset or empty (proto3 implicit presence)."""
    if not s:
        if s is None or s == "":
            return b""
        raise _Fallback
    if type(s) is not str:
        raise _Fallback  # upstream's protobuf also accepts UTF-8 bytes, among others
    b = s.encode()
    return tag + _uvarint(len(b)) + b


def _message(tag: bytes, body: bytes) -> bytes:
    return tag + _uvarint(len(body)) + body


# --- AnyValue and attributes ---------------------------------------------------------------------

_TRUE = b"\x10\x01"
_FALSE = b"\x10\x00"


def _any_value(v: Any) -> bytes:
    """The body of an AnyValue message for ``v``, as upstream's ``_encode_value``."""
    t = type(v)
    if t is str:
        b = v.encode()
        return b"\x0a" + _uvarint(len(b)) + b
    if v is None:
        return b""
    if t is bool:
        return _TRUE if v else _FALSE
    if t is int:
        return b"\x18" + _int64(v)
    if t is float:
        return _DOUBLE(0x21, v)
    if t is bytes:
        return b"\x3a" + _uvarint(len(v)) + v
    if t is tuple or t is list:
        return _array(v)
    if t is dict:
        return _kvlist(v.items())
    return _any_value_subclass(v)


def _any_value_subclass(v: Any) -> bytes:
    # Upstream's isinstance chain, for subclasses and other Sequence/Mapping types.
    if isinstance(v, str):
        b = str.encode(v)
        return b"\x0a" + _uvarint(len(b)) + b
    if isinstance(v, int):  # IntEnum and the like: protobuf stores the int's own value
        return b"\x18" + _int64(int.__index__(v))
    if isinstance(v, float):
        return _DOUBLE(0x21, v)
    if isinstance(v, bytes):
        b = bytes(memoryview(v))
        return b"\x3a" + _uvarint(len(b)) + b
    if isinstance(v, Sequence):
        return _array(v)
    if isinstance(v, Mapping):
        return _kvlist(v.items())
    raise _Fallback  # upstream raises "Invalid type"


def _array(seq: Any) -> bytes:
    parts = []
    for x in seq:
        av = _any_value(x)
        parts.append(b"\x0a" + _uvarint(len(av)) + av)
    body = b"".join(parts)
    return b"\x2a" + _uvarint(len(body)) + body


def _kvlist(items: Any) -> bytes:
    parts = [_key_value(str(k), x) for k, x in items]
    body = b"\x0a" + b"\x0a".join(parts) if parts else b""
    return b"\x32" + _uvarint(len(body)) + body


# Caches of what repeats from span to span, shared by the export threads (each operation on them
# is one dict operation, atomic under the GIL). A key whose values keep changing (a port, a URL with
# ids in it) stops being cached after _MAX_VALUES_PER_KEY values; everything is forgotten when
# _MAX_PAIRS pairs or _MAX_KEYS keys are held, which bounds memory to a few megabytes.
_MAX_KEYS = 512
_MAX_PAIRS = 8192
_MAX_VALUES_PER_KEY = 256
_MAX_CACHED_VALUE_LEN = 64
_KEY_FIELD: dict[str, bytes] = {}  # attribute key -> KeyValue.key field
_STR_PAIRS: dict[str, dict[str, bytes]] = {}  # key -> str value -> length-prefixed KeyValue
_INT_PAIRS: dict[str, dict[int, bytes]] = {}  # key -> int value -> length-prefixed KeyValue
_UNCACHED: dict[Any, bytes] = {}  # stays empty: "no pairs cached for this key"
_pair_count = 0


def _key_field(key: Any) -> bytes:
    if type(key) is not str:
        raise _Fallback
    b = key.encode()
    field = b"\x0a" + _uvarint(len(b)) + b if b else b""
    if len(_KEY_FIELD) >= _MAX_KEYS:
        _KEY_FIELD.clear()
    _KEY_FIELD[key] = field
    return field


def _key_value(key: Any, value: Any) -> bytes:
    """A length-prefixed KeyValue message (the caller writes the field tag)."""
    field = _KEY_FIELD.get(key)
    if field is None:
        field = _key_field(key)
    t = type(value)
    if t is str:  # the common cases inline
        b = value.encode()
        n = len(b)
        av = b"\x0a" + (_VARINT[n] if n < 4096 else _uvarint(n)) + b
    elif t is int and 0 <= value < 4096:
        av = b"\x18" + _VARINT[value]
    else:
        av = _any_value(value)
    n = len(av)
    body = field + b"\x12" + (_VARINT[n] if n < 4096 else _uvarint(n)) + av
    n = len(body)
    return (_VARINT[n] if n < 4096 else _uvarint(n)) + body


def _cached_pair(cache: dict[str, dict[Any, bytes]], key: str, value: Any) -> bytes:
    global _pair_count
    kv = _key_value(key, value)
    values = cache.get(key)
    if values is None:
        if _pair_count >= _MAX_PAIRS or len(cache) >= _MAX_KEYS:
            _STR_PAIRS.clear()
            _INT_PAIRS.clear()
            _pair_count = 0
        values = cache[key] = {}
    if values is not _UNCACHED:
        if len(values) >= _MAX_VALUES_PER_KEY:
            cache[key] = _UNCACHED
        elif type(value) is int or len(value) <= _MAX_CACHED_VALUE_LEN:
            values[value] = kv
            _pair_count += 1
    return kv


def _attributes(tag: bytes, attributes: Any) -> bytes:
    """Repeated KeyValue field ``tag`` for an attributes mapping, as upstream's _encode_attributes."""
    if not attributes:
        return b""
    t = type(attributes)
    if t is BoundedAttributes or t is MappingProxyType:
        # A plain dict iterates in C; BoundedAttributes' own iteration takes a lock per key.
        try:
            attributes = attributes.copy()
        except AttributeError:  # a proxy of a mapping without copy(): iterate it as upstream does
            pass
    parts: list[bytes] = []
    append = parts.append
    str_pairs = _STR_PAIRS
    int_pairs = _INT_PAIRS
    for key, value in attributes.items():
        t = type(value)
        if t is str:
            kv = str_pairs.get(key, _UNCACHED).get(value)
            if kv is None:
                kv = _cached_pair(str_pairs, key, value)
        elif t is int:
            kv = int_pairs.get(key, _UNCACHED).get(value)
            if kv is None:
                kv = _cached_pair(int_pairs, key, value)
        else:
            kv = _key_value(key, value)
        append(kv)
    return tag + tag.join(parts)


_PLAIN_TYPES = frozenset((int, float, bool, bytes, type(None)))


def plain_attributes(
    tag: bytes, mapping: Mapping[str, Any], skip: frozenset[str], max_len: int | None, max_count: int | None
) -> bytes | None:
    """Repeated KeyValue field ``tag`` for the items of ``mapping`` whose keys are not in ``skip``.

    The same bytes as ``_attributes`` for them, but only when BoundedAttributes would keep every one
    as it is: at most ``max_count`` items, each value a str of at most ``max_len`` characters that is
    valid UTF-8, an int, float, bool, bytes or None. Returns None otherwise (or raises).
    """
    parts: list[bytes] = []
    append = parts.append
    str_pairs = _STR_PAIRS
    int_pairs = _INT_PAIRS
    plain = _PLAIN_TYPES
    try:
        for key, value in mapping.items():
            if key in skip:
                continue
            t = type(value)
            if t is str:
                if max_len is not None and len(value) > max_len:
                    return None
                kv = str_pairs.get(key, _UNCACHED).get(value)
                if kv is None:
                    kv = _cached_pair(str_pairs, key, value)
            elif t is int:
                kv = int_pairs.get(key, _UNCACHED).get(value)
                if kv is None:
                    kv = _cached_pair(int_pairs, key, value)
            elif t in plain:
                kv = _key_value(key, value)
            else:
                return None
            append(kv)
    except (_Fallback, UnicodeEncodeError):  # e.g. lone surrogates, escaped by the caller's general way
        return None
    if max_count is not None and len(parts) > max_count:
        return None
    return tag + tag.join(parts) if parts else b""


# --- resource / scope grouping (shared by spans and logs) -----------------------------------------


def _resource_field(resource: Any) -> bytes:
    return _message(b"\x0a", _attributes(b"\x0a", resource.attributes))


def _scope_field(scope: Any) -> bytes:
    if scope is None:
        return b"\x0a\x00"
    body = _string(b"\x0a", scope.name) + _string(b"\x12", scope.version) + _attributes(b"\x1a", scope.attributes)
    return _message(b"\x0a", body)


def _encode_request(items: Sequence[Any], encode_item: Callable[[Any], bytes]) -> bytes:
    """ExportTrace/LogsServiceRequest: items grouped by resource, then by scope, as upstream does.

    Upstream groups in nested dicts keyed by the SDK Resource and InstrumentationScope (equal
    objects share a group, the first one seen is encoded). Resource hashing is costly (JSON of its
    attributes), so each distinct object is looked up in those dicts only once, by id; ids are
    stable here because the batch keeps every object alive.
    """
    by_resource: dict[Any, list[Any]] = {}  # equal-resource groups, first seen first
    resource_by_id: dict[int, list[Any]] = {}
    for item in items:
        resource = item.resource
        group = resource_by_id.get(id(resource))
        if group is None:
            group = by_resource.get(resource)
            if group is None:
                group = by_resource[resource] = [resource, {}, {}]
            resource_by_id[id(resource)] = group
        scope = item.instrumentation_scope or None
        scope_by_id = group[1]
        records = scope_by_id.get(id(scope))
        if records is None:
            by_scope = group[2]
            records = by_scope.get(scope)
            if records is None:
                records = by_scope[scope] = []
            scope_by_id[id(scope)] = records
        encoded = encode_item(item)
        n = len(encoded)
        records.append(b"\x12" + (_VARINT[n] if n < 4096 else _uvarint(n)))
        records.append(encoded)

    return _join_groups(by_resource.values())


def _join_groups(groups: Iterable[Sequence[Any]]) -> bytes:
    """The request from ``[resource, _, {scope: [length-prefixed record parts]}]`` groups."""
    # One join at the end: message lengths are summed, not measured on joined copies.
    out: list[bytes] = []
    for resource, _, by_scope in groups:
        resource_field = _resource_field(resource)
        resource_schema = _string(b"\x1a", resource.schema_url)
        head_at = len(out)
        out.append(b"")  # ResourceSpans/ResourceLogs tag and length, filled in below
        out.append(resource_field)
        size = len(resource_field) + len(resource_schema)
        for scope, records in by_scope.items():
            scope_field = _scope_field(scope)
            schema = _string(b"\x1a", scope.schema_url) if scope is not None else b""
            scope_size = len(scope_field) + sum(map(len, records)) + len(schema)
            head = b"\x12" + _uvarint(scope_size) + scope_field
            out.append(head)
            out.extend(records)
            out.append(schema)
            size += len(head) + scope_size - len(scope_field)
        out.append(resource_schema)
        out[head_at] = b"\x0a" + _uvarint(size)
    return b"".join(out)


# --- spans ---------------------------------------------------------------------------------------

_KIND = {
    SpanKind.INTERNAL: b"\x30\x01",
    SpanKind.SERVER: b"\x30\x02",
    SpanKind.CLIENT: b"\x30\x03",
    SpanKind.PRODUCER: b"\x30\x04",
    SpanKind.CONSUMER: b"\x30\x05",
}
_SERVER = SpanKind.SERVER
_SERVER_KIND = _KIND[_SERVER]
_UNSET, _OK, _ERROR = StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)  # Span.flags (16): HAS_IS_REMOTE
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)  # ... | IS_REMOTE
_LINK_FLAGS_LOCAL = _FIXED32(0x35, 0x100)  # Link.flags (6)
_LINK_FLAGS_REMOTE = _FIXED32(0x35, 0x300)
_NAME_FIELD: dict[str, bytes] = {}


def _ids(trace_id: int, span_id: int) -> bytes:
    return _IDS(0x0A, 0x10, trace_id >> 64, trace_id & _M64, 0x12, 0x08, span_id)


def _trace_state(trace_state: Any) -> bytes:
    if trace_state is None or not trace_state:
        return b""
    return _string(b"\x1a", ",".join([f"{key}={value}" for key, value in trace_state.items()]))


def _status(status: Any) -> bytes:
    if status is None:
        return b""
    code = status.status_code
    description = status.description
    if description is None:
        if code is _UNSET:
            return b"\x7a\x00"
        if code is _OK:
            return b"\x7a\x02\x18\x01"
        if code is _ERROR:
            return b"\x7a\x02\x18\x02"
    value = code.value
    return _message(b"\x7a", _string(b"\x12", description) + (b"\x18" + _int32(value) if value else b""))


def _time_fields(start: Any, end: Any) -> bytes:
    if start and end:
        return _TWO_FIXED64(0x39, start, 0x41, end)
    return (_FIXED64(0x39, start) if start else b"") + (_FIXED64(0x41, end) if end else b"")


def _event(event: Any) -> bytes:
    timestamp = event.timestamp
    body = (
        (_FIXED64(0x09, timestamp) if timestamp else b"")
        + _string(b"\x12", event.name)
        + _attributes(b"\x1a", event.attributes)
    )
    dropped = event.dropped_attributes
    if dropped:
        body += b"\x20" + _uint32(dropped)
    return _message(b"\x5a", body)


def _link(link: Any) -> bytes:
    context = link.context
    body = _ids(context.trace_id, context.span_id) + _attributes(b"\x22", link.attributes)
    dropped = link.dropped_attributes
    if dropped:
        body += b"\x28" + _uint32(dropped)
    return _message(b"\x6a", body + (_LINK_FLAGS_REMOTE if context and context.is_remote else _LINK_FLAGS_LOCAL))


def _span(span: Any) -> bytes:
    """The body of a Span message, as upstream's _encode_span."""
    context = span.get_span_context()
    parent = span.parent
    trace_id = context.trace_id
    parts = [_IDS(0x0A, 0x10, trace_id >> 64, trace_id & _M64, 0x12, 0x08, context.span_id)]
    trace_state = context.trace_state
    if trace_state:
        parts.append(_trace_state(trace_state))
    if parent:
        parts.append(_PARENT(0x22, 0x08, parent.span_id))
    name = span.name
    field = _NAME_FIELD.get(name) if type(name) is str else None
    if field is None:
        field = _string(b"\x2a", name)
        if len(_NAME_FIELD) >= _MAX_KEYS:
            _NAME_FIELD.clear()
        _NAME_FIELD[name] = field
    parts.append(field)
    kind = span.kind
    parts.append(_SERVER_KIND if kind is _SERVER else _KIND[kind])  # Enum hashing is slow Python
    start = span.start_time
    end = span.end_time
    parts.append(_TWO_FIXED64(0x39, start, 0x41, end) if start and end else _time_fields(start, end))
    attributes = span.attributes
    if attributes:
        parts.append(_attributes(b"\x4a", attributes))
    dropped = span.dropped_attributes
    if dropped:
        parts.append(b"\x50" + _uint32(dropped))
    events = span.events
    if events:
        parts.extend([_event(event) for event in events])
    dropped = span.dropped_events
    if dropped:
        parts.append(b"\x60" + _uint32(dropped))
    links = span.links
    if links:
        parts.extend([_link(link) for link in links])
    dropped = span.dropped_links
    if dropped:
        parts.append(b"\x70" + _uint32(dropped))
    parts.append(_status(span.status))
    parts.append(_FLAGS_REMOTE if parent and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(parts)


def _upstream_spans(spans: Sequence[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as upstream

    return upstream(spans).SerializePartialToString()


def encode_spans(spans: Sequence[Any]) -> bytes:
    """Encode SDK spans as a serialized ExportTraceServiceRequest.

    Args:
        spans: ``ReadableSpan`` objects, as a span exporter receives them.

    Returns:
        The same bytes as upstream's ``encode_spans(spans).SerializePartialToString()``.
    """
    if type(spans) is not list and type(spans) is not tuple:
        spans = list(spans)  # iterated twice if it falls back
    try:
        return _encode_request(spans, _span)
    except Exception:
        fallbacks["spans"] += 1
        return _upstream_spans(spans)


def encode_spans_strict(spans: Sequence[Any]) -> bytes:
    """``encode_spans`` without the fallback: raises on anything the lean encoder does not handle."""
    return _encode_request(spans, _span)


# --- logs ----------------------------------------------------------------------------------------


_LOG_IDS = struct.Struct(">BBQQBBQ").pack  # LogRecord trace_id (9) and span_id (10)
_SEVERITY_TEXT_FIELD: dict[str, bytes] = {}


def _log(readable: Any) -> bytes:
    """The body of a LogRecord message, as upstream's _encode_log."""
    record = readable.log_record
    return log_fields(
        record.timestamp, record.severity_number, record.severity_text, record.body, record.attributes,
        readable.dropped_attributes, record.trace_flags, record.trace_id, record.span_id,
        record.observed_timestamp, record.event_name,
    )


def log_fields(
    timestamp: Any, severity_number: Any, text: Any, body: Any, attributes: Any, dropped: Any,
    trace_flags: Any, trace_id: int, span_id: int, observed: Any, event_name: Any,
) -> bytes:
    """The body of a LogRecord message from its field values."""
    return log_message(
        timestamp, severity_fields(severity_number, text), body, attributes, dropped,
        trace_fields(trace_flags, trace_id, span_id), observed, event_name,
    )


def severity_fields(severity_number: Any, text: Any) -> bytes:
    """LogRecord fields 2 and 3 (severity_number, severity_text)."""
    severity = getattr(severity_number, "value", None)
    number = b"\x10" + _int32(severity) if severity else b""
    field = _SEVERITY_TEXT_FIELD.get(text) if type(text) is str else None
    if field is None:
        field = _string(b"\x1a", text)
        if type(text) is str and len(_SEVERITY_TEXT_FIELD) < _MAX_KEYS:
            _SEVERITY_TEXT_FIELD[text] = field
    return number + field


def trace_fields(trace_flags: Any, trace_id: int, span_id: int) -> bytes:
    """LogRecord fields 8, 9 and 10 (flags, trace_id, span_id)."""
    flags = int(trace_flags)
    out = _FIXED32(0x45, flags) if flags else b""
    if trace_id != 0 and span_id != 0:
        return out + _LOG_IDS(0x4A, 0x10, trace_id >> 64, trace_id & _M64, 0x52, 0x08, span_id)
    if trace_id != 0:
        out += b"\x4a\x10" + trace_id.to_bytes(16, "big")
    if span_id != 0:
        out += b"\x52\x08" + span_id.to_bytes(8, "big")
    return out


def log_message(
    timestamp: Any, severity: bytes, body: Any, attributes: Any, dropped: Any, trace: bytes, observed: Any,
    event_name: Any,
) -> bytes:
    """The body of a LogRecord message, with the severity and trace fields already encoded."""
    parts = [_FIXED64(0x09, timestamp) if timestamp else b"", severity]
    if type(body) is str:
        b = body.encode()
        n = len(b)
        body = b"\x0a" + (_VARINT[n] if n < 4096 else _uvarint(n)) + b
    else:
        body = _any_value(body)
    n = len(body)
    parts.append(b"\x2a" + (_VARINT[n] if n < 4096 else _uvarint(n)) + body)
    if attributes:  # a mapping, or the field from plain_attributes
        parts.append(attributes if type(attributes) is bytes else _attributes(b"\x32", attributes))
    if dropped:
        parts.append(b"\x38" + _uint32(dropped))
    parts.append(trace)
    if observed:
        parts.append(_FIXED64(0x59, observed))
    if event_name is not None:
        parts.append(_string(b"\x62", event_name))
    return b"".join(parts)


class Encoded(tuple):
    """A log record already encoded (its LogRecord message body), with its resource and scope.

    A tuple ``(resource, instrumentation_scope, encoded)``: built with ``encoded_log(...)``, no
    Python ``__init__`` per record.
    """

    __slots__ = ()
    resource = property(itemgetter(0))
    instrumentation_scope = property(itemgetter(1))
    encoded = property(itemgetter(2))


def encoded_log(resource: Any, instrumentation_scope: Any, encoded: bytes) -> Encoded:
    return tuple.__new__(Encoded, (resource, instrumentation_scope, encoded))


def _log_or_encoded(item: Any) -> bytes:
    return item.encoded if type(item) is Encoded else _log(item)


def encode_scoped_logs(resource: Any, by_scope: dict[Any, list[bytes]]) -> bytes:
    """An ExportLogsServiceRequest for one resource from ``{scope: [LogRecord message bodies]}``.

    The same bytes as ``encode_logs`` for records of that resource in those (unequal) scopes, in
    that order. Raises on anything the lean encoder does not reproduce exactly.
    """
    scoped = {}
    for scope, bodies in by_scope.items():
        parts = []
        for body in bodies:
            n = len(body)
            parts.append(b"\x12" + (_VARINT[n] if n < 4096 else _uvarint(n)))
            parts.append(body)
        scoped[scope] = parts
    return _join_groups(((resource, None, scoped),))


def encode_prepared_logs(items: Sequence[Any]) -> bytes:
    """An ExportLogsServiceRequest from ``Encoded`` items and SDK log records, grouped as encode_logs does.

    Raises on anything the lean encoder does not reproduce exactly; the caller falls back.
    """
    return _encode_request(items, _log_or_encoded)


class EncodedLogs(Sequence[Any]):
    """A log batch already serialized; ``encode_logs`` returns ``data`` for it without encoding.

    It is still a sequence of SDK log records (built by ``records()`` on first use) for an exporter
    that is not the lean one.
    """

    def __init__(self, data: bytes, count: int, records: Callable[[], Sequence[Any]]) -> None:
        self.data = data
        self._count = count
        self._make_records = records
        self._records: Sequence[Any] | None = None

    def _materialized(self) -> Sequence[Any]:
        if self._records is None:
            self._records = self._make_records()
        return self._records

    def __len__(self) -> int:
        return self._count if self._records is None else len(self._records)

    def __getitem__(self, index: Any) -> Any:
        return self._materialized()[index]

    def __iter__(self) -> Any:
        return iter(self._materialized())


def _upstream_logs(records: Sequence[Any]) -> bytes:
    from .._upstream import upstream_encode_logs

    return upstream_encode_logs(records).SerializePartialToString()


def encode_logs(records: Sequence[Any]) -> bytes:
    """Encode SDK log records as a serialized ExportLogsServiceRequest.

    Args:
        records: ``ReadableLogRecord`` objects, as a log record exporter receives them.

    Returns:
        The same bytes as upstream's ``encode_logs(records).SerializePartialToString()``.
    """
    if type(records) is EncodedLogs:
        return records.data  # serialized by the bridge's direct path (same bytes)
    if type(records) is not list and type(records) is not tuple:
        records = list(records)
    try:
        return _encode_request(records, _log)
    except Exception:
        fallbacks["logs"] += 1
        return _upstream_logs(records)
