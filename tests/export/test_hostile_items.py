"""Issue 15: one item that cannot be encoded as it is never costs its batch.

Each case queues ten good items and one hostile one in the same batch, through ``setup()`` to a
live receiver over OTLP/HTTP and OTLP/gRPC. The hostile item arrives escaped or sanitised, or is
dropped alone and counted as ``invalid_item``; its ten batch-mates always arrive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from opentelemetry import trace
from opentelemetry._logs import LogRecord, get_logger

import otel_showmax
from otel_showmax.receiver import OTLPGrpcReceiver, OTLPReceiver

BAD = "\udcff"
GOOD = 10


@pytest.fixture(params=["http/protobuf", "grpc"])
def live(request) -> Iterator[object]:
    """A receiver of the protocol under test, and otel_showmax set up to export to it."""
    receiver = OTLPGrpcReceiver() if request.param == "grpc" else OTLPReceiver()
    with receiver:
        otel_showmax.setup(endpoint=receiver.endpoint, protocol=request.param, metrics_exporter="none",
                           service_name="hostile", bsp_schedule_delay_ms=60_000, blrp_schedule_delay_ms=60_000)
        yield receiver


def _delivered(receiver, signal: str, arrive: int, invalid: int = 0) -> list[dict]:
    """Flush; ``arrive`` items reach the receiver and ``invalid`` are counted, nothing else is lost."""
    assert otel_showmax.flush(10)
    key = "spans" if signal == "traces" else "logs"
    assert receiver.wait_for(**{key: arrive}, timeout=10), (len(getattr(receiver, key)), otel_showmax.dropped())
    dropped = otel_showmax.dropped()[signal]
    assert dropped == {"queue_full": 0, "export_failed": 0, "shutdown": 0, "invalid_item": invalid}
    items = getattr(receiver, key)
    assert len(items) == arrive
    return items


def _good_spans(tracer_name: str = "good") -> None:
    tracer = trace.get_tracer(tracer_name)
    for i in range(GOOD):
        with tracer.start_as_current_span(f"ok{i}"):
            pass


def test_a_tracer_named_with_a_lone_surrogate(live):
    _good_spans()
    with trace.get_tracer("t" + BAD).start_as_current_span("bad"):
        pass
    spans = _delivered(live, "traces", GOOD + 1)
    (bad,) = [s for s in spans if s["name"] == "bad"]
    assert bad["scope"] == "t\\udcff"


def test_a_big_int_span_with_a_surrogate_in_an_event_name(live):
    _good_spans()
    with trace.get_tracer("good").start_as_current_span("bad") as span:
        span.set_attribute("big", 2**63)
        span.set_attribute("fine", 1)
        span.add_event("e" + BAD)
    spans = _delivered(live, "traces", GOOD + 1)
    (bad,) = [s for s in spans if s["name"] == "bad"]
    assert bad["attributes"] == {"fine": 1}  # upstream's rule for an int past int64: the attribute is skipped
    assert [e["name"] for e in bad["events"]] == ["e\\udcff"]


def test_a_big_int_span_and_a_surrogate_named_span_in_one_batch(live):
    tracer = trace.get_tracer("good")
    for i in range(GOOD - 1):
        with tracer.start_as_current_span(f"ok{i}"):
            pass
    with tracer.start_as_current_span("big") as span:
        span.set_attribute("big", 2**63)
    with tracer.start_as_current_span("n" + BAD):
        pass
    spans = _delivered(live, "traces", GOOD + 1)
    assert {"big", "n\\udcff"} <= {s["name"] for s in spans}


def _logs_with(hostile: Callable[[], None]) -> None:
    log = logging.getLogger("hostile.good")
    for i in range(GOOD):
        log.warning("ok %d", i)
    hostile()


@pytest.mark.parametrize(
    ("key", "value", "name"),
    [
        ("event.name", 123, "123"),
        ("event.name", 1.5, "1.5"),
        ("event.name", [1, "a"], "[1, 'a']"),
        ("event.name", b"ab\xff", "ab\\xff"),
        ("event.name", "e" + BAD, "e\\udcff"),
        ("otel.event.name", 123, "123"),
        ("otel.event.name", ["x"], "['x']"),
    ],
)
def test_a_log_event_name_that_is_not_valid_text(live, key, value, name):
    _logs_with(lambda: logging.getLogger("hostile.good").warning("bad", extra={key: value}))
    logs = _delivered(live, "logs", GOOD + 1)
    (bad,) = [r for r in logs if r["body"] == "bad"]
    assert bad["event_name"] == name


def test_a_logger_named_with_a_lone_surrogate(live):
    _logs_with(lambda: logging.getLogger("lg" + BAD).warning("bad"))
    logs = _delivered(live, "logs", GOOD + 1)
    (bad,) = [r for r in logs if r["body"] == "bad"]
    assert bad["scope"] == "lg\\udcff"


def test_an_api_log_record_that_cannot_be_encoded_is_dropped_alone_and_counted(live):
    api_logger = get_logger("hostile.api")

    def hostile() -> None:
        api_logger.emit(LogRecord(body=object()))  # not an OTLP AnyValue: no encoder takes it
        api_logger.emit(LogRecord(body="fine", event_name=7))  # sanitised: event name "7"

    _logs_with(hostile)
    logs = _delivered(live, "logs", GOOD + 1, invalid=1)
    (fine,) = [r for r in logs if r["body"] == "fine"]
    assert fine["event_name"] == "7"


# -- contain.py on its own -------------------------------------------------------------------------


def _sdk_spans(*specs: tuple[str, dict]) -> list:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("unit")
    spans = []
    for name, attributes in specs:
        span = tracer.start_span(name, attributes=attributes)
        span.end()
        spans.append(span)
    return spans


def _span_names(data: bytes) -> list[str]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    return [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_a_batch_only_upstream_encodes_still_gets_upstreams_bytes():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as upstream

    from otel_showmax._export.contain import encode_spans_counted

    spans = _sdk_spans(("a", {"n": 1}), ("big", {"big": 2**64, "ok": "x"}), ("c", {}))
    assert encode_spans_counted(spans) == (upstream(spans).SerializePartialToString(), 0)


def test_valid_batches_take_the_lean_path_unchanged():
    from otel_showmax._export import protobuf
    from otel_showmax._export.contain import encode_spans_counted

    spans = _sdk_spans(*[(f"s{i}", {"i": i, "s": "é"}) for i in range(20)])
    assert encode_spans_counted(spans) == (protobuf.encode_spans_strict(spans), 0)


def test_when_grouping_fails_each_items_own_request_is_sent(monkeypatch):
    from otel_showmax._export import contain

    spans = _sdk_spans(("a", {}), ("b" + BAD, {}), ("c", {}))
    strict = contain._encode.encode_spans_strict

    def lean_only_alone(items):
        if len(items) > 1:
            raise ValueError("grouping")
        return strict(items)

    monkeypatch.setattr(contain, "_lean_spans", lean_only_alone)
    monkeypatch.setattr(contain._encode, "_upstream_spans", lambda items: (_ for _ in ()).throw(ValueError()))
    monkeypatch.setattr(contain._encode, "encode_spans_strict", lean_only_alone)
    data, invalid = contain.encode_spans_counted(spans)
    assert invalid == 0
    assert _span_names(data) == ["a", "b\\udcff", "c"]  # three one-item requests, one valid request


# -- a log call never raises because of otel_showmax -----------------------------------------------


@pytest.mark.parametrize("preset", ["plain", "otel", "ecs"])
def test_extras_named_like_our_fields_never_raise_and_are_exported(receiver, preset):
    from otel_showmax import correlation

    otel_showmax.setup(endpoint=receiver.endpoint, metrics_exporter="none", traces_exporter="none",
                       service_name="svc", log_fields=preset)
    log = logging.getLogger("hostile.extras")
    probe = logging.getLogRecordFactory()("p", logging.INFO, __file__, 1, "m", (), None)
    ours = sorted(set(vars(probe)) - set(vars(logging.LogRecord("p", logging.INFO, __file__, 1, "m", (), None))))
    assert set(correlation.FIELD_PRESETS[preset]) <= set(ours)  # every field the factory adds, swept
    for name in ours:
        log.warning("one %s", name, extra={name: f"mine-{name}"})  # raised KeyError before the fix
    log.warning("all", extra={name: "all" for name in ours})
    log.warning("none")
    logs = _delivered(receiver, "logs", len(ours) + 2)
    for name in ours:
        (one,) = [r for r in logs if r["body"] == f"one {name}"]
        assert one["attributes"].get(name) == f"mine-{name}", one["attributes"]
        assert correlation.USER_FIELDS not in one["attributes"]
    (everything,) = [r for r in logs if r["body"] == "all"]
    assert {name: everything["attributes"].get(name) for name in ours} == dict.fromkeys(ours, "all")
    (plain,) = [r for r in logs if r["body"] == "none"]
    assert not set(ours) & set(plain["attributes"])  # our own values are not exported as attributes


def test_a_log_body_with_an_int_past_int64_arrives_as_text(live):
    api_logger = get_logger("hostile.api")
    _logs_with(lambda: api_logger.emit(LogRecord(body={"n": [2**64, 1]})))  # found by tests/fuzz (seed 25334)
    logs = _delivered(live, "logs", GOOD + 1)
    (bad,) = [r for r in logs if isinstance(r["body"], dict)]
    assert bad["body"] == {"n": [str(2**64), 1]}
