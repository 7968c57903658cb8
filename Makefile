# parcelwatch: `make run` to start the server, `make test` to check everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test audit lint typecheck pytest fuzz emulator bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

run: $(VENV)/.installed  ## create the venv, install, migrate and serve on 127.0.0.1:8080
	$(BIN)/parcelwatch db upgrade
	$(BIN)/parcelwatch serve --host $(HOST) --port $(PORT)

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium || \
		{ echo "make test needs Debian's chromium: apt-get install chromium (as root)" >&2; exit 1; }; \
	fi

test: $(VENV)/.installed-test chromium  ## lint, type-check and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PARCELWATCH_REQUIRE_BROWSER=1 $(BIN)/pytest
	$(BIN)/python .ci/audit.py

audit: $(VENV)/.installed-test  ## pip-audit the pinned dependencies (reported, not failing, when offline)
	$(BIN)/python .ci/audit.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test chromium
	PARCELWATCH_REQUIRE_BROWSER=1 $(BIN)/pytest

# Before a release: schemathesis with 20x the examples `make test` runs (set the PostgreSQL URL
# to fuzz that database too).
fuzz: $(VENV)/.installed-test  ## fuzz every API operation against its OpenAPI document
	PARCELWATCH_FUZZ_EXAMPLES=$${PARCELWATCH_FUZZ_EXAMPLES:-500} $(BIN)/pytest -p no:randomly tests/test_api_fuzz.py

emulator: $(VENV)/.installed  ## run the carrier emulator on 127.0.0.1:9000
	$(BIN)/parcelwatch emulator --port 9000

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache test-artifacts
