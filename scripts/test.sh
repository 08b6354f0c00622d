#!/usr/bin/env bash
# Run the test suite in .venv (or $VENV; arguments go to pytest). Under CI=true a skipped test fails
# the run unless it is on the allow-list in tests/conftest.py, and scripts/check_ran.py fails the run
# unless the tests that matter really ran: $CHECK_RAN is "full" (integration, collector and guarantee
# tests; the default) or "guarantee" (a matrix leg: the guarantee tests).
set -euo pipefail
cd "$(dirname "$0")/.."
# System tools the suite uses: wrk (load tests) and openssl (the collector tests' CA). Installed
# here when missing and we can (root with apt-get), so `make test` works on a fresh machine too.
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test: please install ${missing[*]} (e.g. apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
VENV=${VENV:-.venv}
report=${REPORT:-.pytest-report.xml}
status=0
"$VENV/bin/python" -m pytest -p no:cacheprovider --junitxml="$report" "$@" || status=$?
if [ "${CI:-}" = "true" ] && [ "$status" -eq 0 ]; then
  if [ "${CHECK_RAN:-full}" = guarantee ]; then
    "$VENV/bin/python" scripts/check_ran.py --guarantee "$report" || status=1
  else
    "$VENV/bin/python" scripts/check_ran.py "$report" || status=1
  fi
fi
exit "$status"
