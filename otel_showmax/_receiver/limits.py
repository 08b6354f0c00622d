"""Limits on one export request, checked on the protobuf wire bytes before anything is parsed.

A protobuf message costs as little as two bytes on the wire (a tag and a zero length) and about 70
bytes once parsed, then a Python dict once decoded: 16 MiB of empty ``ResourceSpans`` (15 KiB when
gzip-compressed) would take over half a GiB and seconds of work. ``check`` walks the wire format
without allocating messages and refuses a request with more than ``max_items`` messages or nested
deeper than ``max_depth``; both receivers call it before parsing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_ITEMS", "LimitExceeded", "Malformed", "check"]

#: Most protobuf messages (resources, scopes, spans, log records, metrics, data points, events,
#: links, attributes, values …) in one export request.
DEFAULT_MAX_ITEMS = 1_000_000
#: Deepest message nesting below the export request (a span's attribute value is at depth 5;
#: each level of array or map inside an attribute value adds 2).
DEFAULT_MAX_DEPTH = 32

_Schema = dict[int, Any]  # field number -> schema of the sub-message in that field
_SCHEMAS: dict[str, _Schema] = {}


class LimitExceeded(Exception):
    """The request is well-formed so far but larger or deeper than allowed."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class Malformed(Exception):
    """The bytes are not a protobuf message."""


def _schema(descriptor: Any) -> _Schema:
    """Field number -> sub-message schema for every message-typed field (cycles shared, not copied)."""
    found = _SCHEMAS.get(descriptor.full_name)
    if found is not None:
        return found
    schema: _Schema = {}
    _SCHEMAS[descriptor.full_name] = schema
    for field in descriptor.fields:
        if field.message_type is not None:
            schema[field.number] = _schema(field.message_type)
    return schema


def schema_for(message_type: type) -> _Schema:
    """The wire schema of a generated protobuf message class."""
    return _schema(message_type.DESCRIPTOR)  # type: ignore[attr-defined]


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            break
    raise Malformed("bad varint")


def check(data: bytes, schema: _Schema, max_items: int, max_depth: int) -> None:
    """Refuse ``data`` (one serialised message of ``schema``) if it exceeds the limits.

    Iterative, no recursion; the work is proportional to the fields walked, and stops at the first
    limit exceeded. A message of ``n`` bytes holds at most ``n // 2`` messages nested at most
    ``n // 2`` deep, so when the whole request is too small to exceed ``max_items``, sub-messages too
    small to exceed ``max_depth`` are skipped without being walked.

    Raises:
        LimitExceeded: more than ``max_items`` messages (limit ``max_items``) or nesting deeper
            than ``max_depth`` (limit ``max_depth``).
        Malformed: the wire format is broken (bad varint, truncated field, groups, unknown wire type).
    """
    count_all = len(data) // 2 > max_items
    count = 0
    depth = 0
    pos, end = 0, len(data)
    stack: list[tuple[int, _Schema]] = []
    while True:
        if pos >= end:
            if pos > end:
                raise Malformed("truncated field")
            if not stack:
                return
            end, schema = stack.pop()
            depth -= 1
            continue
        byte = data[pos]
        if byte < 0x80:
            tag = byte
            pos += 1
        else:
            tag, pos = _varint(data, pos, end)
        if tag < 8:
            raise Malformed("field number 0")
        wire_type = tag & 7
        if wire_type == 0:
            while pos < end and data[pos] >= 0x80:
                pos += 1
            pos += 1
        elif wire_type == 2:
            byte = data[pos] if pos < end else 0x80
            if byte < 0x80:
                length = byte
                pos += 1
            else:
                length, pos = _varint(data, pos, end)
            if pos + length > end:
                raise Malformed("truncated field")
            child = schema.get(tag >> 3)
            if child is None:
                pos += length
                continue
            count += 1
            if count > max_items:
                raise LimitExceeded("max_items", f"request has more than max_items={max_items} protobuf messages")
            if depth + 1 > max_depth:
                raise LimitExceeded("max_depth", f"request nests messages deeper than max_depth={max_depth}")
            if not count_all and depth + 1 + length // 2 <= max_depth:
                pos += length  # too small to nest past max_depth, and the request too small to count
                continue
            stack.append((end, schema))
            end = pos + length
            schema = child
            depth += 1
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise Malformed(f"wire type {wire_type} (groups are not used by OTLP)")
