# The two commands a new user needs:
#   make run   - the instrumented example service with telemetry visible (no collector needed)
#   make test  - the whole test suite (builds the collector first)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bootstrap collector bench lint clean
.PHONY: stack

bootstrap:
	@scripts/bootstrap.sh

run: bootstrap
	$(VENV)/bin/otel-showmax demo

collector:
	@collector/build.sh

test: bootstrap collector
	scripts/test.sh

# The collector tier (Zipkin UI, 2 gateways, an agent) with the catalogue example sending traces to it.
stack: bootstrap collector
	scripts/stack.sh

bench: bootstrap
	$(PY) benchmarks/run.py

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) collector/_build .pytest_cache
