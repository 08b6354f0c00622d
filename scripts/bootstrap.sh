#!/usr/bin/env bash
# Create .venv and install otel_showmax with its dev extras. Re-runs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
stamp="$VENV/.bootstrap-stamp"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
# uWSGI builds from source: it needs a C compiler and Python headers.
if ! command -v cc >/dev/null 2>&1; then
  echo "bootstrap: a C compiler is needed to build uWSGI (apt-get install build-essential)" >&2
  exit 1
fi
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || { echo "bootstrap: Python >= 3.10 is required" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet -e ".[dev]"
echo "$want" > "$stamp"
echo "bootstrap: $VENV ready"
