# MedDAV: the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA_DIR ?= var
# Programs the tests drive, from Debian packages, as command:package: WebDAV
# clients, and headless Chromium with its WebDriver for the web pages.
CLIENTS := litmus:litmus rclone:rclone cadaver:cadaver chromium:chromium chromedriver:chromium-driver

.PHONY: run test install test-install clients lint typecheck pytest bench bench-scale soak fuzz conf clean help

help:
	@echo "make run    create .venv, install, initialise ./$(DATA_DIR) if needed, serve on 127.0.0.1:8080"
	@echo "make test   install test dependencies and clients, lint, type-check, run the test suite"
	@echo "make bench  compare MedDAV with plain wsgidav on loopback (see bench/README.md)"
	@echo "make bench-scale  latency of PROPFIND, path resolution and share checks at 1k, 10k and 100k files"
	@echo "make soak   10 minutes of mixed WebDAV, rclone and recipient-page traffic: errors, RSS and descriptors"
	@echo "make fuzz   the fuzzing and the model-based test of tests/security, long, new examples each run"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

# The tests also need the example plugin installed (docs/example_plugin): its entry point
# is how MedDAV finds a plugin, and its own tests run through MedDAV's pytest plugin
# (tests/integration/test_example_plugin.py).  After MedDAV, whose package it depends on.
$(VENV)/.test-installed: pyproject.toml docs/example_plugin/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/pip install --quiet -e docs/example_plugin
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

test-install: $(VENV)/.test-installed

run: install
	@test -f $(DATA_DIR)/meddav.toml || $(BIN)/meddav init --data-dir $(DATA_DIR)
	$(BIN)/meddav --config $(DATA_DIR)/meddav.toml serve

# Missing clients are installed with apt-get; one that cannot be installed makes
# its own test fail with the command to run, it never skips silently.
clients:
	@missing=""; for pair in $(CLIENTS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "installing test clients:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -q $$missing >/dev/null 2>&1 \
	    || { $$sudo apt-get update -q >/dev/null 2>&1 && $$sudo apt-get install -y -q $$missing >/dev/null; } \
	    || echo "could not install$$missing: the tests that need them will fail and say how to install them"; \
	fi

lint: test-install
	$(BIN)/ruff check .

typecheck: test-install
	$(BIN)/mypy

pytest: test-install clients
	$(BIN)/pytest

test: lint typecheck pytest

bench: test-install
	$(BIN)/python bench/run.py

bench-scale: test-install
	$(BIN)/python bench/scale.py --json bench/results/$$(date +%F)-scale.json

soak: test-install clients
	$(BIN)/python bench/soak.py --json bench/results/$$(date +%F)-soak.json

# The fuzzing and the model-based test of tests/security, long and with new examples at each run
# (make test runs them bounded and derandomized). FUZZ_EXAMPLES and MODEL_EXAMPLES set the lengths.
# About half an hour with these numbers.
FUZZ_EXAMPLES ?= 10000
MODEL_EXAMPLES ?= 300
fuzz: test-install
	MEDDAV_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -p no:cacheprovider --timeout=0 tests/security/test_fuzz.py
	MEDDAV_MODEL_EXAMPLES=$(MODEL_EXAMPLES) MEDDAV_MODEL_STEPS=60 \
	  $(BIN)/pytest -p no:cacheprovider --timeout=0 tests/security/test_model.py

# Regenerate the example configuration from the schema.
conf: install
	$(BIN)/meddav config example > conf/meddav.example.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info docs/example_plugin/*.egg-info
