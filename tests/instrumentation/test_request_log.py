"""The request log's fast path (makeRecord + handle, caller found once) gives what ``logger.log`` gave.

Every request runs twice: through the reference call (``_caller`` None: ``logger.log`` as before) and
through the fast path, with the same span ids and duration. Records, local lines and exported OTLP
records must be identical apart from the record's creation time.
"""

from __future__ import annotations

import json
import linecache
import logging
import sys
import traceback
import uuid
import warnings

import falcon
import falcon.testing
import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LogRecordLimits
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.util.http import sanitize_method

import otel_showmax.falcon as showmax_falcon
from otel_showmax import correlation
from otel_showmax._export.protobuf import EncodedLogs
from otel_showmax._instrumentation import request_log
from otel_showmax._pipeline.log_bridge import BridgeHandler, Converter
from tests._records import ListHandler

RESOURCE = Resource.create({"service.name": "request-log"})
TIME_FIELDS = {"created", "msecs", "relativeCreated", "asctime"}  # asctime: formatted from created
LINE_FORMAT = (
    "%(name)s|%(levelno)d|%(levelname)s|%(pathname)s|%(filename)s|%(module)s|%(lineno)d|%(funcName)s|"
    "%(message)s|%(trace_id)s|%(span_id)s|%(trace_sampled)s|%(service_name)s"
)


class Counting(IdGenerator):
    """The same ids on every run."""

    def __init__(self) -> None:
        self.n = 0

    def generate_span_id(self) -> int:
        self.n += 1
        return self.n

    def generate_trace_id(self) -> int:
        self.n += 1
        return self.n << 64




class Title:
    def on_get(self, req, resp, title_id):
        resp.media = {"id": title_id}


class Boom:
    def on_get(self, req, resp):
        raise RuntimeError("kaboom")


class Unavailable:
    def on_get(self, req, resp):
        raise falcon.HTTPServiceUnavailable(title="maintenance")


def requests(client: falcon.testing.TestClient) -> None:
    client.simulate_get("/titles/7", headers={"User-Agent": "tests/1.0"}, remote_addr="10.1.2.3")
    client.simulate_post("/titles/7")  # 405, no REMOTE_ADDR
    client.simulate_get("/boom")
    client.simulate_get("/unavailable")
    client.simulate_get("/nope/\u00e9t\u00e9", headers={"User-Agent": "agent \u00e9"})


def run(monkeypatch: pytest.MonkeyPatch, fast: bool, logger_name: str = "otel_showmax.request") -> dict:
    """Everything the request log produced for ``requests()``: records, local lines, queued records."""
    with monkeypatch.context() as m:
        m.setattr(showmax_falcon, "perf_counter", lambda: 12.5)  # the same duration every run
        m.setattr(request_log, "perf_counter", lambda: 12.5)
        if not fast:
            m.setattr(request_log, "_caller", None)
        stack_walks: list[int] = []

        def currentframe():  # what findCaller uses, counted
            stack_walks.append(1)
            return sys._getframe(1)

        m.setattr(logging, "currentframe", currentframe)
        correlation.install("plain", service_name="svc")
        keep = ListHandler()
        text = ListHandler(logging.Formatter(LINE_FORMAT))
        json_lines = ListHandler(correlation.JSONFormatter())
        queued: list = []
        handlers = [keep, text, json_lines, BridgeHandler(queued.append)]
        logger = logging.getLogger(logger_name)
        logger.setLevel(logging.DEBUG)
        for h in handlers:
            logger.addHandler(h)
        try:
            showmax_falcon.instrument(tracer_provider=TracerProvider(id_generator=Counting()),
                                      request_log_logger=logger_name)
            app = falcon.App()
            app.add_route("/titles/{title_id}", Title())
            app.add_route("/boom", Boom())
            app.add_route("/unavailable", Unavailable())
            requests(falcon.testing.TestClient(app))
        finally:
            showmax_falcon.uninstrument()
            for h in handlers:
                logger.removeHandler(h)
            logger.setLevel(logging.NOTSET)
            correlation.uninstall()
    return {"records": keep.records, "lines": text.lines, "json": json_lines.lines, "queued": queued,
            "stack_walks": len(stack_walks)}


def comparable(record: logging.LogRecord) -> dict:
    fields = {k: v for k, v in vars(record).items() if k not in TIME_FIELDS}
    if record.exc_info:  # a new exception object per run: compare what it says
        fields["exc_info"] = traceback.format_exception(*record.exc_info)
    return fields


def exported(queued: list) -> list[bytes]:
    """The OTLP log records, both ways the worker encodes them, times zeroed."""
    out = []
    for direct in (True, False):
        converter = Converter(lambda: RESOURCE, LogRecordLimits(), frozenset(correlation.FIELD_PRESETS["plain"]),
                              direct=direct)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = converter(list(queued))
            data = result.data if isinstance(result, EncodedLogs) else encode_logs(result).SerializeToString()
        request = ExportLogsServiceRequest.FromString(data)
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for lr in sl.log_records:
                    lr.time_unix_nano = lr.observed_time_unix_nano = 0
        out.append(request.SerializeToString(deterministic=True))
    return out


def test_the_caller_is_the_reference_call():
    path, lineno, func = request_log._caller
    assert path == request_log.write.__code__.co_filename and func == "write"
    assert linecache.getline(path, lineno).strip().startswith("logger.log(level, _MESSAGE, *args")


def test_fast_path_output_is_identical(monkeypatch):
    old = run(monkeypatch, fast=False)
    new = run(monkeypatch, fast=True)
    assert len(new["records"]) == len(old["records"]) == 5
    assert (old["stack_walks"], new["stack_walks"]) == (5, 0)
    for a, b in zip(old["records"], new["records"], strict=True):
        assert comparable(a) == comparable(b)
        assert (b.pathname, b.funcName, b.filename, b.module) == (request_log._caller[0], "write",
                                                                "request_log.py", "request_log")
    assert new["records"][2].exc_info[0] is RuntimeError and new["records"][1].levelno == logging.INFO
    assert new["lines"] == old["lines"]
    strip = [{k: v for k, v in json.loads(line).items() if k != "time"} for line in old["json"]]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "time"} for line in new["json"]]
    assert exported(new["queued"]) == exported(old["queued"])


def test_custom_logger_classes_keep_their_behaviour(monkeypatch):
    """A class overriding findCaller (or log/_log) gets the plain logger.log call; one overriding
    makeRecord or handle only still takes the fast path, through its own methods."""
    made: list[str] = []

    class OwnCaller(logging.Logger):
        def findCaller(self, stack_info=False, stacklevel=1):
            return "elsewhere.py", 7, "somewhere", None

    class OwnRecords(logging.Logger):
        def makeRecord(self, *args, **kwargs):
            record = super().makeRecord(*args, **kwargs)
            record.tagged = True
            made.append(record.getMessage())
            return record

    for cls in (OwnCaller, OwnRecords):
        name = f"custom.{cls.__name__}.{uuid.uuid4().hex}"
        original = logging.getLoggerClass()
        logging.setLoggerClass(cls)
        try:
            logger = logging.getLogger(name)
        finally:
            logging.setLoggerClass(original)
        assert type(logger) is cls
        new = run(monkeypatch, fast=True, logger_name=name)
        old = run(monkeypatch, fast=False, logger_name=name)
        assert [comparable(r) for r in new["records"]] == [comparable(r) for r in old["records"]]
        assert new["lines"] == old["lines"] and exported(new["queued"]) == exported(old["queued"])
    assert len(made) == 10


def test_own_caller_class_is_asked(monkeypatch):
    class OwnCaller(logging.Logger):
        def findCaller(self, stack_info=False, stacklevel=1):
            return "elsewhere.py", 7, "somewhere", None

    name = f"custom.caller.{uuid.uuid4().hex}"
    logging.setLoggerClass(OwnCaller)
    try:
        logging.getLogger(name)
    finally:
        logging.setLoggerClass(logging.Logger)
    records = run(monkeypatch, fast=True, logger_name=name)["records"]
    assert {(r.pathname, r.lineno, r.funcName, r.filename) for r in records} == {
        ("elsewhere.py", 7, "somewhere", "elsewhere.py")
    }


def test_logging_without_caller_lookup(monkeypatch):
    """``logging._srcfile = None`` (callers not looked up) is honoured like logger.log honours it."""
    monkeypatch.setattr(logging, "_srcfile", None)
    records = run(monkeypatch, fast=True)["records"]
    assert {(r.pathname, r.lineno, r.funcName) for r in records} == {("(unknown file)", 0, "(unknown function)")}


def test_disabled_loggers_filters_and_levels(monkeypatch):
    logger = logging.getLogger("otel_showmax.request")
    monkeypatch.setattr(logger, "disabled", True)
    assert run(monkeypatch, fast=True)["records"] == []
    monkeypatch.setattr(logger, "disabled", False)

    class OnlyErrors(logging.Filter):
        def filter(self, record):
            return record.levelno >= logging.ERROR

    only_errors = OnlyErrors()
    logger.addFilter(only_errors)
    try:
        got = [r.levelno for r in run(monkeypatch, fast=True)["records"]]
    finally:
        logger.removeFilter(only_errors)
    assert got == [logging.ERROR, logging.ERROR]
    with monkeypatch.context() as m:
        m.setattr(logging.root.manager, "disable", logging.CRITICAL)
        logger._cache.clear()
        assert run(monkeypatch, fast=True)["records"] == []
    logger._cache.clear()


@pytest.mark.parametrize("capture_all", [False, True])
def test_standard_methods_shortcut_matches_sanitize_method(monkeypatch, capture_all):
    if capture_all:
        monkeypatch.setenv("OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS", "1")
    else:
        monkeypatch.delenv("OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS", raising=False)
    for method in [*request_log._STANDARD_METHODS, "get", "Post", "QUERY", "PROPFIND", "", "G\u00c9T"]:
        assert (request_log._STANDARD_METHODS.get(method) or sanitize_method(method)) == sanitize_method(method)


class _Falcon31Response:
    """What falcon 3.1's Response offers: ``status`` only, no ``status_code``."""

    def __init__(self, status: object) -> None:
        self.status = status


@pytest.mark.parametrize(("status", "code"), [
    ("200 OK", 200), ("302 Found", 302), ("404 Not Found", 404), ("405 Method Not Allowed", 405), (201, 201),
    (__import__("http").HTTPStatus.BAD_REQUEST, 400), ("garbage", 500), (None, 500),
])
def test_status_code_reads_falcon_3_responses_too(status, code):
    assert request_log.status_code(_Falcon31Response(status)) == code


def test_status_code_prefers_falcon_4s_status_code():
    response = falcon.Response()
    response.status = falcon.HTTP_302
    assert request_log.status_code(response) == 302


def test_record_made_without_make_record_unless_someone_wrapped_it(monkeypatch):
    """The stdlib's makeRecord (or correlation's rule on it) is not called: the factory and the extras
    directly, the same records. A makeRecord someone put on Logger is called once per record."""
    calls: list[str] = []
    current = logging.Logger.makeRecord

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return current(self, *args, **kwargs)

    stdlib: list[int] = []

    def profile(frame, event, arg):  # calls of the stdlib's makeRecord, however reached
        if event == "call" and frame.f_code is current.__code__:
            stdlib.append(1)

    def traced(fast: bool) -> dict:
        sys.setprofile(profile)
        try:
            return run(monkeypatch, fast=fast)
        finally:
            sys.setprofile(None)

    baseline = traced(fast=False)
    assert len(stdlib) == 5
    stdlib.clear()
    direct = traced(fast=True)
    assert stdlib == []
    monkeypatch.setattr(logging.Logger, "makeRecord", counting)  # a wrapper below correlation's
    wrapped = run(monkeypatch, fast=True)
    assert len(calls) == 5
    for got in (wrapped, direct):
        assert [comparable(r) for r in got["records"]] == [comparable(r) for r in baseline["records"]]
        assert got["lines"] == baseline["lines"] and exported(got["queued"]) == exported(baseline["queued"])
