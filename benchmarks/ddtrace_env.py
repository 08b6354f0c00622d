"""The ddtrace side-by-side configuration's own virtualenv: benchmarks/.venv-ddtrace.

ddtrace and OpenTelemetry's distro must not share an environment (both hook interpreter start-up),
and the ddtrace run must not see otel_showmax. This virtualenv holds the newest ``ddtrace``
(at least 4.16), ``msgpack`` for the stand-in agent (benchmarks/dd_agent.py runs with this
virtualenv's python) and the same server packages as the main virtualenv. Created on first use
(``python benchmarks/ddtrace_env.py`` does it explicitly), upgraded when older than a day or with
``BENCH_DDTRACE_REFRESH=1``; ``upstream_env.versions(ddtrace_env.python())`` reports what it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import upstream_env

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("BENCH_DDTRACE_VENV") or HERE / ".venv-ddtrace")
MAX_AGE_S = 24 * 3600
PACKAGES = ("ddtrace>=4.16", "msgpack", "packaging", *upstream_env.SERVER)  # packaging: gunicorn's gevent worker


def python() -> Path:
    return VENV / "bin" / "python"


def ensure(quiet: bool = True) -> Path:
    stamp = VENV / ".newest-stamp"
    want = hashlib.sha256("\n".join(PACKAGES).encode()).hexdigest()
    if (python().exists() and stamp.exists() and stamp.read_text().strip() == want
            and time.time() - stamp.stat().st_mtime < MAX_AGE_S and os.environ.get("BENCH_DDTRACE_REFRESH") != "1"):
        return python()
    print(f"benchmarks: creating/upgrading {VENV} (ddtrace, newest release)", file=sys.stderr, flush=True)
    if not python().exists():
        subprocess.run([upstream_env._base_python(), "-m", "venv", str(VENV)], check=True)
    pip = [str(python()), "-m", "pip", "install", "--upgrade", "--disable-pip-version-check"]
    subprocess.run([*pip, *(["--quiet"] if quiet else []), *PACKAGES], check=True, env=upstream_env.clean_env())
    probe = subprocess.run(
        [str(python()), "-c", "import importlib.util as u,sys; "
         "sys.exit(any(u.find_spec(m) is not None for m in ('otel_showmax', 'opentelemetry.distro')))"],
        cwd="/", env=upstream_env.clean_env(),
    )
    if probe.returncode != 0:
        raise RuntimeError(f"{VENV} can import otel_showmax or an OpenTelemetry distro; the ddtrace run must not")
    stamp.write_text(want + "\n")
    return python()


if __name__ == "__main__":
    print(ensure(quiet=False))
    print(json.dumps(upstream_env.versions(python()), indent=1))
