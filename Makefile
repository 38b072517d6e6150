# The few verbs a newcomer needs. Each installs what it needs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_DIR := build/node
AXE := $(NODE_DIR)/node_modules/axe-core/axe.min.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

NATIVE := $(VENV)/.native

.PHONY: run test check bench loadtest deps native system-deps build-deps clean

# Without a compiler the server still starts, on its Python sources: a failed
# compile is reported and does not stop it.
run: $(STAMP)
	@$(MAKE) --no-print-directory native || \
	  echo "make run: the modules were not compiled (see above); running the Python sources"
	$(BIN)/python -m chatserver $(ARGS)

# HEARTH_EXPECT_NATIVE: tests/test_native.py fails if the compiled modules are not
# the ones that run.
test: system-deps $(NATIVE) $(AXE)
	HEARTH_EXPECT_NATIVE=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check chatserver matching tests loadtests
	$(BIN)/mypy

bench: system-deps $(NATIVE)
	$(BIN)/python loadtests/bench.py --json build/bench/last.jsonl $(ARGS)

loadtest: system-deps $(NATIVE)
	$(BIN)/python loadtests/run_locust.py $(ARGS)

deps: $(STAMP)

native: $(NATIVE)

$(STAMP): pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The hot modules compiled with mypyc (setup.py), again whenever a source of either
# package changed: a compiled module older than its package's sources is not used
# (matching/native.py). One to two minutes on two cores; it needs gcc and
# Python's headers.
# mypyc's incremental cache (build/mypyc) can crash a build after some edits
# ("ValueError: value is not in list"): a failed build is tried once more without it.
BUILD_NATIVE = HEARTH_NATIVE=1 $(BIN)/python setup.py -q build_ext --inplace --force -j 2
$(NATIVE): $(STAMP) setup.py $(wildcard chatserver/*.py matching/*.py)
	rm -f chatserver/*.so matching/*.so
	$(BUILD_NATIVE) || \
	  { echo "make native: building again without mypyc's cache"; rm -rf build/mypyc; \
	    $(BUILD_NATIVE); } || \
	  { rm -f chatserver/*.so matching/*.so; exit 1; }  # all or none: they expect each other
	touch $@

# redis-server for the tests' own Redis, Chromium for the browser tests, valgrind for
# loadtests/instructions.py (and its smoke test), openssl for a TLS Redis's certificate
# (tests/test_resp.py); gcc and Python's headers for the compiled modules (build-deps).
system-deps: build-deps
	@command -v redis-server >/dev/null && command -v valgrind >/dev/null && \
	  command -v openssl >/dev/null && \
	  [ -x /usr/bin/chromium ] && [ -x /usr/sbin/nginx ] || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq redis-server chromium nginx valgrind openssl >/dev/null; }

HEADERS_OK := import os, sys, sysconfig; \
  sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))
build-deps:
	@command -v gcc >/dev/null && $(PY) -c '$(HEADERS_OK)' || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq gcc python3-dev >/dev/null; }

$(AXE):
	mkdir -p $(NODE_DIR)
	npm install --silent --no-audit --no-fund --prefix $(NODE_DIR) axe-core@4

clean:
	rm -rf $(VENV) build chatserver/*.so
