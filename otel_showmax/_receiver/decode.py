"""Decode OTLP export requests (protobuf messages) into plain, JSON-friendly dicts.

One dict per span, per log record and per metric data point, each carrying its resource
attributes and scope name, so a test can filter and compare without touching protobuf.
Trace and span ids are lowercase hex ("" when absent); enums are their short names.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = ["REQUEST_TYPES", "any_value", "attributes", "decode"]

Item = dict[str, Any]

#: Signal name (as used in the receiver's lists and JSON lines) → protobuf request type.
REQUEST_TYPES: dict[str, type] = {
    "spans": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}

_KIND_NAMES = {v: k.removeprefix("SPAN_KIND_") for k, v in Span.SpanKind.items()}
_STATUS_NAMES = {v: k.removeprefix("STATUS_CODE_") for k, v in Status.StatusCode.items()}


def any_value(value: AnyValue) -> Any:
    """Convert an OTLP AnyValue into the matching Python value (None when unset)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(key_values: Any) -> dict[str, Any]:
    """Convert a repeated KeyValue field into a plain dict."""
    return {kv.key: any_value(kv.value) for kv in key_values}


def _hex(raw: bytes) -> str:
    return raw.hex() if raw.strip(b"\0") else ""


def _spans(request: ExportTraceServiceRequest) -> list[Item]:
    items = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                items.append(
                    {
                        "trace_id": _hex(span.trace_id),
                        "span_id": _hex(span.span_id),
                        "parent_span_id": _hex(span.parent_span_id),
                        "name": span.name,
                        "kind": _KIND_NAMES.get(span.kind, str(span.kind)),
                        "status_code": _STATUS_NAMES.get(span.status.code, str(span.status.code)),
                        "status_message": span.status.message,
                        "start_time_unix_nano": span.start_time_unix_nano,
                        "end_time_unix_nano": span.end_time_unix_nano,
                        "attributes": attributes(span.attributes),
                        "events": [
                            {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": attributes(e.attributes)}
                            for e in span.events
                        ],
                        "links": [
                            {"trace_id": _hex(lk.trace_id), "span_id": _hex(lk.span_id),
                             "attributes": attributes(lk.attributes)}
                            for lk in span.links
                        ],
                        "resource": resource,
                        "scope": ss.scope.name,
                        "scope_version": ss.scope.version,
                    }
                )
    return items


def _logs(request: ExportLogsServiceRequest) -> list[Item]:
    items = []
    for rl in request.resource_logs:
        resource = attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                items.append(
                    {
                        "trace_id": _hex(rec.trace_id),
                        "span_id": _hex(rec.span_id),
                        "body": any_value(rec.body),
                        "severity_text": rec.severity_text,
                        "severity_number": int(rec.severity_number),
                        "attributes": attributes(rec.attributes),
                        "time_unix_nano": rec.time_unix_nano,
                        "observed_time_unix_nano": rec.observed_time_unix_nano,
                        "event_name": rec.event_name,
                        "resource": resource,
                        "scope": sl.scope.name,
                    }
                )
    return items


def _point_values(kind: str, point: Any) -> dict[str, Any]:
    if kind in ("gauge", "sum"):
        which = point.WhichOneof("value")
        return {"value": getattr(point, which) if which else None}
    values: dict[str, Any] = {"count": point.count, "sum": point.sum}
    if kind == "histogram":
        values.update(bucket_counts=list(point.bucket_counts), explicit_bounds=list(point.explicit_bounds))
    if kind in ("histogram", "exponential_histogram"):
        values.update(min=point.min if point.HasField("min") else None, max=point.max if point.HasField("max") else None)
    if kind == "summary":
        values["quantiles"] = {q.quantile: q.value for q in point.quantile_values}
    return values


def _metrics(request: ExportMetricsServiceRequest) -> list[Item]:
    items = []
    for rm in request.resource_metrics:
        resource = attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(metric, kind)
                for point in data.data_points:
                    item = {
                        "name": metric.name,
                        "type": kind,
                        "unit": metric.unit,
                        "description": metric.description,
                        "attributes": attributes(point.attributes),
                        "start_time_unix_nano": point.start_time_unix_nano,
                        "time_unix_nano": point.time_unix_nano,
                        "resource": resource,
                        "scope": sm.scope.name,
                    }
                    if kind == "sum":
                        item["is_monotonic"] = data.is_monotonic
                    if hasattr(data, "aggregation_temporality"):
                        item["temporality"] = int(data.aggregation_temporality)
                    item.update(_point_values(kind, point))
                    items.append(item)
    return items


_DECODERS = {"spans": _spans, "logs": _logs, "metrics": _metrics}


def decode(signal: str, request: Any) -> list[Item]:
    """Decode one parsed export request of ``signal`` ("spans", "logs" or "metrics") into dicts."""
    return _DECODERS[signal](request)
