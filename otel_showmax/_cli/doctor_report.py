"""The doctor's findings and how they are printed (text for people, JSON for CI)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SEVERITIES", "Finding", "Report"]

#: Severities, most serious first. ``error`` means telemetry would be lost or duplicated.
SEVERITIES = ("error", "warning", "info", "ok")
_MARK = {"error": "✗", "warning": "!", "info": "·", "ok": "✓"}


@dataclass(frozen=True)
class Finding:
    """One thing the doctor noticed.

    Attributes:
        check: The area: ``app``, ``config``, ``connectivity``, ``logging``, ``gevent``, ``server``.
        severity: ``error`` (telemetry lost or duplicated), ``warning``, ``info`` or ``ok``.
        message: What was found.
        fix: How to fix it ("" when nothing to do).
    """

    check: str
    severity: str
    message: str
    fix: str = ""


@dataclass
class Report:
    """Everything the doctor found, plus the facts it printed (configuration, logging tree …)."""

    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, *findings: Finding) -> None:
        self.findings.extend(findings)

    @property
    def exit_code(self) -> int:
        """1 when any finding is an error (telemetry would be lost or duplicated), else 0."""
        return 1 if any(f.severity == "error" for f in self.findings) else 0

    def to_json(self) -> str:
        counts = {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}
        return json.dumps({"ok": self.exit_code == 0, "counts": counts, "findings": [asdict(f) for f in self.findings],
                           **self.facts}, indent=2, default=str)

    def to_text(self) -> str:
        lines = []
        config = self.facts.get("config") or {}
        if self.facts.get("app"):
            lines.append(f"App: {self.facts['app']}")
        provenance = self.facts.get("provenance")
        if provenance:
            lines.append(f"Configured by: {provenance['entry_point']} at {provenance['file']}:{provenance['line']}"
                         f" (pid {provenance['pid']})")
        if config:
            lines.append("Configuration (value ← source):")
            for name, (value, source) in sorted(config.items()):
                lines.append(f"    {name} = {value}  ← {source}")
        if self.facts.get("connectivity"):
            lines.append("Connectivity:")
            for probe in self.facts["connectivity"]:
                ms = f"{probe['ms']} ms" if probe.get("ms") is not None else "-"
                lines.append(f"    {probe['signal']:<8} {probe['protocol']:<14} {probe['endpoint']}  →  "
                             f"{probe['answer']} ({ms})")
        if self.facts.get("logging_tree"):
            lines.append("Logging tree (loggers with handlers or settings):")
            for node in self.facts["logging_tree"]:
                flags = [node["level"]] + ([] if node["propagate"] else ["propagate=False"]) + (
                    ["disabled"] if node["disabled"] else [])
                lines.append(f"    {node['logger']} [{', '.join(flags)}]")
                for h in node["handlers"]:
                    export = f"  (OTel export: {h['otel_export']})" if h["otel_export"] else ""
                    target = f" → {h['target']}" if h["target"] else ""
                    lines.append(f"        {h['type']}{target}{export}")
        lines.append("Findings:")
        for severity in SEVERITIES:
            for f in self.findings:
                if f.severity == severity:
                    lines.append(f"  {_MARK[severity]} {severity.upper():<7} [{f.check}] {f.message}")
                    if f.fix:
                        lines.append(f"      fix: {f.fix}")
        verdict = ("telemetry would be lost or duplicated (exit 1)" if self.exit_code
                   else "no problem that would lose or duplicate telemetry (exit 0)")
        lines.append(f"Result: {verdict}")
        return "\n".join(lines) + "\n"
