"""The bridge exports the same records as upstream's LoggingHandler, with the caller's trace ids."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_showmax import _upstream
from otel_showmax._pipeline.log_bridge import BridgeHandler, Converter

RESOURCE = Resource.create({"service.name": "golden"})


# opentelemetry-instrumentation-logging < 0.62b0 names severities as the stdlib does and keeps event.name as
# an attribute; ours (and upstream's since) use the OTel names and the record's event_name.
OLD_HANDLER = _upstream._minor(_upstream.installed_versions().get("opentelemetry-instrumentation", "0.66")) < (0, 62)

def emit_samples(logger: logging.Logger, tracer) -> None:
    logger.info("plain message")
    logger.warning("with %s and %d", "args", 42, extra={"user.id": "u-1", "count": 3, "ratio": 0.5})
    with tracer.start_as_current_span("request"):
        logger.error("inside a span", extra={"flag": True})
    try:
        raise ValueError("boom", 7)
    except ValueError:
        logger.exception("failed")
    logger.critical("event", extra={"event.name": "catalogue.refresh"})
    logger.debug("bytes %r", b"\xff\xfe")


@pytest.fixture
def logger():
    lg = logging.getLogger("golden.test")
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    yield lg
    lg.handlers.clear()
    lg.propagate = True


def encoded(records) -> list:
    request = encode_logs(records)
    out = []
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                lr.observed_time_unix_nano = 0
                out.append((rl.resource.SerializeToString(deterministic=True), sl.scope.name,
                            lr.SerializeToString(deterministic=True)))
    return out


def test_same_output_as_upstream_logging_handler(logger):
    tracer = TracerProvider(resource=RESOURCE).get_tracer("golden")

    upstream_exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(upstream_exporter))
    logger.addHandler(LoggingHandler(logger_provider=provider))
    emit_samples(logger, tracer)
    logger.handlers.clear()

    queued: list = []
    logger.addHandler(BridgeHandler(queued.append))
    emit_samples(logger, tracer)
    ours = Converter(lambda: RESOURCE, LogRecordLimits(), frozenset())(queued)

    theirs = encoded(upstream_exporter.get_finished_logs())
    mine = encoded(ours)
    assert len(mine) == len(theirs) == 6
    # Trace ids differ between the two runs (a new span each time); compare the rest exactly.
    for (res_a, scope_a, a), (res_b, scope_b, b) in zip(mine, theirs, strict=True):
        from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

        ra, rb = LogRecord.FromString(a), LogRecord.FromString(b)
        if OLD_HANDLER:  # instrumentation-logging 0.61b0: stdlib level names, event.name left an attribute
            rb.severity_text = {"WARNING": "WARN", "CRITICAL": "FATAL"}.get(rb.severity_text, rb.severity_text)
            for kv in list(rb.attributes):
                if kv.key == "event.name":
                    rb.event_name = kv.value.string_value
                    rb.attributes.remove(kv)
        assert bool(ra.trace_id) == bool(rb.trace_id)
        for r in (ra, rb):
            r.trace_id, r.span_id, r.time_unix_nano = b"", b"", 0
            for kv in r.attributes:
                if kv.key == "exception.stacktrace":  # line numbers of the two emit calls differ
                    kv.value.string_value = kv.value.string_value.split("\n")[-2]
        assert (res_a, scope_a) == (res_b, scope_b)
        assert ra == rb


@pytest.mark.guarantee
def test_record_inside_a_span_carries_its_ids(logger):
    tracer = TracerProvider(resource=RESOURCE).get_tracer("ids")
    queued: list = []
    logger.addHandler(BridgeHandler(queued.append))
    with tracer.start_as_current_span("outer") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = Converter(lambda: RESOURCE, LogRecordLimits(), frozenset())(queued)
    ctx = span.get_span_context()
    assert inside.log_record.trace_id == ctx.trace_id
    assert inside.log_record.span_id == ctx.span_id
    assert not outside.log_record.trace_id


def test_unformattable_arguments_keep_the_record():
    queued: list = []
    handler = BridgeHandler(queued.append)
    for msg, args in (("%d items", ("x",)), ("%s and %s", ("only one",))):
        handler.handle(logging.LogRecord("golden.test", logging.INFO, __file__, 1, msg, args, None))
    records = Converter(lambda: RESOURCE, LogRecordLimits(), frozenset())(queued)
    assert [r.log_record.body for r in records] == [
        "%d items (unformattable arguments: ('x',))",
        "%s and %s (unformattable arguments: ('only one',))",
    ]


def test_injected_correlation_fields_are_not_attributes(logger):
    queued: list = []
    logger.addHandler(BridgeHandler(queued.append))
    logger.info("x", extra={"trace_id": "abc", "span_id": "def", "kept": 1})
    (record,) = Converter(lambda: RESOURCE, LogRecordLimits(), frozenset({"trace_id", "span_id"}))(queued)
    assert dict(record.log_record.attributes) == {"kept": 1}


def test_oversized_attribute_values_are_truncated(logger):
    queued: list = []
    logger.addHandler(BridgeHandler(queued.append))
    logger.info("big", extra={"blob": "x" * 100_000})
    limits = LogRecordLimits(max_attribute_length=4096)
    (record,) = Converter(lambda: RESOURCE, limits, frozenset())(queued)
    assert len(record.log_record.attributes["blob"]) == 4096


def test_undecodable_text_does_not_lose_the_batch():
    from otel_showmax._export.protobuf import encode_logs as lean_encode

    queued: list = []
    handler = BridgeHandler(queued.append)
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    for msg, extra in (("fine", {}), (f"bad {bad}", {}), ("attr", {"path": bad})):
        record = logging.LogRecord("golden.test", logging.INFO, __file__, 1, msg, (), None)
        record.__dict__.update(extra)
        handler.handle(record)
    records = Converter(lambda: RESOURCE, LogRecordLimits(), frozenset())(queued)
    assert [r.log_record.body for r in records] == ["fine", "bad caf\\udce9", "attr"]
    assert records[2].log_record.attributes["path"] == "caf\\udce9"
    assert lean_encode(records)  # encodes: nothing in the batch is lost
