#!/usr/bin/env bash
# Run the test suite in .venv. Under CI=true a skipped test fails the run unless it is on the
# allow-list in tests/conftest.py, and the integration tests must have run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
