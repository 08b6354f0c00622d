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
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

__all__ = ["BAR_WIDTH", "render_logs", "render_trace", "render_traces", "safe", "severity_name"]

Item = dict[str, Any]

#: Width of the duration bar in characters.
BAR_WIDTH = 30
_RED, _DIM, _BOLD, _RESET = "\x1b[31m", "\x1b[2m", "\x1b[1m", "\x1b[0m"
_SEVERITIES = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE"))
# What a terminal would act on or that would reorder or split what it shows: C0 and C1 controls,
# DEL, the line and paragraph separators and the bidirectional controls.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_MAX_TEXT = 200  # characters shown of one name, service, status or attribute value
_MAX_BODY = 1000  # characters shown of one log body
_MAX_INDENT = 24  # tree levels drawn; deeper spans keep this indentation and show their depth


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: object, limit: int = _MAX_TEXT) -> str:
    """``value`` as text a terminal only displays: at most ``limit`` characters (then …), control
    characters escaped (ESC shown as ``\\x1b``, a newline as ``\\x0a``), never executed."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def severity_name(log: Item) -> str:
    """The log's severity text, else the name derived from its severity number."""
    if log.get("severity_text"):
        return safe(log["severity_text"], 20)
    number = _int(log.get("severity_number"))
    return next((name for floor, name in _SEVERITIES if number >= floor), "-")


def _clock(nanos: int) -> str:
    seconds, rest = divmod(_int(nanos), 1_000_000_000)
    try:
        return time.strftime("%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}"
    except (OverflowError, OSError, ValueError):
        return "--:--:--.---"


def _body(log: Item) -> str:
    body = log.get("body")
    if isinstance(body, str):
        text = body
    else:
        try:
            text = json.dumps(body, sort_keys=True, default=str)
        except (RecursionError, TypeError, ValueError):  # keys of mixed types, nesting too deep
            text = "<body not shown: cannot be written as JSON>"
    text = safe(text.replace("\n", " ⏎ "), _MAX_BODY)
    attrs = log.get("attributes") or {}
    if "exception.type" in attrs:
        text += f" [{safe(attrs['exception.type'])}: {safe(attrs.get('exception.message', ''))}]"
    return text


def _log_line(log: Item, color: bool, with_service: bool = False) -> str:
    severity = severity_name(log)
    stamp = _clock(log.get("time_unix_nano") or log.get("observed_time_unix_nano") or 0)
    text = f"{stamp} {severity:<5} "
    if with_service:
        text += f"{safe((log.get('resource') or {}).get('service.name', '?'))}: "
    text += _body(log)
    if color and severity in ("ERROR", "FATAL"):
        return f"{_RED}{text}{_RESET}"
    return text


def _service(item: Item) -> str:
    return safe((item.get("resource") or {}).get("service.name", "unknown_service"))


def _bar(span: Item, start: int, total: int) -> str:
    begin = max(0, min(BAR_WIDTH - 1, round((_int(span["start_time_unix_nano"]) - start) * BAR_WIDTH / total)))
    length = round((_int(span["end_time_unix_nano"]) - _int(span["start_time_unix_nano"])) * BAR_WIDTH / total)
    length = max(1, min(BAR_WIDTH - begin, length))
    return "|" + " " * begin + "█" * length + " " * (BAR_WIDTH - begin - length) + "|"


def _status(span: Item) -> str:
    attrs = span.get("attributes") or {}
    code = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    parts = [safe(code, 40)] if code is not None else []
    if span.get("status_code") == "ERROR":
        message = span.get("status_message")
        parts.append(f"ERROR: {safe(message)}" if message else "ERROR")
    return " ".join(parts)


def _target(span: Item) -> str:
    """`` → host:port/path`` for client spans that name their URL, else ""."""
    attrs = span.get("attributes") or {}
    url = attrs.get("url.full", attrs.get("http.url"))
    if span.get("kind") != "CLIENT" or not isinstance(url, str):
        return ""
    url = url.split("://", 1)[-1].split("?", 1)[0]
    return f" → {safe(url if len(url) <= 40 else url[:39] + '…')}"


def _ms(nanos: int) -> str:
    return f"{nanos / 1e6:.1f} ms"


def _order(span: Item) -> tuple[int, str]:
    return (_int(span["start_time_unix_nano"]), str(span["span_id"]))


def _cycle_member(span: Item, by_id: dict[str, Item], visited: set[str]) -> Item:
    """A span on the parent cycle above ``span`` (which no received root leads to)."""
    seen: set[str] = set()
    while span["span_id"] not in seen:
        seen.add(span["span_id"])
        parent = by_id.get(span.get("parent_span_id") or "")
        if parent is None or parent["span_id"] in visited:
            return span
        span = parent
    return span


def render_trace(spans: list[Item], logs: Iterable[Item] = (), *, color: bool = False) -> str:
    """Render one trace (spans sharing a trace id) as a tree, each span's logs under it.

    Logs of this trace whose span was not received are listed at the end of the trace. A span
    received more than once (same span id) is shown once and counted in the header. Spans whose
    parents form a cycle (a span its own parent, or A → B → A) are shown once each, under a
    "(parent cycle)" span; deep chains are drawn iteratively and indented at most 24 levels.
    Every name and value from the telemetry is shown with control characters escaped.
    """
    by_id: dict[str, Item] = {}
    for span in sorted(spans, key=_order):
        by_id.setdefault(span["span_id"], span)
    duplicates = len(spans) - len(by_id)
    spans = list(by_id.values())
    children: dict[str, list[Item]] = defaultdict(list)
    roots = []
    for span in spans:
        parent = span.get("parent_span_id") or ""
        if parent and parent in by_id and parent != span["span_id"]:
            children[parent].append(span)
        elif parent != span["span_id"]:
            roots.append(span)
    span_logs: dict[str, list[Item]] = defaultdict(list)
    stray = []
    for log in logs:
        if log.get("span_id") in by_id:
            span_logs[log["span_id"]].append(log)
        else:
            stray.append(log)
    start = min(_int(s["start_time_unix_nano"]) for s in spans)
    end = max(_int(s["end_time_unix_nano"]) for s in spans)
    total = max(end - start, 1)

    rows: list[tuple[str, Item, str]] = []  # (tree prefix + label, span, continuation prefix for logs)
    visited: set[str] = set()

    def walk(root: Item, note: str) -> None:
        stack: list[tuple[Item, str, str, int, str]] = [(root, "", "", 0, note)]
        while stack:
            span, prefix, continuation, depth, note = stack.pop()
            visited.add(span["span_id"])
            shown_depth = f"[depth {depth}] " if depth > _MAX_INDENT else ""
            label = f"{prefix}{shown_depth}{_service(span)}  {safe(span['name'])}{_target(span)}{note}"
            kids = [kid for kid in children.get(span["span_id"], []) if kid["span_id"] not in visited]
            rows.append((label, span, continuation + ("│  " if kids else "   ")))
            for i in reversed(range(len(kids))):
                last = i == len(kids) - 1
                if depth >= _MAX_INDENT:  # deeper levels are not indented further
                    stack.append((kids[i], continuation + "└─ ", continuation, depth + 1, ""))
                else:
                    stack.append((kids[i], continuation + ("└─ " if last else "├─ "),
                                  continuation + ("   " if last else "│  "), depth + 1, ""))

    for root in roots:
        parent = root.get("parent_span_id")
        walk(root, " (parent not received)" if parent else "")
    for span in spans:  # what no root leads to hangs below a parent cycle
        if span["span_id"] not in visited:
            member = _cycle_member(span, by_id, visited)
            own = member.get("parent_span_id") == member["span_id"]
            walk(member, " (parent cycle: its own parent)" if own else " (parent cycle)")
    width = max(len(label) for label, _, _ in rows)
    errors = sum(1 for s in spans if s.get("status_code") == "ERROR")
    services = sorted({_service(s) for s in spans})
    header = (f"Trace {safe(spans[0]['trace_id'], 64)}  {len(spans)} span{'s' * (len(spans) != 1)} · "
              f"{len(services)} service{'s' * (len(services) != 1)} ({', '.join(services)}) · {_ms(end - start)}")
    if errors:
        header += f" · {errors} error{'s' * (errors != 1)}"
    if duplicates:
        header += f" · {duplicates} duplicate span{'s' * (duplicates != 1)} received"
    lines = [f"{_BOLD}{header}{_RESET}" if color else header]
    for label, span, continuation in rows:
        duration = _ms(max(0, _int(span["end_time_unix_nano"]) - _int(span["start_time_unix_nano"])))
        line = f"{label:<{width}}  {_bar(span, start, total)} {duration:>10}  {_status(span)}".rstrip()
        lines.append(f"{_RED}{line}{_RESET}" if color and span.get("status_code") == "ERROR" else line)
        for log in sorted(span_logs.get(span["span_id"], []), key=lambda x: _int(x.get("time_unix_nano"))):
            lines.append(f"{continuation} {_log_line(log, color)}")
    if stray:
        lines.append("logs of this trace whose span was not received:")
        lines.extend(f"    {_log_line(log, color, with_service=True)}" for log in stray)
    return "\n".join(lines) + "\n"


def render_logs(logs: Iterable[Item], *, color: bool = False) -> str:
    """Render log records that belong to no received span, one line each."""
    lines = []
    for log in sorted(logs, key=lambda x: _int(x.get("time_unix_nano") or x.get("observed_time_unix_nano"))):
        line = _log_line(log, color, with_service=True)
        if log.get("trace_id"):
            line += f"  (trace {safe(log['trace_id'], 64)} span {safe(log.get('span_id') or '-', 32)})"
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
