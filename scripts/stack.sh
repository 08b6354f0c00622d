#!/usr/bin/env bash
# make stack: the collector tier on 127.0.0.1 for a person to look at -- Zipkin (web UI), two tier
# gateways (tail sampling, span metrics), a tier agent (trace-ID load balancing) and the catalogue
# example sending traces through them. Prints the Zipkin UI URL and the trace ids of a few requests
# (from the storefront's request log); Ctrl-C stops everything it started.
#
#   scripts/stack.sh [--sampling-percentage N] [--requests N] [--no-wait]
#
# Builds what is missing first (collector/build.sh: both distributions and the Zipkin jar, cached).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "stack: run 'make bootstrap' first" >&2; exit 1; }
collector/build.sh
# The stack's orchestration is shared with the collector tests (tests/collector/_tier.py).
exec .venv/bin/python -m tests.collector._tier "$@"
