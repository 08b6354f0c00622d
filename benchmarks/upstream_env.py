"""The upstream baseline's own virtualenv: benchmarks/.venv-upstream, without otel_showmax.

Two OpenTelemetry distros in one environment make ``opentelemetry-instrument`` pick an arbitrary
one, so the upstream configuration runs from a separate virtualenv that holds none of this
package. The OpenTelemetry packages are **unpinned**: the baseline is always the newest upstream
release (whatever ``pip install --upgrade`` resolves, including the packages newer releases bring
along, such as opentelemetry-exporter-http-transport); the server side (falcon, gevent, gunicorn)
is pinned to the main virtualenv's versions so only the telemetry differs. Created on first use
(``python benchmarks/upstream_env.py`` does it explicitly) and upgraded when older than
``MAX_AGE_S`` (or with ``BENCH_UPSTREAM_REFRESH=1``). ``versions()`` reports what was installed;
the runner records it with every result.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# BENCH_UPSTREAM_VENV: reuse one elsewhere (e.g. when running a snapshot of the tree).
VENV = Path(os.environ.get("BENCH_UPSTREAM_VENV") or HERE / ".venv-upstream")
MAX_AGE_S = 24 * 3600

#: Newest releases, always (pip --upgrade): the baseline to beat is upstream as a user installs it today.
NEWEST = (
    "opentelemetry-distro",
    "opentelemetry-sdk",
    "opentelemetry-api",
    "opentelemetry-exporter-otlp",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-falcon",
    "opentelemetry-instrumentation-wsgi",
    "opentelemetry-instrumentation-logging",
    "opentelemetry-util-http",
    "opentelemetry-semantic-conventions",
)
NEWEST_RESOLVED = tuple(n for n in NEWEST if n != "opentelemetry-instrumentation-falcon")
#: The server under test, as in the main virtualenv: only the telemetry may differ.
SERVER = ("falcon==4.4.0", "gevent==26.9.0", "gunicorn==27.0.1")
SPEC = "\n".join((*NEWEST, *SERVER))


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH: the runner points it at this tree (otel_showmax)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _base_python() -> str:
    # The interpreter the main virtualenv was made from, so both run the same CPython build.
    return getattr(sys, "_base_executable", None) or sys.executable


def python() -> Path:
    return VENV / "bin" / "python"


def versions(py: Path | None = None) -> dict[str, str]:
    """The installed opentelemetry-* (and server) distributions of that virtualenv: name -> version."""
    code = ("import importlib.metadata as m, json; print(json.dumps({d.metadata['Name'].lower(): d.version "
            "for d in m.distributions() if d.metadata['Name'].lower().startswith(('opentelemetry', 'falcon', "
            "'gevent', 'gunicorn', 'ddtrace', 'msgpack', 'protobuf'))}))")
    out = subprocess.run([str(py or python()), "-c", code], capture_output=True, text=True, check=True, cwd="/",
                         env=clean_env())
    found = dict(sorted(json.loads(out.stdout).items()))
    check = subprocess.run([str(py or python()), "-m", "pip", "check", "--disable-pip-version-check"],
                           capture_output=True, text=True, cwd="/", env=clean_env())
    if check.returncode:
        found["pip check"] = " | ".join(check.stdout.split("\n")).strip(" |")
    return found


def ensure(quiet: bool = True) -> Path:
    """Create or upgrade the upstream virtualenv to the newest releases; return its python."""
    stamp = VENV / ".newest-stamp"
    want = hashlib.sha256(SPEC.encode()).hexdigest()
    fresh = (python().exists() and stamp.exists() and stamp.read_text().strip() == want
             and time.time() - stamp.stat().st_mtime < MAX_AGE_S and os.environ.get("BENCH_UPSTREAM_REFRESH") != "1")
    if fresh:
        return python()
    print(f"benchmarks: creating/upgrading {VENV} (upstream baseline, newest releases)", file=sys.stderr, flush=True)
    if not python().exists():
        subprocess.run([_base_python(), "-m", "venv", str(VENV)], check=True)
    pip = [str(python()), "-m", "pip", "install", "--upgrade", "--disable-pip-version-check",
           *(["--quiet"] if quiet else [])]
    # Newest of everything but the Falcon instrumentation, resolved together (sdk/exporters 1.45.x,
    # contrib 0.66bN, opentelemetry-exporter-http-transport and -otlp-common as the exporters
    # require). The contrib packages are released in lock-step but not all of them every time: the
    # newest opentelemetry-instrumentation-falcon may pin an older opentelemetry-instrumentation /
    # semantic-conventions than the newest SDK requires, and pip then either backtracks the whole
    # set to old releases or fails. So it goes in last, newest, without its exact pins (``pip
    # check`` reports the mismatch; ``versions()`` records it). The runner's telemetry check
    # (one server span per request served) shows that it works.
    subprocess.run([*pip, *NEWEST_RESOLVED, *SERVER], check=True, env=clean_env())
    subprocess.run([*pip, "--no-deps", "opentelemetry-instrumentation-falcon"], check=True, env=clean_env())
    # Never let a stray otel_showmax (a second distro) into this environment.
    probe = subprocess.run(
        [str(python()), "-c", "import importlib.util,sys; sys.exit(importlib.util.find_spec('otel_showmax') is not None)"],
        cwd="/", env=clean_env(),
    )
    if probe.returncode != 0:
        raise RuntimeError(f"{VENV} can import otel_showmax; the upstream baseline must not")
    stamp.write_text(want + "\n")
    return python()


if __name__ == "__main__":
    print(ensure(quiet=False))
    print(json.dumps(versions(), indent=1))
