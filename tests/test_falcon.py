"""otel_showmax.falcon: upstream's spans with redaction, one request log per request, robustness."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import uuid
import warnings

import falcon
import falcon.testing  # before anything instruments: the comparison test runs upstream alone
import pytest
from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability
from opentelemetry.instrumentation.falcon import FalconInstrumentor
from opentelemetry.sdk._logs import LogRecordLimits
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import otel_showmax.falcon as showmax_falcon
from otel_showmax import _settings, correlation
from otel_showmax._instrumentation import request_log
from otel_showmax._instrumentation.redaction import QueryRedactor
from otel_showmax._pipeline.log_bridge import BridgeHandler, Converter

SECRET = f"s3cr3t-{uuid.uuid4().hex}"
ORIGINAL_APP = falcon.App
OPTIONS = {
    "excluded_urls": _settings.DEFAULT_EXCLUDED_URLS,
    "capture_request_headers": ("user-agent", "x-request-id", "authorization", "cookie", "x-api-key"),
    "capture_response_headers": ("content-type", "x-request-id", "x-api-key", "set-cookie"),
    "sanitize_headers": _settings.DEFAULT_SANITIZE_HEADERS,
    "redact_query_params": _settings.DEFAULT_REDACT_QUERY,
}
# The app's own logger: not registered with logging's manager, so pytest's capture handler (which
# fails a test on an unformattable record) does not see the deliberately bad log calls below.
APP_LOG = logging.Logger("catalogue", logging.INFO)
APP_LOG.propagate = False


class Title:
    def on_get(self, req, resp, title_id):
        APP_LOG.info("serving title %s", title_id)
        resp.media = {"id": title_id}
        resp.set_header("X-Api-Key", SECRET)
        resp.set_header("X-Request-Id", req.get_header("X-Request-Id") or "none")
        resp.set_cookie("session", SECRET)


class Boom:
    def on_get(self, req, resp):
        APP_LOG.info("about to fail")
        raise RuntimeError("kaboom")


class Unavailable:
    def on_get(self, req, resp):
        raise falcon.HTTPServiceUnavailable(title="maintenance")


class BadLogs:
    def on_get(self, req, resp):
        APP_LOG.info("%d", "x")
        APP_LOG.info(b"\xff\xfe not UTF-8")
        APP_LOG.info("bytes %s and %r", b"\xff\xfe", b"\x80")
        APP_LOG.warning("surrogate %s", "\udcff")
        resp.media = {"ok": True}


def make_app(app_class=None):
    app = (app_class or falcon.App)()
    add_routes(app)
    return app


def add_routes(app):
    app.add_route("/titles/{title_id}", Title())
    app.add_route("/boom", Boom())
    app.add_route("/unavailable", Unavailable())
    app.add_route("/badlogs", BadLogs())
    app.add_route("/health", Health())


class Health:
    def on_get(self, req, resp):
        APP_LOG.info("health")
        resp.media = {"ok": True}


class Keep(logging.Handler):
    def __init__(self, formatter=None):
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record):
        self.records.append(record)
        if self.formatter is not None:
            self.lines.append(self.format(record))


class Sink:
    """Everything the request log and the app's logger produce: local lines and exported records."""

    def __init__(self):
        self.json = Keep(correlation.JSONFormatter())
        self.text = Keep(correlation.TextFormatter())
        self.queued: list = []
        self.bridge = BridgeHandler(self.queued.append)
        self.handlers = [self.json, self.text, self.bridge]

    def request_logs(self):
        return [r for r in self.json.records if r.name == "otel_showmax.request"]

    def json_lines(self, logger="otel_showmax.request"):
        return [json.loads(line) for line in self.json.lines if json.loads(line)["logger"] == logger]

    def exported(self):
        converter = Converter(Resource.create, LogRecordLimits(max_attribute_length=4096), correlation.injected_fields())
        return list(converter(list(self.queued)))


@pytest.fixture
def sink():
    correlation.install("plain", service_name="catalogue")
    s = Sink()
    request_logger = logging.getLogger("otel_showmax.request")
    request_logger.setLevel(logging.DEBUG)
    for h in s.handlers:
        request_logger.addHandler(h)
        APP_LOG.addHandler(h)
    yield s
    for h in s.handlers:
        request_logger.removeHandler(h)
        APP_LOG.removeHandler(h)
    request_logger.setLevel(logging.NOTSET)
    correlation.uninstall()


def provider(sampler=None):
    exporter = InMemorySpanExporter()
    limits = SpanLimits(max_attribute_length=4096, max_span_attribute_length=4096)
    tp = TracerProvider(sampler=sampler, span_limits=limits) if sampler else TracerProvider(span_limits=limits)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp, exporter


@pytest.fixture
def traced(sink):
    tp, exporter = provider()
    showmax_falcon.instrument(tracer_provider=tp, **OPTIONS)
    yield exporter
    showmax_falcon.uninstrument()


@pytest.fixture(params=["default", "http", "http/dup"])
def semconv(request, monkeypatch):
    """Each OTEL_SEMCONV_STABILITY_OPT_IN mode, read afresh by upstream's next instrument()."""
    if request.param != "default":
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", request.param)
    else:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    _OpenTelemetrySemanticConventionStability._initialized = False
    yield request.param
    _OpenTelemetrySemanticConventionStability._initialized = False


def ids(span):
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def dump(spans) -> str:
    return repr([(s.name, dict(s.attributes), [(e.name, dict(e.attributes)) for e in s.events]) for s in spans])


# -- the request log ------------------------------------------------------------------------------------


@pytest.mark.guarantee
def test_one_request_log_per_request_with_the_server_span_ids(traced, sink):
    client = falcon.testing.TestClient(make_app())
    paths = ["/titles/1", "/titles/2", "/nope", "/boom", "/health", "/titles/3", "/health/", "/unavailable"] * 4
    statuses = [client.simulate_get(p, remote_addr="10.1.2.3").status_code for p in paths]
    assert statuses == [200, 200, 404, 500, 200, 200, 404, 503] * 4
    served = [p for p in paths if not p.startswith("/health")]
    spans = traced.get_finished_spans()
    logs = sink.request_logs()
    assert len(spans) == len(logs) == len(served) == 24  # health checks: no span, no request log
    for span, record, path in zip(spans, logs, served, strict=True):
        assert (record.trace_id, record.span_id, record.trace_sampled) == (*ids(span), True)
        assert span.kind is SpanKind.SERVER
        assert record.__dict__["url.path"] == path
    exported = sink.exported()
    exported_requests = [e for e in exported if e.instrumentation_scope.name == "otel_showmax.request"]
    lines = sink.json_lines()
    assert len(exported_requests) == len(lines) == 24
    for span, line, out in zip(spans, lines, exported_requests, strict=True):
        assert (line["trace_id"], line["span_id"]) == ids(span)
        assert (format(out.log_record.trace_id, "032x"), format(out.log_record.span_id, "016x")) == ids(span)
    # A line the handler wrote carries the same ids as the server span, locally and exported.
    app_lines = sink.json_lines("catalogue")
    assert [line["message"] for line in app_lines[:2]] == ["serving title 1", "serving title 2"]
    assert (app_lines[0]["trace_id"], app_lines[0]["span_id"]) == ids(spans[0])
    app_exported = [e for e in exported if e.instrumentation_scope.name == "catalogue"]
    assert format(app_exported[0].log_record.trace_id, "032x") == ids(spans[0])[0]


def test_request_log_fields_and_levels(traced, sink):
    client = falcon.testing.TestClient(make_app())
    client.simulate_get("/titles/7", headers={"User-Agent": "tests/1.0"}, remote_addr="10.1.2.3")
    client.simulate_post("/titles/7")  # 405
    client.simulate_get("/boom")
    client.simulate_get("/unavailable")
    ok, not_allowed, boom, unavailable = sink.request_logs()
    fields = {k: ok.__dict__[k] for k in showmax_falcon.REQUEST_LOG_FIELDS}
    duration = fields.pop("duration_ms")
    assert isinstance(duration, float) and 0 <= duration < 1000
    assert fields == {
        "http.request.method": "GET",
        "http.route": "/titles/{title_id}",
        "url.path": "/titles/7",
        "http.response.status_code": 200,
        "client.address": "10.1.2.3",
        "user_agent.original": "tests/1.0",
    }
    assert (ok.levelno, ok.getMessage()) == (logging.INFO, f"GET /titles/{{title_id}} 200 {duration:.1f}ms")
    assert (not_allowed.levelno, not_allowed.__dict__["http.response.status_code"]) == (logging.INFO, 405)
    assert (boom.levelno, boom.__dict__["http.response.status_code"]) == (logging.ERROR, 500)
    assert boom.exc_info[0] is RuntimeError and str(boom.exc_info[1]) == "kaboom"
    assert unavailable.levelno == logging.ERROR and isinstance(unavailable.exc_info[1], falcon.HTTPServiceUnavailable)
    assert "client.address" not in not_allowed.__dict__  # the WSGI server gave no REMOTE_ADDR
    boom_line = sink.json_lines()[2]
    assert boom_line["level"] == "ERROR" and boom_line["exception"].endswith("RuntimeError: kaboom")


def test_request_log_level_logger_and_switch(sink):
    tp, exporter = provider()
    other = Keep()
    logging.getLogger("access").addHandler(other)
    try:
        showmax_falcon.instrument(tracer_provider=tp, request_log_logger="access", request_log_level=logging.WARNING)
        client = falcon.testing.TestClient(make_app())
        client.simulate_get("/titles/1")
        client.simulate_get("/boom")
        assert [(r.name, r.levelno) for r in other.records] == [("access", logging.WARNING), ("access", logging.ERROR)]
        assert sink.request_logs() == []
        showmax_falcon.instrument(tracer_provider=tp, request_log=False)  # options apply per request
        client.simulate_get("/titles/1")
        assert len(other.records) == 2 and sink.request_logs() == []
        assert len(exporter.get_finished_spans()) == 3
    finally:
        logging.getLogger("access").removeHandler(other)


@pytest.mark.parametrize("independent", [True, False])
def test_request_log_when_a_middleware_rejects_the_request(traced, sink, independent):
    class Auth:
        def process_request(self, req, resp):
            raise falcon.HTTPUnauthorized()

    app = falcon.App(middleware=[Auth()], independent_middleware=independent)
    add_routes(app)
    assert falcon.testing.TestClient(app).simulate_get("/titles/1").status_code == 401
    (span,) = traced.get_finished_spans()
    (record,) = sink.request_logs()
    assert (record.trace_id, record.__dict__["http.response.status_code"]) == (ids(span)[0], 401)


def test_unsampled_requests_are_logged_too(sink):
    tp, exporter = provider(sampling.ALWAYS_OFF)
    showmax_falcon.instrument(tracer_provider=tp)
    client = falcon.testing.TestClient(make_app())
    for _ in range(3):
        client.simulate_get("/titles/1")
    client.simulate_get("/boom")
    logs = sink.request_logs()
    assert exporter.get_finished_spans() == ()
    assert len(logs) == 4 and len({r.trace_id for r in logs}) == 4
    assert all(len(r.trace_id) == 32 and len(r.span_id) == 16 and r.trace_sampled is False for r in logs)


def test_5xx_records_the_exception_on_the_server_span(traced, sink):
    client = falcon.testing.TestClient(make_app())
    client.simulate_get("/boom")
    client.simulate_get("/unavailable")
    client.simulate_get("/nope")
    boom, unavailable, missing = traced.get_finished_spans()
    assert boom.status.status_code is StatusCode.ERROR
    (event,) = boom.events
    assert event.name == "exception"
    assert (event.attributes["exception.type"], event.attributes["exception.message"]) == ("RuntimeError", "kaboom")
    assert [e.attributes["exception.type"] for e in unavailable.events] == ["falcon.errors.HTTPServiceUnavailable"]
    assert missing.events == () and missing.status.status_code is StatusCode.UNSET


# -- redaction ----------------------------------------------------------------------------------------


def test_secrets_appear_nowhere(traced, sink, semconv):
    showmax_falcon.uninstrument()  # re-instrument so upstream reads this semconv mode
    tp, exporter = provider()
    showmax_falcon.instrument(tracer_provider=tp, **OPTIONS)
    client = falcon.testing.TestClient(make_app())
    errors = io.StringIO()
    headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}; theme=dark", "X-Api-Key": SECRET}
    results = [
        client.simulate_get(  # RAW_URI with the query, as gunicorn sets it (falcon.testing leaves it out)
            "/titles/1", query_string=f"token={SECRET}&page=2", headers=headers,
            extras={"RAW_URI": f"/titles/1?token={SECRET}&page=2"},
        ),
        client.simulate_get("/boom", query_string=f"access_token={SECRET}", headers=headers, wsgierrors=errors),
        client.simulate_post("/titles/1", query_string=f"password={SECRET}", headers=headers),
        client.simulate_get("/nope", query_string=f"Api-Key={SECRET}&user%5Bpassword%5D={SECRET}", headers=headers),
    ]
    assert [r.status_code for r in results] == [200, 500, 405, 404]
    assert SECRET in results[0].headers["X-Api-Key"]  # the app's own response is untouched
    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    everything = "\n".join(
        [dump(spans), *sink.json.lines, *sink.text.lines, errors.getvalue(),
         repr([(e.log_record.body, dict(e.log_record.attributes)) for e in sink.exported()])]
    )
    assert SECRET not in everything
    first = spans[0].attributes
    if semconv in ("default", "http/dup"):
        assert first["http.target"] == "/titles/1?token=REDACTED&page=2"
    if semconv in ("http", "http/dup"):
        assert first["url.query"] == "token=REDACTED&page=2"
    assert first["http.request.header.authorization"] == ("[REDACTED]",)
    assert first["http.request.header.cookie"] == ("[REDACTED]",)
    assert first["http.request.header.x_api_key"] == ("[REDACTED]",)
    assert first["http.response.header.x_api_key"] == ("[REDACTED]",)
    assert "GET /boom?access_token=REDACTED => Traceback" in errors.getvalue()  # falcon's own error log


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a=1&token=x", "a=1&token=REDACTED"),
        ("TOKEN=x&Password=y&ok=1", "TOKEN=REDACTED&Password=REDACTED&ok=1"),
        (
            "access_token=x&user%5Bpassword%5D=y&tok%65n=z",
            "access_token=REDACTED&user%5Bpassword%5D=REDACTED&tok%65n=REDACTED",
        ),
        ("X-Amz-Signature=abc&monkey=1&keys=2", "X-Amz-Signature=REDACTED&monkey=1&keys=2"),
        ("token=&token&a==b", "token=&token&a==b"),
        ("", ""),
        ("%zz=1&key=%ff", "%zz=1&key=REDACTED"),
    ],
)
def test_query_redactor(query, expected):
    redactor = QueryRedactor(_settings.DEFAULT_REDACT_QUERY)
    assert redactor.query(query) == expected
    assert redactor.target(f"/p?{query}#frag") == (f"/p?{expected}#frag")
    assert redactor.target(f"https://h:1/p?{query}") == f"https://h:1/p?{expected}"
    assert redactor.target("/p#token=x") == "/p#token=x"


# -- robustness ---------------------------------------------------------------------------------------


def test_huge_and_malformed_headers_never_break_a_request(traced, sink):
    app = make_app()
    client = falcon.testing.TestClient(app)
    huge = "u" * 65536
    result = client.simulate_get("/titles/1", headers={"User-Agent": huge, "X-Request-Id": "r" * 65536})
    assert result.status_code == 200
    (span,) = traced.get_finished_spans()
    assert span.attributes["http.user_agent"] == "u" * 4096  # attribute limits truncate
    assert span.attributes["http.request.header.x_request_id"] == ("r" * 4096,)
    (record,) = sink.request_logs()
    assert record.__dict__["user_agent.original"] == "u" * request_log.MAX_FIELD
    assert len(sink.text.lines[-1]) < 5000 and len(sink.json.lines[-1]) < 5000

    # Raw WSGI: non-Latin-1 junk, a surrogate, NUL bytes, a broken cookie and a garbage traceparent.
    env = falcon.testing.create_environ("/titles/2", headers={"User-Agent": "x"})
    env.update(
        HTTP_TRACEPARENT="00-zz-not-a-traceparent",
        HTTP_COOKIE="=;;;==; \udcff=\x00",
        HTTP_X_REQUEST_ID="\udcff\x00\xff" * 10,
        HTTP_USER_AGENT="\x00\udcff",
    )
    statuses = []
    body = b"".join(app(env, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["200 OK"] and json.loads(body) == {"id": "2"}
    first, second = traced.get_finished_spans()
    assert second.parent is None and second.context.trace_id != first.context.trace_id  # a new trace
    assert len(sink.request_logs()) == 2 and len(sink.exported()) == 4
    assert sink.request_logs()[1].__dict__["user_agent.original"] == "\x00\\udcff"  # valid UTF-8 for OTLP


def test_incoming_traceparent_is_continued_and_bad_log_calls_are_harmless(traced, sink):
    client = falcon.testing.TestClient(make_app())
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    result = client.simulate_get("/titles/9", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    assert result.status_code == 200
    assert client.simulate_get("/badlogs").status_code == 200
    first, second = traced.get_finished_spans()
    assert format(first.context.trace_id, "032x") == trace_id and format(first.parent.span_id, "016x") == parent_id
    assert sink.request_logs()[0].trace_id == trace_id
    bad = sink.json_lines("catalogue")[1:]
    assert [line["message"] for line in bad] == [
        "%d (unformattable arguments: ('x',))",
        "b'\\xff\\xfe not UTF-8'",
        "bytes b'\\xff\\xfe' and b'\\x80'",
        "surrogate \udcff",
    ]
    assert all(line["trace_id"] == ids(second)[0] for line in bad)
    bodies = [e.log_record.body for e in sink.exported() if e.instrumentation_scope.name == "catalogue"]
    # Exported bodies are valid UTF-8: the lone surrogate is escaped (a batch must encode).
    assert bodies[1:] == [line["message"].replace("\udcff", "\\udcff") for line in bad]


# -- set-up: idempotent, apps created earlier, falcon.testing, ASGI ----------------------------------


def test_instrument_is_idempotent(sink):
    tp, exporter = provider()
    for _ in range(5):
        showmax_falcon.instrument(tracer_provider=tp, **OPTIONS)
    assert showmax_falcon.is_instrumented()
    assert repr(falcon.App) == "<class 'otel_showmax.falcon.App'>"
    app = make_app()
    assert app._unprepared_middleware == []  # no middleware of ours listed: one response step, prepared
    assert [type(m.__self__).__name__ for m in app._middleware[2]] == ["ResponseStep"]
    falcon.testing.TestClient(app).simulate_get("/titles/1")
    assert len(exporter.get_finished_spans()) == 1 and len(sink.request_logs()) == 1
    showmax_falcon.uninstrument()
    assert falcon.App is ORIGINAL_APP and not showmax_falcon.is_instrumented()
    falcon.testing.TestClient(app).simulate_get("/titles/1")  # uninstrumented: plain Falcon
    assert len(exporter.get_finished_spans()) == 1 and len(sink.request_logs()) == 1
    assert app._unprepared_middleware == [] and app._middleware == ((), (), ())


def test_every_app_gets_the_provider_and_hooks(sink):
    """Upstream hands all apps one options dict that the first app empties; ours does not."""
    tp, exporter = provider()
    FalconInstrumentor().instrument(tracer_provider=tp)
    try:
        first, second = falcon.App(), falcon.App()
        for app in (first, second):
            add_routes(app)
            falcon.testing.TestClient(app).simulate_get("/titles/1")
    finally:
        FalconInstrumentor().uninstrument()
    assert len(exporter.get_finished_spans()) == 1  # negative control: upstream's second app is lost
    exporter.clear()
    showmax_falcon.instrument(tracer_provider=tp, **OPTIONS)
    apps = [make_app(), make_app(), make_app()]
    for app in apps:
        falcon.testing.TestClient(app).simulate_get("/titles/1", headers={"Authorization": "x"})
    spans = exporter.get_finished_spans()
    assert len(spans) == 3 and len(sink.request_logs()) == 3
    assert all(s.attributes["http.request.header.authorization"] == ("[REDACTED]",) for s in spans)


def test_app_created_before_instrumenting(sink, capsys):
    class CustomApp(falcon.App):
        def extra(self):
            return "mine"

    class Count:
        calls = 0

        def process_request(self, req, resp):
            Count.calls += 1

    early = falcon.App(middleware=[Count()])
    early.add_route("/titles/{title_id}", Title())
    early.add_error_handler(KeyError, lambda req, resp, ex, params: setattr(resp, "status", falcon.HTTP_409))
    custom = CustomApp()
    add_routes(custom)
    tp, exporter = provider()
    falcon.testing.TestClient(early).simulate_get("/titles/1")
    assert Count.calls == 1 and sink.request_logs() == []  # negative control: not instrumented yet
    showmax_falcon.instrument(tracer_provider=tp, **OPTIONS)
    assert capsys.readouterr().err == ""

    # Served as it is (gunicorn --preload with setup() in post_fork holds this very object):
    early.add_route("/boom", Boom())  # routes added after instrument() are seen too
    early.add_route("/keyerror", type("K", (), {"on_get": lambda self, req, resp: {}["missing"]})())
    client = falcon.testing.TestClient(early)
    errors = io.StringIO()
    statuses = [
        client.simulate_get("/titles/1").status_code,
        client.simulate_get("/boom", query_string="token=abc", wsgierrors=errors).status_code,
        client.simulate_get("/keyerror").status_code,
    ]
    assert statuses == [200, 500, 409] and Count.calls == 4
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /titles/{title_id}", "GET /boom", "GET /keyerror"]
    assert len(sink.request_logs()) == 3
    assert "token=REDACTED" in errors.getvalue()  # falcon's default error handler is ours there too

    traced = showmax_falcon.instrument_app(early)  # the explicit way gives the same
    assert showmax_falcon.instrument_app(traced) is traced
    assert falcon.testing.TestClient(traced).simulate_get("/titles/1").status_code == 200
    assert len(exporter.get_finished_spans()) == 4 and Count.calls == 5

    assert falcon.testing.TestClient(custom).simulate_get("/titles/2").status_code == 200
    assert len(exporter.get_finished_spans()) == 5 and len(sink.request_logs()) == 5
    traced_custom = showmax_falcon.instrument_app(custom)
    assert isinstance(traced_custom, CustomApp) and traced_custom.extra() == "mine"

    showmax_falcon.uninstrument()
    falcon.testing.TestClient(early).simulate_get("/titles/1")
    assert len(exporter.get_finished_spans()) == 5  # plain falcon again


def test_an_early_app_that_cannot_be_rebuilt_is_named_once_and_served_untraced(sink, capsys):
    class Rigid(falcon.App):
        def __init__(self, required):
            super().__init__()
            self.required = required

    early = Rigid("x")
    add_routes(early)
    tp, exporter = provider()
    showmax_falcon.instrument(tracer_provider=tp, **OPTIONS)
    client = falcon.testing.TestClient(early)
    assert [client.simulate_get("/titles/1").status_code for _ in range(3)] == [200, 200, 200]
    err = capsys.readouterr().err
    assert err.count("test_falcon.test_an_early_app_that_cannot_be_rebuilt_is_named_once_and_served_untraced."
                     "<locals>.Rigid app created before otel_showmax.setup() is not traced") == 1
    assert "otel_showmax.falcon.instrument_app(app)" in err and exporter.get_finished_spans() == ()
    showmax_falcon.uninstrument()


def test_instrument_app_errors():
    with pytest.raises(RuntimeError, match=r"needs otel_showmax.setup\(\) or otel_showmax.falcon.instrument\(\) first"):
        showmax_falcon.instrument_app(falcon.App())
    with pytest.raises(TypeError, match=r"takes a falcon\.App, not object"):
        showmax_falcon.instrument_app(object())


def test_asgi_apps_are_refused_with_a_clear_message(sink):
    import falcon.asgi

    asgi_app = falcon.asgi.App()
    tp, _ = provider()
    showmax_falcon.instrument(tracer_provider=tp)
    with pytest.raises(TypeError, match=r"falcon.asgi.App is not supported"):
        showmax_falcon.instrument_app(asgi_app)
    with pytest.warns(showmax_falcon.UnsupportedAppWarning, match="falcon.asgi.App is not supported"):
        falcon.asgi.App()
    showmax_falcon.uninstrument()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        falcon.asgi.App()  # no warning once uninstrumented
    assert not hasattr(falcon.asgi.App.__init__, "__wrapped__")


def test_invalid_patterns_are_refused():
    with pytest.raises(ValueError, match=r"invalid regular expression in excluded_urls: '\(unclosed'"):
        showmax_falcon.instrument(excluded_urls=["(unclosed"])
    assert not showmax_falcon.is_instrumented()


def _import_falcon_testing_after(instrument: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        import falcon
        {instrument}
        import falcon.testing
        app = falcon.App()
        print(falcon.testing.TestClient(app).simulate_get("/").status_code)
        """
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_falcon_testing_imports_after_instrumenting():
    upstream = _import_falcon_testing_after(
        "from opentelemetry.instrumentation.falcon import FalconInstrumentor; FalconInstrumentor().instrument()"
    )
    ours = _import_falcon_testing_after("import otel_showmax.falcon as f; f.instrument()")
    assert (ours.returncode, ours.stdout.strip()) == (0, "404"), ours.stderr
    if int(falcon.__version__.split(".")[0]) >= 4:  # falcon 4's App is generic; upstream's replacement is not
        assert upstream.returncode == 1 and "is not a generic class" in upstream.stderr  # negative control
        assert falcon.App[falcon.Request, falcon.Response] is not None
    else:  # falcon 3.1: nothing generic, both import falcon.testing
        assert (upstream.returncode, upstream.stdout.strip()) == (0, "404"), upstream.stderr


# -- same spans as upstream ---------------------------------------------------------------------------

REQUESTS = [
    ("GET", "/titles/1", "", {"User-Agent": "ua/1", "X-Request-Id": "r1"}),
    ("GET", "/titles/2", "page=2&token=abc", {"Authorization": "Bearer abc", "Cookie": "session=abc"}),
    ("POST", "/titles/3", "", {}),
    ("GET", "/nope", "sig=1", {}),
    ("GET", "/boom", "", {}),
    ("GET", "/unavailable", "", {}),
    ("PATCH", "/titles/4", "", {}),
    ("GET", "/health", "", {}),
]


def _run(app) -> None:
    client = falcon.testing.TestClient(app)
    for method, path, query, headers in REQUESTS:
        raw_uri = f"{path}?{query}" if query else path  # as gunicorn sets it
        client.simulate_request(
            method, path, query_string=query, headers=headers, remote_addr="10.0.0.1", extras={"RAW_URI": raw_uri}
        )


def test_spans_match_upstream(semconv, monkeypatch, sink):
    """Same names, kinds, status and attributes as opentelemetry-instrumentation-falcon alone,
    apart from the documented differences: redacted query values and the 5xx exception event."""
    prefix = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_"
    monkeypatch.setenv("OTEL_PYTHON_FALCON_EXCLUDED_URLS", ",".join(OPTIONS["excluded_urls"]))
    monkeypatch.setenv(prefix + "SERVER_REQUEST", ",".join(OPTIONS["capture_request_headers"]))
    monkeypatch.setenv(prefix + "SERVER_RESPONSE", ",".join(OPTIONS["capture_response_headers"]))
    monkeypatch.setenv(prefix + "SANITIZE_FIELDS", ",".join(OPTIONS["sanitize_headers"]))

    upstream_tp, upstream_exporter = provider()
    FalconInstrumentor().instrument(tracer_provider=upstream_tp)
    try:
        _run(make_app())
    finally:
        FalconInstrumentor().uninstrument()
    ours_tp, ours_exporter = provider()
    showmax_falcon.instrument(tracer_provider=ours_tp, **OPTIONS)
    _run(make_app())

    upstream, ours = upstream_exporter.get_finished_spans(), ours_exporter.get_finished_spans()
    assert len(upstream) == len(ours) == len(REQUESTS) - 1  # /health excluded by both
    assert len(sink.request_logs()) == len(ours)
    for theirs, mine in zip(upstream, ours, strict=True):
        assert (mine.name, mine.kind, mine.status.status_code, mine.status.description) == (
            theirs.name, theirs.kind, theirs.status.status_code, theirs.status.description,
        )
        assert mine.instrumentation_scope == theirs.instrumentation_scope
        assert list(mine.attributes) == list(theirs.attributes)
        expected = dict(theirs.attributes)
        for key in ("http.target", "url.query"):
            if key in expected:
                expected[key] = expected[key].replace("token=abc", "token=REDACTED").replace("sig=1", "sig=REDACTED")
        assert dict(mine.attributes) == expected
        assert [e.name for e in theirs.events] == []
        assert [e.name for e in mine.events] == (["exception"] if mine.attributes.get(
            "http.status_code", mine.attributes.get("http.response.status_code")) >= 500 else [])
    names = [s.name for s in ours]
    assert names == ["GET /titles/{title_id}", "GET /titles/{title_id}", "POST /titles/{title_id}", "GET",
                     "GET /boom", "GET /unavailable", names[6]]
    assert "token=REDACTED" in repr(dict(ours[1].attributes)) and "token=abc" in repr(dict(upstream[1].attributes))


def test_upstream_private_names_are_still_there():
    """otel_showmax.falcon relies on these; an upstream release that changes them must fail here."""
    import opentelemetry.instrumentation.falcon as upstream

    assert upstream._ENVIRON_EXC == "opentelemetry-falcon.exc"
    assert upstream._InstrumentedFalconAPI.__bases__ == (ORIGINAL_APP,)
    # The keyword options our App.__init__ passes straight to upstream's __init__.
    assert {"_otel_opts", "middleware", "request_hook", "response_hook", "tracer_provider"} <= set(
        upstream._InstrumentedFalconAPI.__init__.__code__.co_consts
    )
    for name in ("_unprepared_middleware", "_independent_middleware", "_middleware", "_error_handlers"):
        assert name in ORIGINAL_APP.__slots__
    assert callable(ORIGINAL_APP._prepare_middleware) and callable(ORIGINAL_APP._python_error_handler)


# -- through setup(): the real pipeline, checked at an OTLP receiver -----------------------------------


def test_through_setup_request_logs_and_spans_at_the_receiver(receiver):
    import otel_showmax

    otel_showmax.setup(endpoint=receiver.endpoint, metrics_exporter="none", service_name="catalogue",
                       bsp_schedule_delay_ms=50, blrp_schedule_delay_ms=50)
    local = io.StringIO()
    handler = logging.StreamHandler(local)
    handler.setFormatter(correlation.JSONFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    app_log = logging.getLogger("catalogue.e2e")
    app_log.setLevel(logging.INFO)

    class Item:
        def on_get(self, req, resp, item_id):
            app_log.info("item %s", item_id)
            resp.media = {"id": item_id}

    try:
        app = falcon.App()
        add_routes(app)
        app.add_route("/items/{item_id}", Item())
        client = falcon.testing.TestClient(app)
        headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}", "User-Agent": "e2e"}
        for i in range(10):
            query = f"token={SECRET}&i={i}"
            result = client.simulate_get(f"/items/{i}", query_string=query, headers=headers,
                                         extras={"RAW_URI": f"/items/{i}?{query}"})
            assert result.status_code == 200
        assert client.simulate_get("/boom", query_string=f"token={SECRET}", wsgierrors=io.StringIO()).status_code == 500
        assert client.simulate_get("/health").status_code == 200
        assert otel_showmax.flush(5)
        assert receiver.wait_for(spans=11, logs=21, timeout=10)
    finally:
        root.removeHandler(handler)
    spans = [s for s in receiver.spans if s["scope"] == "opentelemetry.instrumentation.falcon"]
    request_logs = [r for r in receiver.logs if r["scope"] == "otel_showmax.request"]
    item_logs = [r for r in receiver.logs if r["scope"] == "catalogue.e2e"]
    assert len(spans) == len(request_logs) == 11 and len(item_logs) == 10  # exactly one per request
    by_span = {(s["trace_id"], s["span_id"]) for s in spans}
    assert {(r["trace_id"], r["span_id"]) for r in request_logs} == by_span
    assert {(r["trace_id"], r["span_id"]) for r in item_logs} < by_span
    lines = [json.loads(line) for line in local.getvalue().splitlines()]
    local_items = [line for line in lines if line["logger"] == "catalogue.e2e"]
    assert [(line["trace_id"], line["span_id"]) for line in local_items] == [
        (r["trace_id"], r["span_id"]) for r in item_logs
    ]
    assert not {"trace_id", "span_id", "trace_sampled", "service_name"} & set(request_logs[0]["attributes"])
    assert request_logs[0]["attributes"]["http.route"] == "/items/{item_id}"
    assert SECRET not in json.dumps([receiver.spans, receiver.logs], default=repr) + local.getvalue()


@pytest.mark.parametrize("independent", [True, False])
def test_request_log_runs_after_every_middleware_and_falcon_lists_none_of_ours(traced, sink, independent):
    seen = []

    class Late:
        def process_response(self, req, resp, resource, req_succeeded):
            seen.append("late")
            resp.status = falcon.HTTP_503  # changed after the responder: the log and the span see it

    class First:
        def process_response(self, req, resp, resource, req_succeeded):
            seen.append("first")

    app = falcon.App(middleware=[First()], independent_middleware=independent)
    add_routes(app)
    app.add_middleware(Late())  # added later: still before our response step
    assert app._unprepared_middleware[0].__class__ is First and len(app._unprepared_middleware) == 2
    assert falcon.testing.TestClient(app).simulate_get("/titles/1").status_code == 503
    assert seen == ["late", "first"]
    (span,) = traced.get_finished_spans()
    (record,) = sink.request_logs()
    assert (record.trace_id, record.span_id) == ids(span)
    assert record.__dict__["http.response.status_code"] == 503 and span.attributes["http.status_code"] == 503


def test_an_early_subclass_keeps_its_own_call(sink):
    class Wrapped(ORIGINAL_APP):
        calls = 0

        def __call__(self, env, start_response):
            Wrapped.calls += 1
            return super().__call__(env, start_response)

    early = Wrapped()
    add_routes(early)
    tp, exporter = provider()
    showmax_falcon.instrument(tracer_provider=tp)
    try:
        app = showmax_falcon.instrument_app(early)
        assert falcon.testing.TestClient(app).simulate_get("/titles/1").status_code == 200
    finally:
        showmax_falcon.uninstrument()
    assert Wrapped.calls == 1
    assert len(exporter.get_finished_spans()) == 1 and len(sink.request_logs()) == 1
