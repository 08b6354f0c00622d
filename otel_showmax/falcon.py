"""Falcon tracing with production defaults, redaction, and one request log per request.

``instrument()`` puts a thin subclass of ``otel_showmax._instrumentation.falcon_app.TracedApp`` in ``falcon.App``:
opentelemetry-instrumentation-falcon's spans and HTTP metrics with less work per request (golden
tests: tests/instrumentation/test_falcon_app.py). Span names, kinds, status and attribute keys are upstream's,
apart from these deliberate differences (and those listed in ``falcon_app``):

- values of sensitive query parameters are ``REDACTED`` in ``http.target``, ``http.url``,
  ``url.query`` and ``url.full`` (upstream redacts only AWSAccessKeyId/Signature/sig in
  ``http.url``);
- captured headers come from the allow-lists given here (upstream reads them from the environment
  on every request), sensitive ones as ``[REDACTED]``;
- URLs matching ``excluded_urls`` get no span and no request log (upstream's own environment
  variables are honoured too);
- a 5xx response records its exception on the server span (upstream only sets the status).

Each request that is not excluded writes one log record when the response is done — the
"canonical log line" — while the server span is current, so it carries the span's trace and span
ids, sampled or not. Its fields use the stable HTTP semantic conventions whatever
OTEL_SEMCONV_STABILITY_OPT_IN says: ``http.request.method``, ``http.route``, ``url.path``,
``http.response.status_code``, ``duration_ms``, ``client.address``, ``user_agent.original``.

Only WSGI apps are supported (``falcon.App``); constructing a ``falcon.asgi.App`` while
instrumented warns, and ``instrument_app()`` refuses one.
"""

from __future__ import annotations

import logging
import re
import threading
import types
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Generic, TypeVar

import falcon
from opentelemetry import trace

# Upstream's private names: the only ones used; tests/test_falcon.py fails loudly if they change.
from opentelemetry.instrumentation.falcon import FalconInstrumentor
from opentelemetry.trace import SpanKind
from opentelemetry.util.http import (
    get_custom_headers,
    normalise_request_header_name,
    normalise_response_header_name,
)

from . import _diag
from ._instrumentation import libraries, request_log
from ._instrumentation.falcon_app import TracedApp, uninstrument_apps
from ._instrumentation.redaction import HeaderCapture, QueryRedactor, check_patterns
from ._instrumentation.request_log import REQUEST_LOG_FIELDS
from ._upstream import InstrumentedFalconAPI as UpstreamApp

__all__ = [
    "REQUEST_LOG_FIELDS",
    "UnsupportedAppWarning",
    "instrument",
    "instrument_app",
    "is_instrumented",
    "uninstrument",
]

_ReqT = TypeVar("_ReqT")
_RespT = TypeVar("_RespT")

# Span attributes that may carry a query string (old and stable HTTP semantic conventions).
URL_ATTRIBUTES = ("http.target", "http.url", "url.query", "url.full")

_ORIGINAL_APP: Any = TracedApp.__bases__[0]  # falcon.app.App, which TracedApp (like upstream's class) subclasses
_ORIGINAL_CALL = _ORIGINAL_APP.__call__
_APP_SLOTS = tuple(
    slot for cls in _ORIGINAL_APP.__mro__ for slot in getattr(cls, "__slots__", ()) if slot != "__weakref__"
)
_MIDDLEWARE_SLOTS = {"_unprepared_middleware", "_middleware", "_independent_middleware"}

ASGI_MESSAGE = (
    "otel_showmax traces Falcon WSGI apps (falcon.App) only: falcon.asgi.App is not supported "
    "(opentelemetry-instrumentation-falcon is WSGI-only); this app's requests get no spans and no request log"
)


class UnsupportedAppWarning(RuntimeWarning):
    """A Falcon app otel_showmax cannot trace (``falcon.asgi.App``)."""


@dataclass(frozen=True)
class _Options:
    excluded: re.Pattern[str] | None
    request_headers: HeaderCapture
    response_headers: HeaderCapture
    redactor: QueryRedactor
    request_log: bool
    logger: logging.Logger
    level: int


_lock = threading.RLock()
_options: _Options | None = None
_app_class: Any = None
_asgi_init: Any = None


# -- spans: a tracer that redacts URL attributes before the span starts -------------------------------


class _RedactingTracer(trace.Tracer):
    """Delegates to a real tracer; sensitive query values never reach the span (nor the sampler)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, name: str, context: Any = None, kind: SpanKind = SpanKind.INTERNAL,
                   attributes: Any = None, links: Any = None, start_time: int | None = None,
                   record_exception: bool = True, set_status_on_exception: bool = True) -> trace.Span:
        if attributes:
            _redact_attributes(attributes)
        return self._tracer.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )

    def start_as_current_span(self, name: str, context: Any = None, kind: SpanKind = SpanKind.INTERNAL,
                              attributes: Any = None, links: Any = None, start_time: int | None = None,
                              record_exception: bool = True, set_status_on_exception: bool = True,
                              end_on_exit: bool = True) -> Any:
        if attributes:
            _redact_attributes(attributes)
        return self._tracer.start_as_current_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception,
            end_on_exit,
        )


class _RedactingTracerProvider(trace.TracerProvider):
    """Hands upstream's app a redacting tracer from the chosen (or, at the time, global) provider."""

    def __init__(self, provider: trace.TracerProvider | None) -> None:
        self.provider = provider

    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: str | None = None,
                   schema_url: str | None = None, attributes: Any = None) -> trace.Tracer:
        provider = self.provider or trace.get_tracer_provider()
        return _RedactingTracer(
            provider.get_tracer(instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        )


def _redact_attributes(attributes: dict[str, Any]) -> None:
    options = _options
    if options is None:
        return
    for key in URL_ATTRIBUTES:
        value = attributes.get(key)
        if value and isinstance(value, str) and "=" in value:
            attributes[key] = options.redactor.target(value) if key != "url.query" else options.redactor.query(value)


# -- the request log, called in the app's response step -------------------------------------------------


def _write_request_log(env: dict[str, Any], req: Any, resp: Any, start: float, options: Any) -> None:
    try:
        request_log.write(env, req, resp, start, options)
    except Exception as error:  # never break the request
        _diag.warn("falcon_request_log", "request log not written: %r", error)


# -- the app class in falcon.App while instrumented -----------------------------------------------------


def _make_app_class(upstream: type) -> type:
    class App(upstream, Generic[_ReqT, _RespT]):
        """``falcon.App`` while otel_showmax instruments Falcon (upstream's class, plus ours).

        Generic like falcon.App, so ``falcon.App[Req, Resp]`` (e.g. in ``falcon.testing``) works.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["_otel_opts"] = {"tracer_provider": _PROVIDER, "request_log": _write_request_log}
            TracedApp.__init__(self, *args, **kwargs)

        def __call__(self, env: dict[str, Any], start_response: Any) -> Any:
            if libraries.pending:  # library instrumentors waited for gevent: on before the first request
                libraries.run_pending()
            options = _options
            if options is None or not self._is_instrumented_by_opentelemetry:
                return _ORIGINAL_CALL(self, env, start_response)
            path = env.get("PATH_INFO", "/")
            excluded = options.excluded
            if excluded is not None and excluded.search(path):
                return _ORIGINAL_CALL(self, env, start_response)
            if self._otel_plan.excluded.url_disabled(path):  # upstream's own environment variable
                return self._otel_next_call(self, env, start_response)
            # Header capture from these options, the request log with them (TracedApp's response step).
            return self._otel_serve(env, start_response, options, perf_counter())

        def _python_error_handler(self, req: Any, resp: Any, error: Exception, params: Any) -> None:
            # falcon writes the failing request's query string to wsgi.errors: redact it there too.
            options = _options
            query = req.query_string
            redacted = options.redactor.query(query) if options is not None and query else query
            if redacted is query:
                return super()._python_error_handler(req, resp, error, params)
            req.query_string = redacted
            try:
                return super()._python_error_handler(req, resp, error, params)
            finally:
                req.query_string = query

    App.__module__ = __name__
    App.__qualname__ = "App"
    return App


def instrument(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    excluded_urls: Iterable[str] = (),
    capture_request_headers: Iterable[str] = (),
    capture_response_headers: Iterable[str] = (),
    sanitize_headers: Iterable[str] = (),
    redact_query_params: Iterable[str] = (),
    request_log: bool = True,
    request_log_logger: str = "otel_showmax.request",
    request_log_level: int = logging.INFO,
) -> None:
    """Trace Falcon WSGI apps created from now on; write one request log per request.

    Idempotent: a later call replaces the options (read per request) and, for apps created
    afterwards, the tracer provider. Apps created before the first call are traced too: each serves
    through ``instrument_app(app)``, built on its first request.

    Args:
        tracer_provider: the provider for server spans; default: the global one.
        excluded_urls: regular expressions searched in the path; matches get no span, no log.
        capture_request_headers: header names (regular expressions, full match) captured as
            ``http.request.header.*`` span attributes.
        capture_response_headers: likewise, ``http.response.header.*``.
        sanitize_headers: header names (regular expressions, searched) whose values are
            captured as ``[REDACTED]``.
        redact_query_params: query parameter names whose values become ``REDACTED`` in spans.
        request_log: write the request log.
        request_log_logger: its logger name.
        request_log_level: its level for responses below 500 (5xx are ERROR).

    Raises:
        ValueError: a regular expression does not compile.
    """
    global _options, _app_class
    excluded = check_patterns("excluded_urls", excluded_urls)
    capture_request = check_patterns("capture_request_headers", capture_request_headers)
    capture_response = check_patterns("capture_response_headers", capture_response_headers)
    # Headers upstream captures from its environment variables get our sanitised value on top.
    capture_request += tuple(
        h for h in get_custom_headers("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST")
        if h not in capture_request
    )
    capture_response += tuple(
        h for h in get_custom_headers("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE")
        if h not in capture_response
    )
    sanitize = check_patterns("sanitize_headers", sanitize_headers)
    sanitize += tuple(
        h for h in get_custom_headers("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS") if h not in sanitize
    )
    options = _Options(
        excluded=re.compile("|".join(excluded)) if excluded else None,
        request_headers=HeaderCapture(capture_request, sanitize, normalise_request_header_name),
        response_headers=HeaderCapture(capture_response, sanitize, normalise_response_header_name),
        redactor=QueryRedactor(redact_query_params),
        request_log=bool(request_log),
        logger=logging.getLogger(request_log_logger),
        level=int(request_log_level),
    )
    with _lock:
        _options = options
        if _app_class is not None and falcon.App is _app_class:
            _PROVIDER.provider = tracer_provider
            return
        instrumentor = FalconInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            _diag.once(
                "falcon_taken_over",
                "opentelemetry-instrumentation-falcon was already turned on without otel_showmax's options; "
                "re-instrumenting (apps created before this get no request log unless passed to instrument_app)",
            )
            instrumentor.uninstrument()
        _PROVIDER.provider = tracer_provider
        _app_class = _make_app_class(TracedApp)
        falcon.App = _app_class  # type: ignore[misc, unused-ignore]
        _watch_asgi()
        _ORIGINAL_APP.__call__ = _call_untraced


# -- apps created before instrument(): traced through an equivalent app built on first use -----------
#
# An app object made before setup() (gunicorn --preload with setup() in post_fork, an app imported
# before setup(), a factory called early) has falcon's own class. While instrumented, that class's
# __call__ serves such an app through instrument_app(app): the same routes, sinks, error handlers
# and middleware, built once per app on its first request in each process.

_adopted: dict[int, tuple[Any, Any]] = {}  # id(app) -> (app, its traced twin, or None when it cannot be)
_ADOPTED_MAX = 64  # app factories in tests make many apps: keep the newest


def _call_untraced(self: Any, env: dict[str, Any], start_response: Any) -> Any:
    if _options is not None and not isinstance(self, (TracedApp, UpstreamApp)):
        entry = _adopted.get(id(self))
        if entry is None or entry[0] is not self:
            entry = _adopt(self)
        if entry[1] is not None:
            return entry[1](env, start_response)
    return _ORIGINAL_CALL(self, env, start_response)


def _adopt(app: Any) -> tuple[Any, Any]:
    with _lock:
        entry = _adopted.get(id(app))
        if entry is not None and entry[0] is app:
            return entry
        try:
            traced = instrument_app(app)
        except (TypeError, RuntimeError) as error:
            _diag.once(
                f"falcon_adopt:{type(app).__module__}.{type(app).__qualname__}",
                "%s.%s app created before otel_showmax.setup() is not traced (%s): create it after "
                "otel_showmax.setup(), or serve otel_showmax.falcon.instrument_app(app)",
                type(app).__module__, type(app).__qualname__, error,
            )
            traced = None
        while len(_adopted) >= _ADOPTED_MAX:
            del _adopted[next(iter(_adopted))]
        entry = _adopted[id(app)] = (app, traced)
        return entry


_PROVIDER = _RedactingTracerProvider(None)


def is_instrumented() -> bool:
    """Whether ``instrument()`` is in effect."""
    return _options is not None and _app_class is not None and falcon.App is _app_class


def uninstrument() -> None:
    """Undo ``instrument()``: restore ``falcon.App`` and strip the middleware from traced apps (tests)."""
    global _options, _app_class
    with _lock:
        if _app_class is None:
            _options = None
            return
        _options = None
        uninstrument_apps()
        if falcon.App is _app_class:
            falcon.App = _ORIGINAL_APP  # type: ignore[misc, unused-ignore]
        _ORIGINAL_APP.__call__ = _ORIGINAL_CALL
        _adopted.clear()
        _app_class = None
        _PROVIDER.provider = None
        _unwatch_asgi()


def instrument_app(app: Any) -> Any:
    """Return a traced app equivalent to ``app``, which was created before ``instrument()``.

    The returned object shares ``app``'s routes, sinks, error handlers and options (routes added
    to either later are seen by both) and runs its middleware after otel_showmax's. Serve the
    returned object. An app created after ``instrument()`` is returned as is.

    Raises:
        TypeError: ``app`` is a ``falcon.asgi.App`` (not supported) or not a Falcon app.
        RuntimeError: ``instrument()`` (or ``otel_showmax.setup()``) has not run.
    """
    if _is_asgi(app):
        raise TypeError(ASGI_MESSAGE)
    if not isinstance(app, _ORIGINAL_APP):
        raise TypeError(f"instrument_app() takes a falcon.App, not {type(app).__name__}")
    with _lock:
        cls = _app_class
        if cls is None or _options is None:
            raise RuntimeError("instrument_app() needs otel_showmax.setup() or otel_showmax.falcon.instrument() first")
        if isinstance(app, cls):
            return app
        if isinstance(app, UpstreamApp):
            _diag.once(
                "falcon_foreign_app",
                "instrument_app(): this app was traced by an earlier opentelemetry-instrumentation-falcon set-up; "
                "it is returned unchanged (no request log)",
            )
            return app
        target: Any = cls if type(app) is _ORIGINAL_APP else type(type(app).__name__, (cls, type(app)), {})
        try:
            new = target(middleware=list(app._unprepared_middleware), independent_middleware=app._independent_middleware)
        except TypeError as error:
            raise TypeError(
                f"instrument_app(): cannot rebuild {type(app).__name__} ({error}); create it after otel_showmax.setup()"
            ) from None
        for slot in _APP_SLOTS:
            if slot not in _MIDDLEWARE_SLOTS and hasattr(app, slot):
                setattr(new, slot, _rebind(getattr(app, slot), app, new))
        if hasattr(app, "__dict__") and hasattr(new, "__dict__"):
            for key, value in vars(app).items():
                new.__dict__.setdefault(key, _rebind(value, app, new))
        return new


def _rebind(value: Any, old: Any, new: Any) -> Any:
    """Bound methods of the old app (falcon's default error handlers) become the new app's."""
    if isinstance(value, types.MethodType) and value.__self__ is old:
        # Look the name up on the new app, so our overrides (e.g. _python_error_handler) apply.
        method = getattr(new, value.__func__.__name__, None)
        return method if isinstance(method, types.MethodType) else types.MethodType(value.__func__, new)
    if isinstance(value, dict) and any(isinstance(v, types.MethodType) and v.__self__ is old for v in value.values()):
        return {k: _rebind(v, old, new) for k, v in value.items()}
    return value


# -- falcon.asgi: not supported, and say so -------------------------------------------------------------


def _is_asgi(app: Any) -> bool:
    module = type(app).__module__ or ""
    return any((c.__module__ or "").startswith("falcon.asgi") for c in type(app).__mro__) or module.startswith(
        "falcon.asgi"
    )


def _watch_asgi() -> None:
    """Warn when a falcon.asgi.App is constructed while instrumented (upstream ignores them silently)."""
    global _asgi_init
    try:
        import falcon.asgi
    except Exception:  # pragma: no cover - falcon without asgi support
        return
    if _asgi_init is not None:
        return
    original = falcon.asgi.App.__init__
    own = "__init__" in vars(falcon.asgi.App)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        warnings.warn(ASGI_MESSAGE, UnsupportedAppWarning, stacklevel=2)
        original(self, *args, **kwargs)

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    _asgi_init = (original, own)
    falcon.asgi.App.__init__ = __init__  # type: ignore[method-assign, unused-ignore]


def _unwatch_asgi() -> None:
    global _asgi_init
    if _asgi_init is not None:
        import falcon.asgi

        original, own = _asgi_init
        if own:
            falcon.asgi.App.__init__ = original  # type: ignore[method-assign, unused-ignore]
        else:
            del falcon.asgi.App.__init__
        _asgi_init = None
