"""docs/receiver.md states the defaults the code has."""

from __future__ import annotations

import inspect
from pathlib import Path

from otel_showmax.receiver import OTLPGrpcReceiver, OTLPReceiver

DOC = Path(__file__).parent.parent.parent / "docs" / "receiver.md"


def documented_defaults() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[4] and cells[4][0].isdigit():
            for arg in (cells[1], cells[2]):
                if arg.startswith("`"):
                    rows[arg.strip("`")] = cells[4].split()[0]
    return rows


def test_every_limit_and_its_default_is_documented():
    documented = documented_defaults()
    for cls in (OTLPReceiver, OTLPGrpcReceiver):
        for name, param in inspect.signature(cls).parameters.items():
            if name.startswith("max_") or name in ("backlog", "request_timeout", "idle_timeout"):
                assert name in documented, f"{cls.__name__}({name}=...) is not in docs/receiver.md"
                assert float(documented[name]) == param.default, (name, documented[name], param.default)
