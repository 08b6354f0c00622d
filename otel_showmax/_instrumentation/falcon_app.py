"""Falcon server spans and HTTP metrics: upstream's output with less work per request.

``TracedApp`` is a drop-in for opentelemetry-instrumentation-falcon's instrumented app class
(``_InstrumentedFalconAPI``, 0.66b1): the same constructor protocol (``_otel_opts`` with
``tracer_provider``, ``meter_provider``, ``request_hook``, ``response_hook``,
``traced_request_attributes``), the same ``_is_instrumented_by_opentelemetry`` switch, the same
exception key in the WSGI environ — and the same telemetry: span name, kind, status, attributes
(each OTEL_SEMCONV_STABILITY_OPT_IN mode), exception event, context propagation, excluded URLs,
captured headers, instrumentation scope, and the metrics ``http.server.duration`` /
``http.server.request.duration`` / ``http.server.active_requests`` with upstream's attribute
sets and buckets (tests/instrumentation/test_falcon_app.py compares both, span by span).

Where the time goes instead: the environment variables upstream reads on every request (captured
headers, sanitised fields, OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS) are read once,
when the app is created; request attributes are built in one function specialised for the
semantic-convention mode; the per-method parts and user-agent classification are cached; the span
is made current with one context attach instead of two; the response attributes go to the span in
one ``set_attributes`` call; ``UNSET`` statuses are not set (the SDK ignores them anyway); metric
attribute sets are built directly instead of filtered from the span attributes; span attributes are
built as ``_upstream.TrustedAttributes`` (already in the form the SDK stores), which a span from a
``ShowmaxTracerProvider`` takes without the SDK's per-value validation when the result is the same;
the duration histogram records through ``instruments.BoundHistogram`` (the SDK's aggregations,
looked up once per attribute set). Falcon calls no middleware of ours: one response step sits where
the first middleware's ``process_response`` would (after every other one), the resource is noted
in ``_get_responder``, and the response's span name, attributes, status and histogram attributes
come from a plan per (method, route, status) (``routes.py``). ``otel_showmax.falcon`` serves
through ``_otel_serve`` with its options: header capture from them, its request log in the step.
benchmarks/falcon_app.py measures it: upstream adds ~2.6x bare Falcon's CPU per request, this less
than half that; what remains is mostly the SDK's span itself.

Deliberate differences from upstream:

- ``http.server.active_requests`` is counted in a dict and reported by an observable up-down
  counter: the same points (name, unit, description, attribute sets, values), without exemplars,
  for two fewer SDK measurements per request; ``active_requests="upstream"`` restores upstream's
  synchronous counter;
- a response status that is not a ``"<code> <reason>"`` string (``resp.status = 201``,
  ``http.HTTPStatus``, both allowed by Falcon 4) is reported as that code; upstream's
  ``status.split`` raises inside its middleware and Falcon turns the response into a 500;
- captured request headers are passed to ``start_span`` with the other request attributes, so a
  sampler sees them too (upstream sets them right after the span starts);
- the capture/sanitize environment variables are read when the app is created, not per request;
- with an SDK meter provider that has no reader (metrics off) no instrument is created or measured;
- without a ``traceparent`` or ``baggage`` header and with the default propagator, the parent is
  the empty context ``extract`` would return, without running the propagators.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Callable
from time import perf_counter, time_ns
from typing import Any, Protocol

import falcon
from falcon.app import App as FalconApp
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.instrumentation.falcon.version import __version__ as UPSTREAM_VERSION
from opentelemetry.instrumentation.propagators import FuncSetter, get_global_response_propagator
from opentelemetry.instrumentation.wsgi import wsgi_getter
from opentelemetry.metrics import Observation, get_meter, get_meter_provider
from opentelemetry.propagate import extract, get_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.semconv.metrics import MetricInstruments
from opentelemetry.semconv.metrics.http_metrics import HTTP_SERVER_REQUEST_DURATION
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
    OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS,
    detect_synthetic_user_agent,
    get_custom_headers,
    get_excluded_urls,
    get_traced_request_attrs,
    normalise_request_header_name,
    normalise_response_header_name,
    normalize_user_agent,
    redact_url,
)

from .. import _diag, _threads
from .._pipeline.tracer import TrustedAttributes, set_trusted_attributes
from .._upstream import composite_parts, reads_no_metrics
from . import hub_monitor as _hub_monitor
from .instruments import BoundHistogram
from .redaction import HeaderCapture
from .routes import Route, Routes

# -- upstream's private names (otel_showmax/_upstream.py; tests/instrumentation/test_falcon_app.py checks them) ----
from .._upstream import FALCON_EXC_KEY as EXC_KEY  # isort: skip
from .._upstream import FALCON_SPAN_KEY as SPAN_KEY  # isort: skip
from .._upstream import HTTP_DURATION_HISTOGRAM_BUCKETS_NEW  # isort: skip
from .._upstream import StabilityMode as _StabilityMode  # isort: skip
from .._upstream import get_schema_url as _get_schema_url  # isort: skip
from .._upstream import reset_semconv_mode, semconv_mode  # isort: skip
from .._upstream import server_active_requests_count_attrs_new as _server_active_requests_count_attrs_new  # isort: skip
from .._upstream import server_active_requests_count_attrs_old as _server_active_requests_count_attrs_old  # isort: skip
from .._upstream import server_duration_attrs_new as _server_duration_attrs_new  # isort: skip
from .._upstream import server_duration_attrs_old as _server_duration_attrs_old  # isort: skip

__all__ = ["Extension", "ResponseStep", "TracedApp", "reset_semconv_mode", "semconv_mode", "uninstrument_apps"]

SCOPE_NAME = "opentelemetry.instrumentation.falcon"  # upstream's tracer and meter name
_STATE_KEY = "otel_showmax.fastfalcon"
_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"))
_OLD_ACTIVE = frozenset(_server_active_requests_count_attrs_old)
_NEW_ACTIVE = frozenset(_server_active_requests_count_attrs_new)
_OLD_DURATION = frozenset(_server_duration_attrs_old)
_NEW_DURATION = frozenset(_server_duration_attrs_new)
_CACHE_MAX = 256
# falcon.app.App, not falcon.App: that name is replaced while an instrumentation is on.
_ORIGINAL_APP: Any = FalconApp
_FALCON_CALL = FalconApp.__call__  # before otel_showmax.falcon replaces it
_response_setter = FuncSetter(falcon.Response.append_header)


# The default propagator (tracecontext, then baggage): with neither header, extract() returns a new
# empty Context (tracecontext starts from one; baggage finds no header and returns it).
_DEFAULT_PROPAGATORS = [TraceContextTextMapPropagator, W3CBaggagePropagator]
_propagator_checked: list[Any] = [None, False]  # [the global propagator, whether it is the default]


def _parent(env: dict[str, Any]) -> Any:
    """``extract(env, getter=wsgi_getter)``; without a traceparent or baggage header and with the
    default propagator, the same result without running it."""
    propagator = get_global_textmap()
    checked = _propagator_checked
    if checked[0] is not propagator:
        default = type(propagator) is CompositePropagator and [
            type(p) for p in composite_parts(propagator)] == _DEFAULT_PROPAGATORS
        checked[:] = [propagator, default]
    if checked[1] and "HTTP_TRACEPARENT" not in env and "HTTP_BAGGAGE" not in env:
        return Context()
    return extract(env, getter=wsgi_getter)


# -- per-app, precomputed: everything upstream recomputes or re-reads per request ---------------------


class _Plan:
    """What one app needs per request, computed once when the app is created."""

    def __init__(self, opts: dict[str, Any]) -> None:
        mode = semconv_mode()
        self.old = old = mode is not _StabilityMode.HTTP and mode is not _StabilityMode.DATABASE
        self.new = new = mode is not _StabilityMode.DEFAULT
        schema_url = _get_schema_url(mode)
        provider = opts.pop("tracer_provider", None)
        self.tracer = trace.get_tracer(SCOPE_NAME, UPSTREAM_VERSION, provider, schema_url=schema_url)
        meter_provider = opts.pop("meter_provider", None)
        meter = get_meter(SCOPE_NAME, UPSTREAM_VERSION, meter_provider, schema_url=schema_url)
        # Metrics off (a provider without readers, as setup() makes it): no measurement per request.
        measured = not reads_no_metrics(meter_provider or get_meter_provider())
        self.duration_old: BoundHistogram | None = None
        self.duration_new: BoundHistogram | None = None
        # BoundHistogram: the SDK's aggregations, looked up once per attribute set (~20 → ~7 µs per
        # measurement on the benchmark machine, same exported points; tests/instrumentation/test_instruments.py).
        # A collector's spanmetrics connector can derive the same histogram from the spans.
        duration = opts.pop("duration_histogram", True) and measured
        if duration and old:
            self.duration_old = BoundHistogram(meter.create_histogram(
                name=MetricInstruments.HTTP_SERVER_DURATION, unit="ms",
                description="Measures the duration of inbound HTTP requests.",
            ))
        if duration and new:
            self.duration_new = BoundHistogram(meter.create_histogram(
                name=HTTP_SERVER_REQUEST_DURATION, description="Duration of HTTP server requests.", unit="s",
                explicit_bucket_boundaries_advisory=HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
            ))
        self.active_requests = opts.pop("active_requests", "observable")
        self.active = self.in_flight = None
        if not measured and self.active_requests in ("observable", "upstream"):
            self.active_requests = "off"
        active = {
            "name": MetricInstruments.HTTP_SERVER_ACTIVE_REQUESTS, "unit": "requests",
            "description": "measures the number of concurrent HTTP requests that are currently in-flight",
        }
        if self.active_requests == "upstream":
            self.active = meter.create_up_down_counter(**active)
        elif self.active_requests == "observable":
            # One count and one instrument per meter: the SDK hands a second app asking for the
            # same instrument the first one, without registering its callback.
            with _in_flight_lock:
                self.in_flight = _in_flight.get(meter)
                if self.in_flight is None:
                    self.in_flight = _in_flight[meter] = InFlight()
                    meter.create_observable_up_down_counter(callbacks=[self.in_flight.observe], **active)
        elif self.active_requests != "off":
            raise ValueError(f"active_requests: {self.active_requests!r} is not 'observable', 'upstream' or 'off'")
        keys = (_OLD_ACTIVE if old else frozenset()) | (_NEW_ACTIVE if new else frozenset())
        self.active_keys = keys
        self.traced_attrs: list[str] = opts.pop("traced_request_attributes", get_traced_request_attrs("FALCON"))
        self.request_hook: Callable[..., Any] | None = opts.pop("request_hook", None)
        self.response_hook: Callable[..., Any] | None = opts.pop("response_hook", None)
        self.excluded = get_excluded_urls("FALCON")
        self.capture_all_methods = bool(os.environ.get(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS))
        # Upstream captures the headers named in its environment variables, and a request/response
        # hook may capture more afterwards. Lists given here replace the environment's (a caller
        # passing them includes the environment's, as otel_showmax.falcon does) and are applied
        # where upstream's hooks run.
        given = "capture_request_headers" in opts or "capture_response_headers" in opts
        sanitize = opts.pop("sanitize_headers", None)
        if sanitize is None:
            sanitize = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS)
        request = opts.pop("capture_request_headers", None)
        if request is None and not given:
            request = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST)
        response = opts.pop("capture_response_headers", None)
        if response is None and not given:
            response = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE)
        self.capture_request = HeaderCapture(request or (), sanitize, normalise_request_header_name)
        self.capture_response = HeaderCapture(response or (), sanitize, normalise_response_header_name)
        self.capture_response_late = given  # where otel_showmax.falcon's response hook captured them
        self._methods: dict[str, tuple[tuple[tuple[str, str], ...], str, bool]] = {}
        self.routes = Routes(old, new, _OLD_DURATION, _NEW_DURATION)
        self.request_log: Callable[..., None] | None = opts.pop("request_log", None)
        self._agents: dict[str, str | None] = {}

    def method(self, raw: str) -> tuple[tuple[tuple[str, str], ...], str, bool]:
        """(the method's request attributes, the default span name's method, whether a path follows)."""
        hit = self._methods.get(raw)
        if hit is None:
            hit = self._method(raw)
            if len(self._methods) < _CACHE_MAX:
                self._methods[raw] = hit
        return hit

    def _method(self, raw: str) -> tuple[tuple[tuple[str, str], ...], str, bool]:
        sanitize = self._sanitize_method
        # collect_request_attributes: sanitize, then strip; the span name: strip, then sanitize.
        original, normalized = raw.strip(), sanitize(raw).strip()
        items: list[tuple[str, str]] = []
        if original != normalized and self.new and original:
            items.append(("http.request.method_original", original))
        if normalized:
            if self.old:
                items.append(("http.method", normalized))
            if self.new:
                items.append(("http.request.method", normalized))
        name = sanitize(raw.strip())
        if name == "_OTHER":
            return tuple(items), "HTTP", False
        return tuple(items), name, bool(name)

    def _sanitize_method(self, method: str) -> str:
        method = method.upper()
        return method if self.capture_all_methods or method in _KNOWN_METHODS else "_OTHER"

    def synthetic(self, agent: str) -> str | None:
        try:
            return self._agents[agent]
        except KeyError:
            kind = detect_synthetic_user_agent(agent)
            if len(self._agents) >= _CACHE_MAX:
                self._agents.clear()
            self._agents[agent] = kind
            return kind

    def request_attributes(self, env: dict[str, Any], method_items: tuple[tuple[str, str], ...]) -> TrustedAttributes:
        """``collect_request_attributes`` for this app's mode, in upstream's key order."""
        old, new = self.old, self.new
        result = TrustedAttributes(method_items)
        if old:
            result["http.server_name"] = env.get("SERVER_NAME")
        scheme = env.get("wsgi.url_scheme")
        if scheme:
            if old:
                result["http.scheme"] = scheme
            if new:
                result["url.scheme"] = scheme
        host = env.get("HTTP_HOST")
        if host:
            if old:
                result["net.host.name"] = host
            if new:
                result["server.address"] = host
            if old:
                result["http.host"] = host
        port = env.get("SERVER_PORT")
        if port:
            port = int(port)
            if port:
                if old:
                    result["net.host.port"] = port
                if new:
                    result["server.port"] = port
        target = env.get("RAW_URI")
        if target is None:
            target = env.get("REQUEST_URI")
        if target:
            if old:
                result["http.target"] = target
            if new:
                path = env.get("PATH_INFO")
                if path:
                    result["url.path"] = path
                query = env.get("QUERY_STRING")
                if query:
                    result["url.query"] = query
        elif old:
            from wsgiref.util import request_uri

            result["http.url"] = redact_url(request_uri(env))
        remote_addr = env.get("REMOTE_ADDR")
        if remote_addr:
            if old:
                result["net.peer.ip"] = remote_addr
            if new and not result.get("client.address"):
                result["client.address"] = remote_addr
        peer_port = env.get("REMOTE_PORT")
        if peer_port:  # upstream's set_int_attribute: a truthy raw value that int() accepts (even "0")
            try:
                peer_port = int(peer_port)
            except (ValueError, TypeError):
                pass
            else:
                if old:
                    result["net.peer.port"] = peer_port
                if new:
                    result["client.port"] = peer_port
        remote_host = env.get("REMOTE_HOST")
        if remote_host and remote_host != remote_addr:
            if old:
                result["net.peer.name"] = remote_host
            if new:
                result["client.address"] = remote_host
        agent = env.get("HTTP_USER_AGENT")
        if agent:
            agent = normalize_user_agent(agent)
            if agent:
                if old:
                    result["http.user_agent"] = agent
                if new:
                    result["user_agent.original"] = agent
                synthetic = self.synthetic(agent)
                if synthetic:
                    result["user_agent.synthetic.type"] = synthetic
        flavor = env.get("SERVER_PROTOCOL", "")
        if flavor.upper().startswith("HTTP/"):
            flavor = flavor[5:]
        if flavor:
            if old:
                result["http.flavor"] = flavor
            if new:
                result["network.protocol.version"] = flavor
        return result



class InFlight:
    """``http.server.active_requests`` as upstream's up-down counter would sum it, kept in a dict.

    Upstream adds +1 and -1 per request through the SDK (two measurements, ~15 µs each here);
    this counts per attribute set and reports the counts through an observable up-down counter
    when metrics are collected: the same name, unit, description, attribute sets and values, no
    exemplars.
    """

    def __init__(self) -> None:
        self._lock = _threads.allocate_lock()  # held for a dict update only: a real lock, half gevent's cost
        self._counts: dict[tuple[tuple[str, Any], ...], int] = {}

    def add(self, key: tuple[tuple[str, Any], ...], amount: int) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount

    def observe(self, options: Any) -> list[Observation]:
        with self._lock:
            counts = list(self._counts.items())
        return [Observation(count, dict(key)) for key, count in counts]


_in_flight: weakref.WeakKeyDictionary[Any, InFlight] = weakref.WeakKeyDictionary()
_in_flight_lock = threading.Lock()


class Extension(Protocol):
    """What ``otel_showmax.falcon`` adds per request (its options in force): header capture lists
    that replace the plan's, and the request log's options (``request_log.RequestLogOptions``)."""

    request_headers: HeaderCapture
    response_headers: HeaderCapture


class _Request:
    """Per-request state shared by ``TracedApp`` and its response step (one environ entry)."""

    __slots__ = ("attrs", "extension", "resource", "route", "server", "span", "start")

    def __init__(self, span: Any, attrs: dict[str, Any], server: bool, extension: Any, start: float) -> None:
        self.span = span
        self.attrs = attrs
        self.server = server
        self.extension = extension
        self.start = start  # the request log's start (perf_counter)
        self.resource: str | None = None
        self.route: Route | None = None


# -- the response step: upstream's _TraceMiddleware.process_response, the request log, in one pass ----


class ResponseStep:
    """Finishes the server span and writes the request log when the response is known.

    Not a middleware the app lists: ``TracedApp._prepare_middleware`` puts its ``process_response``
    where Falcon calls the first middleware's, so it runs after every other middleware's.
    ``process_request`` exists only on the subclass used when a request hook or traced request
    attributes are configured, so Falcon does not call it otherwise.
    """

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan

    def process_response(self, req: Any, resp: Any, resource: Any, req_succeeded: bool | None = None) -> None:
        env = req.env
        state = env.get(_STATE_KEY)
        if state is None:
            return
        plan = self._plan
        extension = state.extension
        if extension is not None and plan.request_log is not None:  # first, as when it was a middleware
            plan.request_log(env, req, resp, state.start, extension)
        status = resp.status
        if resource is None:
            status = falcon.HTTP_404
        elif not req_succeeded and EXC_KEY in env:
            exc = env[EXC_KEY]
            if "HTTPNotFound" in type(exc).__name__:
                status = falcon.HTTP_404
            elif isinstance(exc, (falcon.HTTPError, falcon.HTTPStatus)):
                try:
                    status = falcon.code_to_http_status(exc.status)
                except ValueError:
                    status = falcon.HTTP_500
            else:
                status = falcon.HTTP_500
        route = state.route = plan.routes.get(req.method, req.uri_template, status, state.server)
        span = state.span
        recording = span.is_recording()
        if recording:
            attrs = TrustedAttributes()
            if state.resource is not None:
                attrs["falcon.resource"] = state.resource
            attrs.update(route.attributes)
            if route.name is not None:
                span.update_name(route.name)
                if plan.capture_response and not plan.capture_response_late and extension is None:
                    attrs.update(plan.capture_response.from_items(resp.headers.items()))
            set_trusted_attributes(span, attrs)
            if route.error is not None:
                span.set_status(route.error)
        state.resource = None
        propagator = get_global_response_propagator()
        if propagator:
            propagator.inject(resp, setter=_response_setter)
        if recording and state.server:
            capture = plan.capture_response if extension is None else extension.response_headers
            if capture and (plan.capture_response_late or extension is not None):
                try:
                    _set_headers(span, capture.from_items(resp.headers.items()))
                except Exception as error:
                    _diag.warn("falcon_response_hook", "response headers not captured: %r", error)
        hook = plan.response_hook
        if hook:
            hook(span, req, resp)


def _set_headers(span: Any, attributes: TrustedAttributes) -> None:
    # 1-tuples of str: what the SDK stores for upstream's 1-element lists, so the span takes them as
    # they are (set_trusted_attributes); any other value type goes the SDK's way.
    if all(type(value[0]) is str for value in attributes.values()):
        set_trusted_attributes(span, attributes)
    else:
        span.set_attributes({key: list(value) for key, value in attributes.items()})


class _RequestStep(ResponseStep):
    """With ``process_request``, for the request hook and traced request attributes (upstream's)."""

    def process_request(self, req: Any, resp: Any) -> None:
        state = req.env.get(_STATE_KEY)
        if state is None:
            return
        span = state.span
        plan = self._plan
        if plan.request_hook:
            plan.request_hook(span, req)
        if plan.traced_attrs and span.is_recording():
            for attr in plan.traced_attrs:
                value = getattr(req, attr, None)
                if value is not None:
                    span.set_attribute(attr, str(value))


# -- the app ----------------------------------------------------------------------------------------------

_apps: weakref.WeakSet[Any] = weakref.WeakSet()


def _next_call(cls: type) -> Callable[..., Any]:
    """The ``__call__`` after TracedApp's in ``cls``'s MRO; falcon's own unpatched (otel_showmax.falcon
    replaces it while instrumented, to serve apps made before it)."""
    mro = cls.__mro__
    for klass in mro[mro.index(TracedApp) + 1:]:
        if "__call__" in vars(klass):
            return _FALCON_CALL if klass is _ORIGINAL_APP else vars(klass)["__call__"]
    return _FALCON_CALL  # pragma: no cover - falcon.app.App is always in the MRO


class TracedApp(_ORIGINAL_APP):
    """``falcon.App`` with upstream's server spans and HTTP metrics, produced with less work.

    Takes upstream's options as ``_otel_opts`` (a dict, not modified): ``tracer_provider``,
    ``meter_provider``, ``request_hook(span, req)``, ``response_hook(span, req, resp)``,
    ``traced_request_attributes``; and these of its own:

    - ``capture_request_headers`` / ``capture_response_headers`` / ``sanitize_headers``: header
      name patterns with upstream's rules, replacing its environment variables (include theirs);
      captured where upstream's hooks would run;
    - ``active_requests``: ``"observable"`` (default: upstream's points, counted in a dict, no
      exemplars), ``"upstream"`` (its up-down counter, two SDK measurements per request) or
      ``"off"``;
    - ``duration_histogram``: ``False`` drops ``http.server.duration`` /
      ``http.server.request.duration`` (one measurement per request and mode, the costliest
      item after the span; derive it from spans in the collector instead). Default ``True``;
    - ``request_log(env, req, resp, start, extension)``: called in the response step of requests
      served through ``_otel_serve()`` with an extension (otel_showmax.falcon's request log).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        opts = dict(kwargs.pop("_otel_opts", None) or {})
        self._otel_plan = plan = _Plan(opts)
        wants_request = plan.request_hook is not None or bool(plan.traced_attrs)
        self._otel_step = (_RequestStep if wants_request else ResponseStep)(plan)
        self._otel_next_call = _next_call(type(self))
        self._is_instrumented_by_opentelemetry = True
        _apps.add(self)
        super().__init__(*args, **kwargs)

    def _prepare_middleware(self, middleware: Any = None, independent_middleware: bool = False) -> Any:
        # The response step where the first middleware's methods go: its process_response runs last.
        step = getattr(self, "_otel_step", None)
        if step is not None and self._is_instrumented_by_opentelemetry:
            middleware = [step, *(middleware or ())]
        return super()._prepare_middleware(middleware, independent_middleware=independent_middleware)

    def _get_responder(self, req: Any) -> Any:
        found = super()._get_responder(req)
        resource = found[2]
        if resource:  # what upstream's process_resource records (it runs for every routed resource)
            state = req.env.get(_STATE_KEY)
            if state is not None:  # set with the response attributes (or at the end, if none come)
                state.resource = resource.__class__.__name__
        return found

    def _handle_exception(self, req: Any, resp: Any, ex: Exception, params: Any) -> bool:
        if self._is_instrumented_by_opentelemetry:
            req.env[EXC_KEY] = sys.exc_info()[1]
        return super()._handle_exception(req, resp, ex, params)

    def __call__(self, env: dict[str, Any], start_response: Any) -> Any:
        if not self._is_instrumented_by_opentelemetry or self._otel_plan.excluded.url_disabled(
                env.get("PATH_INFO", "/")):
            return self._otel_next_call(self, env, start_response)
        return self._otel_serve(env, start_response, None, 0.0)

    def _otel_serve(self, env: dict[str, Any], start_response: Any, extension: Extension | None, start: float) -> Any:
        """Serve one traced request (the checks in ``__call__`` done); ``extension``: see ``Extension``."""
        plan = self._otel_plan
        start_time = time_ns()
        raw_method = env.get("REQUEST_METHOD", "")
        method_items, name, with_path = plan.method(raw_method)
        attributes = plan.request_attributes(env, method_items)
        current = context_api.get_current()
        if trace.get_current_span(current) is trace.INVALID_SPAN:
            parent = _parent(env)
            kind = SpanKind.SERVER
        else:
            parent = current
            kind = SpanKind.INTERNAL
        server = kind is SpanKind.SERVER
        path = env.get("PATH_INFO", "").strip()
        if with_path and path:
            name = f"{name} {path}"
        if server:
            capture = plan.capture_request if extension is None else extension.request_headers
            if capture:
                try:
                    attributes.update(capture.from_environ(env))
                except Exception as error:
                    _diag.warn("falcon_request_hook", "request headers not captured: %r", error)
        span = plan.tracer.start_span(name, parent, kind, attributes, start_time=start_time)
        active_key: tuple[tuple[str, Any], ...] = ()
        if plan.in_flight is not None or plan.active is not None:
            keys = plan.active_keys
            active_key = tuple([item for item in attributes.items() if item[0] in keys])
            if plan.in_flight is not None:
                plan.in_flight.add(active_key, 1)
            else:
                plan.active.add(1, dict(active_key), parent)  # type: ignore[union-attr]
        state = _Request(span, attributes, server, extension, start)
        env[_STATE_KEY] = state
        env[SPAN_KEY] = span
        current = trace.set_span_in_context(span, parent)
        token = context_api.attach(current)
        # hub-block monitor: this greenlet serves this request (one dict insert here, one delete below)
        hub = _hub_monitor.tracker if server else None
        hub_key = hub.enter(span) if hub is not None else None
        exception = None
        start = perf_counter()
        try:
            return self._otel_next_call(self, env, start_response)
        except Exception as exc:
            exception = exc
            raise
        finally:
            self._finish(plan, state, current, active_key, perf_counter() - start, exception)
            context_api.detach(token)
            span.end()
            if hub_key is not None:
                hub.exit(hub_key)  # type: ignore[union-attr]

    @staticmethod
    def _finish(plan: _Plan, state: _Request, current: Any, active_key: tuple[tuple[str, Any], ...],
                duration: float, exception: Exception | None) -> None:
        attributes = state.attrs
        route = state.route
        if plan.duration_old is not None:
            attrs = {k: v for k, v in attributes.items() if k in _OLD_DURATION}
            if route is not None:
                attrs.update(route.metric_old)
            plan.duration_old.record(max(round(duration * 1000), 0), attrs, current)
        if plan.duration_new is not None:
            attrs = {k: v for k, v in attributes.items() if k in _NEW_DURATION}
            if route is not None:
                attrs.update(route.metric_new)
            plan.duration_new.record(max(duration, 0), attrs, current)
        if plan.in_flight is not None:
            plan.in_flight.add(active_key, -1)
        elif plan.active is not None:
            plan.active.add(-1, dict(active_key), current)
        span = state.span
        if state.resource is not None and span.is_recording():  # no response step ran
            span.set_attribute("falcon.resource", state.resource)
        if exception is not None and isinstance(span, trace.Span) and span.is_recording():
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))


def uninstrument_apps() -> None:
    """Stop tracing every ``TracedApp``: take the response step out, serve requests untraced."""
    for app in list(_apps):
        if not hasattr(app, "_unprepared_middleware"):  # its constructor failed half-way
            continue
        app._is_instrumented_by_opentelemetry = False
        app._middleware = app._prepare_middleware(
            app._unprepared_middleware, independent_middleware=app._independent_middleware
        )
    _apps.clear()
