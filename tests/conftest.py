"""Suite-wide rules.

Under CI=true a skipped test is a failure unless its node id matches SKIP_ALLOWED below: a component
that a test needs (uWSGI, the collector binary, wrk) must be installed by .ci/run, never skipped over.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Node-id substrings whose skips are acceptable in CI, each with the reason.
SKIP_ALLOWED: dict[str, str] = {}


def _skip_allowed(nodeid: str) -> bool:
    return any(part in nodeid for part in SKIP_ALLOWED)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and not _skip_allowed(item.nodeid):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is not allowed (see tests/conftest.py): {report.longrepr}"


@pytest.fixture(autouse=True)
def _reset_otel_showmax():
    """Leave every test with an unconfigured otel_showmax in this process."""
    yield
    try:
        from otel_showmax.testing import reset
    except ImportError:  # the core is not there yet
        return
    reset()


@pytest.fixture
def receiver():
    """A live OTLP/HTTP receiver on 127.0.0.1 in this process, counting raw records."""
    from otel_showmax.receiver import OTLPReceiver

    with OTLPReceiver() as r:
        yield r


@pytest.fixture
def blackhole():
    """A TCP listener that accepts connections and never answers: a blackholed collector."""
    from otel_showmax.receiver import Blackhole

    with Blackhole() as b:
        yield b
