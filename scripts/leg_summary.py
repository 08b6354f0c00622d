"""One line for one leg of scripts/matrix.sh: leg, versions, result, test counts, seconds.

    leg_summary.py LEG RESULT SECONDS [REPORT]

Run with the leg's own interpreter, so that the versions are the ones the leg tested.
"""

from __future__ import annotations

import os
import platform
import sys
import xml.etree.ElementTree as ET
from importlib import metadata


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def counts(report: str) -> str:
    if not report or not os.path.exists(report):
        return "no test report"
    total = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in ET.parse(report).getroot().iter("testsuite"):
        for key in total:
            total[key] += int(suite.get(key, 0))
    passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return f"{passed} passed, {total['failures']} failed, {total['errors']} errors, {total['skipped']} skipped"


def main(leg: str, result: str, seconds: str, report: str = "") -> None:
    versions = (f"Python {platform.python_version()}, opentelemetry-sdk {version('opentelemetry-sdk')}, "
                f"instrumentation {version('opentelemetry-instrumentation')}, falcon {version('falcon')}")
    print(f"matrix: {leg:<11} | {versions} | {result.upper()} ({counts(report)}) | {seconds} s")


if __name__ == "__main__":
    main(*sys.argv[1:5])
