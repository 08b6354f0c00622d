# The two commands a new user needs:
#   make run   - the instrumented example service with telemetry visible (no collector needed)
#   make test  - the whole test suite (builds the collector first); under CI=true or with MATRIX=1
#                the other legs of the test matrix too (scripts/matrix.sh)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test matrix bootstrap collector bench lint clean
.PHONY: stack

bootstrap:
	@scripts/bootstrap.sh

run: bootstrap
	$(VENV)/bin/otel-showmax demo

collector:
	@collector/build.sh

# The whole suite on the newest versions (the matrix's newest-full leg): bootstrap, collector, pytest.
test:
	@if [ "$${CI:-}" = true ] || [ "$${MATRIX:-}" = 1 ]; then scripts/matrix.sh; else scripts/matrix.sh newest-full; fi

# Every leg: the whole suite, then unit + guarantee tests on Python 3.10, 3.13 and the oldest versions.
matrix:
	scripts/matrix.sh

# The collector tier (Zipkin UI, 2 gateways, an agent) with the catalogue example sending traces to it.
stack: bootstrap collector
	scripts/stack.sh

bench: bootstrap
	$(PY) benchmarks/run.py

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(VENV)-* collector/_build .pytest_cache
