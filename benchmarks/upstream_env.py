"""The upstream baseline's own virtualenv: benchmarks/.venv-upstream, without otel_showmax.

Two OpenTelemetry distros in one environment make ``opentelemetry-instrument`` pick an arbitrary
one, so the upstream configuration runs from a separate virtualenv holding the same pinned
versions as the main one and none of this package. Created on first use (``python
benchmarks/upstream_env.py`` does it explicitly); re-created when the pin list changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# BENCH_UPSTREAM_VENV: reuse one elsewhere (e.g. when running a snapshot of the tree).
VENV = Path(os.environ.get("BENCH_UPSTREAM_VENV") or HERE / ".venv-upstream")

#: The same versions as the main virtualenv (see BENCHMARKS.md).
PINS = (
    "opentelemetry-distro==0.66b1",
    "opentelemetry-sdk==1.45.1",
    "opentelemetry-api==1.45.1",
    "opentelemetry-exporter-otlp==1.45.1",
    "opentelemetry-exporter-otlp-proto-http==1.45.1",
    "opentelemetry-exporter-otlp-proto-grpc==1.45.1",
    "opentelemetry-instrumentation==0.66b1",
    "opentelemetry-instrumentation-falcon==0.66b1",
    "opentelemetry-instrumentation-wsgi==0.66b1",
    "opentelemetry-instrumentation-logging==0.66b1",
    "falcon==4.4.0",
    "gevent==26.9.0",
    "gunicorn==27.0.1",
)


def _base_python() -> str:
    # The interpreter the main virtualenv was made from, so both run the same CPython build.
    return getattr(sys, "_base_executable", None) or sys.executable


def python() -> Path:
    return VENV / "bin" / "python"


def ensure(quiet: bool = True) -> Path:
    """Create or refresh the upstream virtualenv; return its python."""
    want = hashlib.sha256("\n".join(PINS).encode()).hexdigest()
    stamp = VENV / ".pins-stamp"
    if python().exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python()
    print(f"benchmarks: creating {VENV} (upstream baseline, pinned versions)", file=sys.stderr, flush=True)
    if not python().exists():
        subprocess.run([_base_python(), "-m", "venv", str(VENV)], check=True)
    pip = [str(python()), "-m", "pip", "install", "--disable-pip-version-check"] + (["--quiet"] if quiet else [])
    subprocess.run([*pip, *PINS], check=True)
    # Never let a stray otel_showmax (a second distro) into this environment.
    probe = subprocess.run(
        [str(python()), "-c", "import importlib.util,sys; sys.exit(importlib.util.find_spec('otel_showmax') is not None)"],
        cwd="/",
    )
    if probe.returncode != 0:
        raise RuntimeError(f"{VENV} can import otel_showmax; the upstream baseline must not")
    stamp.write_text(want + "\n")
    return python()


if __name__ == "__main__":
    print(ensure(quiet=False))
