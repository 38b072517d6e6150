# The few verbs a newcomer needs. Each installs what it needs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_DIR := build/node
AXE := $(NODE_DIR)/node_modules/axe-core/axe.min.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test check bench loadtest deps system-deps clean

run: $(STAMP)
	$(BIN)/python -m chatserver $(ARGS)

test: $(STAMP) system-deps $(AXE)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check chatserver matching tests loadtests
	$(BIN)/mypy

bench: $(STAMP) system-deps
	$(BIN)/python loadtests/bench.py --json build/bench/last.jsonl $(ARGS)

loadtest: $(STAMP) system-deps
	$(BIN)/python loadtests/run_locust.py $(ARGS)

deps: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# redis-server for the tests' own Redis, Chromium for the browser tests, valgrind for
# loadtests/instructions.py (and its smoke test).
system-deps:
	@command -v redis-server >/dev/null && command -v valgrind >/dev/null && \
	  [ -x /usr/bin/chromium ] && [ -x /usr/sbin/nginx ] || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq redis-server chromium nginx valgrind >/dev/null; }

$(AXE):
	mkdir -p $(NODE_DIR)
	npm install --silent --no-audit --no-fund --prefix $(NODE_DIR) axe-core@4

clean:
	rm -rf $(VENV) build
