# Two entry points: `make run` (the main job) and `make test` (every check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running needs, and (for `make test`) the test and benchmark tools besides.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck contracts pytest browser browser-deps bench clean
# Debian's Chromium drives the dashboard's browser tests (Playwright cannot
# download its own browsers here).
CHROMIUM ?= /usr/bin/chromium

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/sz serve

test: lint typecheck contracts pytest browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

# In a process of their own: Playwright's event loop must not meet AnyIO's tests.
browser: $(STAMP) browser-deps
	SZ_CHROMIUM=$(CHROMIUM) $(BIN)/pytest tests/browser

browser-deps:
	@test -x $(CHROMIUM) || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else \
			echo "the browser tests need Chromium at $(CHROMIUM): as root, apt-get install chromium (or make CHROMIUM=/path/to/chromium)" >&2; exit 1; \
		fi; }

bench: $(STAMP)
	$(BIN)/python -m benchmarks.actors
	$(BIN)/python -m benchmarks.chaos
	$(BIN)/python -m benchmarks.dispatch
	$(BIN)/python -m benchmarks.governors
	$(BIN)/python -m benchmarks.store
	$(BIN)/python -m benchmarks.transport
	$(BIN)/python -m benchmarks.web

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
