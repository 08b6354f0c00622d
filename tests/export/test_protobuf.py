"""Golden tests: otel_showmax._export.protobuf writes exactly the bytes upstream's OTLP encoder writes.

Every comparison is against ``encode_spans(spans).SerializePartialToString()`` /
``encode_logs(records).SerializePartialToString()`` from opentelemetry-exporter-otlp-proto-common,
on spans and log records made by the SDK. Each test also checks that our encoder did not quietly
hand the batch to upstream (``_encode.fallbacks``), except where falling back is the point.
"""

from __future__ import annotations

import enum
import inspect
import math
import random
import threading
from collections import OrderedDict, defaultdict, namedtuple
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType

import pytest
from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as upstream_encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as upstream_encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from otel_showmax import _selfcheck, _upstream
from otel_showmax._export import contain
from otel_showmax._export import protobuf as _encode
from otel_showmax._export.otlp_http import HTTPLogExporter, HTTPSpanExporter

Version = namedtuple("Version", "major minor")

# --- helpers -------------------------------------------------------------------------------------


def upstream_spans(spans) -> bytes:
    return upstream_encode_spans(spans).SerializePartialToString()


def upstream_logs(records) -> bytes:
    return upstream_encode_logs(records).SerializePartialToString()


def _explain(ours: bytes, theirs: bytes, message_type) -> str:
    a, b = message_type(), message_type()
    a.ParseFromString(ours)
    b.ParseFromString(theirs)
    if a == b:
        return f"same message, different bytes:\nours   {ours.hex()}\ntheirs {theirs.hex()}"
    return f"different messages:\nours:\n{a}\ntheirs:\n{b}"


# Whether our encoder gives upstream's bytes on the installed SDK: setup()'s check (otel_showmax/_selfcheck.py)
# turns it off where it does not (opentelemetry 1.40 encodes None inside maps and arrays differently).
ENCODER_MATCHES = _selfcheck._check_encoder() is None
# LoggerProvider takes log record limits (opentelemetry-sdk >= 1.41; 1.40 reads them from the environment only).
LIMITS_PER_PROVIDER = bool(_upstream.logger_provider_options(LogRecordLimits()))


def _check_turns_the_encoder_off() -> None:
    _selfcheck.reset()
    try:
        assert _selfcheck.run().fast_paths["otlp_encoder"] == "off: log bytes differ from upstream's encoder"
        assert contain.ENCODER_ON is False
    finally:
        _selfcheck.reset()


def assert_spans_identical(spans, *, fallback: bool = False) -> bytes:
    if not ENCODER_MATCHES:  # upstream's encoder is what runs here
        _check_turns_the_encoder_off()
        return upstream_spans(spans)
    before = _encode.fallbacks["spans"]
    ours = _encode.encode_spans(spans)
    theirs = upstream_spans(spans)
    assert ours == theirs, _explain(ours, theirs, ExportTraceServiceRequest)
    assert _encode.fallbacks["spans"] == before + (1 if fallback else 0), "fell back to upstream" if not fallback else ""
    return ours


def assert_logs_identical(records, *, fallback: bool = False) -> bytes:
    if not ENCODER_MATCHES:  # upstream's encoder is what runs here
        _check_turns_the_encoder_off()
        return upstream_logs(records)
    before = _encode.fallbacks["logs"]
    ours = _encode.encode_logs(records)
    theirs = upstream_logs(records)
    assert ours == theirs, _explain(ours, theirs, ExportLogsServiceRequest)
    assert _encode.fallbacks["logs"] == before + (1 if fallback else 0), "fell back to upstream" if not fallback else ""
    return ours


def tracer_provider(resource: Resource | None = None, **kwargs) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource or Resource.create({"service.name": "test"}), shutdown_on_exit=False,
                              **kwargs)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def logger_provider(resource: Resource | None = None, **kwargs) -> tuple[LoggerProvider, InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=resource or Resource.create({"service.name": "test"}), shutdown_on_exit=False,
                              **kwargs)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


def remote_context(trace_id: int = 0x1234, span_id: int = 0x99, *, remote: bool = True, state=None, sampled=True):
    ctx = SpanContext(trace_id, span_id, is_remote=remote,
                      trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
                      trace_state=state)
    return trace.set_span_in_context(NonRecordingSpan(ctx))


FALCON_ATTRIBUTES = {
    "http.method": "GET",
    "http.server_name": "catalogue.internal",
    "http.scheme": "http",
    "net.host.name": "catalogue.internal",
    "http.host": "catalogue.internal:8000",
    "net.host.port": 8000,
    "http.target": "/titles/42?lang=en",
    "net.peer.ip": "10.0.3.17",
    "net.peer.port": 51234,
    "http.user_agent": "Mozilla/5.0 (X11; Linux x86_64) wrk/4.2",
    "http.flavor": "1.1",
    "falcon.resource": "Titles",
    "http.status_code": 200,
    "http.route": "/titles/{title_id}",
}


# --- spans: hand-written cases -------------------------------------------------------------------


def test_typical_falcon_server_span():
    provider, exporter = tracer_provider()
    tracer = provider.get_tracer("opentelemetry.instrumentation.falcon", "0.66b1",
                                 schema_url="https://opentelemetry.io/schemas/1.11.0")
    for i in range(20):
        attributes = dict(FALCON_ATTRIBUTES, **{"http.target": f"/titles/{i}", "net.peer.port": 40000 + i})
        with tracer.start_as_current_span("GET /titles/{title_id}", kind=SpanKind.SERVER, attributes=attributes,
                                          context=remote_context(i + 1) if i % 2 else None) as span:
            if i % 5 == 0:
                span.set_status(Status(StatusCode.ERROR))
    spans = exporter.get_finished_spans()
    assert len(spans[0].attributes) == 14
    assert_spans_identical(spans)
    assert_spans_identical(spans[:1])


def test_spans_from_the_real_falcon_instrumentation():
    import falcon
    import falcon.testing
    from opentelemetry.instrumentation.falcon import FalconInstrumentor

    provider, exporter = tracer_provider()
    FalconInstrumentor().instrument(tracer_provider=provider)
    try:
        class Titles:
            def on_get(self, req, resp, title_id):
                if title_id == "500":
                    raise falcon.HTTPInternalServerError()
                resp.media = {"id": title_id}

        app = falcon.App()
        app.add_route("/titles/{title_id}", Titles())
        client = falcon.testing.TestClient(app)
        for path in ("/titles/1", "/titles/2", "/nope", "/titles/500", "/titles/é?q=ü"):
            client.simulate_get(path, headers={"User-Agent": "wrk"}, remote_addr="10.0.0.1")
    finally:
        FalconInstrumentor().uninstrument()
    spans = exporter.get_finished_spans()
    assert len(spans) == 5
    assert_spans_identical(spans)


def test_every_span_field():
    provider, exporter = tracer_provider(
        resource=Resource.create({"service.name": "all", "k8s.pod.uid": "x" * 200}, schema_url="https://res/1"),
        span_limits=SpanLimits(max_span_attributes=3, max_events=2, max_links=1, max_event_attributes=1,
                               max_link_attributes=1),
    )
    tracer = provider.get_tracer("scope", "1.2.3", schema_url="https://scope/1", attributes={"scope.attr": True})
    state = TraceState([("vendor", "abc"), ("other", "x-y")])
    parent = remote_context(0xABCDEF << 64 | 7, 0x1122334455667788, state=state)
    links = [Link(SpanContext(2**128 - 1, 2**64 - 1, is_remote=True, trace_state=state), {"l1": 1, "l2": 2}),
             Link(SpanContext(5, 6, is_remote=False))]
    with tracer.start_as_current_span("root", kind=SpanKind.CONSUMER, context=parent, links=links,
                                      attributes={f"a{i}": i for i in range(5)}) as root:
        root.add_event("e1", {"x": "y", "z": 1.5}, timestamp=123)
        root.add_event("e2")
        root.add_event("e3", {"dropped": "yes"})
        root.set_status(Status(StatusCode.ERROR, "it broke: ünïcode"))
        for kind in SpanKind:
            with tracer.start_as_current_span(f"child-{kind.name}", kind=kind) as child:
                child.set_status(Status(StatusCode.OK))
    spans = exporter.get_finished_spans()
    assert spans[-1].dropped_attributes == 2 and spans[-1].dropped_events == 1 and spans[-1].dropped_links == 1
    assert_spans_identical(spans)


def test_every_attribute_value_type():
    provider, exporter = tracer_provider()
    tracer = provider.get_tracer("t")
    values = {
        "str": "text", "empty": "", "unicode": "ünïcödé 中文 😀 \x00 \x7f", "long": "x" * 127, "longer": "y" * 128,
        "huge": "z" * 20_000, "cached-long": "w" * 64, "uncached-long": "w" * 65,
        "true": True, "false": False,
        "zero": 0, "one": 1, "minus": -1, "i127": 127, "i128": 128, "i16383": 16383, "i16384": 16384,
        "i64max": 2**63 - 1, "i64min": -(2**63), "i32": 2**31, "negbig": -(2**40),
        "f0": 0.0, "fneg0": -0.0, "f": 3.25, "fneg": -1e-300, "inf": math.inf, "ninf": -math.inf, "nan": math.nan,
        "fmax": 1.7976931348623157e308, "subnormal": 5e-324,
        "bytes": b"\x00\x01\xff", "bytes-empty": b"",
        "strs": ["a", "", "ü"], "bools": [True, False], "ints": [0, -1, 2**62], "floats": [0.5, -0.0],
        "bytes-list": [b"a", b""], "empty-list": [], "mixed": ["a", 1, 2.0, True, None, b"b"],
        "nested": [[1, 2], ["x"], []], "map": {"a": 1, "b": {"c": ["d", {"e": None}]}}, "empty-map": {},
        "none": None, "none-list": [None, None],
    }
    with tracer.start_as_current_span("types", attributes=values) as span:
        span.add_event("ev", values)
    assert_spans_identical(exporter.get_finished_spans())


def test_values_that_are_subclasses_or_other_collections():
    class Code(enum.IntEnum):
        OK = 200

    class Name(str, enum.Enum):
        A = "alpha"

    class MyFloat(float):
        pass

    class MyBytes(bytes):
        pass

    attributes = {
        "intenum": Code.OK, "strenum": Name.A, "float-sub": MyFloat(2.5), "bytes-sub": MyBytes(b"xy"),
        "range": range(3), "bytearray": bytearray(b"ab"), "proxy": MappingProxyType({"k": "v", 1: 2}),
        "tuple-of-enums": (Code.OK, Name.A), "dict-int-keys": {1: "one", None: "none", "": "empty key"},
    }
    class Pairs(Mapping):  # a Mapping that is not a dict, holding the attributes itself
        def __init__(self, data):
            self._data = data

        def __getitem__(self, key):
            return self._data[key]

        def __iter__(self):
            return iter(self._data)

        def __len__(self):
            return len(self._data)

    class Items(Sequence):
        def __getitem__(self, i):
            return ["x", "y"][i]

        def __len__(self):
            return 2

    attributes.update({"ordered": OrderedDict(b=1, a=2), "default": defaultdict(int, z=0), "custom-map": Pairs({"k": 1}),
                       "custom-seq": Items(), "named": Version(1, 2)})
    spans = [ReadableSpan("raw", context=SpanContext(1, 2, False), attributes=attributes),
             ReadableSpan("custom", context=SpanContext(1, 2, False), attributes=Pairs({"a": "b", "c": 1})),
             ReadableSpan("proxy", context=SpanContext(1, 2, False), attributes=MappingProxyType({"a": "b"}))]
    assert_spans_identical(spans)


def test_edge_values_of_the_span_itself():
    scope = InstrumentationScope("s", None, None, None)
    ctx = SpanContext(0, 0, is_remote=False)
    spans = [
        ReadableSpan("", context=ctx),
        ReadableSpan("no-times", context=ctx, start_time=None, end_time=None, instrumentation_scope=scope),
        ReadableSpan("zero-times", context=ctx, start_time=0, end_time=0, parent=SpanContext(0, 0, False)),
        ReadableSpan("only-start", context=ctx, start_time=1, parent=SpanContext(1, 2, True)),
        ReadableSpan("only-end", context=ctx, end_time=2**64 - 1, status=Status(StatusCode.UNSET)),
        ReadableSpan("ok-with-description", context=ctx, status=Status(StatusCode.OK, "ignored")),
        ReadableSpan("error", context=ctx, status=Status(StatusCode.ERROR, "")),
        ReadableSpan("events", context=ctx, events=[Event("e", timestamp=0), Event("", {"a": 1}, timestamp=1)]),
        ReadableSpan("links", context=ctx, links=[Link(ctx), Link(SpanContext(1, 1, True), {})]),
        ReadableSpan("state", context=SpanContext(3, 4, False, trace_state=TraceState([("a", "1")]))),
    ]
    assert_spans_identical(spans)
    for span in spans:
        assert_spans_identical([span])


def test_empty_batch_and_other_iterables():
    assert_spans_identical([])
    assert_logs_identical([])
    provider, exporter = tracer_provider()
    with provider.get_tracer("t").start_as_current_span("s"):
        pass
    spans = exporter.get_finished_spans()
    assert _encode.encode_spans(iter(spans)) == _encode.encode_spans(tuple(spans)) == upstream_spans(spans)


# --- grouping by resource and scope --------------------------------------------------------------


def test_multi_resource_multi_scope_batches_group_and_order_as_upstream():
    shared = {"service.name": "svc", "host.name": "h1"}
    p1, e1 = tracer_provider(Resource.create(shared))
    p2, e2 = tracer_provider(Resource.create({"service.name": "other"}, schema_url="https://s/2"))
    p3, e3 = tracer_provider(Resource.create(dict(shared)))  # equal to p1's, a different object
    assert p1.resource == p3.resource and p1.resource is not p3.resource
    tracers = [
        p1.get_tracer("a"), p1.get_tracer("b", "1"), p1.get_tracer("a", schema_url="https://x"),
        p2.get_tracer("a"), p2.get_tracer("c", "2", attributes={"first": 1}),
        p2.get_tracer("c", "2", attributes={"second": 2}),  # equal scope (attributes are not compared)
        p3.get_tracer("a"), p3.get_tracer("z"),
    ]
    rng = random.Random(7)
    for i in range(200):
        with rng.choice(tracers).start_as_current_span(f"s{i}", attributes={"i": i}):
            pass
    spans = e1.get_finished_spans() + e2.get_finished_spans() + e3.get_finished_spans()
    rng.shuffle(spans := list(spans))
    encoded = assert_spans_identical(spans)
    request = ExportTraceServiceRequest()
    request.ParseFromString(encoded)
    assert len(request.resource_spans) == 2  # p1 and p3 share one block
    # A scope of None (a span built by hand) is its own group too.
    spans.insert(3, ReadableSpan("no-scope", context=SpanContext(1, 2, False), resource=p1.resource))
    assert_spans_identical(spans)


# --- randomized ----------------------------------------------------------------------------------

_CHARS = "abcXYZ019 _-./:{}é中😀\u0000\u007f\u00ff\U0010ffff"


def random_str(rng: random.Random) -> str:
    n = rng.choice([0, 1, 3, 10, 30, 63, 64, 65, 127, 128, 200, 1000, 17000] if rng.random() < 0.2 else [0, 1, 5, 12, 40])
    return "".join(rng.choice(_CHARS) for _ in range(n))


def random_int(rng: random.Random) -> int:
    return rng.choice([
        0, 1, -1, 127, 128, -128, 16383, 16384, 2**31 - 1, -(2**31), 2**32, 2**63 - 1, -(2**63),
        rng.randint(-(2**63), 2**63 - 1), rng.randint(-1000, 1000), rng.randint(0, 65535),
    ])


def random_float(rng: random.Random) -> float:
    return rng.choice([0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, rng.uniform(-1e9, 1e9), rng.random()])


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["str", "str", "int", "int", "bool", "float", "bytes", "none", "seq", "seq", "map"])
    if kind == "str":
        return random_str(rng)
    if kind == "int":
        return random_int(rng)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "float":
        return random_float(rng)
    if kind == "bytes":
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 8, 200])))
    if kind == "none":
        return None
    if depth >= 3:
        return random_str(rng)
    if kind == "seq":
        if rng.random() < 0.5:  # homogeneous, as most instrumentations set them
            make = rng.choice([random_str, random_int, random_float, lambda r: r.random() < 0.5])
            return [make(rng) for _ in range(rng.randrange(5))]
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {random_str(rng) or "k": random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_attributes(rng: random.Random, keys: list[str], n: int) -> dict:
    return {rng.choice(keys) if rng.random() < 0.7 else (random_str(rng) or "key"): random_value(rng)
            for _ in range(rng.randrange(n))}


@pytest.mark.parametrize("seed", [20261127, 1, 2])
def test_randomized_spans(seed):
    rng = random.Random(seed)
    keys = [random_str(rng) or "k" for _ in range(15)] + list(FALCON_ATTRIBUTES)
    resources = [Resource.create(random_attributes(rng, keys, 6)) for _ in range(3)]
    pairs = [tracer_provider(r) for r in resources]
    tracers = [p.get_tracer(random_str(rng), rng.choice([None, "1.0", random_str(rng)]),
                            schema_url=rng.choice([None, "https://opentelemetry.io/schemas/1.21.0"]),
                            attributes=rng.choice([None, random_attributes(rng, keys, 3)]))
               for p, _ in pairs for _ in range(3)]
    for i in range(400):
        tracer = rng.choice(tracers)
        links = [Link(SpanContext(rng.getrandbits(128), rng.getrandbits(64), rng.random() < 0.5,
                                  trace_state=rng.choice([None, TraceState([("k", "v"), ("a", "b")])])),
                      random_attributes(rng, keys, 4)) for _ in range(rng.choice([0, 0, 1, 3]))]
        context = rng.choice([None, None, remote_context(rng.getrandbits(128) or 1, rng.getrandbits(64) or 1,
                                                          remote=rng.random() < 0.5,
                                                          state=rng.choice([None, TraceState([("v", str(i))])]))])
        start = rng.choice([None, rng.getrandbits(63)])
        with tracer.start_as_current_span(random_str(rng), kind=rng.choice(list(SpanKind)), context=context,
                                          links=links, attributes=random_attributes(rng, keys, 20),
                                          start_time=start, end_on_exit=False) as span:
            for _ in range(rng.choice([0, 0, 1, 2])):
                span.add_event(random_str(rng), random_attributes(rng, keys, 5),
                               timestamp=rng.choice([None, rng.getrandbits(63)]))
            if rng.random() < 0.3:
                span.set_status(Status(rng.choice([StatusCode.OK, StatusCode.ERROR]),
                                       rng.choice([None, random_str(rng)])))
            if rng.random() < 0.5:
                with tracer.start_as_current_span("child", attributes=random_attributes(rng, keys, 5)):
                    pass
        span.end(end_time=rng.choice([None, (start or 0) + rng.getrandbits(40)]))
    spans = [s for _, e in pairs for s in e.get_finished_spans()]
    rng.shuffle(spans)
    assert len(spans) > 500
    assert_spans_identical(spans)
    for start in range(0, len(spans), 37):
        assert_spans_identical(spans[start:start + rng.randrange(1, 80)])


@pytest.mark.filterwarnings("ignore:Log record attributes were dropped due to limits")
@pytest.mark.parametrize("seed", [4242, 1, 2])
def test_randomized_logs(seed):
    rng = random.Random(seed)
    keys = [random_str(rng) or "k" for _ in range(15)] + ["code.file.path", "code.function.name", "code.line.number"]
    pairs = [logger_provider(Resource.create(random_attributes(rng, keys, 5), schema_url=rng.choice([None, "s"])),
                             **_upstream.logger_provider_options(LogRecordLimits(max_attributes=limit)))
             for limit in (None, 3, 5)]
    loggers = [p.get_logger(random_str(rng) or "l", rng.choice([None, "2.0"]), rng.choice([None, "https://s"]),
                            attributes=rng.choice([None, random_attributes(rng, keys, 3)]))
               for p, _ in pairs for _ in range(3)]
    for _ in range(400):
        context = rng.choice([None, remote_context(rng.getrandbits(128), rng.getrandbits(64),
                                                   sampled=rng.random() < 0.5)])
        rng.choice(loggers).emit(LogRecord(
            timestamp=rng.choice([None, 0, rng.getrandbits(63)]),
            observed_timestamp=rng.choice([None, rng.getrandbits(63)]),
            context=context,
            severity_text=rng.choice([None, "", "INFO", "WARN", random_str(rng)]),
            severity_number=rng.choice([None, *SeverityNumber]),
            body=random_value(rng),
            attributes=random_attributes(rng, keys, 10),
            event_name=rng.choice([None, "", "app.event", random_str(rng)]),
        ))
    records = [r for _, e in pairs for r in e.get_finished_logs()]
    rng.shuffle(records)
    assert len(records) == 400
    assert any(r.dropped_attributes for r in records) is LIMITS_PER_PROVIDER
    assert_logs_identical(records)
    for start in range(0, len(records), 41):
        assert_logs_identical(records[start:start + rng.randrange(1, 60)])


# --- logs: hand-written cases --------------------------------------------------------------------


def test_typical_request_log_records():
    provider, exporter = logger_provider()
    logger = provider.get_logger("catalogue.api")
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("t")
    for i in range(10):
        with tracer.start_as_current_span("GET /titles"):
            logger.emit(LogRecord(severity_number=SeverityNumber.INFO, severity_text="INFO",
                                  body=f"served 20 titles in {i} ms",
                                  attributes={"code.file.path": "/srv/api.py", "code.function.name": "on_get",
                                              "code.line.number": 42}))
    logger.emit(LogRecord(body="outside any span"))
    assert_logs_identical(exporter.get_finished_logs())


@pytest.mark.filterwarnings("ignore:Log record attributes were dropped due to limits")
def test_every_log_body_type_and_field():
    provider, exporter = logger_provider(**_upstream.logger_provider_options(LogRecordLimits(max_attributes=2)))
    logger = provider.get_logger("l", "1", "https://schema", attributes={"scope": "attr"})
    bodies = [None, "", "text", "ü😀", 0, -5, 2**63 - 1, 1.5, -0.0, math.nan, True, False, b"", b"\x00bin",
              [], [1, "a", None, [2.5]], {}, {"a": {"b": [1, {"c": b"d"}]}, 7: "int key"}, ("tuple",)]
    for i, body in enumerate(bodies):
        logger.emit(LogRecord(timestamp=i or None, observed_timestamp=10**18 + i, body=body,
                              severity_number=SeverityNumber(1 + i % 24), severity_text=str(i),
                              attributes={"a": i, "b": [i], "c": {"n": i}} if i % 2 else None,
                              event_name="ev" if i % 3 else None,
                              context=remote_context(i + 1, i + 2, sampled=bool(i % 2))))
    records = exporter.get_finished_logs()
    assert records[1].dropped_attributes == (1 if LIMITS_PER_PROVIDER else 0)
    assert_logs_identical(records)


# --- fallbacks: what upstream rejects or coerces is left to upstream -----------------------------


def test_integer_out_of_int64_range_falls_back_and_upstream_drops_the_attribute():
    provider, exporter = tracer_provider()
    with provider.get_tracer("t").start_as_current_span("big", attributes={"ok": 1, "big": 2**64, "neg": -(2**63) - 1}):
        pass
    assert_spans_identical(exporter.get_finished_spans(), fallback=True)


def test_invalid_utf8_string_falls_back():
    provider, exporter = logger_provider()
    provider.get_logger("l").emit(LogRecord(body="fine", attributes={"bad": "\ud800", "good": "x"}))
    assert_logs_identical(exporter.get_finished_logs(), fallback=True)


@pytest.mark.parametrize("body", [2**70, object()])
def test_log_body_upstream_cannot_encode_raises_as_upstream(body):
    provider, exporter = logger_provider()
    provider.get_logger("l").emit(LogRecord(body=body))
    records = exporter.get_finished_logs()
    with pytest.raises(Exception) as theirs:
        upstream_logs(records)
    with pytest.raises(Exception) as ours:
        _encode.encode_logs(records)
    assert type(ours.value) is type(theirs.value)


def test_non_str_span_name_falls_back():
    assert_spans_identical([ReadableSpan(b"bytes-name", context=SpanContext(1, 2, False))], fallback=True)


# --- caches ---------------------------------------------------------------------------------------


def test_caches_never_confuse_equal_values_of_different_types():
    ctx = SpanContext(1, 2, False)
    values = [1, True, 1.0, "1", 0, False, 0.0, -0.0, "", None, b"", (), (1,), (True,)]
    spans = [ReadableSpan(f"s{i}", context=ctx, attributes={"k": v}) for i, v in enumerate(values)]
    for order in (spans, spans[::-1], spans + spans):
        assert_spans_identical(order)


def test_caches_stay_bounded_with_high_cardinality_values():
    ctx = SpanContext(1, 2, False)
    spans = [ReadableSpan("s", context=ctx, attributes={"http.target": f"/titles/{i}", "net.peer.port": i,
                                                        f"key{i % 700}": "v", "http.method": "GET"})
             for i in range(3000)]
    assert_spans_identical(spans)
    assert _encode._pair_count <= _encode._MAX_PAIRS
    assert len(_encode._STR_PAIRS) <= _encode._MAX_KEYS and len(_encode._KEY_FIELD) <= _encode._MAX_KEYS
    assert all(len(v) <= _encode._MAX_VALUES_PER_KEY for v in _encode._STR_PAIRS.values())
    assert all(len(v) <= _encode._MAX_VALUES_PER_KEY for v in _encode._INT_PAIRS.values())


def test_concurrent_encoding_from_several_threads():
    rng = random.Random(3)
    keys = ["a", "b", "c", "d"]
    ctx = SpanContext(1, 2, False)
    batches = [[ReadableSpan(f"s{t}", context=ctx, attributes=random_attributes(rng, keys, 8)) for _ in range(50)]
               for t in range(4)]
    # Our encoder against upstream's where they match; against itself elsewhere (what is tested is thread safety).
    expected = [upstream_spans(b) if ENCODER_MATCHES else _encode.encode_spans(b) for b in batches]
    failures = []

    def work(i: int) -> None:
        for _ in range(100):
            if _encode.encode_spans(batches[i]) != expected[i]:
                failures.append(i)
            if i == 0:
                _encode._STR_PAIRS.clear()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- exporters ------------------------------------------------------------------------------------


def test_upstream_export_takes_our_serialized_batch():
    """Upstream's HTTP export() encodes through a module name our pass-through wraps (every supported release)."""
    from opentelemetry.exporter.otlp.proto.http import _log_exporter, trace_exporter

    from otel_showmax import _upstream
    from otel_showmax._export import otlp_http

    assert otlp_http.ENCODER_ON is True
    for module, name in ((trace_exporter, "encode_spans"), (_log_exporter, "encode_logs")):
        wrapped = getattr(module, name)
        assert wrapped.passes_serialized is True
        batch = _upstream.SerializedBatch(b"abc", 3)
        assert wrapped(batch) is batch and len(batch) == 3
        assert batch.SerializePartialToString() == batch.SerializeToString() == b"abc"
    spans = _sample_spans()
    assert trace_exporter.encode_spans(spans).SerializePartialToString() == upstream_spans(spans)
    assert _upstream.http_passthrough() is True  # idempotent: wrapped once
    assert not getattr(trace_exporter.encode_spans.__wrapped__, "passes_serialized", False)


def test_without_the_passthrough_upstream_encodes(monkeypatch):
    from otel_showmax._export import otlp_http

    monkeypatch.setattr(otlp_http, "ENCODER_ON", False)
    server = _Capture()
    spans, logs = _sample_spans(), _sample_logs()
    try:
        span_exporter = HTTPSpanExporter(endpoint=f"{server.url}/v1/traces")
        assert span_exporter.export(spans) is SpanExportResult.SUCCESS
        log_exporter = HTTPLogExporter(endpoint=f"{server.url}/v1/logs")
        assert log_exporter.export(logs) is LogRecordExportResult.SUCCESS
    finally:
        server.close()
    assert [body for _, body in server.bodies] == [upstream_spans(spans), upstream_logs(logs)]
    assert span_exporter.invalid_items == 0 and log_exporter.invalid_items == 0


@pytest.mark.parametrize("cls", [OTLPSpanExporter, OTLPLogExporter])
def test_upstream_private_attributes_we_use_still_exist(cls):
    exporter = cls(endpoint="http://127.0.0.1:9/v1/x")
    try:
        assert exporter._shutdown is False
    finally:
        exporter.shutdown()
    assert exporter._shutdown is True


class _Capture(ThreadingHTTPServer):
    """Keeps every request body; answers 200 with an empty OTLP response."""

    daemon_threads = True

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.bodies.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def _sample_spans():
    provider, exporter = tracer_provider()
    tracer = provider.get_tracer("opentelemetry.instrumentation.falcon", "0.66b1")
    for i in range(30):
        with tracer.start_as_current_span("GET /titles/{title_id}", kind=SpanKind.SERVER,
                                          attributes=dict(FALCON_ATTRIBUTES, **{"net.peer.port": i})) as span:
            span.add_event("e", {"i": i})
    return exporter.get_finished_spans()


def _sample_logs():
    provider, exporter = logger_provider()
    for i in range(30):
        provider.get_logger("app").emit(LogRecord(body=f"line {i}", severity_number=SeverityNumber.WARN,
                                                  attributes={"n": i, "nested": {"a": [1, 2]}},
                                                  context=remote_context(i + 1, i + 2)))
    return exporter.get_finished_logs()


def test_exporters_send_upstreams_bytes_over_http():
    server = _Capture()
    spans, logs = _sample_spans(), _sample_logs()
    try:
        for cls in (OTLPSpanExporter, HTTPSpanExporter):
            exporter = cls(endpoint=f"{server.url}/v1/traces")
            assert exporter.export(spans) is SpanExportResult.SUCCESS
            exporter.shutdown()
        for cls in (OTLPLogExporter, HTTPLogExporter):
            exporter = cls(endpoint=f"{server.url}/v1/logs")
            assert exporter.export(logs) is LogRecordExportResult.SUCCESS
            exporter.shutdown()
    finally:
        server.close()
    (p1, up_spans), (p2, our_spans), (p3, up_logs), (p4, our_logs) = server.bodies
    assert p1 == p2 == "/v1/traces" and p3 == p4 == "/v1/logs"
    assert our_spans == up_spans == upstream_spans(spans)
    assert our_logs == up_logs == upstream_logs(logs)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_receiver_decodes_the_same_records(receiver, compression):
    spans, logs = _sample_spans(), _sample_logs()
    for span_cls, log_cls in ((OTLPSpanExporter, OTLPLogExporter), (HTTPSpanExporter, HTTPLogExporter)):
        span_exporter = span_cls(endpoint=f"{receiver.endpoint}/v1/traces", compression=compression)
        log_exporter = log_cls(endpoint=f"{receiver.endpoint}/v1/logs", compression=compression)
        assert span_exporter.export(spans) is SpanExportResult.SUCCESS
        assert log_exporter.export(logs) is LogRecordExportResult.SUCCESS
        span_exporter.shutdown()
        log_exporter.shutdown()
    assert receiver.wait_for(spans=60, logs=60, timeout=10)
    assert len(receiver.spans) == 60 and len(receiver.logs) == 60
    assert receiver.spans[:30] == receiver.spans[30:]
    assert receiver.logs[:30] == receiver.logs[30:]
    assert {s["name"] for s in receiver.spans} == {"GET /titles/{title_id}"}


def test_export_results_match_upstream_on_failures(receiver):
    spans, logs = _sample_spans(), _sample_logs()
    receiver.set_mode("status:400")
    for cls in (OTLPSpanExporter, HTTPSpanExporter):
        assert cls(endpoint=f"{receiver.endpoint}/v1/traces").export(spans) is SpanExportResult.FAILURE
    for cls in (OTLPLogExporter, HTTPLogExporter):
        assert cls(endpoint=f"{receiver.endpoint}/v1/logs").export(logs) is LogRecordExportResult.FAILURE
    receiver.set_mode("live")
    sent = sum(receiver.requests.values())
    size_limit = "max_request_size" in inspect.signature(OTLPSpanExporter.__init__).parameters  # exporters >= 1.45
    for cls in (OTLPSpanExporter, HTTPSpanExporter):
        if size_limit:
            assert cls(endpoint=f"{receiver.endpoint}/v1/traces", max_request_size=100).export(spans) \
                is SpanExportResult.FAILURE
        else:
            with pytest.raises(TypeError):
                cls(endpoint=f"{receiver.endpoint}/v1/traces", max_request_size=100)
        exporter = cls(endpoint=f"{receiver.endpoint}/v1/traces")
        exporter.shutdown()
        assert exporter.export(spans) is SpanExportResult.FAILURE
    for cls in (OTLPLogExporter, HTTPLogExporter):
        if size_limit:
            assert cls(endpoint=f"{receiver.endpoint}/v1/logs", max_request_size=100).export(logs) \
                is LogRecordExportResult.FAILURE
        else:
            with pytest.raises(TypeError):
                cls(endpoint=f"{receiver.endpoint}/v1/logs", max_request_size=100)
    assert sum(receiver.requests.values()) == sent  # too large: dropped before sending
    assert receiver.spans == [] and receiver.logs == []


def test_records_made_by_our_logging_bridge():
    """The records otel_showmax's bridge hands to the exporter (ReadWriteLogRecord, stdlib extras)."""
    import logging
    import sys

    from otel_showmax._pipeline.log_bridge import Converter, _Pending

    resource = Resource.create({"service.name": "bridge"})
    converter = Converter(lambda: resource, LogRecordLimits(), frozenset({"otelTraceID", "otelSpanID"}))
    context = remote_context(0xDEADBEEF, 0xBEEF)
    pending = []
    for i, (level, extra) in enumerate([
        (logging.INFO, {"http.route": "/titles", "user_id": 42, "ratio": 0.5, "tags": ["a", "b"], "ok": True}),
        (logging.WARNING, {"event.name": "legacy.event", "payload": {"nested": [1, {"x": None}]}}),
        (logging.ERROR, {"obj": object(), "otel.event.name": "app.failed"}),
        (logging.CRITICAL, {}),
        (logging.DEBUG, {"otelTraceID": "injected, not exported"}),
    ]):
        exc_info = None
        if level == logging.ERROR:
            try:
                raise ValueError("bad value ü")
            except ValueError:
                exc_info = sys.exc_info()
        record = logging.LogRecord(f"app.module{i % 2}", level, "/srv/app.py", 10 + i, "message %s", (i,), exc_info)
        record.__dict__.update(extra)
        pending.append(_Pending(record, context if i % 2 else None, record.getMessage(), 1_700_000_000_000_000_000 + i))
    records = converter(pending)
    assert len(records) == 5
    assert_logs_identical(records)


@pytest.mark.parametrize("fields", [
    {"severity_text": b"INFO"}, {"event_name": 0}, {"event_name": b"ev"}, {"timestamp": -1}, {"timestamp": 2**64},
    {"observed_timestamp": 1.5},
])
def test_odd_log_fields_behave_as_upstream(fields):
    provider, exporter = logger_provider()
    provider.get_logger("l").emit(LogRecord(body="b", **{"observed_timestamp": 5, **fields}))
    records = exporter.get_finished_logs()
    try:
        upstream_logs(records)
    except Exception as error:
        with pytest.raises(type(error)):
            _encode.encode_logs(records)
    else:
        assert_logs_identical(records, fallback=True)


@pytest.mark.parametrize("fields", [
    {"start_time": -1}, {"end_time": 2**64}, {"start_time": 1.5}, {"name": None}, {"kind": 7}, {"status": None},
    {"context": SpanContext(2**128, 1, False)}, {"parent": SpanContext(1, 2**64, True)},
    {"events": [Event("e", timestamp=-5)]}, {"attributes": {"k": 2**63}}, {"attributes": {"k": [1, 2**63]}},
])
def test_odd_span_fields_behave_as_upstream(fields):
    span = ReadableSpan(**{"name": "s", "context": SpanContext(1, 2, False), **fields})
    try:
        upstream_spans([span])
    except Exception as error:
        with pytest.raises(type(error)):
            _encode.encode_spans([span])
    else:
        assert_spans_identical([span], fallback="name" not in fields and "status" not in fields)
