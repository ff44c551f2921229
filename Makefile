# fxcrm: `make run` starts the demo, `make test` runs the suite. `make help` lists everything.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: help venv run test lint format bench clean chromium

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(STAMP) ## create .venv and install fxcrm with its test tools (again when pyproject.toml changes)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
	  { echo "could not create $(VENV); on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

run: venv ## migrate, load demo data, start worker + web; prints the URL and demo logins
	$(BIN)/fxcrm run

chromium: ## make sure Debian's chromium is installed (the browser tests drive it)
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "$(CHROMIUM) is missing and I may not install it. Run: sudo apt-get install -y chromium" >&2; exit 1; fi; \
	  echo "installing chromium with apt-get"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation </dev/null; \
	  [ -x $(CHROMIUM) ] || { echo "chromium install failed: $(CHROMIUM) still missing" >&2; exit 1; }; \
	fi

test: venv chromium ## run every test (unit, integration, browser) against real PostgreSQL
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: venv ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app

format: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv ## HTTP benchmark: staff home and client dashboard against a bare route (one worker)
	@if ! command -v wrk >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk </dev/null >/dev/null 2>&1 || \
	  { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk </dev/null >/dev/null; } || \
	  echo "wrk not installed; using the Python load generator"; \
	fi
	$(BIN)/python bench/http_bench.py

.PHONY: bench-clients
bench-clients: venv ## client list and 360 page on 1M clients / 5M events (loads fxcrm_bench_1m once, ~1 min)
	$(BIN)/python bench/gen_clients.py --reuse
	$(BIN)/python bench/clients_bench.py

.PHONY: bench-mt5
bench-mt5: venv ## MT5 sync: initial sync of 10k accounts / 1M deals vs raw COPY, then lag at 50 deals/s (~3 min)
	$(BIN)/python bench/mt5_sync_bench.py

.PHONY: bench-ledger
bench-ledger: venv ## ledger transfers/s with and without the audit record, and reconciliation of 1M postings (~3 min)
	$(BIN)/python bench/ledger_bench.py

clean: ## remove the venv and caches (keeps var/, where the embedded database and secret key live)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info build test-results
	find . -name __pycache__ -type d -prune -not -path './var/*' -exec rm -rf {} +
