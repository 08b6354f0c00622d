"""Spans with lone surrogates are exported escaped, and the rest of their batch with them."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.trace import Link, Status, StatusCode

import otel_showmax
from otel_showmax._export import protobuf as _encode
from otel_showmax._export import utf8 as _escape
from otel_showmax._export.contain import encode_spans
from otel_showmax._export.utf8 import escaped

BAD = "\udcff"


def _tracer(**kwargs):
    return TracerProvider(**kwargs).get_tracer("t")


def _decoded(data: bytes) -> list:
    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def test_valid_spans_are_the_same_objects_and_bytes():
    tracer = _tracer()
    spans = []
    for i in range(5):
        span = tracer.start_span(f"s{i}", attributes={"a": "é", "n": i, "l": ("x", "y")})
        span.add_event("e", {"k": "v"})
        span.end()
        spans.append(span)
    assert all(escaped(span) is span for span in spans)
    assert encode_spans(spans) == _encode.encode_spans(spans)


def test_a_bad_span_is_escaped_and_its_batch_exported():
    tracer = _tracer()
    good = [tracer.start_span(f"good{i}") for i in range(3)]
    bad = tracer.start_span("name" + BAD, attributes={"a": "x" + BAD, "b": ["y", BAD], "c": 3, "k" + BAD: 1},
                            links=[Link(good[0].get_span_context(), {"l": BAD})])
    bad.add_event("e" + BAD, {"k": BAD})
    bad.set_status(Status(StatusCode.ERROR, "why" + BAD))
    for span in [*good, bad]:
        span.end()
    got = _decoded(encode_spans([good[0], bad, good[1], good[2]]))
    assert [s.name for s in got] == ["good0", "name\\udcff", "good1", "good2"]
    attrs = {a.key: a.value for a in got[1].attributes}
    assert attrs["a"].string_value == "x\\udcff"
    assert [v.string_value for v in attrs["b"].array_value.values] == ["y", "\\udcff"]
    assert attrs["c"].int_value == 3 and attrs["k\\udcff"].int_value == 1
    assert got[1].events[0].name == "e\\udcff"
    assert got[1].events[0].attributes[0].value.string_value == "\\udcff"
    assert got[1].links[0].attributes[0].value.string_value == "\\udcff"
    assert got[1].status.message == "why\\udcff"
    assert got[1].trace_id == bad.get_span_context().trace_id.to_bytes(16, "big")
    # the good spans' bytes are what the encoder gives them alone
    assert _decoded(_encode.encode_spans(good)) == [got[0], got[2], got[3]]


def test_dropped_counts_survive_the_copy():
    tracer = _tracer(span_limits=SpanLimits(max_span_attributes=2, max_events=1, max_links=1))
    other = _tracer().start_span("o")
    span = tracer.start_span("s" + BAD, attributes={"a": 1, "b": 2, "c": 3},
                             links=[Link(other.get_span_context()), Link(other.get_span_context())])
    span.add_event("e1")
    span.add_event("e2")
    span.end()
    (got,) = _decoded(encode_spans([span]))
    assert (got.dropped_attributes_count, got.dropped_events_count, got.dropped_links_count) == (1, 1, 1)
    assert len(got.attributes) == 2 and len(got.events) == 1 and len(got.links) == 1


def test_a_bad_resource_is_escaped():
    tracer = _tracer(resource=Resource({"service.name": "svc" + BAD}))
    span = tracer.start_span("s")
    span.end()
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_spans([span]))
    assert request.resource_spans[0].resource.attributes[0].value.string_value == "svc\\udcff"


def test_private_names_used_by_the_copy_still_exist():
    span = _tracer().start_span("s")
    span.end()
    assert hasattr(span, "_events") and hasattr(span, "_links")
    copy = _escape._bounded([1], span._events)
    assert list(copy) == [1] and copy.dropped == 0
    attrs = _escape._attributes({"a": BAD})
    assert dict(attrs) == {"a": "\\udcff"} and attrs.dropped == 0


def test_setup_exports_every_span_of_a_batch_with_a_bad_one(receiver):
    otel_showmax.setup(endpoint=receiver.endpoint, metrics_exporter="none", logs_exporter="none")
    from opentelemetry import trace

    tracer = trace.get_tracer("escape-test")
    for i in range(10):
        with tracer.start_as_current_span(f"s{i}" + (BAD if i == 7 else "")) as span:
            if i == 5:
                span.set_attribute("path", "/tmp/" + BAD)
    assert otel_showmax.flush(10)
    assert receiver.wait_for(spans=10, timeout=10)
    names = sorted(s["name"] for s in receiver.spans)
    assert names == sorted([f"s{i}" for i in range(10) if i != 7] + ["s7\\udcff"])
    (five,) = [s for s in receiver.spans if s["name"] == "s5"]
    from otel_showmax._export import contain

    if contain.ENCODER_ON:
        assert five["attributes"]["path"] == "/tmp/\\udcff"  # upstream's encoder would drop it
    else:  # setup()'s check turned our encoder off (opentelemetry 1.40): upstream's drops the attribute alone
        assert "path" not in five["attributes"]
    assert otel_showmax.dropped()["traces"]["export_failed"] == 0
