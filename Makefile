# Two entry points: `make run` (the main job) and `make test` (every check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running needs, and (for `make test`) the test and benchmark tools besides.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck contracts pytest browser browser-deps postgresql-deps netns-deps bench clean
# Debian's Chromium drives the dashboard's browser tests (Playwright cannot
# download its own browsers here).
CHROMIUM ?= /usr/bin/chromium
# The PostgreSQL store's tests and benchmark start a throwaway server from
# Debian's binaries (sz/store/pgserver.py; SZ_PG_BIN names another folder).
PG_BIN ?= $(or $(SZ_PG_BIN),$(shell pg_config --bindir 2>/dev/null),/usr/lib/postgresql/15/bin)

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

pytest: $(STAMP) postgresql-deps netns-deps
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

# As root, installs Debian's PostgreSQL server when its binaries are missing;
# otherwise the tests that need it are skipped, saying why.
postgresql-deps:
	@test -x $(PG_BIN)/initdb || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
		else \
			echo "the PostgreSQL store's tests need PostgreSQL's server at $(PG_BIN): as root, apt-get install postgresql (or SZ_PG_BIN=/path/to/bin); they are skipped meanwhile" >&2; \
		fi; }

# As root, installs iproute2 when `ip` is missing: the network-partition test
# (tests/sz/remote/test_partition.py) makes network namespaces with it; without
# root it is skipped, saying why.
netns-deps:
	@command -v ip >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; \
		else \
			echo "the network-partition test needs root and iproute2's ip: it is skipped" >&2; \
		fi; }

bench: $(STAMP) postgresql-deps
	$(BIN)/python -m benchmarks.actors
	$(BIN)/python -m benchmarks.chaos
	$(BIN)/python -m benchmarks.cluster
	$(BIN)/python -m benchmarks.dispatch
	$(BIN)/python -m benchmarks.governors
	$(BIN)/python -m benchmarks.scenarios
	$(BIN)/python -m benchmarks.store
	$(BIN)/python -m benchmarks.transport
	$(BIN)/python -m benchmarks.web

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
