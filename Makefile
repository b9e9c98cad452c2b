# The two commands of the Quick start: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs (pinned by constraints.txt).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install services bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,embedded]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/connector demo

# Integration tests run against real Redis and PostgreSQL; scripts/ensure-services starts
# them when they are installed but down, and fails loudly when they cannot be reached.
# The suite runs on TEST_WORKERS processes (pytest-xdist): most of its time is spent waiting on real
# processes and services. Each worker starts a redis-server of its own, and the fault suite's tests stay
# together on one worker, which starts its deployment once (tests/conftest.py).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/ruff check .
	./scripts/ensure-services
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# The pipeline and receiver benchmarks run on the real Redis and PostgreSQL, like the integration tests.
bench: $(STAMP)
	./scripts/ensure-services
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache
