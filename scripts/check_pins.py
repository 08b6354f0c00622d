"""Fail unless installing the checkout left the pre-installed pinned versions as they were.

    check_pins.py CONSTRAINTS FREEZE_BEFORE

scripts/matrix.sh installs the pins of CONSTRAINTS first, saves `pip freeze` (FREEZE_BEFORE), then
installs the checkout with its dev extras. Every pin must still be installed at its pinned version,
and no package of FREEZE_BEFORE may have changed version.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: str) -> dict[str, str]:
    """name -> version for each `name==version` line (comments and blank lines ignored)."""
    found = {}
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep:
                raise SystemExit(f"check_pins: {path}: not a == pin: {line!r}")
            found[canonical(name)] = version.strip()
    return found


def installed() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}


def main(constraints: str, freeze_before: str) -> int:
    now = installed()
    before: dict[str, str] = {}
    for line in Path(freeze_before).read_text(encoding="utf-8").splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            before[canonical(name)] = version
    problems = []
    for name, version in pins(constraints).items():
        if now.get(name) != version:
            problems.append(f"{name}: pinned {version}, installed {now.get(name, 'nothing')}")
    for name, version in before.items():
        if now.get(name) != version:
            problems.append(f"{name}: {version} before the checkout was installed, {now.get(name, 'nothing')} after")
    if problems:
        print("check_pins: installing the checkout changed the pre-installed versions:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        return 1
    print(f"check_pins: the {len(before)} pre-installed packages kept their versions ({constraints})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
