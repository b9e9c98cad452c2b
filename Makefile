# The commands of the Quick start: `make demo`, `make test` and `make test-fast`.
# Each creates .venv when missing and installs what it needs (pinned by constraints.txt).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install services bench screenshots clean

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
# The console's browser tests (tests/console) drive Debian's chromium; scripts/ensure-chromium installs it
# when missing (apt-get) and fails loudly when it cannot.
# The suite runs on TEST_WORKERS processes (pytest-xdist): most of its time is spent waiting on real
# processes and services. Each worker starts a redis-server of its own, and the fault suite's tests stay
# together on one worker, which starts its deployment once (tests/conftest.py).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/ruff check .
	./scripts/ensure-services
	./scripts/ensure-chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# The edit-test loop: the tests that need no Redis, PostgreSQL or processes (tests/conftest.py marks the others
# `services`), on one process, with a tenth of the property-test examples. Redis and PostgreSQL point at a
# closed port (1), so a test that needs them and is not marked fails here instead of passing unnoticed.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	TEST_REDIS_PORT=1 TEST_PG_ADMIN_URL=postgresql://postgres@127.0.0.1:1/test \
		$(BIN)/python -m pytest -p no:xdist -m "not services" --hypothesis-profile fast -q

# The README's console screenshots (docs/console/), taken by the console's browser tests.
screenshots: $(STAMP)
	./scripts/ensure-services
	./scripts/ensure-chromium
	CONSOLE_SCREENSHOTS=docs/console $(BIN)/python -m pytest -n 1 -q tests/console/test_console_browser.py tests/console/test_console_connect_browser.py

# The pipeline and receiver benchmarks run on the real Redis and PostgreSQL, like the integration tests.
bench: $(STAMP)
	./scripts/ensure-services
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache
