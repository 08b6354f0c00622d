"""Trace ids in every local log line: a record factory, text and JSON formatters, a structlog processor.

``install()`` puts one LogRecord factory in front of whatever factory is active. Every stdlib
``LogRecord`` then carries four attributes, named by a preset:

========== ============== ============ ================== ==================
preset     trace id       span id      sampled flag       service name
========== ============== ============ ================== ==================
``plain``  ``trace_id``   ``span_id``  ``trace_sampled``  ``service_name``
``otel``   ``otelTraceID`` ``otelSpanID`` ``otelTraceSampled`` ``otelServiceName``
``ecs``    ``trace.id``   ``span.id``  ``trace.sampled``  ``service.name``
========== ============== ============ ================== ==================

``otel`` is what opentelemetry-instrumentation-logging injects; ``ecs`` follows the Elastic Common
Schema (which has no sampled field; ``trace.sampled`` is ours). Inside a span the ids are lowercase
hex (32 and 16 characters); outside one they are empty strings and the flag is ``False`` — the
fields are always there, so format strings never fail.

An application's ``extra`` named like one of these fields (``log.info("x", extra={"service_name":
"s"})``) is not an error: its value replaces ours on that record, under that name, and the OTel
bridge exports it as an attribute (``user_fields(record)`` names such fields). The stdlib's
``Logger.makeRecord`` raises ``KeyError`` for an extra that overwrites any record attribute, so
``install()`` puts a ``makeRecord`` on ``logging.Logger`` that lets an extra replace our fields
and keeps the stdlib's rule for everything else; a Logger subclass with its own ``makeRecord``
that does not call ``Logger.makeRecord`` keeps the stdlib behaviour.

Use the formatters from ``logging.config.dictConfig``::

    "formatters": {"json": {"()": "otel_showmax.correlation.JSONFormatter"}}
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from opentelemetry.context import get_value
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, get_current_span

from ._upstream import SPAN_KEY, SDKSpan

__all__ = [
    "FIELD_PRESETS",
    "FieldNames",
    "JSONFormatter",
    "TextFormatter",
    "current_fields",
    "injected_fields",
    "install",
    "is_installed",
    "structlog_processor",
    "uninstall",
    "user_fields",
]


class FieldNames(NamedTuple):
    """Names of the record attributes (and JSON keys) carrying the trace context."""

    trace_id: str
    span_id: str
    sampled: str
    service_name: str


FIELD_PRESETS: dict[str, FieldNames] = {
    "plain": FieldNames("trace_id", "span_id", "trace_sampled", "service_name"),
    "otel": FieldNames("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName"),
    "ecs": FieldNames("trace.id", "span.id", "trace.sampled", "service.name"),
}

# The stdlib LogRecord's own attributes: everything else on a record is an ``extra`` field.
_RESERVED = frozenset(
    (
        "asctime", "args", "created", "exc_info", "exc_text", "filename", "funcName", "levelname",
        "levelno", "lineno", "message", "module", "msecs", "msg", "name", "pathname", "process",
        "processName", "relativeCreated", "stack_info", "thread", "threadName", "taskName",
    )
)


class _State:
    """The one installed factory and the active field names (replaced as a whole, never mutated)."""

    def __init__(self) -> None:
        self.names = FIELD_PRESETS["plain"]
        self.service_name = ""
        self.installed = False  # our factory is active (it may sit below someone else's)
        self.previous: Callable[..., logging.LogRecord] | None = None
        self.factory: Callable[..., logging.LogRecord] | None = None


_state = _State()
_lock = threading.Lock()
#: On a record whose ``extra`` replaced some of our fields: their names (a tuple). Not an extra field.
USER_FIELDS = "_otel_showmax_user_fields"
_NOT_EXTRA = _RESERVED | {USER_FIELDS}
_not_extra: dict[tuple[FieldNames, FieldNames | None], frozenset[str]] = {}


def _not_extra_for(names: FieldNames) -> frozenset[str]:
    """Record attributes that are not ``extra`` fields for a formatter writing ``names``: the
    stdlib's, the marker, ``names`` and the fields the factory adds (another preset's names are
    an application's extras like any other)."""
    injected = _state.names if _state.installed else None
    key = (names, injected)
    found = _not_extra.get(key)
    if found is None:
        found = _not_extra[key] = _NOT_EXTRA | set(names) | set(injected or ())
    return found
_EMPTY: tuple[str, str, bool] = ("", "", False)
# Span classes get_current_span() returns as they are (the context's value is one: no isinstance needed).
_SPAN_TYPES = frozenset((SDKSpan, NonRecordingSpan))
# Fields per span context (id -> (context, fields)): a request logs several lines under one span, and
# a gevent worker interleaves many requests. An entry keeps its context alive, so its id is not reused
# while cached; dict get/set are atomic across threads and greenlets. Cleared when full.
_by_context: dict[int, tuple[Any, tuple[str, str, bool]]] = {}
_CACHE_SIZE = 256


def _fields_of(span: Any) -> tuple[str, str, bool]:
    ctx = span.get_span_context()
    entry = _by_context.get(id(ctx))
    if entry is not None and entry[0] is ctx:
        return entry[1]
    return _new_fields(ctx)


def _new_fields(ctx: Any) -> tuple[str, str, bool]:
    if not ctx.is_valid:
        return _EMPTY
    fields = ("%032x" % ctx.trace_id, "%016x" % ctx.span_id, bool(ctx.trace_flags & 0x01))  # noqa: UP031 - format()'s text, faster
    if len(_by_context) >= _CACHE_SIZE:
        _by_context.clear()
    _by_context[id(ctx)] = (ctx, fields)
    return fields


def _ids() -> tuple[str, str, bool]:
    """Hex trace id, hex span id and sampled flag of the current span; empty outside a span."""
    span = get_current_span()
    if span is INVALID_SPAN:
        return _EMPTY
    return _fields_of(span)


def current_fields() -> dict[str, Any]:
    """The trace fields of the current context under the active preset's names."""
    names = _state.names
    trace_id, span_id, sampled = _ids()
    return {
        names.trace_id: trace_id,
        names.span_id: span_id,
        names.sampled: sampled,
        names.service_name: _state.service_name,
    }


def _make_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    state = _state
    cache_get = _by_context.get
    span_types = _SPAN_TYPES

    def otel_showmax_record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not state.installed:
            return record
        names = state.names
        d = record.__dict__
        span: Any = get_value(SPAN_KEY)
        if type(span) not in span_types:  # get_current_span()'s isinstance check only when needed
            span = get_current_span()
        if span is INVALID_SPAN:
            trace_id, span_id, sampled = _EMPTY
        else:  # _fields_of, inlined
            ctx = span.get_span_context()
            entry = cache_get(id(ctx))
            trace_id, span_id, sampled = entry[1] if entry is not None and entry[0] is ctx else _new_fields(ctx)
        d[names.trace_id] = trace_id
        d[names.span_id] = span_id
        d[names.sampled] = sampled
        d[names.service_name] = state.service_name
        return record

    return otel_showmax_record_factory


def _make_record(
    self: logging.Logger, name: str, level: int, fn: str, lno: int, msg: Any, args: Any, exc_info: Any,
    func: str | None = None, extra: Mapping[str, Any] | None = None, sinfo: str | None = None,
) -> logging.LogRecord:
    """``Logger.makeRecord``, except that an ``extra`` named like one of our fields replaces ours.

    Anything else keeps the stdlib's rule (``KeyError`` for ``message``, ``asctime`` and the
    record's own attributes). Costs one call (~0.1 µs) when nothing collides.
    """
    if extra is None or _no_collision(extra):
        return _previous_make_record(self, name, level, fn, lno, msg, args, exc_info, func, extra, sinfo)
    record = _previous_make_record(self, name, level, fn, lno, msg, args, exc_info, func, None, sinfo)
    d = record.__dict__
    taken = tuple(key for key in _state.names if key in extra)
    for key in taken:
        d.pop(key, None)
    for key in extra:  # the stdlib's loop, for what is not ours
        if key in ("message", "asctime") or key in d:
            raise KeyError(f"Attempt to overwrite {key!r} in LogRecord")
        d[key] = extra[key]
    d[USER_FIELDS] = taken
    return record


_STDLIB_MAKE_RECORD = logging.Logger.makeRecord
_previous_make_record = _STDLIB_MAKE_RECORD  # the makeRecord ours calls (the one active at install())
# The active names' isdisjoint (always True when not installed).
_no_collision: Callable[[Iterable[str]], bool] = frozenset().isdisjoint


def _install_make_record(names: FieldNames) -> None:
    global _previous_make_record, _no_collision
    _no_collision = frozenset(names).isdisjoint
    current = logging.Logger.makeRecord
    if current is not _make_record:
        _previous_make_record = current
        logging.Logger.makeRecord = _make_record  # type: ignore[method-assign]


def _uninstall_make_record() -> None:
    global _previous_make_record, _no_collision
    _no_collision = frozenset().isdisjoint
    if logging.Logger.makeRecord is _make_record:  # else someone wrapped ours: it stays, a pass-through
        logging.Logger.makeRecord = _previous_make_record  # type: ignore[method-assign]
        _previous_make_record = _STDLIB_MAKE_RECORD


def user_fields(record: logging.LogRecord) -> frozenset[str]:
    """The names of our fields whose value on ``record`` is the application's ``extra``, not ours."""
    return frozenset(record.__dict__.get(USER_FIELDS, ()))


def install(preset: str = "plain", service_name: str = "") -> None:
    """Add the trace fields to every stdlib LogRecord, once per process.

    The factory is chained on whatever factory is active. Calling again only changes the field
    names and the service name: there is never a second factory layer.

    Args:
        preset: ``plain``, ``otel`` or ``ecs`` (see the module docstring).
        service_name: the value of the service name field (empty: keep the current one).

    Raises:
        ValueError: ``preset`` is not one of ``FIELD_PRESETS``.
    """
    try:
        names = FIELD_PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown log field preset {preset!r}; accepted: {', '.join(FIELD_PRESETS)}") from None
    with _lock:
        _state.names = names
        if service_name:
            _state.service_name = service_name
        _install_make_record(names)
        current = logging.getLogRecordFactory()
        if _state.factory is not None:
            _state.installed = True
            if current is _state.factory or _in_chain(current, names):
                # Ours is active, or below a factory someone chained on it: no second layer.
                return
        _state.previous = current
        _state.factory = _make_factory(current)
        _state.installed = True
        logging.setLogRecordFactory(_state.factory)


def _in_chain(factory: Callable[..., logging.LogRecord], names: FieldNames) -> bool:
    """Whether our (enabled) factory runs somewhere below ``factory``: probe one record."""
    try:
        probe = factory("otel_showmax.probe", logging.DEBUG, __file__, 0, "", (), None)
    except Exception:
        return False
    return names.trace_id in probe.__dict__


def uninstall() -> None:
    """Remove the factory (tests). If another factory was chained on ours, ours becomes a no-op."""
    with _lock:
        if _state.factory is not None and logging.getLogRecordFactory() is _state.factory:
            assert _state.previous is not None
            logging.setLogRecordFactory(_state.previous)
            _state.factory = None
            _state.previous = None
        _state.installed = False
        _uninstall_make_record()
        _state.names = FIELD_PRESETS["plain"]
        _state.service_name = ""
        _by_context.clear()


def is_installed() -> bool:
    """Whether the record factory is active."""
    return _state.installed


def injected_fields() -> frozenset[str]:
    """The record attributes the factory adds (the OTel bridge does not export them again)."""
    if not _state.installed:
        return frozenset()
    return frozenset(_state.names)


def _ensure_fields(record: logging.LogRecord, names: FieldNames) -> None:
    """Fill in the fields at format time when the factory did not (not installed, other preset)."""
    d = record.__dict__
    if names.trace_id not in d:
        d[names.trace_id], d[names.span_id], d[names.sampled] = _ids()
    if names.service_name not in d:
        d[names.service_name] = _state.service_name


def _message(record: logging.LogRecord) -> str:
    """``record.getMessage()`` that never raises (bad format strings, failing ``__str__``)."""
    try:
        return record.getMessage()
    except Exception:
        try:
            return f"{record.msg!s} (unformattable arguments: {record.args!r})"
        except Exception:
            return "<unformattable log message>"


def _names_for(preset: str | None) -> FieldNames | None:
    if preset is None:
        return None
    try:
        return FIELD_PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown log field preset {preset!r}; accepted: {', '.join(FIELD_PRESETS)}") from None


class TextFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose default format shows the trace and span ids.

    Default format::

        2026-11-27 03:09:04,123 INFO catalogue [trace_id=… span_id=…] message

    The labels stay ``trace_id``/``span_id`` whatever the preset; a custom ``fmt`` names the
    record attributes of the active preset directly (``%(otelTraceID)s``). ECS's dotted names do
    not fit ``%``-style formats: use ``JSONFormatter`` for ECS.

    Args:
        fmt, datefmt, style, validate: as for ``logging.Formatter``.
        preset: field names to read; default: the preset ``install()`` was given.
    """

    DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace_id=%(trace_id)s span_id=%(span_id)s] %(message)s"

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: str = "%",
        validate: bool = True,
        *,
        preset: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._default = fmt is None
        super().__init__(
            self.DEFAULT_FORMAT if fmt is None else fmt,
            datefmt,
            style,  # type: ignore[arg-type]
            validate,
            **kwargs,
        )
        self._names = _names_for(preset)

    def format(self, record: logging.LogRecord) -> str:
        names = self._names or _state.names
        _ensure_fields(record, names)
        try:
            record.message = _message(record)
            if self.usesTime():
                record.asctime = self.formatTime(record, self.datefmt)
            if self._default and names.trace_id != "trace_id":
                values = dict(record.__dict__)
                values["trace_id"] = values[names.trace_id]
                values["span_id"] = values[names.span_id]
                text = self._style._fmt % values
            else:
                text = self.formatMessage(record)
        except Exception as error:  # a custom format naming a missing field must not lose the line
            text = f"{_message(record)} (log format failed: {error!r})"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        if record.stack_info:
            text = f"{text}\n{self.formatStack(record.stack_info)}"
        return text


_second: tuple[int, str] = (-1, "")  # the last whole second formatted (replaced atomically)


def _utc_iso(created: float, msecs: float) -> str:
    global _second
    whole = int(created)
    cached = _second
    if cached[0] != whole:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{int(msecs):03d}Z"


def _jsonable(value: Any) -> Any:
    """Fallback for values json cannot encode: bytes decoded leniently, anything else as repr."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset)):
        return list(value)
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


class JSONFormatter(logging.Formatter):
    """One JSON object per line, with the trace fields.

    Keys: ``time`` (UTC ISO-8601, milliseconds), ``level``, ``logger``, ``message``, the trace
    fields and the service name (names per preset), ``exception`` (and ``stack``) when present, then
    the record's ``extra`` fields. Values json cannot encode are written as their ``repr``; a
    message whose arguments do not format is written with its raw arguments; the formatter never
    raises. Non-ASCII text is escaped (``ensure_ascii``), so lines are plain ASCII.

    Args:
        preset: field names to write; default: the preset ``install()`` was given.
        service_name: the service name to write; default: the one ``install()`` was given.
        ensure_ascii: escape non-ASCII characters (default True: a line is always valid UTF-8).
        static_fields: constant fields added to every line (e.g. ``{"env": "staging"}``).
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: str = "%",
        validate: bool = True,
        *,
        preset: str | None = None,
        service_name: str | None = None,
        ensure_ascii: bool = True,
        static_fields: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fmt, datefmt, style, validate, **kwargs)  # type: ignore[arg-type]
        self._names = _names_for(preset)
        self._service_name = service_name
        self._encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, default=_jsonable, separators=(",", ":"))
        self._fallback = json.JSONEncoder(ensure_ascii=True, default=_jsonable, separators=(",", ":"), skipkeys=True)
        self._static = dict(static_fields or {})

    def format(self, record: logging.LogRecord) -> str:
        try:
            return self._encode(self.fields(record))
        except Exception as error:
            return self._fallback.encode(
                {
                    "time": _utc_iso(time.time(), 0),
                    "level": str(getattr(record, "levelname", "")),
                    "logger": str(getattr(record, "name", "")),
                    "message": _message(record),
                    "format_error": repr(error),
                }
            )

    def _encode(self, data: dict[str, Any]) -> str:
        try:
            return self._encoder.encode(data)
        except (TypeError, ValueError, RecursionError):  # non-str keys, circular or odd containers
            return self._fallback.encode({str(k): _safe(v) for k, v in data.items()})

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The JSON object for ``record`` as a dict (override to add or rename keys)."""
        names = self._names or _state.names
        d = record.__dict__
        data: dict[str, Any] = {
            "time": _utc_iso(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        trace_id = d.get(names.trace_id)
        if trace_id is None:
            trace_id, span_id, sampled = _ids()
        else:
            span_id, sampled = d.get(names.span_id, ""), d.get(names.sampled, False)
        data[names.trace_id] = trace_id
        data[names.span_id] = span_id
        data[names.sampled] = sampled
        data[names.service_name] = self._service_name if self._service_name is not None else _state.service_name
        user = d.get(USER_FIELDS)
        if user:  # the application's own values of fields named like ours win (see the module doc)
            for key in user:
                if key in d:
                    data[key] = d[key]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        if self._static:
            for key, value in self._static.items():
                data.setdefault(key, value)
        not_extra = _not_extra_for(names)
        for key, value in d.items():
            if key in not_extra:
                continue
            data[key if key not in data else f"extra.{key}"] = value
        return data


def _safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return _jsonable(value)


def structlog_processor(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor adding the trace fields (names per the installed preset).

    Put it before the renderer: ``structlog.configure(processors=[..., structlog_processor,
    structlog.processors.JSONRenderer()])``. Fields already in the event are kept.
    """
    names = _state.names
    trace_id, span_id, sampled = _ids()
    event_dict.setdefault(names.trace_id, trace_id)
    event_dict.setdefault(names.span_id, span_id)
    event_dict.setdefault(names.sampled, sampled)
    event_dict.setdefault(names.service_name, _state.service_name)
    return event_dict
