#!/usr/bin/env bash
# Install what the collector tier's browser test needs, when missing:
#   - Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) via apt-get
#     (root only; `apt-get update` first). No browser or driver is downloaded from anywhere else.
#   - selenium into the project's virtualenv, from tests/collector/requirements.txt.
# tests/collector/test_tier_ui.py runs this from its fixture; it exits non-zero with a clear message when
# it cannot install (not root, no apt-get), and the test then fails (it never skips).
#
#   collector/test-deps.sh [path/to/python]     (default: .venv/bin/python of this checkout)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY="${1:-$REPO/.venv/bin/python}"
say() { echo "collector/test-deps.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium and chromium-driver"
    # One apt run at a time on this machine (other jobs may be installing too).
    exec 8>/tmp/otel-showmax-apt.lock
    command -v flock >/dev/null 2>&1 && flock 8
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq chromium chromium-driver >/dev/null || die "apt-get install chromium chromium-driver failed"
  else
    die "chromium and chromium-driver are missing: apt-get install chromium chromium-driver (as root)"
  fi
fi
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || die "/usr/bin/chromium or /usr/bin/chromedriver still missing"

[ -x "$PY" ] || die "no Python at $PY (run make bootstrap first)"
if ! "$PY" -c 'import selenium' 2>/dev/null; then
  say "installing $(grep -v '^#' "$REPO/tests/collector/requirements.txt" | xargs) into $("$PY" -c 'import sys; print(sys.prefix)')"
  "$PY" -m pip install --quiet -r "$REPO/tests/collector/requirements.txt" >&2 || die "pip install -r tests/collector/requirements.txt failed"
fi
