"""After the suite in CI: fail unless the integration and collector tests really ran.

Reads the JUnit XML that scripts/test.sh asks pytest to write. A suite whose real-server tests were
deselected, skipped or never collected must not pass as green.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

REQUIRED = {
    "tests.integration": 5,  # real gunicorn / uWSGI / gevent servers
    "tests.collector": 3,  # the collector binary built from collector/
    "tests.collector.test_tier": 9,  # the scale-out tier with Zipkin: sampling, span metrics, faults
    "tests.collector.test_tier_ui": 1,  # headless Chromium finds the demo's trace in Zipkin's UI
}


def main(path: str) -> int:
    cases = ET.parse(path).getroot().iter("testcase")
    ran: dict[str, int] = dict.fromkeys(REQUIRED, 0)
    for case in cases:
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
