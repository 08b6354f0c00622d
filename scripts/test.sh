#!/usr/bin/env bash
# Run the test suite in .venv. Under CI=true a skipped test fails the run unless it is on the
# allow-list in tests/conftest.py, and scripts/check_ran.py fails the run unless the integration and
# collector tests really ran.
set -euo pipefail
cd "$(dirname "$0")/.."
report=.pytest-report.xml
status=0
.venv/bin/python -m pytest -p no:cacheprovider --junitxml="$report" "$@" || status=$?
if [ "${CI:-}" = "true" ] && [ "$status" -eq 0 ]; then
  .venv/bin/python scripts/check_ran.py "$report" || status=1
fi
exit "$status"
