"""Every entry-point mix exports exactly one record per log call and one span per span.

Each scenario runs as its own process against a real OTLP/HTTP receiver on 127.0.0.1. Zero is
as wrong as two. The naive-helper scenario is the negative control: the seed's bug with upstream
OpenTelemetry, which this test must see as three records per call.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

APP = Path(__file__).parents[1] / "scenarios" / "entry_app.py"
BIN = Path(sys.executable).parent
N = 20


def run(scenario: str, endpoint: str, wrapper: bool, extra_env: dict[str, str] | None = None):
    env = {
        **os.environ,
        "SCENARIO": scenario,
        "N": str(N),
        "OTEL_SERVICE_NAME": "entry-points",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        **(extra_env or {}),
    }
    cmd = [sys.executable, str(APP)]
    if wrapper:
        cmd = [str(BIN / "opentelemetry-instrument"), *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


SCENARIOS = [
    ("setup", False, {}),
    ("wrapper-alone", True, {}),
    ("wrapper+setup", True, {}),
    ("wrapper+sdk-logging+setup", True, {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}),
    ("setup+dictconfig", False, {}),
    ("setup+basicconfig", False, {}),
    ("get_logger", False, {}),
]


@pytest.mark.guarantee
@pytest.mark.parametrize(("scenario", "wrapper", "env"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_exactly_one_record_per_log_call(receiver, scenario, wrapper, env):
    done = run(scenario, receiver.endpoint, wrapper, env)
    assert done.returncode == 0, done.stderr
    assert receiver.wait_for(spans=N, logs=N, timeout=15)
    logs = [r for r in receiver.logs if r["scope"] == "scenario"]
    spans = [s for s in receiver.spans if s["name"].startswith("op-")]
    assert Counter(r["body"] for r in logs) == Counter(f"message {i}" for i in range(N))
    assert Counter(s["name"] for s in spans) == Counter(f"op-{i}" for i in range(N))
    # Each record carries the trace and span id of the span it was written in.
    span_ids = {s["name"]: (s["trace_id"], s["span_id"]) for s in spans}
    for record in logs:
        i = record["body"].split()[-1]
        assert (record["trace_id"], record["span_id"]) == span_ids[f"op-{i}"]
    # Nothing else arrives later (e.g. a second pipeline flushing at exit).
    assert not receiver.wait_for(logs=len(receiver.logs) + 1, timeout=0.5)


def test_negative_control_the_seed_bug_is_seen(receiver):
    done = run("naive-helper", receiver.endpoint, wrapper=False)
    assert done.returncode == 0, done.stderr
    assert receiver.wait_for(logs=3 * N, timeout=15)
    logs = [r for r in receiver.logs if r["scope"] == "scenario"]
    assert Counter(r["body"] for r in logs) == Counter({f"message {i}": 3 for i in range(N)})


def test_wrapper_fails_fast_on_invalid_settings():
    env = {**os.environ, "SCENARIO": "wrapper-alone", "OTEL_TRACES_SAMPLER": "sometimes"}
    done = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(APP)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "OTEL_TRACES_SAMPLER='sometimes'" in done.stderr
    assert "parentbased_always_on" in done.stderr
