"""``otel-showmax doctor``: the logging tree, and every path that exports a record twice or never."""

from __future__ import annotations

import logging
from typing import Any

from .doctor_report import Finding

__all__ = ["check_logging", "logging_tree"]

# Loggers that are deliberately kept out of the export pipeline (OpenTelemetry's own, our diagnostics).
_INTERNAL = ("opentelemetry", "otel_showmax.diagnostics", "otel_showmax.diag")


def _loggers() -> list[tuple[str, logging.Logger]]:
    found: list[tuple[str, logging.Logger]] = [("root", logging.getLogger())]
    for name, lg in sorted(logging.Logger.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger):
            found.append((name, lg))
    return found


def exporter_kind(handler: logging.Handler) -> str | None:
    """``bridge`` for otel_showmax's bridge, ``upstream`` for an OpenTelemetry LoggingHandler, else None."""
    cls = type(handler)
    if cls.__module__ == "otel_showmax._pipeline.log_bridge" and cls.__name__ == "BridgeHandler":
        return "bridge"
    if cls.__name__ == "LoggingHandler" and cls.__module__.startswith("opentelemetry"):
        return "upstream"
    return None


def _describe(handler: logging.Handler) -> dict[str, Any]:
    cls = type(handler)
    target = getattr(handler, "baseFilename", None) or getattr(getattr(handler, "stream", None), "name", None)
    return {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "level": logging.getLevelName(handler.level),
        "target": str(target) if target is not None else None,
        "otel_export": exporter_kind(handler),
        "id": id(handler),
    }


def logging_tree() -> list[dict[str, Any]]:
    """Every logger that has handlers or settings that change where records go."""
    tree = []
    for name, lg in _loggers():
        if lg.handlers or not lg.propagate or lg.disabled or lg.level != logging.NOTSET or name == "root":
            tree.append({
                "logger": name,
                "level": logging.getLevelName(lg.level),
                "propagate": lg.propagate,
                "disabled": lg.disabled,
                "handlers": [_describe(h) for h in lg.handlers],
            })
    return tree


def _chain(lg: logging.Logger) -> list[logging.Logger]:
    chain: list[logging.Logger] = []
    current: logging.Logger | None = lg
    while current is not None:
        chain.append(current)
        if not current.propagate:
            break
        current = current.parent
    return chain


def _same_output(a: logging.Handler, b: logging.Handler) -> bool:
    if a is b:
        return True
    if type(a) is not type(b) or exporter_kind(a) or a.level != b.level or a.filters != b.filters:
        return False  # e.g. INFO to a file and ERROR to the same file on purpose
    target_a = getattr(a, "baseFilename", None) or id(getattr(a, "stream", a))
    target_b = getattr(b, "baseFilename", None) or id(getattr(b, "stream", b))
    return target_a == target_b


def _levels(config: Any) -> list[Finding]:
    findings = []
    root = logging.getLogger()
    if root.level > logging.INFO:
        findings.append(Finding(
            "logging", "info",
            f"the root logger's level is {logging.getLevelName(root.level)}: INFO and DEBUG records of loggers "
            "without a level of their own are neither printed nor exported",
            "set the level you want on the root logger (or on your app's loggers) in your logging configuration",
        ))
    if config is not None and config.request_log:
        request_logger = logging.getLogger(config.request_log_logger)
        if not request_logger.isEnabledFor(config.request_log_level) or request_logger.disabled:
            findings.append(Finding(
                "logging", "error",
                f"the request log ({config.request_log_logger!r} at "
                f"{logging.getLevelName(config.request_log_level)}) is filtered out by logger levels: no request "
                "log line is written or exported",
                f"remove the level your logging configuration sets on {config.request_log_logger!r} (or on a "
                "parent); to turn the request log off on purpose, set OTEL_SHOWMAX_REQUEST_LOG=false",
            ))
    return findings


def check_logging(logs_exported: bool, config: Any = None) -> list[Finding]:
    """Findings about duplicate handlers, levels, and records exported twice or not at all."""
    findings: list[Finding] = _levels(config)
    exporters = [(name, h) for name, lg in _loggers() for h in lg.handlers if exporter_kind(h)]
    bridges = [e for e in exporters if exporter_kind(e[1]) == "bridge"]
    for name, lg in _loggers():
        for i, handler in enumerate(lg.handlers):
            if any(_same_output(handler, other) for other in lg.handlers[:i]):
                findings.append(Finding(
                    "logging", "error",
                    f"logger {name!r} has {type(handler).__name__} more than once with the same output: every record "
                    "logged there is written (and handled) twice — the seed's get_logger() bug",
                    "add the handler once at start-up (logging.config.dictConfig), or use otel_showmax.get_logger(), "
                    "which never adds handlers",
                ))
                break
    if logs_exported and not bridges and not exporters:
        findings.append(Finding(
            "logging", "error", "no OpenTelemetry logging handler is on the logging tree: no log record is exported",
            "call otel_showmax.setup() after any logging.config call, or run under opentelemetry-instrument",
        ))
    if not logs_exported:
        return findings
    seen: set[tuple[str, ...]] = set()
    for name, lg in _loggers():
        if name.startswith(_INTERNAL):
            continue
        chain = _chain(lg)
        on_path = [(c.name if c.name != "root" else "root", h) for c in chain for h in c.handlers if exporter_kind(h)]
        key = tuple(f"{n}:{id(h)}" for n, h in on_path)
        if len(on_path) > 1 and key not in seen:
            seen.add(key)
            where = ", ".join(f"{type(h).__module__}.{type(h).__name__} on {n!r}" for n, h in on_path)
            findings.append(Finding(
                "logging", "error",
                f"records logged to {name!r} are exported {len(on_path)} times: {where}",
                "keep only otel_showmax's bridge on the root logger: remove the other handler (or set "
                "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=false and drop LoggingInstrumentor/LoggingHandler)",
            ))
        elif not on_path and exporters and not lg.propagate:
            findings.append(Finding(
                "logging", "warning",
                f"logger {name!r} does not propagate and has no OpenTelemetry handler: its records are never exported",
                f"set logging.getLogger({name!r}).propagate = True (remove its own console handler if it duplicates "
                "the root's)",
            ))
        if lg.disabled and name != "root":
            findings.append(Finding(
                "logging", "warning",
                f"logger {name!r} is disabled (dictConfig disable_existing_loggers=True?): its records are lost",
                "pass disable_existing_loggers=False to logging.config.dictConfig",
            ))
    if len(bridges) > 1:
        findings.append(Finding(
            "logging", "error", f"{len(bridges)} otel_showmax bridge handlers are installed",
            "report this as a bug: setup() keeps exactly one",
        ))
    if not any(f.severity in ("error", "warning") for f in findings):
        findings.append(Finding("logging", "ok", f"{len(exporters)} OpenTelemetry logging handler on the tree; "
                                "every logger's records are exported exactly once", ""))
    return findings
