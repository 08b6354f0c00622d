"""The trace renderer on hostile input: cycles, self-parents, deep chains, control characters, huge fields."""

from __future__ import annotations

import re

import pytest

from otel_showmax._cli import render as render_module
from otel_showmax._cli.receive import TraceAssembler
from otel_showmax._cli.render import render_logs, render_trace, render_traces

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
# What a terminal would act on: C0 and C1 controls, DEL, line/paragraph separators, bidi overrides.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
OUR_SGR = re.compile(r"\x1b\[(?:0|1|2|31)m")
EVIL = "evil\x1b[2J\x1b]0;pwned\x07\nsecond line\rover\x9b31m\u202eright-to-left\x00\x7f"


def span(span_id: str, parent: str = "", name: str | None = None, start: int = 1_000, end: int = 2_000, **extra):
    item = {
        "trace_id": TRACE, "span_id": span_id, "parent_span_id": parent, "name": name or f"span-{span_id}",
        "kind": "INTERNAL", "status_code": "UNSET", "status_message": "", "start_time_unix_nano": start,
        "end_time_unix_nano": end, "attributes": {}, "events": [], "links": [],
        "resource": {"service.name": "svc"}, "scope": "s", "scope_version": "",
    }
    item.update(extra)
    return item


def log(span_id: str, body, **extra):
    item = {"trace_id": TRACE, "span_id": span_id, "body": body, "severity_text": "INFO", "severity_number": 9,
            "attributes": {}, "time_unix_nano": 1_500, "observed_time_unix_nano": 1_500, "event_name": "",
            "resource": {"service.name": "svc"}, "scope": "l"}
    item.update(extra)
    return item


def assert_safe(text: str, color: bool = False) -> None:
    if color:
        text = OUR_SGR.sub("", text)
    bad = {repr(ch) for ch in UNSAFE.findall(text)}
    assert not bad, f"raw control characters reach the terminal: {sorted(bad)}"
    assert "\x1b" not in text


def test_a_span_that_is_its_own_parent_is_rendered_once():
    out = render_traces([span("aa", parent="aa", name="myself")])
    assert out.count("myself") == 1
    assert "cycle" in out


def test_a_two_span_cycle_and_its_children_are_rendered_once_each():
    spans = [span("aa", parent="bb", name="first"), span("bb", parent="aa", name="second", start=1_100),
             span("cc", parent="aa", name="child-of-cycle", start=1_200), span("dd", name="root", start=900)]
    out = render_trace(spans, [log("cc", "under the child")])
    for name in ("first", "second", "child-of-cycle", "root", "under the child"):
        assert out.count(name) == 1, (name, out)
    assert out.splitlines()[0].startswith(f"Trace {TRACE}  4 spans")


def test_a_longer_cycle_hanging_below_a_root_is_rendered_once_each():
    spans = [span("r0", name="root"), span("c1", parent="c3", name="c1"), span("c2", parent="c1", name="c2"),
             span("c3", parent="c2", name="c3")]
    out = render_trace(spans)
    assert all(re.search(rf"svc  {n}\b", out) for n in ("root", "c1", "c2", "c3"))
    assert len(out.splitlines()) == 5 and out.count("(parent cycle)") == 1


def test_an_1100_deep_chain_renders_without_recursion_and_bounded_width():
    spans = [span(f"{i:016x}", parent=f"{i - 1:016x}" if i else "", name=f"level-{i}", start=1_000 + i)
             for i in range(1100)]
    out = render_traces(list(reversed(spans)))
    lines = out.splitlines()
    assert len(lines) == 1 + 1100
    assert all(out.count(f"level-{i} ") == 1 for i in (0, 1, 500, 1099))
    assert max(len(line) for line in lines) < 400


def test_control_characters_are_escaped_everywhere_they_can_come_from():
    client = span("bb", parent="aa", name=EVIL, kind="CLIENT", status_code="ERROR", status_message=EVIL,
                  attributes={"url.full": f"http://x/{EVIL}", "http.response.status_code": EVIL},
                  resource={"service.name": EVIL})
    spans = [span("aa", name="root"), client]
    logs = [log("bb", EVIL, severity_text=EVIL, attributes={"exception.type": EVIL, "exception.message": EVIL}),
            log("bb", {"nested": EVIL, EVIL: [EVIL]}),
            log("zz", EVIL, resource={"service.name": EVIL})]  # a span that never arrived
    for color in (False, True):
        out = render_traces(spans, logs, color=color) + render_logs(
            [log("", EVIL, trace_id="", resource={"service.name": EVIL}, severity_text=EVIL)], color=color)
        assert_safe(out, color)
        assert not any(line.lstrip(" │└├─").startswith(("second line", "right-to-left")) for line in out.splitlines())
        assert "evil\\x1b[2J\\x1b]0;pwned\\x07" in out
        assert "\\x9b31m\\u202eright-to-left" in out


def test_control_characters_in_ids_are_escaped_too():
    out = render_traces([span("\x1b[2Jaa", parent="\x1b[1Abb", trace_id=f"\x1b]0;{TRACE}\x07")])
    assert_safe(out)


def test_huge_names_do_not_blow_up_the_output():
    spans = [span(f"{i:016x}", name="n" * 1_000_000, start=1_000 + i) for i in range(50)]
    out = render_traces(spans, [log(f"{i:016x}", "b" * 1_000_000) for i in range(50)])
    assert len(out) < 50 * 2 * 2_000


@pytest.mark.parametrize("nanos", [0, 2**64 - 1, -(2**63), 10**30])
def test_out_of_range_timestamps_render(nanos):
    out = render_traces([span("aa", start=nanos, end=nanos)], [log("aa", "x", time_unix_nano=nanos)])
    assert "span-aa" in out


def test_the_assembler_survives_a_renderer_failure(monkeypatch):
    out: list[str] = []

    def broken(*args, **kwargs):
        raise ValueError("renderer bug")

    monkeypatch.setattr("otel_showmax._cli.receive.render_trace", broken)
    assembler = TraceAssembler(out.append, quiet=0.0)
    assembler.add("spans", [span("aa")])
    assert assembler.flush(force=True) == 1
    assert len(out) == 1 and "could not render" in out[0] and "ValueError" in out[0]
    assert render_module.render_trace is not broken


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_assembler_holds_a_bounded_number_of_items():
    out: list[str] = []
    assembler = TraceAssembler(out.append, quiet=1.0, max_wait=5.0, clock=Clock(), max_trace_items=100,
                               max_pending=250)
    never_quiet = [dict(span(f"{i:016x}", parent="ffffffffffffffff"), trace_id="ab" * 16) for i in range(150)]
    assembler.add("spans", never_quiet)
    assert assembler.flush() == 1 and "150 spans" in out[0]  # not quiet, no root, but too big to hold
    for t in range(10):
        assembler.add("spans", [dict(span(f"{i:016x}", parent="ffffffffffffffff"), trace_id=f"{t:032x}")
                                for i in range(40)])
    assert assembler.flush() == 4  # 400 held > 250: the oldest go until 250 or fewer are left
    assert assembler.flush(force=True) == 6
