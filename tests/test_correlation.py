"""otel_showmax.correlation: trace fields on every record, formatters, structlog processor."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re

import pytest
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.trace import use_span

from otel_showmax import correlation
from tests._records import ListHandler

TRACER = TracerProvider().get_tracer("test")
UNSAMPLED = TracerProvider(sampler=sampling.ALWAYS_OFF).get_tracer("test")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def _clean():
    original = logging.getLogRecordFactory()
    yield
    correlation.uninstall()
    logging.setLogRecordFactory(original)


def ids(span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def record(msg="m", *args, **extra) -> logging.LogRecord:
    """A record made through the active factory, as Logger.makeRecord does."""
    factory = logging.getLogRecordFactory()
    rec = factory("app", logging.INFO, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec




@pytest.fixture
def logger():
    # Not registered with logging's manager: pytest (>= 9) adds its capture handler to every
    # registered non-propagating logger, and that handler fails the test on unformattable records.
    lg = logging.Logger("test_correlation", logging.DEBUG)
    lg.propagate = False
    handler = ListHandler()
    lg.addHandler(handler)
    yield lg, handler


def test_fields_inside_and_outside_a_span():
    correlation.install("plain", service_name="catalogue")
    outside = record()
    assert (outside.trace_id, outside.span_id, outside.trace_sampled, outside.service_name) == (
        "", "", False, "catalogue",
    )
    with TRACER.start_as_current_span("s") as span:
        inside = record()
        trace_id, span_id = ids(span)
    assert (inside.trace_id, inside.span_id, inside.trace_sampled) == (trace_id, span_id, True)
    assert re.fullmatch(r"[0-9a-f]{32}", inside.trace_id) and re.fullmatch(r"[0-9a-f]{16}", inside.span_id)
    with UNSAMPLED.start_as_current_span("u") as span:
        unsampled = record()
        trace_id, span_id = ids(span)
    assert (unsampled.trace_id, unsampled.span_id, unsampled.trace_sampled) == (trace_id, span_id, False)


@pytest.mark.guarantee
def test_nested_spans_switch_ids(logger):
    correlation.install()
    lg, handler = logger
    with TRACER.start_as_current_span("outer") as outer:
        lg.info("a")
        with TRACER.start_as_current_span("inner") as inner:
            lg.info("b")
        lg.info("c")
    lg.info("d")
    assert [(r.trace_id, r.span_id) for r in handler.records] == [ids(outer), ids(inner), ids(outer), ("", "")]


@pytest.mark.parametrize(
    ("preset", "names"),
    [
        ("plain", ("trace_id", "span_id", "trace_sampled", "service_name")),
        ("otel", ("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName")),
        ("ecs", ("trace.id", "span.id", "trace.sampled", "service.name")),
    ],
)
def test_presets_and_injected_fields(preset, names):
    correlation.install(preset, service_name="svc")
    assert correlation.injected_fields() == frozenset(names)
    with TRACER.start_as_current_span("s") as span:
        rec = record()
    assert [rec.__dict__[n] for n in names] == [*ids(span), True, "svc"]
    other = {n for p in correlation.FIELD_PRESETS.values() for n in p} - set(names)
    assert not other & set(rec.__dict__)


def test_install_is_idempotent_and_a_new_preset_replaces_names_not_layers():
    original = logging.getLogRecordFactory()
    for _ in range(100):
        correlation.install("plain")
    ours = logging.getLogRecordFactory()
    assert ours is not original
    correlation.install("otel", service_name="svc")
    assert logging.getLogRecordFactory() is ours  # no second layer
    rec = record()
    assert rec.otelTraceID == "" and rec.otelServiceName == "svc"
    assert not hasattr(rec, "trace_id")
    correlation.install("ecs")  # an empty service name keeps the current one
    assert record().__dict__["service.name"] == "svc"
    correlation.uninstall()
    assert logging.getLogRecordFactory() is original
    assert correlation.injected_fields() == frozenset()
    assert not hasattr(record(), "trace_id")


def test_chains_on_an_existing_factory_and_survives_one_chained_on_top():
    original = logging.getLogRecordFactory()

    def tagging(*args, **kwargs):
        rec = original(*args, **kwargs)
        rec.tag = "theirs"
        return rec

    logging.setLogRecordFactory(tagging)
    correlation.install()
    rec = record()
    assert (rec.tag, rec.trace_id) == ("theirs", "")
    ours = logging.getLogRecordFactory()

    def on_top(*args, **kwargs):
        rec = ours(*args, **kwargs)
        rec.top = True
        return rec

    logging.setLogRecordFactory(on_top)
    correlation.uninstall()  # cannot unlink: becomes a pass-through
    rec = record()
    assert rec.top and rec.tag == "theirs" and not hasattr(rec, "trace_id")
    correlation.install()  # re-enabled, still one layer
    assert logging.getLogRecordFactory() is on_top
    assert record().trace_id == ""
    logging.setLogRecordFactory(original)  # someone drops the whole chain
    correlation.install()
    assert record().trace_id == ""  # chained afresh
    logging.setLogRecordFactory(on_top)
    correlation.install()  # ours is below on_top again: no extra layer
    assert logging.getLogRecordFactory() is on_top


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown log field preset 'nope'; accepted: plain, otel, ecs"):
        correlation.install("nope")
    with pytest.raises(ValueError, match="unknown log field preset"):
        correlation.JSONFormatter(preset="nope")


def test_json_formatter_line(logger):
    correlation.install("plain", service_name="catalogue")
    lg, handler = logger
    handler.setFormatter(correlation.JSONFormatter())
    with TRACER.start_as_current_span("s") as span:
        lg.info("title %s", 42, extra={"title.id": 42, "tags": {"a"}, "obj": object(), "raw": b"\xff\xfe"})
        try:
            raise ValueError("bad")
        except ValueError:
            lg.exception("failed")
    first, second = (json.loads(line) for line in handler.lines)
    trace_id, span_id = ids(span)
    assert ISO_UTC.match(first["time"])
    assert list(first)[:8] == [
        "time", "level", "logger", "message", "trace_id", "span_id", "trace_sampled", "service_name",
    ]
    assert {k: first[k] for k in list(first)[1:8]} == {
        "level": "INFO", "logger": "test_correlation", "message": "title 42", "trace_id": trace_id,
        "span_id": span_id, "trace_sampled": True, "service_name": "catalogue",
    }
    assert first["title.id"] == 42 and first["tags"] == ["a"] and first["raw"] == "\\xff\\xfe"
    assert first["obj"].startswith("<object object at ")
    assert "exception" not in first
    assert second["level"] == "ERROR" and second["message"] == "failed"
    assert second["exception"].startswith("Traceback") and second["exception"].endswith("ValueError: bad")
    assert all(line.isascii() and "\n" not in line for line in handler.lines)


def test_json_formatter_time_is_utc():
    rec = logging.LogRecord("a", logging.INFO, __file__, 1, "m", None, None)
    rec.created, rec.msecs = 0.5, 500.0
    formatter = correlation.JSONFormatter()
    assert json.loads(formatter.format(rec))["time"] == "1970-01-01T00:00:00.500Z"
    rec.created, rec.msecs = 86401.25, 250.0  # the cached second moves on
    assert json.loads(formatter.format(rec))["time"] == "1970-01-02T00:00:01.250Z"


def test_json_formatter_never_raises(logger):
    correlation.install()
    lg, handler = logger
    handler.setFormatter(correlation.JSONFormatter())

    class BadStr:
        def __str__(self):
            raise RuntimeError("no str")

        def __repr__(self):
            raise RuntimeError("no repr")

    circular: list = []
    circular.append(circular)
    lg.info("%d", "x")
    lg.info(b"\xff\xfe non-UTF-8 bytes as the message")
    lg.info("surrogate \udcff and accents é")
    lg.info("%s", BadStr())
    lg.info("x", extra={"circular": circular, "bad": BadStr(), 3: "non-str key"})
    out = [json.loads(line) for line in handler.lines]
    assert out[0]["message"] == "%d (unformattable arguments: ('x',))"
    assert out[1]["message"] == "b'\\xff\\xfe non-UTF-8 bytes as the message'"
    assert out[2]["message"] == "surrogate \udcff and accents é"
    assert out[3]["message"] == "<unformattable log message>"
    assert out[4]["message"] == "x" and out[4]["bad"] == "<unrepresentable BadStr>"
    assert out[4]["circular"].startswith("[[")
    assert all(line.isascii() for line in handler.lines)


def test_text_formatter_default_and_presets(logger):
    lg, handler = logger
    handler.setFormatter(correlation.TextFormatter())
    for preset in ("plain", "otel", "ecs"):
        correlation.install(preset)
        with TRACER.start_as_current_span("s") as span:
            lg.warning("in %s", preset)
        trace_id, span_id = ids(span)
        assert handler.lines[-1].endswith(f" WARNING test_correlation [trace_id={trace_id} span_id={span_id}] in {preset}")
    lg.info("%d", "x")
    assert handler.lines[-1].endswith("[trace_id= span_id=] %d (unformattable arguments: ('x',))")


def test_text_formatter_custom_format_and_exception(logger):
    correlation.install("otel")
    lg, handler = logger
    handler.setFormatter(correlation.TextFormatter("%(otelTraceID)s/%(otelSpanID)s %(message)s"))
    with TRACER.start_as_current_span("s") as span:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            lg.exception("boom")
    trace_id, span_id = ids(span)
    first, *rest = handler.lines[0].split("\n")
    assert first == f"{trace_id}/{span_id} boom"
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ZeroDivisionError: division by zero"


def test_formatters_work_without_the_factory(logger):
    """Formatters fill the fields from the current context when nothing injected them."""
    lg, handler = logger
    handler.setFormatter(correlation.JSONFormatter(preset="otel", service_name="svc"))
    with TRACER.start_as_current_span("s") as span:
        lg.info("no factory")
    line = json.loads(handler.lines[0])
    assert (line["otelTraceID"], line["otelSpanID"], line["otelServiceName"]) == (*ids(span), "svc")


def test_dict_config_formatters():
    stream = io.StringIO()
    correlation.install("ecs", service_name="catalogue")
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {"()": "otel_showmax.correlation.JSONFormatter", "static_fields": {"env": "test"}},
                "text": {"()": "otel_showmax.correlation.TextFormatter"},
            },
            "handlers": {
                "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": stream},
                "text": {"class": "logging.StreamHandler", "formatter": "text", "stream": stream},
            },
            "loggers": {"dc": {"handlers": ["json", "text"], "level": "INFO", "propagate": False}},
        }
    )
    lg = logging.getLogger("dc")
    try:
        with TRACER.start_as_current_span("s") as span:
            lg.info("hello")
    finally:
        for h in list(lg.handlers):
            lg.removeHandler(h)
    json_line, text_line = stream.getvalue().splitlines()
    data = json.loads(json_line)
    trace_id, span_id = ids(span)
    assert (data["trace.id"], data["span.id"], data["service.name"], data["env"]) == (
        trace_id, span_id, "catalogue", "test",
    )
    assert text_line.endswith(f"dc [trace_id={trace_id} span_id={span_id}] hello")


def test_structlog_processor():
    import structlog

    correlation.install("otel", service_name="svc")
    out = io.StringIO()
    structlog.configure(
        processors=[correlation.structlog_processor, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger()
        with TRACER.start_as_current_span("s") as span:
            log.info("inside", title=1)
        log.info("outside")
    finally:
        structlog.reset_defaults()
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    trace_id, span_id = ids(span)
    assert inside == {
        "title": 1, "event": "inside", "otelTraceID": trace_id, "otelSpanID": span_id,
        "otelTraceSampled": True, "otelServiceName": "svc",
    }
    assert (outside["otelTraceID"], outside["otelSpanID"], outside["otelTraceSampled"]) == ("", "", False)


def test_bridge_does_not_export_injected_fields():
    """The OTel bridge leaves the injected fields out: the trace context is native there."""
    from opentelemetry.sdk._logs import LogRecordLimits
    from opentelemetry.sdk.resources import Resource

    from otel_showmax._pipeline.log_bridge import BridgeHandler, Converter

    correlation.install("plain", service_name="svc")
    queued: list = []
    handler = BridgeHandler(queued.append)
    lg = logging.getLogger("bridge_test")
    lg.propagate = False
    lg.addHandler(handler)
    try:
        with TRACER.start_as_current_span("s") as span:
            lg.warning("hello %s", "x", extra={"title.id": 7})
    finally:
        lg.removeHandler(handler)
    converter = Converter(Resource.create, LogRecordLimits(), correlation.injected_fields())
    (exported,) = converter(queued)
    trace_id, span_id = ids(span)
    assert (format(exported.log_record.trace_id, "032x"), format(exported.log_record.span_id, "016x")) == (
        trace_id, span_id,
    )
    assert exported.log_record.body == "hello x"
    assert not {"trace_id", "span_id", "trace_sampled", "service_name"} & set(exported.log_record.attributes)
    assert exported.log_record.attributes["title.id"] == 7


def test_fields_per_span_are_cached_and_bounded():
    """Interleaved spans (as greenlets interleave requests) each get their own ids, as computed per record."""
    correlation.install("plain", service_name="svc")
    tracers = [TRACER, UNSAMPLED]
    spans = [tracers[i % 2].start_span(f"s{i}") for i in range(600)]  # more than the cache holds
    for _ in range(2):
        for span in [*spans, *reversed(spans)]:
            with use_span(span):
                rec = record()
            ctx = span.get_span_context()
            expected = (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), bool(ctx.trace_flags & 0x01))
            assert (rec.trace_id, rec.span_id, rec.trace_sampled, rec.service_name) == (*expected, "svc")
            assert correlation.current_fields() == {"trace_id": "", "span_id": "", "trace_sampled": False,
                                                    "service_name": "svc"}
            assert len(correlation._by_context) <= correlation._CACHE_SIZE
    for span in spans:
        span.end()
    correlation.uninstall()
    assert correlation._by_context == {}


# -- issue 15: an app's extra named like one of our fields never raises ----------------------------


def _fields_we_add(preset: str) -> list[str]:
    """Every attribute the factory adds to a record under ``preset``, found by diffing, not listed."""
    correlation.install(preset, service_name="svc")
    plain = logging.LogRecord("app", logging.INFO, __file__, 1, "m", (), None)
    ours = record()
    added = sorted(set(vars(ours)) - set(vars(plain)))
    assert set(correlation.FIELD_PRESETS[preset]) <= set(added)
    return added


@pytest.mark.parametrize("preset", sorted(correlation.FIELD_PRESETS))
def test_an_extra_named_like_any_field_we_add_is_kept_and_never_raises(preset, logger):
    lg, handler = logger
    added = _fields_we_add(preset)
    with use_span(TRACER.start_span("s"), end_on_exit=True) as span:
        trace_id, span_id = ids(span)
        for name in added:
            lg.warning("m", extra={name: "mine"})  # raised KeyError before: "Attempt to overwrite"
            rec = handler.records[-1]
            assert getattr(rec, name) == "mine"  # the app's value wins, under its own name
            names = correlation.FIELD_PRESETS[preset]
            if name != names.trace_id:
                assert getattr(rec, names.trace_id) == trace_id  # the others are still ours
            if name != names.span_id:
                assert getattr(rec, names.span_id) == span_id
        lg.warning("all", extra={name: f"mine-{name}" for name in added})
        assert all(getattr(handler.records[-1], name) == f"mine-{name}" for name in added)
    # the stdlib's own rule stays: its attributes cannot be overwritten
    with pytest.raises(KeyError):
        lg.warning("m", extra={"msg": "x"})
    with pytest.raises(KeyError):
        lg.warning("m", extra={"message": "x"})


@pytest.mark.parametrize("preset", sorted(correlation.FIELD_PRESETS))
def test_formatters_show_the_apps_value_of_a_colliding_extra(preset, logger):
    lg, handler = logger
    correlation.install(preset, service_name="svc")
    names = correlation.FIELD_PRESETS[preset]
    handler.setFormatter(correlation.JSONFormatter())
    lg.warning("m", extra={names.service_name: "mine", "other": 1})
    line = json.loads(handler.format(handler.records[-1]))
    assert line[names.service_name] == "mine" and line["other"] == 1
    if preset != "ecs":
        text = correlation.TextFormatter(f"%({names.service_name})s %({names.trace_id})s|%(message)s")
        assert text.format(handler.records[-1]) == "mine |m"


def test_a_colliding_extra_is_not_a_field_of_ours_for_the_bridge(logger):
    lg, handler = logger
    correlation.install("plain", service_name="svc")
    lg.warning("m", extra={"service_name": "mine"})
    lg.warning("m")
    mine, ours = handler.records[-2:]
    assert correlation.user_fields(mine) == frozenset({"service_name"})
    assert correlation.user_fields(ours) == frozenset()
    assert correlation.user_fields(logging.LogRecord("a", 20, "f", 1, "m", (), None)) == frozenset()


def test_json_keeps_an_extra_named_like_another_presets_field(logger):
    lg, handler = logger
    correlation.install("plain", service_name="svc")
    handler.setFormatter(correlation.JSONFormatter())
    lg.warning("m", extra={"trace.id": "mine", "otelSpanID": "also mine"})
    line = json.loads(handler.format(handler.records[-1]))
    assert (line["trace.id"], line["otelSpanID"]) == ("mine", "also mine")
    assert correlation.USER_FIELDS not in line


def test_uninstall_gives_logging_its_make_record_back():
    before = logging.Logger.makeRecord
    correlation.install("plain")
    assert logging.Logger.makeRecord is not before
    correlation.install("ecs")  # no second layer
    correlation.uninstall()
    assert logging.Logger.makeRecord is before
    lg = logging.Logger("plain-again")
    with pytest.raises(KeyError):  # the stdlib's rule, untouched, once we are gone
        lg.makeRecord("n", logging.INFO, "f", 1, "m", (), None, extra={"msg": "x"})


def test_ids_are_formatted_as_format_gives_them():
    from opentelemetry.trace import SpanContext, TraceFlags

    values = [(1, 1), (2**64 - 1, 2**32), (2**127, 2**63), (2**128 - 1, 2**64 - 1), (0xABC << 70, 0xF00)]
    for trace_id, span_id in values:
        ctx = SpanContext(trace_id, span_id, False, TraceFlags(1))
        assert correlation._new_fields(ctx) == (format(trace_id, "032x"), format(span_id, "016x"), True)
