"""The bridge's direct path (Converter.encode) writes the same bytes as Converter + encode_logs.

The reference is the path it replaces: ``encode_logs(converter.convert_batch(batch))`` (SDK
``ReadWriteLogRecord``s encoded by the lean encoder, itself proven against upstream in
tests/export/test_protobuf.py). Every test feeds both the same queued ``_Pending`` items.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from contextlib import contextmanager

import pytest
from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as upstream_encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LogRecordLimits, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

import otel_showmax
from otel_showmax import _config, _selfcheck, _setup, _upstream
from otel_showmax._export import protobuf as _encode
from otel_showmax._export.protobuf import EncodedLogs, encode_logs
from otel_showmax._pipeline import logs as _logging
from otel_showmax._pipeline.log_bridge import BridgeHandler, Converter, _Pending

RESOURCE = Resource.create({"service.name": "catalogue", "deployment.environment.name": "test"})
INJECTED = frozenset(("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName"))
SAMPLED = TracerProvider(sampler=ALWAYS_ON, resource=RESOURCE).get_tracer("t")
UNSAMPLED = TracerProvider(sampler=ALWAYS_OFF, resource=RESOURCE).get_tracer("t")


def converter(limits: LogRecordLimits | None = None, resource: Resource = RESOURCE) -> Converter:
    return Converter(lambda: resource, limits or LogRecordLimits(), INJECTED, direct=True)


@contextmanager
def capture(*names: str):
    """Loggers ``names`` whose records are queued (as _Pending) into the yielded list."""
    queued: list = []
    handler = BridgeHandler(queued.append)
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.handlers[:], lg.propagate, lg.level) for lg in loggers]
    for lg in loggers:
        lg.handlers[:] = [handler]
        lg.propagate = False
        lg.setLevel(logging.DEBUG)
    try:
        yield queued
    finally:
        for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            lg.handlers[:] = handlers
            lg.propagate = propagate
            lg.setLevel(level)


def reference(conv: Converter, batch: list) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LogRecordDroppedAttributesWarning under limits
        return encode_logs(conv.convert_batch(batch))


def direct(conv: Converter, batch: list) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoded = conv.encode(batch)  # raises instead of falling back
    assert isinstance(encoded, EncodedLogs) and len(encoded) == len(batch)
    return encoded.data


# Whether the direct encoding gives upstream's bytes on the installed SDK: setup()'s check turns it off
# where it does not (opentelemetry-sdk 1.40's log attribute limits and nesting differ).
DIRECT_MATCHES = _selfcheck._check_log_bridge() is None
# LoggerProvider takes log record limits (opentelemetry-sdk >= 1.41; 1.40 reads them from the environment only).
LIMITS_PER_PROVIDER = bool(_upstream.logger_provider_options(LogRecordLimits()))


def assert_same(batch: list, limits: LogRecordLimits | None = None) -> ExportLogsServiceRequest:
    if not DIRECT_MATCHES:  # the reference path is what runs: upstream's bytes for the converted records
        records = converter(limits).convert_batch(batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = upstream_encode_logs(records).SerializePartialToString()
        assert (_encode.encode_logs(records) == got) or _selfcheck._check_encoder() is not None  # then off too
        _selfcheck.reset()
        assert _selfcheck.run().fast_paths["log_bridge_direct"].startswith("off: ")
        return ExportLogsServiceRequest.FromString(got)
    fallbacks = _encode.fallbacks["logs"]
    expected = reference(converter(limits), batch)
    assert _encode.fallbacks["logs"] == fallbacks, "the reference itself fell back to upstream's encoder"
    got = direct(converter(limits), batch)
    assert got == expected
    request = ExportLogsServiceRequest.FromString(got)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        upstream = upstream_encode_logs(converter(limits).convert_batch(batch)).SerializePartialToString()
    assert got == upstream
    return request


def records(request: ExportLogsServiceRequest) -> list:
    return [(sl.scope.name, r) for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]


class Thing:
    def __str__(self) -> str:
        return "thing!"


class Opaque:
    __slots__ = ()


def fail(depth: int) -> None:
    if depth:
        fail(depth - 1)
    raise ValueError("bad value", 42)


# --- golden cases ------------------------------------------------------------------------------------


def test_plain_and_formatted_messages_at_every_level():
    with capture("gold.plain") as queued:
        log = logging.getLogger("gold.plain")
        log.debug("debug")
        log.info("hello %s, %d items, %.2f", "world", 3, 1.5)
        log.warning("warn")
        log.error("error %r", {"a": 1})
        log.critical("")
        log.log(5, "below debug")
        log.log(60, "above critical")
        log.log(logging.INFO + 1, "custom %s", "level")
    request = assert_same(queued)
    assert [r.body.string_value for _, r in records(request)][:2] == ["debug", "hello world, 3 items, 1.50"]
    assert [r.severity_text for _, r in records(request)][:5] == ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


def test_extra_attributes_of_every_type():
    extra = {
        "s": "text", "empty": "", "i": 7, "big": 2**62, "neg": -5, "f": 0.25, "t": True, "no": False,
        "b": b"\x00\xff", "none": None, "lst": ["a", 1, 2.5, None, [1, 2]], "tup": ("x", "y"),
        "d": {"k": "v", "n": {"deep": [1, {"x": b"y"}]}, 3: "int key"}, "empty_list": [], "empty_dict": {},
        "obj": Thing(), "opaque": Opaque(), "sev": SeverityNumber.WARN, "ba": bytearray(b"ab"),
        "set": {1}, "unicode": "žluťoučký kůň 🐎", "": "empty key", 3: "int key", 4.5: Opaque(),
    }
    with capture("gold.extra") as queued:
        logging.getLogger("gold.extra").info("with extras", extra=extra)
        logging.getLogger("gold.extra").info("partial", extra={"only": 1})
    request = assert_same(queued)
    keys = [a.key for a in records(request)[0][1].attributes]
    assert keys[:3] == ["s", "empty", "i"] and "set" in keys


def test_exceptions_with_tracebacks_and_stack_info():
    with capture("gold.exc") as queued:
        log = logging.getLogger("gold.exc")
        try:
            fail(3)
        except ValueError:
            log.exception("failed %s", "here")
        try:
            raise KeyError()
        except KeyError:
            log.error("no args", exc_info=True)
        log.error("explicit", exc_info=(RuntimeError, RuntimeError("x"), None))
        log.error("none", exc_info=(None, None, None))
        log.info("stack", stack_info=True)
    request = assert_same(queued)
    attributes = {a.key: a.value for a in records(request)[0][1].attributes}
    assert attributes["exception.type"].string_value == "ValueError"
    assert "fail(depth - 1)" in attributes["exception.stacktrace"].string_value


def test_event_names():
    with capture("gold.event") as queued:
        log = logging.getLogger("gold.event")
        log.info("new", extra={"otel.event.name": "app.started", "x": 1})
        log.info("deprecated", extra={"event.name": "app.legacy"})
        log.info("both", extra={"event.name": "old", "otel.event.name": "new"})
        log.info("none", extra={"otel.event.name": None, "event.name": "fallback"})
        log.info("surrogate", extra={"otel.event.name": "ev\udcff"})
    request = assert_same(queued)
    assert [r.event_name for _, r in records(request)] == ["app.started", "app.legacy", "new", "fallback", "ev\\udcff"]


def test_inside_and_outside_spans_sampled_and_unsampled():
    with capture("gold.span") as queued:
        log = logging.getLogger("gold.span")
        log.info("outside")
        with SAMPLED.start_as_current_span("sampled") as span:
            log.info("inside sampled")
            with SAMPLED.start_as_current_span("child"):
                log.info("inside child")
        with UNSAMPLED.start_as_current_span("unsampled"):
            log.info("inside unsampled")
        remote = trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1))
        with trace.use_span(trace.NonRecordingSpan(remote)):
            log.info("remote parent")
    request = assert_same(queued)
    logged = [r for _, r in records(request)]
    assert logged[0].trace_id == b"" and logged[0].flags == 0
    assert logged[1].trace_id == span.get_span_context().trace_id.to_bytes(16, "big") and logged[1].flags & 1
    assert logged[3].trace_id != b"" and not logged[3].flags & 1
    assert logged[4].span_id == (0xDEF).to_bytes(8, "big")


def test_many_logger_names_group_by_scope_in_first_seen_order():
    names = [f"gold.scope.{i}" for i in range(12)]
    with capture(*names) as queued:
        for i in range(60):
            logging.getLogger(names[(i * 7) % len(names)]).info("record %d", i)
    request = assert_same(queued)
    assert [sl.scope.name for sl in request.resource_logs[0].scope_logs] == [names[(i * 7) % 12] for i in range(12)]


@pytest.mark.parametrize(
    "limits",
    [
        LogRecordLimits(max_attributes=3),
        LogRecordLimits(max_attributes=1, max_attribute_length=4),
        LogRecordLimits(max_attribute_length=5),
        LogRecordLimits(max_attributes=0),
        LogRecordLimits(max_attribute_length=0),
    ],
)
def test_attribute_limits(limits):
    with capture("gold.limits") as queued:
        log = logging.getLogger("gold.limits")
        log.info("many", extra={f"k{i}": f"value-{i}" for i in range(10)})
        log.info("long", extra={"s": "x" * 100, "nested": {"a": "y" * 50, "b": ["z" * 20, 1]}, "t": ("abcdefgh",)})
        log.info("one", extra={"a": 1})
        log.info("none")
        try:
            fail(1)
        except ValueError:
            log.exception("with exception", extra={"a": "bcdefghij", "b": 2})
    request = assert_same(queued, limits)
    if _upstream.log_record_limits(limits)[0] == 3 and LIMITS_PER_PROVIDER:
        assert records(request)[0][1].dropped_attributes_count == 7
        assert [a.key for a in records(request)[0][1].attributes] == ["k7", "k8", "k9"]


def test_dropped_attributes_warning_is_kept():
    with capture("gold.warn") as queued:
        logging.getLogger("gold.warn").info("many", extra={"a": 1, "b": 2})
    with pytest.warns(UserWarning, match="dropped due to limits"):
        converter(LogRecordLimits(max_attributes=1)).encode(queued)


def test_unformattable_messages():
    with capture("gold.bad") as queued:
        log = logging.getLogger("gold.bad")
        log.info("%d items", "not a number")
        log.info("%s %s", "one")
        log.info({"a": "dict message"})
        log.info(12345)
    request = assert_same(queued)
    assert "unformattable arguments" in records(request)[0][1].body.string_value


def test_lone_surrogates_are_escaped_in_bodies_and_attribute_values():
    with capture("gold.surrogate") as queued:
        log = logging.getLogger("gold.surrogate")
        log.info("bad \udcff byte", extra={"path": "/x\udc80y", "ok": "fine"})
        log.info("%s", "arg \ud800", extra={"lst": ["no escaping inside lists"]})
    request = assert_same(queued)
    assert records(request)[0][1].body.string_value == "bad \\udcff byte"


def test_injected_correlation_fields_are_skipped():
    with capture("gold.injected") as queued:
        extra = {"otelTraceID": "0" * 32, "otelSpanID": "0" * 16, "otelTraceSampled": False, "otelServiceName": "s"}
        with SAMPLED.start_as_current_span("s"):
            logging.getLogger("gold.injected").info("injected", extra={**extra, "kept": 1})
    request = assert_same(queued)
    assert [a.key for a in records(request)[0][1].attributes] == ["kept"]


def test_mixed_batches_with_sdk_records_keep_upstream_grouping():
    other = Resource.create({"service.name": "other"})

    def sdk(name: str, body: object, resource: Resource = RESOURCE, version: str | None = None) -> ReadWriteLogRecord:
        api = LogRecord(timestamp=123, observed_timestamp=456, body=body, severity_text="INFO",
                        severity_number=SeverityNumber.INFO, attributes={"api": True}, event_name="api.event")
        return ReadWriteLogRecord(api, resource=resource, instrumentation_scope=InstrumentationScope(name, version))

    with capture("gold.mixed.a", "gold.mixed.b") as queued:
        logging.getLogger("gold.mixed.a").info("bridge a")
        logging.getLogger("gold.mixed.b").info("bridge b")
    batch = [
        sdk("gold.mixed.b", "api same scope as bridge b"),
        queued[0],
        sdk("gold.mixed.a", {"structured": [1, 2]}, version="1.0"),
        sdk("gold.mixed.a", "other resource", resource=other),
        queued[1],
        sdk("gold.mixed.a", "api same scope as bridge a"),
    ]
    request = assert_same(batch)
    groups = [(rl.resource.attributes[0].value.string_value if rl.resource.attributes else None,
               [(sl.scope.name, sl.scope.version, len(sl.log_records)) for sl in rl.scope_logs])
              for rl in request.resource_logs]
    assert len(groups) == 2 and len(request.resource_logs[0].scope_logs) == 3


def test_falls_back_to_the_reference_for_what_it_does_not_reproduce():
    with capture("gold.fallback") as queued:
        log = logging.getLogger("gold.fallback")
        log.info("ok")
        log.info("bad key", extra={"k\udcff": 1})  # upstream's encoder fails such a batch too
        log.info("huge int", extra={"n": 2**70})
    conv = converter()
    assert conv(queued[:1]).data == reference(conv, queued[:1])
    for item in queued[1:]:
        with pytest.raises((UnicodeEncodeError, _encode._Fallback)):
            conv.encode([queued[0], item])
        result = conv([queued[0], item])  # the reference path, as before
        assert not isinstance(result, EncodedLogs)
        assert [type(r) for r in result] == [ReadWriteLogRecord, ReadWriteLogRecord]


def test_a_record_the_reference_cannot_convert_is_skipped_the_same_way():
    with capture("gold.broken") as queued:
        logging.getLogger("gold.broken").info("one")
        logging.getLogger("gold.broken").info("two")
    queued[1].record.created = "not a time"
    result = converter()(queued)
    assert len(result) == 1 and encode_logs(result) == reference(converter(), queued)


def test_encoded_batch_is_still_a_sequence_of_sdk_records():
    with capture("gold.seq") as queued:
        logging.getLogger("gold.seq").info("one")
        logging.getLogger("gold.seq").info("two")
    encoded = converter()(queued)
    assert isinstance(encoded, EncodedLogs) and len(encoded) == 2
    assert encode_logs(encoded) is encoded.data
    assert [r.log_record.body for r in encoded] == ["one", "two"] and encoded[1].log_record.body == "two"
    assert upstream_encode_logs(list(encoded)).SerializePartialToString() == encoded.data


def test_not_direct_by_default():
    with capture("gold.default") as queued:
        logging.getLogger("gold.default").info("one")
    result = Converter(lambda: RESOURCE, LogRecordLimits(), INJECTED)(queued)
    assert type(result) is list


# --- randomized --------------------------------------------------------------------------------------

# Lone surrogates only at the top level here (nested ones are escaped too: see the test below).
_WORDS = ["a", "user", "id", "path", "žluť", "", "🐎", "long" * 30]


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(10 if depth < 2 else 7)
    if kind == 0:
        return rng.choice(_WORDS)
    if kind == 1:
        return rng.randint(-(2**40), 2**40)
    if kind == 2:
        return rng.random() * 1000
    if kind == 3:
        return rng.random() < 0.5
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(5)))
    if kind == 5:
        return None
    if kind == 6:
        return rng.choice([Thing(), SeverityNumber.ERROR, 1.5e300])
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 8:
        return tuple(_random_value(rng, depth + 1) for _ in range(rng.randrange(3)))
    return {rng.choice(["k", "v", "w"]) + str(i): _random_value(rng, depth + 1) for i in range(rng.randrange(4))}


@pytest.mark.parametrize("seed", range(8))
def test_randomized(seed):
    rng = random.Random(seed)
    names = [f"rand.{seed}.{i}" for i in range(rng.randint(1, 6))]
    limits = rng.choice([LogRecordLimits(), LogRecordLimits(max_attributes=rng.randint(0, 5)),
                         LogRecordLimits(max_attribute_length=rng.randint(0, 10)),
                         LogRecordLimits(max_attributes=rng.randint(1, 4), max_attribute_length=rng.randint(1, 8))])
    with capture(*names) as queued:
        for i in range(150):
            log = logging.getLogger(rng.choice(names))
            extra = {f"e{rng.randrange(6)}": _random_value(rng) for _ in range(rng.randrange(6))}
            if rng.random() < 0.2:
                extra[rng.choice(["otel.event.name", "event.name"])] = rng.choice(["ev", "ev\udcff", None])
            if rng.random() < 0.2:
                extra["otelTraceID"] = "injected"
            if rng.random() < 0.2:
                extra["raw"] = "x\udcff" * rng.randrange(1, 4)
            level = rng.choice([5, 10, 20, 25, 30, 40, 50, 55])
            msg, args = rng.choice([("plain %d", (i,)), ("%s and %s", ("x\udcff", "y")), ("bad %d", ("z",)),
                                    ("no args", ()), ("surrogate \udcff", ())])
            tracer = rng.choice([None, SAMPLED, UNSAMPLED])
            exc = rng.random() < 0.15
            span = tracer.start_as_current_span("s") if tracer else None
            if span:
                span.__enter__()
            try:
                if exc:
                    try:
                        fail(rng.randrange(3))
                    except ValueError:
                        log.log(level, msg, *args, exc_info=True, extra=extra)
                else:
                    log.log(level, msg, *args, extra=extra)
            finally:
                if span:
                    span.__exit__(None, None, None)
    assert len(queued) > 100
    assert_same(queued, limits)
    for size in (1, 7, 64):
        for start in range(0, len(queued), size):
            assert_same(queued[start:start + size], limits)


def test_pending_items_built_by_hand():
    record = logging.LogRecord("gold.hand", logging.INFO, __file__, 1, "msg", None, None)
    batch = [_Pending(record, {}, "body", time.time_ns()), _Pending(record, None, ["not", "a", "str"], 0)]
    assert_same(batch)


# --- end to end --------------------------------------------------------------------------------------


def test_end_to_end_through_setup_to_a_receiver(receiver, monkeypatch):
    direct_batches = []
    encode = Converter.encode
    monkeypatch.setattr(Converter, "encode", lambda self, batch: direct_batches.append(len(batch)) or encode(self, batch))
    otel_showmax.setup(endpoint=receiver.endpoint, metrics_exporter="none", blrp_schedule_delay_ms=50)
    assert _setup._state.converter.direct is True
    log = logging.getLogger("direct.e2e")
    log.setLevel(logging.INFO)
    tracer = trace.get_tracer("direct.e2e")
    ids = []
    for i in range(20):
        with tracer.start_as_current_span("work") as span:
            log.info("record %d", i, extra={"i": i, "bad": "\udcff"})
            ids.append(format(span.get_span_context().trace_id, "032x"))
    log.warning("outside")
    assert otel_showmax.shutdown() is True
    assert receiver.wait_for(logs=21, timeout=10)
    got = [r for r in receiver.logs if r["scope"] == "direct.e2e"]
    assert [r["body"] for r in got] == [f"record {i}" for i in range(20)] + ["outside"]
    assert [r["trace_id"] for r in got[:20]] == ids
    assert not got[20]["trace_id"].strip("0")
    # went the direct way where setup()'s check kept it on, the reference path elsewhere (1.40)
    assert (sum(direct_batches) >= 21) is DIRECT_MATCHES
    assert got[0]["attributes"]["bad"] == "\\udcff" and got[0]["attributes"]["i"] == 0


@pytest.mark.parametrize(
    ("options", "direct"),
    [({}, True), ({"logs_exporter": "console"}, False), ({"otlp_protocol": "grpc"}, True),
     ({"logs_protocol": "grpc"}, True)],
)
def test_only_the_lean_otlp_exporters_get_serialized_batches(options, direct):
    config = _config.resolve(options, environ={})
    _, worker, _, conv = _logging.init(config, RESOURCE, frozenset())
    try:
        assert conv is not None and conv.direct is direct
    finally:
        worker.shutdown(0.1)


def test_plain_extras_skip_the_general_attribute_path(monkeypatch):
    with capture("gold.fast") as queued:
        log = logging.getLogger("gold.fast")
        log.info("plain", extra={"s": "žluť", "i": 1, "f": 0.5, "b": b"x", "n": None, "t": True})
        log.info("no extras")
        log.info("a list", extra={"l": [1]})
        log.info("surrogate", extra={"s": "\udcff"})
        log.info("event", extra={"event.name": "e"})
    expected = reference(converter(), queued)
    general = []
    attributes = Converter.attributes
    monkeypatch.setattr(Converter, "attributes", lambda self, record: general.append(record.msg) or attributes(self, record))
    assert direct(converter(), queued) == expected
    assert general == ["a list", "surrogate", "event"]


def test_lone_surrogates_in_exceptions_and_nested_values_do_not_lose_the_batch():
    with capture("gold.nested") as queued:
        log = logging.getLogger("gold.nested")
        log.info("ok")
        log.info("nested", extra={"items": ["fine", "bad \udcff"], "map": {"k": ("x\udcff",)}})
        try:
            raise ValueError("bad \udcff")
        except ValueError:
            log.exception("surrogate in the exception message")
    conv = converter()
    data = conv(queued).data
    assert data == reference(conv, queued)
    decoded = ExportLogsServiceRequest.FromString(data)
    bodies = [r.body.string_value for rl in decoded.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert bodies == ["ok", "nested", "surrogate in the exception message"]
