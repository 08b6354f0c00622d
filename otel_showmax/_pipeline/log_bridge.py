"""The stdlib logging → OpenTelemetry bridge.

On the calling thread the handler does only what cannot wait: it takes the current context (for the
trace and span ids), formats the message (arguments may be mutated later) and queues the record.
Attribute conversion, exception formatting, building the OTel record and encoding happen on the
export worker thread. The exported record is the same as the one upstream's LoggingHandler
(opentelemetry-instrumentation-logging) builds, except that correlation fields injected into
stdlib records are not copied as attributes — the trace context is native in an OTel record.
For the lean OTLP/HTTP exporter the worker skips the OTel record and writes the same OTLP bytes
straight from the queued stdlib record (``Converter.encode``; tests/export/test_protobuf_logs.py).
"""

from __future__ import annotations

import logging
import logging.config
import traceback
import warnings
from collections.abc import Callable, Sequence
from time import time_ns
from typing import Any

from opentelemetry.context import get_current
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes import exception_attributes
from opentelemetry.trace import get_current_span

from .. import _diag
from .._export.protobuf import (
    EncodedLogs,
    encode_prepared_logs,
    encode_scoped_logs,
    encoded_log,
    log_message,
    plain_attributes,
    severity_fields,
    trace_fields,
)
from .._export.utf8 import text_of
from .._export.utf8 import valid_text as _text
from .._upstream import (
    SUPPRESS_KEY,
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
    ReadWriteLogRecord,
    log_record_limits,
    std_to_otel,
)
from .._upstream import APILogRecord as LogRecord
from .._upstream import clean_attribute_value as _clean_attribute_value
from ..correlation import USER_FIELDS

# The stdlib LogRecord's own attributes: everything else on a record is an ``extra`` attribute.
RESERVED = frozenset(
    (
        "asctime", "args", "created", "exc_info", "exc_text", "filename", "funcName", "getMessage",
        "message", "levelname", "levelno", "lineno", "module", "msecs", "msg", "name", "pathname",
        "process", "processName", "relativeCreated", "stack_info", "thread", "threadName", "taskName",
    )
)
# Loggers never exported: OTel's own and our diagnostics (no feedback loop through the collector).
NEVER_EXPORTED = ("opentelemetry", "otel_showmax.diagnostics")
_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}
# Attribute value types BoundedAttributes keeps as they are (a str only within the length limit).
_PLAIN = frozenset((int, float, bool, bytes, type(None)))
_PLAIN_OR_STR = _PLAIN | {str}
_STR = frozenset((str,))
_EVENT_NAME = "otel.event.name"  # semconv otel_attributes.OTEL_EVENT_NAME (semantic-conventions >= 0.62b0)
_DEPRECATED_EVENT_NAME = "event.name"  # semconv event_attributes.EVENT_NAME
_attributes_logger = logging.getLogger("opentelemetry.attributes")  # BoundedAttributes' warnings
# False when setup() found the direct encoding differs from upstream's (otel_showmax/_selfcheck.py).
DIRECT_ON = True


class _Pending:
    """A stdlib record waiting on the queue, converted on the worker thread."""

    __slots__ = ("body", "context", "observed", "record")

    def __init__(self, record: logging.LogRecord, context: Any, body: Any, observed: int) -> None:
        self.record = record
        self.context = context
        self.body = body
        self.observed = observed


_PENDING_ONLY = {_Pending}


class BridgeHandler(logging.Handler):
    """Queues stdlib log records for export as OpenTelemetry log records.

    One instance per process lives on the root logger; otel_showmax puts it back after
    ``dictConfig``/``fileConfig``/``basicConfig(force=True)``. ``flush`` and ``close`` never wait
    for the collector.
    """

    def __init__(self, put: Callable[[Any], None], level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._put = put

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: emit only appends to a thread-safe deque.
        if self.filters and not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name.startswith(NEVER_EXPORTED):
                return
            context = get_current()
            if context.get(SUPPRESS_KEY):
                return  # logged by the export path itself
            try:
                body = record.getMessage()
            except Exception:  # a bad format string or argument must not lose the record
                body = _unformattable(record)
            self._put(_Pending(record, context, body, time_ns()))
        except Exception as error:  # never raise into the application
            _diag.warn("bridge", "log record not queued: %r", error)

    def flush(self) -> None:
        """Does not wait: export happens on the worker thread, and shutdown is bounded."""

    def close(self) -> None:
        """Detach from logging's registry only; the export pipeline stays up (it may be re-added)."""
        super().close()


def _clean(value: Any) -> Any:
    """``_text`` applied to strings, also inside lists, tuples and dicts (attribute values)."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind is list or kind is tuple:
        return kind(_clean(v) for v in value)
    if kind is dict:
        return {k: _clean(v) for k, v in value.items()}
    return value


def _scope(name: Any) -> InstrumentationScope:
    """The scope of a logger's records: its name as valid text (a lone surrogate escaped)."""
    return InstrumentationScope(_text(name) if type(name) is str else text_of(name) or "")


def _unformattable(record: logging.LogRecord) -> str:
    try:
        return f"{record.msg!s} (unformattable arguments: {record.args!r})"
    except Exception:
        return "<unformattable log message>"


class Converter:
    """Turns queued items into what the log exporter takes, on the worker thread.

    With ``direct`` (the exporter is a lean OTLP one, HTTP or gRPC), a batch is serialized straight from
    the queued stdlib records (``encode``): the same bytes as building SDK records (``convert``)
    and encoding them with ``encode_logs``, at a fraction of the CPU. tests/export/test_protobuf_logs.py
    proves it; ``convert_batch`` stays the reference and the fallback.
    """

    def __init__(
        self, resource: Callable[[], Any], limits: LogRecordLimits, injected: frozenset[str], direct: bool = False
    ) -> None:
        self._resource = resource
        self._limits = limits
        self._max_count, self._max_len = log_record_limits(limits)
        self._skip = RESERVED | injected | {USER_FIELDS}
        self._scopes: dict[str, InstrumentationScope] = {}
        self.direct = direct

    def set_injected(self, injected: frozenset[str]) -> None:
        self._skip = RESERVED | injected | {USER_FIELDS}

    def __call__(self, batch: list[Any]) -> Sequence[Any]:
        if self.direct and DIRECT_ON:
            try:
                return self.encode(batch)
            except Exception:  # anything unusual: the reference path (which reports what failed)
                pass
        return self.convert_batch(batch)

    def convert_batch(self, batch: list[Any]) -> list[Any]:
        """SDK records for ``batch``; a record that cannot be converted is left out (the BatchWorker
        counts the difference in length as ``invalid_item``)."""
        resource = self._resource()
        out = []
        for item in batch:
            if isinstance(item, _Pending):
                try:
                    item = self.convert(item, resource)
                except Exception as error:
                    _diag.warn("convert", "log record could not be converted: %r", error)
                    continue
            out.append(item)
        return out

    def encode(self, batch: list[Any]) -> EncodedLogs:
        """The batch serialized as an ExportLogsServiceRequest without building SDK records.

        Raises on anything it does not reproduce exactly (the caller falls back to ``convert_batch``).
        SDK records in the batch (from the OTel Logs API) are encoded in place, in the same groups.
        """
        resource = self._resource()
        scopes = self._scopes
        # Only queued stdlib records (the usual batch): grouped here by logger name, which is the
        # grouping by scope (one InstrumentationScope per name). Otherwise grouped with the SDK
        # records by the shared encoder, as encode_logs groups them.
        only_pending = set(map(type, batch)) == _PENDING_ONLY
        by_name: dict[str, list[bytes]] = {}
        by_scope: dict[InstrumentationScope, list[bytes]] = {}
        max_count = self._max_count
        max_len = self._max_len
        severities: dict[tuple[Any, Any], bytes] = {}  # (levelno, levelname) -> encoded fields
        last_context: Any = None  # records of one request share their context
        trace = b""
        items: list[Any] = []
        for item in batch:
            if type(item) is not _Pending:
                items.append(item)
                continue
            record = item.record
            # Usually the extra attributes are encoded as they are; anything BoundedAttributes or
            # the reference's attributes() would change goes the general way.
            fields = vars(record)
            attributes: Any = None
            if not (record.exc_info or _EVENT_NAME in fields or _DEPRECATED_EVENT_NAME in fields or "" in fields
                    or USER_FIELDS in fields):
                attributes = plain_attributes(b"\x32", fields, self._skip, max_len, max_count)
            dropped = 0
            event_name = None
            if attributes is None:
                attributes, event_name = self.attributes(record)
                if attributes:
                    attributes, dropped = self._bounded(attributes)
            level = (record.levelno, record.levelname)
            severity = severities.get(level)
            if severity is None:
                severity = severities[level] = severity_fields(
                    std_to_otel(record.levelno), _SEVERITY_TEXT.get(record.levelname, record.levelname)
                )
            context = item.context
            if context is not last_context or last_context is None:
                last_context = context
                span_context = get_current_span(context or get_current()).get_span_context()  # as LogRecord
                trace = trace_fields(span_context.trace_flags, span_context.trace_id, span_context.span_id)
            body = item.body
            encoded = log_message(
                int(record.created * 1e9),
                severity,
                _text(body) if type(body) is str else body,
                attributes,
                dropped,
                trace,
                item.observed,
                event_name,
            )
            name = record.name
            records = by_name.get(name) if only_pending else None
            if records is None:
                scope = scopes.get(name)
                if scope is None:
                    scope = scopes[name] = _scope(name)
                if not only_pending:
                    items.append(encoded_log(resource, scope, encoded))
                    continue
                # two names may escape to one scope ("a\udcff" and "a\\udcff"): one group, as upstream's
                records = by_name[name] = by_scope.setdefault(scope, [])
            records.append(encoded)
        data = encode_scoped_logs(resource, by_scope) if only_pending else encode_prepared_logs(items)
        return EncodedLogs(data, len(batch), lambda: self.convert_batch(batch))

    def _bounded(self, attributes: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """``attributes`` and the dropped count as ReadWriteLogRecord's BoundedAttributes leaves them."""
        maxlen = self._max_count
        if maxlen == 0:
            dropped = len(attributes)
            attributes = {}
        else:
            max_len = self._max_len
            if not self._plain(attributes, max_len):  # as BoundedAttributes._set_items cleans them
                cleaned = _clean_attribute_value(attributes, max_len)
                dropped = len(attributes) - len(cleaned)  # empty keys
                attributes = cleaned
            else:
                dropped = 0
            if maxlen is not None and len(attributes) > maxlen:
                excess = len(attributes) - maxlen
                for _ in range(excess):
                    _attributes_logger.warning(
                        "Attributes dict is full. Dropping the oldest key-value pair from attributes to make "
                        "space for the new key-value pair.",
                    )
                attributes = dict(list(attributes.items())[excess:])
                dropped += excess
        if dropped > 0:
            warnings.warn(
                "Log record attributes were dropped due to limits", LogRecordDroppedAttributesWarning, stacklevel=2
            )
        return attributes, dropped

    @staticmethod
    def _plain(attributes: dict[str, Any], max_len: int | None) -> bool:
        """Whether BoundedAttributes would keep every key and value as they are."""
        if "" in attributes or not _STR.issuperset(map(type, attributes)):
            return False
        if max_len is None:
            return _PLAIN_OR_STR.issuperset(map(type, attributes.values()))
        for value in attributes.values():
            t = type(value)
            if t is str:
                if len(value) > max_len:
                    return False
            elif t not in _PLAIN:
                return False
        return True

    def convert(self, pending: _Pending, resource: Any) -> ReadWriteLogRecord:
        record = pending.record
        attributes, event_name = self.attributes(record)
        scope = self._scopes.get(record.name)
        if scope is None:
            scope = self._scopes[record.name] = _scope(record.name)
        api_record = LogRecord(
            timestamp=int(record.created * 1e9),
            observed_timestamp=pending.observed,
            context=pending.context or None,
            severity_text=_SEVERITY_TEXT.get(record.levelname, record.levelname),
            severity_number=std_to_otel(record.levelno),
            body=_text(pending.body) if type(pending.body) is str else pending.body,
            attributes=attributes,
            event_name=event_name,
        )
        return ReadWriteLogRecord(api_record, resource=resource, instrumentation_scope=scope, limits=self._limits)

    def attributes(self, record: logging.LogRecord) -> tuple[dict[str, Any], str | None]:
        skip = self._skip
        fields = vars(record)
        user = fields.get(USER_FIELDS)
        if user:  # the application's extras named like our correlation fields: attributes like any other
            skip = skip.difference(user)
        attributes = {k: _clean(v) for k, v in fields.items() if k not in skip}
        event_name = attributes.pop(_EVENT_NAME, None)
        deprecated_event_name = attributes.pop(_DEPRECATED_EVENT_NAME, None)
        if event_name is None:
            event_name = deprecated_event_name
        if event_name is not None and type(event_name) is not str:
            event_name = text_of(event_name)  # extra={"event.name": 123} names the event "123" (docs/bad-input.md)
        if record.exc_info:
            exctype, value, tb = record.exc_info
            if exctype is not None:
                attributes[exception_attributes.EXCEPTION_TYPE] = exctype.__name__
            if value is not None and value.args:
                attributes[exception_attributes.EXCEPTION_MESSAGE] = _text(str(value.args[0]))
            if tb is not None:
                attributes[exception_attributes.EXCEPTION_STACKTRACE] = _text("".join(
                    traceback.format_exception(*record.exc_info)
                ))
        return attributes, event_name


# -- keeping exactly one bridge on the root logger ----------------------------------------------

_CONFIG_FUNCTIONS = ("dictConfig", "fileConfig")


def attach(handler: BridgeHandler) -> None:
    """Put ``handler`` on the root logger (once) and keep it there across logging re-configuration."""
    root = logging.getLogger()
    if handler not in root.handlers:
        root.addHandler(handler)
    _wrap_config_functions(handler)


def detach(handler: BridgeHandler) -> None:
    logging.getLogger().removeHandler(handler)
    _ACTIVE[0] = None


_ACTIVE: list[BridgeHandler | None] = [None]
_restore_hooks: list[Callable[[], None]] = []


def on_reconfigure(hook: Callable[[], None]) -> None:
    """Run ``hook`` after every dictConfig/fileConfig/basicConfig (e.g. re-enable our loggers)."""
    if hook not in _restore_hooks:
        _restore_hooks.append(hook)


def _reattach() -> None:
    handler = _ACTIVE[0]
    if handler is not None:
        root = logging.getLogger()
        if handler not in root.handlers:
            root.addHandler(handler)
    for hook in _restore_hooks:
        try:
            hook()
        except Exception as error:
            _diag.warn("reconfigure", "after logging re-configuration: %r", error)


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(fn, "_otel_showmax_wrapped", False):
        return fn

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            _reattach()

    wrapper._otel_showmax_wrapped = True  # type: ignore[attr-defined]
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


def _wrap_config_functions(handler: BridgeHandler) -> None:
    _ACTIVE[0] = handler
    for name in _CONFIG_FUNCTIONS:
        setattr(logging.config, name, _wrap(getattr(logging.config, name)))
    logging.basicConfig = _wrap(logging.basicConfig)


def other_otel_handlers() -> list[tuple[str, logging.Handler]]:
    """Upstream OTel logging handlers anywhere on the logging tree: (logger name, handler)."""
    found = []
    loggers: list[tuple[str, logging.Logger]] = [("root", logging.getLogger())]
    loggers += [
        (name, lg) for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)
    ]
    for name, lg in loggers:
        for h in lg.handlers:
            cls = type(h)
            if cls.__name__ == "LoggingHandler" and cls.__module__.startswith("opentelemetry"):
                found.append((name, h))
    return found
