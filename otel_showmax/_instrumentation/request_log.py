"""The request log: one record per request, written while the server span is current.

Its fields use the stable HTTP semantic conventions whatever OTEL_SEMCONV_STABILITY_OPT_IN says:
``http.request.method``, ``http.route``, ``url.path``, ``http.response.status_code``,
``duration_ms``, ``client.address``, ``user_agent.original``. A 5xx response also records its
exception on the server span. ``otel_showmax.falcon`` writes it from each traced app's response
step (``falcon_app.ResponseStep``), which runs after every middleware's ``process_response`` and
before the span ends.
"""

from __future__ import annotations

import logging
import types
from time import perf_counter
from typing import Any, Protocol

from opentelemetry.trace import get_current_span
from opentelemetry.util.http import sanitize_method

from .. import correlation
from .falcon_app import EXC_KEY

__all__ = ["MAX_FIELD", "REQUEST_LOG_FIELDS", "RequestLogOptions", "status_code", "write"]

METHOD, ROUTE, PATH, STATUS = "http.request.method", "http.route", "url.path", "http.response.status_code"
DURATION, CLIENT, USER_AGENT = "duration_ms", "client.address", "user_agent.original"
REQUEST_LOG_FIELDS = (METHOD, ROUTE, PATH, STATUS, DURATION, CLIENT, USER_AGENT)
# Longest url.path / user_agent.original written into a request log (a 64 KiB header stays out).
MAX_FIELD = 2048


class RequestLogOptions(Protocol):
    """What ``write`` reads per request (``otel_showmax.falcon``'s options)."""

    request_log: bool
    logger: logging.Logger
    level: int


def status_code(resp: Any) -> int:
    """The response's status as an int: ``resp.status_code`` (falcon 4), else parsed from ``resp.status``.

    falcon 3.1 has no ``status_code``; its ``status`` is a ``"200 OK"`` string, an int or an
    ``http.HTTPStatus``. Anything unreadable counts as 500.
    """
    try:
        return int(resp.status_code)
    except AttributeError:
        pass
    except Exception:
        return 500
    status = getattr(resp, "status", None)
    if isinstance(status, int):  # also http.HTTPStatus
        return int(status)
    try:
        return int(str(status).split(" ", 1)[0])
    except ValueError:
        return 500


def write(env: dict[str, Any], req: Any, resp: Any, start: float, options: RequestLogOptions) -> None:
    """Write the request log of ``req``/``resp`` (started at ``start``, a perf_counter) and record a 5xx's exception.

    Runs while the server span is current; raises what logging raises (the caller catches).
    """
    status = status_code(resp)
    error = env.get(EXC_KEY) if status >= 500 else None
    if error is not None:
        span = get_current_span()
        if span.is_recording():
            span.record_exception(error)
    if not options.request_log:
        return
    level = logging.ERROR if status >= 500 else options.level
    logger = options.logger
    if not logger.isEnabledFor(level):
        return
    duration = round((perf_counter() - start) * 1000, 3)
    raw_method = env.get("REQUEST_METHOD", "")
    method = _STANDARD_METHODS.get(raw_method) or sanitize_method(raw_method)
    path = _text(env.get("PATH_INFO", ""))
    extra: dict[str, Any] = {METHOD: method}
    route = req.uri_template
    if route:
        extra[ROUTE] = route
    extra[PATH] = path
    extra[STATUS] = status
    extra[DURATION] = duration
    client = env.get("REMOTE_ADDR")
    if client:
        extra[CLIENT] = client
    agent = env.get("HTTP_USER_AGENT")
    if agent:
        extra[USER_AGENT] = _text(agent)
    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    args = (method, route or path, status, duration)
    caller = _caller
    cls = type(logger)
    if (caller is not None and cls.log is _LOGGER_LOG and cls._log is _LOGGER_LOG_IMPL
            and cls.findCaller is _LOGGER_FIND_CALLER and logging._srcfile):
        # What the call below does, minus findCaller's stack walk (the same caller, found once).
        make_record = cls.makeRecord
        if make_record is _STDLIB_MAKE_RECORD or (make_record is correlation._make_record
                                                  and correlation._previous_make_record is _STDLIB_MAKE_RECORD):
            # makeRecord's own work: the record factory, then the extra fields (which cannot
            # collide with our correlation fields; with the record's own, the stdlib's KeyError).
            record = logging.getLogRecordFactory()(logger.name, level, caller[0], caller[1], _MESSAGE, args,
                                                   exc_info, caller[2], None)
            fields = record.__dict__
            if not fields.keys().isdisjoint(extra):
                raise KeyError(f"Attempt to overwrite {sorted(fields.keys() & extra)} in LogRecord")
            fields.update(extra)
            logger.handle(record)
        else:
            logger.handle(logger.makeRecord(logger.name, level, caller[0], caller[1], _MESSAGE, args, exc_info,
                                            caller[2], extra, None))
    else:  # the reference (a custom Logger class gets exactly this call)
        logger.log(level, _MESSAGE, *args, extra=extra, exc_info=exc_info)


_MESSAGE = "%s %s %d %.1fms"
# Request methods sanitize_method returns unchanged whatever the environment says (it costs ~1 µs).
_STANDARD_METHODS = {m: m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")}
_LOGGER_LOG = logging.Logger.log
_LOGGER_LOG_IMPL = logging.Logger._log
_LOGGER_FIND_CALLER = logging.Logger.findCaller
# The stdlib's makeRecord (correlation's only adds a rule for extras named like its fields, and none
# of REQUEST_LOG_FIELDS is): the record from the factory, then the extras.
_STDLIB_MAKE_RECORD = correlation._STDLIB_MAKE_RECORD if correlation._STDLIB_MAKE_RECORD.__module__ == "logging" else None
assert not any(set(REQUEST_LOG_FIELDS) & set(names) for names in correlation.FIELD_PRESETS.values())


class _CallerProbe(logging.Logger):
    """Records what findCaller reports for the reference call in ``write``; makes no record."""

    found: tuple[str, int, str | None] | None = None

    def isEnabledFor(self, level: int) -> bool:
        return True

    def makeRecord(self, name: str, level: int, fn: str, lno: int, msg: object, args: Any, exc_info: Any,
                   func: str | None = None, extra: Any = None, sinfo: str | None = None) -> logging.LogRecord:
        self.found = (fn, lno, func)
        return logging.LogRecord(name, level, fn, lno, msg, args, exc_info, func, sinfo)

    def handle(self, record: logging.LogRecord) -> None:
        pass


def _find_caller() -> tuple[str, int, str] | None:
    """(pathname, lineno, funcName) of the request log's records, as findCaller gives them; None: always ask it."""
    if not logging._srcfile or any(
        getattr(logging.Logger, name).__module__ != "logging" for name in ("log", "_log", "findCaller")
    ):
        return None  # logging patched before us: its own call every time
    probe = _CallerProbe("otel_showmax.caller_probe")
    options: Any = types.SimpleNamespace(request_log=True, logger=probe, level=logging.INFO)
    request: Any = types.SimpleNamespace(uri_template="/")
    response: Any = types.SimpleNamespace(status_code=200)
    try:
        write({}, request, response, perf_counter(), options)
    except Exception:  # pragma: no cover - defensive
        return None
    found = probe.found
    code = write.__code__
    if found is None or found[0] != code.co_filename or found[2] != code.co_name:
        return None
    return (found[0], found[1], code.co_name)



def _text(value: Any) -> str:
    """At most MAX_FIELD characters of valid UTF-8 text (lone surrogates escaped: OTLP needs UTF-8)."""
    text = str(value)[:MAX_FIELD]
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


_caller: tuple[str, int, str] | None = None
_caller = _find_caller()
