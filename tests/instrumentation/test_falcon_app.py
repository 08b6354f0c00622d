"""Golden tests: otel_showmax._instrumentation.falcon_app gives upstream's telemetry (instrumentation-falcon).

The same Falcon app serves the same WSGI requests twice — through upstream's FalconInstrumentor and
through ``TracedApp`` — each with its own TracerProvider/MeterProvider and in-memory exporter/reader;
spans are compared one by one and metric points by name and attribute set, under each
OTEL_SEMCONV_STABILITY_OPT_IN mode.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Iterator
from typing import Any

import falcon
import falcon.testing
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.falcon import FalconInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel_showmax._instrumentation import falcon_app as falcon_app
from otel_showmax._instrumentation.falcon_app import TracedApp
from otel_showmax._pipeline.providers import ShowmaxTracerProvider

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
MODES = [None, "http", "http/dup"]
PROVIDERS = [TracerProvider, ShowmaxTracerProvider]  # the SDK's path for span attributes, and the trusted one


# -- the app ------------------------------------------------------------------------------------------


class Titles:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [{"id": i, "title": f"Title {i}"} for i in range(20)]
        resp.set_header("X-Resp", "yes")

    def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_header("X-Resp", "head")


class Title:
    def on_get(self, req: falcon.Request, resp: falcon.Response, title_id: int) -> None:
        if title_id == 404:
            raise falcon.HTTPNotFound()
        resp.media = {"id": title_id}

    def on_post(self, req: falcon.Request, resp: falcon.Response, title_id: int) -> None:
        resp.media = {"id": title_id, "got": req.get_media()}
        resp.status = falcon.HTTP_201
        resp.append_header("X-Resp", "a")
        resp.append_header("X-Resp", "b")


class Boom:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise RuntimeError("kaboom")


class Teapot:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_418
        resp.text = "short and stout"

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPForbidden(title="no")

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPServiceUnavailable()


class Escape(Exception):
    pass


class Escaping:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise Escape("handled badly")


def _reraise(req: Any, resp: Any, ex: Exception, params: Any) -> None:
    raise ValueError("error handler failed")


class Blocker:
    """Answers /blocked itself in process_request (Falcon then skips routing: no resource)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path == "/blocked":
            resp.status = falcon.HTTP_401
            resp.complete = True


def _sink(req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
    resp.media = {"sink": req.path}


def build(app: falcon.App) -> falcon.App:
    app.add_middleware(Blocker())
    app.add_sink(_sink, prefix="/sink")
    app.add_route("/titles", Titles())
    app.add_route("/titles/{title_id:int}", Title())
    app.add_route("/boom", Boom())
    app.add_route("/teapot", Teapot())
    app.add_route("/escape", Escaping())
    app.add_route("/health", Titles())
    app.add_error_handler(Escape, _reraise)
    return app


def requests() -> list[dict[str, Any]]:
    """WSGI environs (built once, copied per run)."""
    tp = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/titles", {}),
        ("GET", "/titles", {"query_string": "page=2&size=20"}),
        ("GET", "/titles/7", {"headers": {**tp, "X-Request-Id": "abc", "Authorization": "Bearer s3cret"}}),
        ("GET", "/titles/7", {"headers": {"traceparent": "00-zzzz-not-a-trace-01"}}),
        ("GET", "/titles/404", {}),
        ("POST", "/titles/7", {"json": {"a": 1}, "headers": {"User-Agent": "Googlebot/2.1"}}),
        ("HEAD", "/titles", {"headers": {"User-Agent": "curl/8.0"}}),
        ("POST", "/titles", {"body": "x=1"}),  # 405
        ("GET", "/nowhere", {"query_string": "q=1"}),  # 404, no route
        ("GET", "/boom", {}),  # unhandled -> 500
        ("GET", "/teapot", {}),  # 418 returned
        ("PUT", "/teapot", {}),  # 403 raised
        ("DELETE", "/teapot", {}),  # 503 raised
        ("FOO", "/teapot", {}),  # unknown method
        ("GET", "/health", {}),  # excluded
        ("GET", "/blocked", {}),  # answered by a middleware: upstream reports 404
        ("GET", "/sink/a/b", {}),  # a sink: no resource, upstream reports 404
        ("GET", "/titles", {"headers": {"Host": "api.example.com:8443"}, "scheme": "https", "port": "8443"}),
    ]
    out = []
    for method, path, kw in specs:
        env = falcon.testing.create_environ(
            path=path, method=method, query_string=kw.get("query_string"), headers=kw.get("headers"),
            body=kw.get("body", "") if "json" not in kw else '{"a": 1}', scheme=kw.get("scheme", "http"),
            port=kw.get("port"), host=kw.get("headers", {}).get("Host", "falconframework.org"),
        )
        if "json" in kw:
            env["CONTENT_TYPE"] = "application/json"
        env["test.body"] = env.pop("wsgi.input").read()
        if env.get("QUERY_STRING"):  # gunicorn's RAW_URI is the whole request target
            env["RAW_URI"] = f"{env['RAW_URI']}?{env['QUERY_STRING']}"
        out.append(env)
    return out


def serve(app: Any, envs: list[dict[str, Any]]) -> list[str]:
    statuses = []
    for env in envs:
        env = dict(env)
        env["wsgi.input"] = io.BytesIO(env.pop("test.body", b""))
        env["wsgi.errors"] = io.StringIO()
        seen: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None, seen: list[str] = seen) -> None:
            seen.append(status)

        try:
            body = app(env, start_response)
            b"".join(body)
        except ValueError as error:  # the /escape request
            seen.append(f"raised {error}")
        statuses.append(seen[-1] if seen else "")
    return statuses


def escape_env() -> dict[str, Any]:
    return falcon.testing.create_environ(path="/escape")


# -- harness -------------------------------------------------------------------------------------------


class Telemetry:
    def __init__(self, provider: type[TracerProvider] = TracerProvider, **provider_options: Any) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = provider(**provider_options)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def semconv(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def set_mode(mode: str | None) -> None:
        if mode is None:
            monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
        else:
            monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", mode)
        falcon_app.reset_semconv_mode()

    yield set_mode
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    falcon_app.reset_semconv_mode()


@pytest.fixture
def env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FALCON_EXCLUDED_URLS", "health")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-request-id,authorization")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "x-resp,content-type")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "authorization")


def run_upstream(envs: list[dict[str, Any]], **opts: Any) -> tuple[Telemetry, list[str]]:
    random.seed(7)  # the same span ids and exemplar reservoir choices in both runs
    tel = Telemetry()
    instrumentor = FalconInstrumentor()
    instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider, **opts)
    try:
        app = build(falcon.App())
        statuses = serve(app, envs)
    finally:
        instrumentor.uninstrument()
    return tel, statuses


def run_fast(envs: list[dict[str, Any]], tel: Telemetry | None = None, **opts: Any) -> tuple[Telemetry, list[str]]:
    random.seed(7)
    tel = tel or Telemetry()
    opts.setdefault("active_requests", "upstream")
    app = build(TracedApp(_otel_opts={
        "tracer_provider": tel.tracer_provider, "meter_provider": tel.meter_provider, **opts,
    }))
    return tel, serve(app, envs)


def span_view(span: Any) -> dict[str, Any]:
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind,
        "status": (span.status.status_code, span.status.description),
        "attributes": dict(span.attributes),
        "events": [(e.name, sorted(e.attributes)) for e in span.events],
        "exception": [
            (e.attributes["exception.type"], e.attributes["exception.message"]) for e in span.events if e.name == "exception"
        ],
        "parent": None if parent is None else (parent.trace_id, parent.span_id, parent.is_remote),
        "continues_trace": parent is not None and span.context.trace_id == parent.trace_id,
        "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version,
                  span.instrumentation_scope.schema_url),
    }


def metric_view(reader: InMemoryMetricReader) -> dict[tuple[str, frozenset[Any]], Any]:
    out: dict[tuple[str, frozenset[Any]], Any] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset(point.attributes.items()))
                    if hasattr(point, "bucket_counts"):
                        value: Any = ("histogram", point.count, tuple(point.explicit_bounds))
                    else:
                        value = ("sum", point.value)
                    # Histogram exemplars keep the last measurement per bucket, and durations differ
                    # between runs: only whether there are any is compared for them.
                    exemplars: Any = bool(point.exemplars) if hasattr(point, "bucket_counts") else sorted(
                        ("incoming" if e.trace_id == int(TRACE_ID, 16) else "own",
                         "parent" if e.span_id == int(PARENT_ID, 16) else "own")
                        for e in point.exemplars
                    )
                    out[key] = (metric.unit, metric.description, type(metric.data).__name__, value,
                                sm.scope.name, sm.scope.version, sm.scope.schema_url, exemplars)
    return out


def compare(up: Telemetry, fast: Telemetry) -> None:
    compare_spans(up, fast)
    assert metric_view(fast.reader) == metric_view(up.reader)


def compare_spans(up: Telemetry, fast: Telemetry) -> None:
    up_spans = up.spans.get_finished_spans()
    fast_spans = fast.spans.get_finished_spans()
    assert len(up_spans) == len(fast_spans)
    for a, b in zip(up_spans, fast_spans, strict=True):
        va, vb = span_view(a), span_view(b)
        diff = {k: (va[k], vb[k]) for k in va if va[k] != vb[k]}
        if "attributes" in diff:
            ua, fa = va["attributes"], vb["attributes"]
            diff["attributes"] = {k: (ua.get(k), fa.get(k)) for k in {*ua, *fa} if ua.get(k) != fa.get(k)}
        assert not diff, f"{va['name']}: (upstream, ours) {diff}"


# -- the golden comparisons ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_same_spans_and_metrics_as_upstream(mode: str | None, provider: type, semconv: Any, env_config: None) -> None:
    semconv(mode)
    envs = [*requests(), escape_env()]
    up, up_statuses = run_upstream(envs)
    fast, fast_statuses = run_fast(envs, Telemetry(provider))
    try:
        assert fast_statuses == up_statuses
        assert "raised error handler failed" in up_statuses
        spans = up.spans.get_finished_spans()
        assert len(spans) == len(envs) - 1  # /health excluded
        compare(up, fast)
        # The comparison covers what it claims to: these are in upstream's output.
        views = [span_view(s) for s in spans]
        names = [v["name"] for v in views]
        assert "GET /titles/{title_id:int}" in names and "GET" in names and "HTTP" not in names
        assert any(v["status"][0] is StatusCode.ERROR for v in views)
        assert any(v["parent"] == (int(TRACE_ID, 16), int(PARENT_ID, 16), True) for v in views)
        assert any(v["exception"] == [("ValueError", "error handler failed")] for v in views)
        assert any("http.request.header.authorization" in v["attributes"] for v in views)
        assert any("http.response.header.x_resp" in v["attributes"] for v in views)
        assert all(v["kind"] is SpanKind.SERVER for v in views)
        assert metric_view(up.reader)
    finally:
        up.close()
        fast.close()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_same_output_with_hooks_and_traced_request_attributes(mode: str | None, provider: type, semconv: Any) -> None:
    semconv(mode)

    def request_hook(span: Any, req: Any) -> None:
        span.set_attribute("hook.request", req.path)

    def response_hook(span: Any, req: Any, resp: Any) -> None:
        span.set_attribute("hook.response", str(resp.status))

    opts = {"request_hook": request_hook, "response_hook": response_hook,
            "traced_request_attributes": ["query_string", "content_type", "missing"]}
    envs = requests()
    up, _ = run_upstream(envs, **opts)
    fast, _ = run_fast(envs, Telemetry(provider), **opts)
    try:
        compare(up, fast)
        assert any("hook.request" in s.attributes and "query_string" in s.attributes
                   for s in up.spans.get_finished_spans())
    finally:
        up.close()
        fast.close()


@pytest.mark.parametrize("mode", MODES)
def test_inside_an_existing_span_the_span_is_internal_as_upstream(mode: str | None, semconv: Any) -> None:
    semconv(mode)
    envs = requests()[:3]
    outer = TracerProvider().get_tracer("outer")
    with outer.start_as_current_span("outer"):
        up, _ = run_upstream(envs)
        fast, _ = run_fast(envs)
    try:
        compare(up, fast)
        assert all(s.kind is SpanKind.INTERNAL for s in up.spans.get_finished_spans())
    finally:
        up.close()
        fast.close()


def without_active_exemplars(view: dict[Any, Any]) -> dict[Any, Any]:
    return {k: (v[:-1] if k[0] == "http.server.active_requests" else v) for k, v in view.items()}


@pytest.mark.parametrize("mode", MODES)
def test_observable_active_requests_report_upstreams_points(mode: str | None, semconv: Any, env_config: None) -> None:
    """The default: the same points as upstream's up-down counter, without its exemplars."""
    semconv(mode)
    envs = requests()
    up, _ = run_upstream(envs)
    fast, _ = run_fast(envs, active_requests="observable")
    try:
        assert without_active_exemplars(metric_view(fast.reader)) == without_active_exemplars(metric_view(up.reader))
        assert any(k[0] == "http.server.active_requests" for k in metric_view(up.reader))
    finally:
        up.close()
        fast.close()


def test_active_requests_count_the_request_in_flight(semconv: Any) -> None:
    semconv("http/dup")
    seen: dict[str, list[Any]] = {}

    def app_with_probe(app: Any, tel: Telemetry, label: str) -> Any:
        class Probe:
            def on_get(self, req: Any, resp: Any) -> None:
                seen[label] = [
                    p.value for k, p in points(tel.reader) if k == "http.server.active_requests"
                ]

        app.add_route("/probe", Probe())
        return app

    up = Telemetry()
    instrumentor = FalconInstrumentor()
    instrumentor.instrument(tracer_provider=up.tracer_provider, meter_provider=up.meter_provider)
    try:
        falcon.testing.TestClient(app_with_probe(falcon.App(), up, "upstream")).simulate_get("/probe")
    finally:
        instrumentor.uninstrument()
    fast = Telemetry()
    for label in ("observable", "upstream-style"):
        active = "observable" if label == "observable" else "upstream"
        app = TracedApp(_otel_opts={"tracer_provider": fast.tracer_provider, "meter_provider": fast.meter_provider,
                                    "active_requests": active})
        falcon.testing.TestClient(app_with_probe(app, fast, label)).simulate_get("/probe")
    assert seen["upstream"] == seen["observable"] == [1]
    assert {p.value for k, p in points(fast.reader) if k == "http.server.active_requests"} == {0}  # both done
    off = Telemetry()
    app = TracedApp(_otel_opts={"tracer_provider": off.tracer_provider, "meter_provider": off.meter_provider,
                                "active_requests": "off"})
    falcon.testing.TestClient(app).simulate_get("/titles")
    assert "http.server.active_requests" not in [k for k, _ in points(off.reader)]
    for tel in (up, fast, off):
        tel.close()


def test_apps_sharing_a_meter_provider_share_the_in_flight_count(semconv: Any) -> None:
    semconv(None)
    tel = Telemetry()
    seen: list[Any] = []

    class Probe:
        def on_get(self, req: Any, resp: Any) -> None:
            seen.append([p.value for k, p in points(tel.reader) if k == "http.server.active_requests"])

    apps = [TracedApp(_otel_opts={"tracer_provider": tel.tracer_provider, "meter_provider": tel.meter_provider})
            for _ in range(2)]
    for app in apps:
        app.add_route("/probe", Probe())
        falcon.testing.TestClient(app).simulate_get("/probe")
    assert seen == [[1], [1]]
    assert [p.value for k, p in points(tel.reader) if k == "http.server.active_requests"] == [0]
    tel.close()


def points(reader: InMemoryMetricReader) -> list[tuple[str, Any]]:
    data = reader.get_metrics_data()
    return [(m.name, p) for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics
            for m in sm.metrics for p in m.data.data_points]


def test_response_propagator_sees_the_server_span(semconv: Any) -> None:
    from opentelemetry.instrumentation.propagators import (
        TraceResponsePropagator,
        get_global_response_propagator,
        set_global_response_propagator,
    )

    def traceresponse(app: Any, tel: Telemetry) -> None:
        captured: list[tuple[str, str]] = []
        app(falcon.testing.create_environ(path="/titles"), lambda status, hdrs, exc_info=None: captured.extend(hdrs))
        (span,) = tel.spans.get_finished_spans()
        ctx = span.context
        assert dict(captured)["traceresponse"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"

    semconv(None)
    before = get_global_response_propagator()
    set_global_response_propagator(TraceResponsePropagator())
    up, fast = Telemetry(), Telemetry()
    instrumentor = FalconInstrumentor()
    try:
        instrumentor.instrument(tracer_provider=up.tracer_provider, meter_provider=up.meter_provider)
        try:
            traceresponse(build(falcon.App()), up)
        finally:
            instrumentor.uninstrument()
        traceresponse(build(TracedApp(_otel_opts={"tracer_provider": fast.tracer_provider,
                                                  "meter_provider": fast.meter_provider})), fast)
    finally:
        set_global_response_propagator(before)
        up.close()
        fast.close()


def test_unsampled_requests_still_count_in_metrics(semconv: Any) -> None:
    semconv("http/dup")
    envs = [falcon.testing.create_environ(path="/titles", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})]
    up, _ = run_upstream(envs)
    fast, _ = run_fast(envs)
    try:
        assert not up.spans.get_finished_spans() and not fast.spans.get_finished_spans()
        assert metric_view(fast.reader) == metric_view(up.reader)
        assert metric_view(up.reader)
    finally:
        up.close()
        fast.close()


def test_span_is_current_while_the_app_runs_and_restored_after(semconv: Any) -> None:
    semconv(None)
    seen: list[Any] = []

    class Probe:
        def on_get(self, req: Any, resp: Any) -> None:
            seen.append(trace.get_current_span())

    tel = Telemetry()
    app = TracedApp(_otel_opts={"tracer_provider": tel.tracer_provider, "meter_provider": tel.meter_provider})
    app.add_route("/probe", Probe())
    before = trace.get_current_span()
    falcon.testing.TestClient(app).simulate_get("/probe")
    assert trace.get_current_span() is before
    (span,) = tel.spans.get_finished_spans()
    assert seen[0].get_span_context() == span.context
    tel.close()


@pytest.mark.parametrize("mode", MODES)
def test_header_lists_given_as_options_follow_upstreams_rule(mode: str | None, semconv: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists passed to TracedApp capture what upstream captures from the same lists in its variables."""
    semconv(mode)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-request-id,AUTH.*,user-agent")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "x-resp,content-.*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "authorization,agent")
    envs = requests()
    up, _ = run_upstream(envs)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST")
    monkeypatch.delenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE")
    monkeypatch.delenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS")
    fast, _ = run_fast(envs, capture_request_headers=["x-request-id", "AUTH.*", "user-agent"],
                       capture_response_headers=["x-resp", "content-.*"], sanitize_headers=["authorization", "agent"])
    try:
        compare(up, fast)
        attributes = [s.attributes for s in up.spans.get_finished_spans()]
        assert any(a.get("http.request.header.authorization") == ("[REDACTED]",) for a in attributes)
        assert any(a.get("http.request.header.user_agent") == ("[REDACTED]",) for a in attributes)
        assert any(a.get("http.response.header.content_type") == ("application/json",) for a in attributes)
        assert any(a.get("http.response.header.x_resp") == ("a, b",) for a in attributes)
    finally:
        up.close()
        fast.close()


def test_duration_histogram_can_be_switched_off(semconv: Any) -> None:
    semconv("http/dup")
    fast, _ = run_fast(requests()[:2], duration_histogram=False)
    try:
        names = {k[0] for k in metric_view(fast.reader)}
        assert names == {"http.server.active_requests"}
        assert len(fast.spans.get_finished_spans()) == 2
    finally:
        fast.close()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_otel_showmax_falcon_on_traced_app_matches_it_on_upstream(mode: str | None, provider: type, semconv: Any,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  validated: list[set[str]]) -> None:
    """otel_showmax.falcon (redaction, header allow-lists, request log) with TracedApp as its base.

    The base class is swapped the way the proposed falcon.py change does (its module-level
    ``UpstreamApp`` becomes TracedApp); spans and request log records must not change.
    """
    from otel_showmax import falcon as showmax_falcon

    semconv(mode)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("otel_showmax.request")
    handler = Keep()
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    monkeypatch.setattr(logging.Logger.manager, "disable", 0)
    up, fast = Telemetry(), Telemetry(provider)
    try:
        showmax_falcon.instrument(
            tracer_provider=up.tracer_provider, excluded_urls=("^/health",),
            capture_request_headers=("x-request-id", "authorization", "user-agent"),
            capture_response_headers=("x-resp", "content-type"), sanitize_headers=("authorization",),
            redact_query_params=("token", "page"),
        )
        envs = requests()
        up_app = build(falcon.App())
        showmax_falcon._PROVIDER.provider = fast.tracer_provider
        monkeypatch.setattr(showmax_falcon, "UpstreamApp", TracedApp)
        fast_app = build(showmax_falcon._make_app_class(TracedApp)())
        up_statuses = serve(up_app, envs)
        up_records, records[:] = list(records), []
        validated.clear()
        fast_statuses = serve(fast_app, envs)
        assert fast_statuses == up_statuses
        compare_spans(up, fast)
        if provider is ShowmaxTracerProvider:  # trusted through the redacting tracer too
            assert not validated_keys(validated) & (REQUEST_KEYS | RESPONSE_KEYS)
        assert len(records) == len(up_records) == len(envs) - 1

        def view(r: logging.LogRecord) -> tuple[Any, ...]:
            fields = {k: getattr(r, k, None) for k in showmax_falcon.REQUEST_LOG_FIELDS if k != "duration_ms"}
            return r.levelname, r.msg, fields, r.exc_info[0] if r.exc_info else None

        assert [view(r) for r in records] == [view(r) for r in up_records]
        spans = up.spans.get_finished_spans()
        assert any(s.attributes.get("http.target", s.attributes.get("url.query", "")).endswith("page=REDACTED&size=20")
                   for s in spans)
        assert any(e.name == "exception" for s in spans for e in s.events)
    finally:
        showmax_falcon.uninstrument()
        logger.removeHandler(handler)
        up.close()
        fast.close()


# -- trusted attributes: ShowmaxTracerProvider's fast path gives the SDK's spans exactly -------------------

REQUEST_KEYS = {"http.method", "http.request.method"}
RESPONSE_KEYS = {"http.status_code", "http.response.status_code", "error.type"}


def exact_view(span: Any) -> dict[str, Any]:
    """All an exporter reads from a span's attributes and events: order, values, types, dropped counts."""
    def typed(value: Any) -> Any:
        return (type(value).__name__, tuple(type(v).__name__ for v in value) if isinstance(value, tuple) else None)

    return {
        **span_view(span),
        "ordered": [(k, v, typed(v)) for k, v in span.attributes.items()],
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "event_attributes": [(e.name, [(k, typed(v)) for k, v in e.attributes.items()]) for e in span.events],
        "ids": (span.context.trace_id, span.context.span_id, span.context.trace_flags),
    }


def compare_exact(sdk: Telemetry, ours: Telemetry) -> None:
    a, b = sdk.spans.get_finished_spans(), ours.spans.get_finished_spans()
    assert [exact_view(s) for s in b] == [exact_view(s) for s in a]


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The key sets the SDK's attribute validation (``BoundedAttributes._set_items``) ran on."""
    from opentelemetry.attributes import BoundedAttributes

    calls: list[set[str]] = []
    if not hasattr(BoundedAttributes, "_set_items"):  # opentelemetry-api 1.40 validates key by key
        original_item = BoundedAttributes.__setitem__

        def spy_item(self: Any, key: str, value: Any) -> None:
            calls.append({key})
            original_item(self, key, value)

        monkeypatch.setattr(BoundedAttributes, "__setitem__", spy_item)
        return calls
    original = BoundedAttributes._set_items

    def spy(self: Any, attributes: Any) -> None:
        calls.append(set(attributes))
        original(self, attributes)

    monkeypatch.setattr(BoundedAttributes, "_set_items", spy)
    return calls


def validated_keys(calls: list[set[str]]) -> set[str]:
    return set().union(*calls)


def sdk_set_attributes(span: Any, attributes: Any) -> None:
    span.set_attributes(attributes)


def run_sdk(envs: list[dict[str, Any]], tel: Telemetry) -> None:
    """``run_fast`` with the SDK's own ``set_attributes`` (and a plain TracerProvider): the reference."""
    assert type(tel.tracer_provider) is TracerProvider
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(falcon_app, "set_trusted_attributes", sdk_set_attributes)
        run_fast(envs, tel)


def run_both(envs: list[dict[str, Any]], validated: list[set[str]],
             **provider_options: Any) -> tuple[Telemetry, Telemetry, set[str]]:
    """Serve ``envs`` the SDK's way and with ShowmaxTracerProvider (same options); returns both and
    the keys the SDK validated in ours."""
    sdk, ours = Telemetry(**provider_options), Telemetry(ShowmaxTracerProvider, **provider_options)
    run_sdk(envs, sdk)
    validated.clear()
    run_fast(envs, ours)
    return sdk, ours, validated_keys(validated)


@pytest.mark.parametrize("mode", MODES)
def test_trusted_attributes_give_the_sdks_spans_exactly(mode: str | None, semconv: Any, env_config: None,
                                                        validated: list[set[str]]) -> None:
    semconv(mode)
    envs = [*requests(), escape_env()]
    sdk, ours, keys = run_both(envs, validated)
    try:
        compare_exact(sdk, ours)
        assert not keys & (REQUEST_KEYS | RESPONSE_KEYS), keys  # ours skipped the SDK's validation
        assert not any(k.startswith("http.request.header.") or k.startswith("http.response.header.") for k in keys)
        attributes = [s.attributes for s in ours.spans.get_finished_spans()]
        assert any(a.get("http.request.header.authorization") == ("[REDACTED]",) for a in attributes)
        assert any(type(a.get("http.response.header.x_resp")) is tuple for a in attributes)
    finally:
        sdk.close()
        ours.close()


class ByPath(sampling.Sampler):
    """A sampler that reads the request attributes: drops /teapot, adds one attribute."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None,
                      links: Any = None, trace_state: Any = None) -> sampling.SamplingResult:
        attributes = dict(attributes or {})
        if "teapot" in str(attributes.get("url.path", attributes.get("http.target", ""))):
            return sampling.SamplingResult(sampling.Decision.DROP)
        attributes["sampler.saw"] = len(attributes)
        return sampling.SamplingResult(sampling.Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "ByPath"


@pytest.mark.parametrize("sampler", [ByPath(), sampling.ParentBased(ByPath())], ids=["custom", "parentbased-custom"])
def test_a_sampler_reading_attributes_gets_them_the_sdks_way(sampler: Any, semconv: Any, env_config: None,
                                                            validated: list[set[str]]) -> None:
    semconv("http/dup")
    sdk, ours, keys = run_both(requests(), validated, sampler=sampler)
    try:
        compare_exact(sdk, ours)
        assert keys >= REQUEST_KEYS  # the request attributes went through the SDK
        spans = ours.spans.get_finished_spans()
        assert spans and all(s.attributes["sampler.saw"] > 5 for s in spans if s.parent is None)  # ParentBased's root
        assert not any("teapot" in s.attributes["url.path"] for s in spans)
    finally:
        sdk.close()
        ours.close()


@pytest.mark.parametrize("limits", [
    {"max_span_attributes": 6}, {"max_span_attributes": 19}, {"max_span_attributes": 0},
    {"max_span_attribute_length": 5}, {"max_attribute_length": 12},
], ids=str)
def test_tight_span_limits_get_the_sdks_drops_and_truncation(limits: dict[str, int], semconv: Any, env_config: None,
                                                             validated: list[set[str]]) -> None:
    semconv("http/dup")
    sdk, ours, keys = run_both(requests(), validated, span_limits=SpanLimits(**limits))
    try:
        compare_exact(sdk, ours)
        assert keys & (REQUEST_KEYS | RESPONSE_KEYS)  # some of them went through the SDK
        spans = ours.spans.get_finished_spans()
        length = limits.get("max_span_attribute_length", limits.get("max_attribute_length"))
        if length is None:
            assert any(s.dropped_attributes for s in spans)
        else:
            assert any(v != "" and len(v) == length for s in spans for v in s.attributes.values() if type(v) is str)
    finally:
        sdk.close()
        ours.close()


def test_limits_that_leave_room_keep_the_fast_path(semconv: Any, env_config: None, validated: list[set[str]]) -> None:
    semconv("http/dup")
    sdk, ours, keys = run_both(requests(), validated, span_limits=SpanLimits(max_span_attributes=40,
                                                                             max_attribute_length=200))
    try:
        compare_exact(sdk, ours)
        assert not keys & (REQUEST_KEYS | RESPONSE_KEYS), keys
    finally:
        sdk.close()
        ours.close()


class Peek(SpanProcessor):
    """A user's processor that reads the attributes when the span starts."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.seen.append(dict(span.attributes))


class EndOnly(SpanProcessor):
    """A user's processor with the default (empty) on_start."""

    def on_end(self, span: Any) -> None:
        pass


def test_a_processor_added_later_sees_the_attributes_at_start(semconv: Any, env_config: None,
                                                              validated: list[set[str]]) -> None:
    semconv("http/dup")
    envs = requests()
    peeks: list[Peek] = []
    runs = []
    for provider in PROVIDERS:
        tel = Telemetry(provider)
        tel.tracer_provider.add_span_processor(EndOnly())
        run = run_sdk if provider is TracerProvider else run_fast
        validated.clear()
        run(envs[:3], tel)  # processors whose on_start does nothing: ours stays on the fast path
        first = validated_keys(validated)
        peek = Peek()
        tel.tracer_provider.add_span_processor(peek)
        peeks.append(peek)
        validated.clear()
        run(envs[3:], tel)
        runs.append((tel, first, validated_keys(validated)))
    (sdk, _, _), (ours, first, later) = runs
    try:
        compare_exact(sdk, ours)
        assert not first & REQUEST_KEYS
        assert later >= REQUEST_KEYS
        assert peeks[0].seen == peeks[1].seen
        assert peeks[1].seen and all(set(seen) >= REQUEST_KEYS for seen in peeks[1].seen)
    finally:
        sdk.close()
        ours.close()


def test_set_trusted_attributes_follows_the_sdk_on_ended_spans_and_repeated_keys(caplog: Any) -> None:
    from otel_showmax._pipeline.tracer import TrustedAttributes, set_trusted_attributes

    spans = []
    for provider, set_attributes in zip(PROVIDERS, (sdk_set_attributes, set_trusted_attributes), strict=True):
        tracer = provider(shutdown_on_exit=False).get_tracer("t")
        span = tracer.start_span("s", attributes=TrustedAttributes({"a": "1", "b": 2, "c": ("x",)}))
        set_attributes(span, TrustedAttributes({"a": "again", "d": True}))  # "a" moves to the end
        span.end()
        caplog.clear()
        set_attributes(span, TrustedAttributes({"late": 1}))
        assert [r.getMessage() for r in caplog.records] == ["Setting attribute on ended span."]
        spans.append(span)
    assert list(spans[1].attributes.items()) == list(spans[0].attributes.items()) == [
        ("b", 2), ("c", ("x",)), ("a", "again"), ("d", True)]
    set_trusted_attributes(trace.INVALID_SPAN, TrustedAttributes({"a": 1}))  # not the SDK's span: its own method


# -- deliberate differences, each shown against upstream -------------------------------------------------


class IntStatus:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.status = 201


def test_int_status_is_reported_where_upstream_turns_the_response_into_a_500(semconv: Any) -> None:
    semconv(None)
    up = Telemetry()
    instrumentor = FalconInstrumentor()
    instrumentor.instrument(tracer_provider=up.tracer_provider, meter_provider=up.meter_provider)
    try:
        app = falcon.App()
        app.add_route("/int", IntStatus())
        result = falcon.testing.TestClient(app).simulate_get("/int")
    finally:
        instrumentor.uninstrument()
    assert result.status_code == 500  # upstream's middleware raised AttributeError on int.split

    fast = Telemetry()
    app = TracedApp(_otel_opts={"tracer_provider": fast.tracer_provider, "meter_provider": fast.meter_provider})
    app.add_route("/int", IntStatus())
    assert falcon.testing.TestClient(app).simulate_get("/int").status_code == 201
    (span,) = fast.spans.get_finished_spans()
    assert span.attributes["http.status_code"] == 201
    assert span.status.status_code is StatusCode.UNSET
    up.close()
    fast.close()


def test_traced_app_subclasses_falcons_own_app_even_while_upstream_is_on() -> None:
    """Imported under opentelemetry-instrument (falcon.App already replaced): no double tracing."""
    import subprocess
    import sys

    code = (
        "import falcon, falcon.app\n"
        "from opentelemetry.instrumentation.falcon import FalconInstrumentor\n"
        "FalconInstrumentor().instrument()\n"
        "assert falcon.App is not falcon.app.App\n"
        "from otel_showmax._instrumentation.falcon_app import TracedApp\n"
        "assert TracedApp.__bases__ == (falcon.app.App,), TracedApp.__mro__\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_uninstrument_apps_serves_untraced(semconv: Any) -> None:
    semconv(None)
    tel = Telemetry()
    app = build(TracedApp(_otel_opts={"tracer_provider": tel.tracer_provider, "meter_provider": tel.meter_provider}))
    client = falcon.testing.TestClient(app)
    client.simulate_get("/titles")
    falcon_app.uninstrument_apps()
    assert client.simulate_get("/titles").status_code == 200
    assert client.simulate_get("/boom").status_code == 500
    assert len(tel.spans.get_finished_spans()) == 1
    tel.close()


# -- upstream's private names: fail loudly when upstream changes them ------------------------------------


def test_upstream_private_names_still_mean_what_we_use_them_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import opentelemetry.instrumentation.falcon as upstream
    from opentelemetry.instrumentation import _semconv

    # The golden tests here ran on both ends of the supported range (CI: tests/constraints/oldest.txt and newest).
    assert upstream.__version__ in ("0.61b0", "0.66b1"), "re-run the golden tests and review falcon_app against this version"
    assert upstream._ENVIRON_EXC == falcon_app.EXC_KEY == "opentelemetry-falcon.exc"
    assert upstream._ENVIRON_SPAN_KEY == falcon_app.SPAN_KEY
    stability = _semconv._OpenTelemetrySemanticConventionStability
    assert {"_initialized", "_lock", "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING"} <= set(vars(stability))
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    falcon_app.reset_semconv_mode()
    assert falcon_app.semconv_mode() is _semconv._StabilityMode.HTTP
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup")
    assert falcon_app.semconv_mode() is _semconv._StabilityMode.HTTP  # read once per process, as upstream
    falcon_app.reset_semconv_mode()
    assert falcon_app.semconv_mode() is _semconv._StabilityMode.HTTP_DUP
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN")
    falcon_app.reset_semconv_mode()
    assert falcon_app.semconv_mode() is _semconv._StabilityMode.DEFAULT


@pytest.fixture(autouse=True)
def _quiet_falcon_errors() -> Iterator[None]:
    logger = logging.getLogger("opentelemetry.attributes")
    level = logger.level
    yield
    logger.setLevel(level)


def test_metrics_off_means_no_measurement_and_the_same_spans(semconv: Any) -> None:
    semconv("http/dup")
    fast, _ = run_fast(requests())
    off = Telemetry()
    off.meter_provider = MeterProvider()  # no reader: what setup() builds with metrics off
    try:
        app = TracedApp(_otel_opts={"tracer_provider": off.tracer_provider, "meter_provider": off.meter_provider})
        plan = app._otel_plan
        assert (plan.duration_old, plan.duration_new, plan.in_flight, plan.active) == (None, None, None, None)
        random.seed(7)
        serve(build(app), requests())
        compare_spans(fast, off)
    finally:
        fast.close()
        off.close()


def test_parent_without_propagation_headers_is_extracts_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import baggage
    from opentelemetry.context import Context
    from opentelemetry.instrumentation.wsgi import wsgi_getter
    from opentelemetry.propagate import extract, set_global_textmap
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    envs = [{}, {"HTTP_TRACEPARENT": traceparent}, {"HTTP_BAGGAGE": "k=v"}, {"HTTP_TRACEPARENT": ""},
            {"HTTP_TRACEPARENT": traceparent, "HTTP_BAGGAGE": "k=v"}]

    def view(ctx: Any) -> tuple[Any, ...]:
        return (type(ctx), trace.get_current_span(ctx).get_span_context(), baggage.get_all(ctx))

    for env in envs:
        assert view(falcon_app._parent(env)) == view(extract(env, getter=wsgi_getter)), env
    got = falcon_app._parent({})
    assert type(got) is Context and len(got) == 0
    calls = []
    monkeypatch.setattr(falcon_app, "extract", lambda *a, **k: calls.append(a) or Context())
    falcon_app._parent({})
    assert calls == []  # the default propagator and no header: not run
    falcon_app._parent({"HTTP_BAGGAGE": "k=v"})
    assert len(calls) == 1
    previous = falcon_app.get_global_textmap()
    set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    try:
        falcon_app._parent({})
        assert len(calls) == 2  # another propagator: always run
    finally:
        set_global_textmap(previous)
