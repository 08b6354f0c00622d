#!/usr/bin/env bash
# The test matrix, one leg after the other (never in parallel: the timing tests need the cores).
#   newest-full  the whole suite, integration and collector tests included, in .venv (newest versions)
#   py310        unit tests + guarantee tests on Python 3.10, newest versions, in .venv-py310
#   py313        the same on Python 3.13, in .venv-py313
#   oldest       the same on OpenTelemetry 1.40 / 0.61b0 and falcon 3.1.3 (tests/constraints/oldest.txt),
#                Python from $PYTHON (python3), in .venv-oldest
# Usage: scripts/matrix.sh [leg ...]   (every leg by default)
# A leg's virtualenv is rebuilt only when its interpreter, pyproject.toml, its constraints or this
# script change. Each leg prints one summary line; the exit status is 1 when any leg failed, after
# all of them ran. Under CI=true a missing interpreter fails its leg; elsewhere it skips it.
set -uo pipefail
cd "$(dirname "$0")/.."
ALL_LEGS=(newest-full py310 py313 oldest)
SELECTION='(not integration and not collector) or guarantee'
OLDEST=tests/constraints/oldest.txt

find_python() {  # find_python 3.10: the path of a python3.10 that runs, from PATH or pyenv's versions
  local c
  for c in $(command -v "python$1") \
           $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1" 2>/dev/null | sort -rV); do
    "$c" -c 'import sys' >/dev/null 2>&1 && { echo "$c"; return 0; }  # a pyenv shim may not run
  done
  return 1
}

pip_logged() {  # pip_logged VENV ARGS...: pip with its output in VENV/pip.log, the gist of it shown on failure
  local venv=$1
  shift
  "$venv/bin/pip" "$@" >>"$venv/pip.log" 2>&1 && return 0
  echo "matrix: pip $* failed (whole output in $venv/pip.log):" >&2
  grep -v -E '^ *(Looking in|Requirement already|Collecting|Downloading|Using cached|Obtaining|━|Installing|Checking|Getting|Preparing)' \
    "$venv/pip.log" | tail -15 >&2
  return 1
}

make_venv() {  # make_venv VENV PYTHON [CONSTRAINTS]: a fresh VENV with the checkout's dev extras
  local venv=$1 py=$2 cons=${3:-} want
  want=$({ "$py" -VV; cat pyproject.toml scripts/matrix.sh ${cons:+"$cons"}; } | sha256sum | cut -d' ' -f1)
  if [ -f "$venv/.matrix-stamp" ] && [ "$(cat "$venv/.matrix-stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
    echo "matrix: $venv is up to date"
    return 0
  fi
  rm -rf "$venv"
  "$py" -m venv "$venv" && pip_logged "$venv" install --upgrade pip || return 1
  if [ -n "$cons" ]; then
    # The pins first, then the checkout under the same constraints; check_pins.py checks nothing moved.
    pip_logged "$venv" install -r "$cons" || return 1
    "$venv/bin/pip" freeze > "$venv/.pins-freeze" || return 1
    pip_logged "$venv" install -e '.[dev]' -c "$cons" || return 1
  else
    pip_logged "$venv" install -e '.[dev]' || return 1
  fi
  echo "$want" > "$venv/.matrix-stamp"
}

extra_leg() {  # extra_leg LEG PYTHON [CONSTRAINTS]
  local venv=.venv-$1 status=0 start=$SECONDS selection=$SELECTION
  # On the oldest supported versions, the whole-service scenario too (gunicorn + gevent, 2 workers).
  [ -n "${3:-}" ] && selection="$SELECTION or scenario"
  make_venv "$venv" "$2" "${3:-}" || { echo "matrix: $1: installing into $venv failed (see above)" >&2; return 3; }
  echo "matrix: $1: $venv ready after $((SECONDS - start)) s"
  if [ -n "${3:-}" ]; then
    "$venv/bin/python" scripts/check_pins.py "$3" "$venv/.pins-freeze" || status=1
  fi
  # One round of the never-blocks load test instead of two: the budget of the whole CI run.
  NEVER_BLOCKS_ROUNDS=1 VENV=$venv REPORT=".pytest-report-$1.xml" CHECK_RAN=guarantee \
    scripts/test.sh -m "$selection" || status=1
  return "$status"
}

run_leg() {  # run_leg LEG: runs it, prints and records its summary line
  local leg=$1 start=$SECONDS result=passed py venv=.venv-$1 report=.pytest-report-$1.xml
  rm -f "$report"
  echo "matrix: $leg: starting"
  case $leg in
    newest-full)
      venv=.venv report=.pytest-report.xml
      rm -f "$report"
      { scripts/bootstrap.sh && collector/build.sh && scripts/test.sh; } || result=failed ;;
    py310 | py313)
      local version=3.${leg#py3}
      if py=$(find_python "$version"); then
        extra_leg "$leg" "$py"
        result=$(outcome $?)
      else
        echo "matrix: $leg: no working python$version on PATH nor in ${PYENV_ROOT:-$HOME/.pyenv}/versions" >&2
        result=skipped
        [ "${CI:-}" = true ] && result=failed
      fi ;;
    oldest)
      extra_leg oldest "${PYTHON:-python3}" "$OLDEST"
      result=$(outcome $?) ;;
  esac
  local line
  if [ -x "$venv/bin/python" ]; then
    line=$("$venv/bin/python" scripts/leg_summary.py "$leg" "$result" "$((SECONDS - start))" "$report")
  else
    line="matrix: $leg | no virtualenv | ${result^^} | $((SECONDS - start)) s"
  fi
  echo "$line"
  SUMMARY+=("$line")
  [ "$result" = passed ] || [ "$result" = skipped ]
}

outcome() {  # outcome STATUS: the word for extra_leg's exit status
  case $1 in 0) echo passed ;; 3) echo install-failed ;; *) echo failed ;; esac
}

legs=("$@")
[ ${#legs[@]} -gt 0 ] || legs=("${ALL_LEGS[@]}")
for leg in "${legs[@]}"; do
  [[ " ${ALL_LEGS[*]} " == *" $leg "* ]] || { echo "matrix: unknown leg '$leg' (legs: ${ALL_LEGS[*]})" >&2; exit 2; }
done
SUMMARY=()
status=0
for leg in "${legs[@]}"; do
  run_leg "$leg" || status=1
done
printf '%s\n' "${SUMMARY[@]}"
exit "$status"
