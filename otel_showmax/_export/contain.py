"""One item that cannot be encoded never costs its batch: the exporters' encoding entry points.

A batch is encoded by the lean encoder (``protobuf.py``) in one go, as before: the common path
costs nothing more. Only when that fails is the batch taken item by item. Each item is tried as
it is, then escaped (``utf8.sanitized_span`` / ``sanitized_log``: invalid UTF-8 escaped, names
made str), with the lean encoder and then with upstream's (which skips an attribute it cannot
encode, an int past int64 say, as upstream always does). An item none of them takes is left out
and counted; the others are encoded together, grouped by resource and scope as upstream groups
them. Should that still fail, each item's own one-item request is sent: OTLP requests are a
single repeated field, so their concatenation is one valid request.

Both functions return the bytes and how many items were left out; the exporters hand that count
to the BatchWorker, which reports it as ``dropped()[signal]["invalid_item"]`` (docs/bad-input.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import _diag
from . import protobuf as _encode
from .utf8 import sanitized_log, sanitized_span

__all__ = ["encode_logs", "encode_logs_counted", "encode_spans", "encode_spans_counted"]

Encoder = Callable[[Sequence[Any]], bytes]

# False when setup() found our encoder's bytes differ from upstream's (otel_showmax/_selfcheck.py):
# upstream's encoder then encodes everything, with the same item-by-item containment.
ENCODER_ON = True


def _lean_spans(spans: Sequence[Any]) -> bytes:
    return _encode.encode_spans_strict(spans)


def _lean_logs(records: Sequence[Any]) -> bytes:
    return _encode.encode_prepared_logs(records)


def encode_spans_counted(spans: Sequence[Any]) -> tuple[bytes, int]:
    """An ExportTraceServiceRequest for ``spans`` and the number of spans left out of it.

    For spans the lean encoder takes: the same bytes as upstream's encoder.
    """
    if type(spans) is not list and type(spans) is not tuple:
        spans = list(spans)
    lean = _lean_spans if ENCODER_ON else _encode._upstream_spans
    try:
        return lean(spans), 0
    except Exception:
        pass
    return _item_by_item("traces", spans, lean, _encode._upstream_spans, sanitized_span)


def encode_logs_counted(records: Sequence[Any]) -> tuple[bytes, int]:
    """An ExportLogsServiceRequest for SDK log records (or the bridge's ``EncodedLogs``) and the
    number of records left out of it."""
    if type(records) is _encode.EncodedLogs and ENCODER_ON:
        return records.data, 0  # serialized by the bridge (what it could not convert is counted there)
    if type(records) is not list and type(records) is not tuple:
        records = list(records)  # an EncodedLogs: the bridge's records
    lean = _lean_logs if ENCODER_ON else _encode._upstream_logs
    try:
        return lean(records), 0
    except Exception:
        pass
    return _item_by_item("logs", records, lean, _encode._upstream_logs, sanitized_log)


def encode_spans(spans: Sequence[Any]) -> bytes:
    """``encode_spans_counted`` without the count."""
    return encode_spans_counted(spans)[0]


def encode_logs(records: Sequence[Any]) -> bytes:
    """``encode_logs_counted`` without the count."""
    return encode_logs_counted(records)[0]


def _item_by_item(
    signal: str, items: Sequence[Any], lean: Encoder, upstream: Encoder, sanitize: Callable[[Any], Any]
) -> tuple[bytes, int]:
    kept: list[Any] = []
    alone: list[bytes] = []  # each kept item's own one-item request
    error: Exception | None = None
    for item in items:
        try:
            encoded = _one(item, lean, upstream, sanitize)
        except Exception as exc:  # no encoder takes it, even sanitised: this item alone is dropped
            error = exc
            continue
        kept.append(encoded[0])
        alone.append(encoded[1])
    invalid = len(items) - len(kept)
    if invalid:
        _diag.warn(f"invalid_item:{signal}:encode", "%d %s could not be encoded, even escaped, and were dropped "
                   "(counted as invalid_item); last error: %r", invalid, signal, error)
    for encode in (lean, upstream):
        try:
            return encode(kept), invalid
        except Exception:
            pass
    return b"".join(alone), invalid


def _one(item: Any, lean: Encoder, upstream: Encoder, sanitize: Callable[[Any], Any]) -> tuple[Any, bytes]:
    """``(item or its sanitised copy, its one-item request)``; raises when no encoder takes either."""
    try:
        return item, lean((item,))
    except Exception:
        pass
    copy = sanitize(item)
    try:
        return copy, lean((copy,))
    except Exception:
        pass
    return copy, upstream((copy,))
