"""Render decoded spans and logs as trace trees with their correlated log lines.

Pure functions over the dicts the receiver produces (see ``_otlp_decode``), so the output of a
fixed input can be compared with a golden file. Log times are UTC. One trace looks like::

    Trace 4bf92f35…  3 spans · 2 services · 42.0 ms · 1 error
    gateway    GET /titles/{id}        |██████████████████████████████|  42.0 ms  500 ERROR
    │   12:00:00.001 INFO  fetching title 7
    └─ catalogue  GET /titles/{id}     |   █████████████████████      |  30.0 ms  500 ERROR: not found
           12:00:00.010 ERROR title 7 not found
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

__all__ = ["BAR_WIDTH", "render_logs", "render_trace", "render_traces", "severity_name"]

Item = dict[str, Any]

#: Width of the duration bar in characters.
BAR_WIDTH = 30
_RED, _DIM, _BOLD, _RESET = "\x1b[31m", "\x1b[2m", "\x1b[1m", "\x1b[0m"
_SEVERITIES = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE"))


def severity_name(log: Item) -> str:
    """The log's severity text, else the name derived from its severity number."""
    if log.get("severity_text"):
        return str(log["severity_text"])
    number = int(log.get("severity_number") or 0)
    return next((name for floor, name in _SEVERITIES if number >= floor), "-")


def _clock(nanos: int) -> str:
    seconds, rest = divmod(int(nanos), 1_000_000_000)
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}"


def _body(log: Item) -> str:
    body = log.get("body")
    text = body if isinstance(body, str) else json.dumps(body, sort_keys=True, default=str)
    text = text.replace("\n", " ⏎ ")
    attrs = log.get("attributes") or {}
    if "exception.type" in attrs:
        text += f" [{attrs['exception.type']}: {attrs.get('exception.message', '')}]"
    return text


def _log_line(log: Item, color: bool, with_service: bool = False) -> str:
    severity = severity_name(log)
    stamp = _clock(log.get("time_unix_nano") or log.get("observed_time_unix_nano") or 0)
    text = f"{stamp} {severity:<5} "
    if with_service:
        text += f"{(log.get('resource') or {}).get('service.name', '?')}: "
    text += _body(log)
    if color and severity in ("ERROR", "FATAL"):
        return f"{_RED}{text}{_RESET}"
    return text


def _service(item: Item) -> str:
    return str((item.get("resource") or {}).get("service.name", "unknown_service"))


def _bar(span: Item, start: int, total: int) -> str:
    begin = max(0, min(BAR_WIDTH - 1, round((span["start_time_unix_nano"] - start) * BAR_WIDTH / total)))
    length = round((span["end_time_unix_nano"] - span["start_time_unix_nano"]) * BAR_WIDTH / total)
    length = max(1, min(BAR_WIDTH - begin, length))
    return "|" + " " * begin + "█" * length + " " * (BAR_WIDTH - begin - length) + "|"


def _status(span: Item) -> str:
    attrs = span.get("attributes") or {}
    code = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    parts = [str(code)] if code is not None else []
    if span.get("status_code") == "ERROR":
        message = span.get("status_message")
        parts.append(f"ERROR: {message}" if message else "ERROR")
    return " ".join(parts)


def _target(span: Item) -> str:
    """`` → host:port/path`` for client spans that name their URL, else ""."""
    attrs = span.get("attributes") or {}
    url = attrs.get("url.full", attrs.get("http.url"))
    if span.get("kind") != "CLIENT" or not isinstance(url, str):
        return ""
    url = url.split("://", 1)[-1].split("?", 1)[0]
    return f" → {url if len(url) <= 40 else url[:39] + '…'}"


def _ms(nanos: int) -> str:
    return f"{nanos / 1e6:.1f} ms"


def _order(span: Item) -> tuple[int, str]:
    return (span["start_time_unix_nano"], span["span_id"])


def render_trace(spans: list[Item], logs: Iterable[Item] = (), *, color: bool = False) -> str:
    """Render one trace (spans sharing a trace id) as a tree, each span's logs under it.

    Logs of this trace whose span was not received are listed at the end of the trace. A span
    received more than once (same span id) is shown once and counted in the header.
    """
    by_id: dict[str, Item] = {}
    for span in sorted(spans, key=_order):
        by_id.setdefault(span["span_id"], span)
    duplicates = len(spans) - len(by_id)
    spans = list(by_id.values())
    children: dict[str, list[Item]] = defaultdict(list)
    roots = []
    for span in sorted(spans, key=_order):
        parent = span.get("parent_span_id") or ""
        if parent and parent in by_id:
            children[parent].append(span)
        else:
            roots.append(span)
    span_logs: dict[str, list[Item]] = defaultdict(list)
    stray = []
    for log in logs:
        if log.get("span_id") in by_id:
            span_logs[log["span_id"]].append(log)
        else:
            stray.append(log)
    start = min(s["start_time_unix_nano"] for s in spans)
    end = max(s["end_time_unix_nano"] for s in spans)
    total = max(end - start, 1)

    rows: list[tuple[str, Item, str]] = []  # (tree prefix + label, span, continuation prefix for logs)

    def walk(span: Item, prefix: str, continuation: str, depth: int) -> None:
        label = f"{prefix}{_service(span)}  {span['name']}{_target(span)}"
        if depth == 0 and span.get("parent_span_id"):
            label += " (parent not received)"
        kids = children.get(span["span_id"], [])
        rows.append((label, span, continuation + ("│  " if kids else "   ")))
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            walk(kid, continuation + ("└─ " if last else "├─ "), continuation + ("   " if last else "│  "), depth + 1)

    for root in roots:
        walk(root, "", "", 0)
    width = max(len(label) for label, _, _ in rows)
    errors = sum(1 for s in spans if s.get("status_code") == "ERROR")
    services = sorted({_service(s) for s in spans})
    header = (f"Trace {spans[0]['trace_id']}  {len(spans)} span{'s' * (len(spans) != 1)} · "
              f"{len(services)} service{'s' * (len(services) != 1)} ({', '.join(services)}) · {_ms(end - start)}")
    if errors:
        header += f" · {errors} error{'s' * (errors != 1)}"
    if duplicates:
        header += f" · {duplicates} duplicate span{'s' * (duplicates != 1)} received"
    lines = [f"{_BOLD}{header}{_RESET}" if color else header]
    for label, span, continuation in rows:
        duration = _ms(max(0, span["end_time_unix_nano"] - span["start_time_unix_nano"]))
        line = f"{label:<{width}}  {_bar(span, start, total)} {duration:>10}  {_status(span)}".rstrip()
        lines.append(f"{_RED}{line}{_RESET}" if color and span.get("status_code") == "ERROR" else line)
        for log in sorted(span_logs.get(span["span_id"], []), key=lambda x: x.get("time_unix_nano") or 0):
            lines.append(f"{continuation} {_log_line(log, color)}")
    if stray:
        lines.append("logs of this trace whose span was not received:")
        lines.extend(f"    {_log_line(log, color, with_service=True)}" for log in stray)
    return "\n".join(lines) + "\n"


def render_logs(logs: Iterable[Item], *, color: bool = False) -> str:
    """Render log records that belong to no received span, one line each."""
    lines = []
    for log in sorted(logs, key=lambda x: x.get("time_unix_nano") or x.get("observed_time_unix_nano") or 0):
        line = _log_line(log, color, with_service=True)
        if log.get("trace_id"):
            line += f"  (trace {log['trace_id']} span {log.get('span_id') or '-'})"
        lines.append(line)
    return "Logs without a span\n" + "".join(f"    {line}\n" for line in lines) if lines else ""


def render_traces(spans: Iterable[Item], logs: Iterable[Item] = (), *, color: bool = False) -> str:
    """Render every trace among ``spans`` with its correlated logs, then the logs outside any trace.

    Args:
        spans: Decoded span dicts (as in ``OTLPReceiver.spans``).
        logs: Decoded log dicts; each is printed under the span with the same trace and span id.
        color: Add ANSI colours (errors in red).

    Returns:
        The text, traces ordered by start time, one blank line between blocks.
    """
    traces: dict[str, list[Item]] = defaultdict(list)
    for span in spans:
        traces[span["trace_id"]].append(span)
    trace_logs: dict[str, list[Item]] = defaultdict(list)
    loose = []
    for log in logs:
        if log.get("trace_id") in traces:
            trace_logs[log["trace_id"]].append(log)
        else:
            loose.append(log)
    ordered = sorted(traces.values(), key=lambda group: min(_order(s) for s in group))
    blocks = [render_trace(group, trace_logs[group[0]["trace_id"]], color=color) for group in ordered]
    if loose:
        blocks.append(render_logs(loose, color=color))
    return "\n".join(blocks)
