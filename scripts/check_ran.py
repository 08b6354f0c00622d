"""After the suite in CI: fail unless the tests that matter really ran.

Reads the JUnit XML that scripts/test.sh asks pytest to write. A suite whose real-server tests were
deselected, skipped or never collected must not pass as green.

    check_ran.py REPORT               the full suite: integration and collector tests, and every guarantee test
    check_ran.py --guarantee REPORT   a matrix leg: every guarantee test (pytest -m guarantee) ran and passed
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

REQUIRED = {
    "tests.integration": 5,  # real gunicorn / uWSGI / gevent servers
    "tests.collector": 3,  # the collector binary built from collector/
    "tests.collector.test_tier": 9,  # the scale-out tier with Zipkin: sampling, span metrics, faults
    "tests.collector.test_tier_ui": 1,  # headless Chromium finds the demo's trace in Zipkin's UI
}
MIN_GUARANTEE = 20  # a floor, so that losing the marker from many tests cannot pass unnoticed


def passed_cases(path: str) -> set[tuple[str, str]]:
    """(classname, name) of every test case in the report that neither failed nor was skipped."""
    return {
        (case.get("classname", ""), case.get("name", ""))
        for case in ET.parse(path).getroot().iter("testcase")
        if all(case.find(tag) is None for tag in ("skipped", "failure", "error"))
    }


def guarantee_ids() -> list[str]:
    """Node ids of the tests marked guarantee, as this interpreter's pytest collects them."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "guarantee"],
        capture_output=True, text=True, check=False,
    ).stdout
    return [line for line in out.splitlines() if "::" in line and not line.startswith(("ERROR", "FAILED"))]


def junit_key(nodeid: str) -> tuple[str, str]:
    """tests/a/test_b.py::Class::test_c[x] -> ("tests.a.test_b.Class", "test_c[x]"), as junitxml names it."""
    path, *parts = nodeid.split("::")
    return ".".join([path.removesuffix(".py").replace("/", "."), *parts[:-1]]), parts[-1]


def check_guarantee(path: str) -> int:
    ids = guarantee_ids()
    ran = passed_cases(path)
    missing = [i for i in ids if junit_key(i) not in ran]
    print(f"check_ran: guarantee: {len(ids) - len(missing)} of {len(ids)} tests ran and passed")
    if len(ids) < MIN_GUARANTEE:
        print(f"check_ran: only {len(ids)} tests are marked guarantee (at least {MIN_GUARANTEE})", file=sys.stderr)
        return 1
    if missing:
        print("check_ran: guarantee tests that did not run or did not pass:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    return 0


def check_full(path: str) -> int:
    ran: dict[str, int] = dict.fromkeys(REQUIRED, 0)
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            continue
        classname = case.get("classname", "")
        for prefix in REQUIRED:
            if classname == prefix or classname.startswith(prefix + "."):  # a package or module, not a name prefix
                ran[prefix] += 1
    missing = {k: (ran[k], n) for k, n in REQUIRED.items() if ran[k] < n}
    for prefix, count in ran.items():
        print(f"check_ran: {prefix}: {count} tests ran")
    if missing:
        print(f"check_ran: too few tests ran (ran, required): {missing}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--guarantee"]:
        return check_guarantee(argv[1])
    return check_full(argv[0]) | check_guarantee(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
