# AgentPort developer entry points. `make run` / `make test` need no external NATS or PostgreSQL:
# when NATS_URL / DATABASE_URL are unset, embedded servers are started from the installed wheels.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

# First interpreter >= 3.11 on PATH; override with `make PYTHON=/path/to/python3.x install`.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; \
	then command -v $$p; break; fi; done)

.PHONY: help install run test lint fmt bench chaos clean

help:
	@echo "targets: install run test lint fmt bench chaos clean  (make test PYTEST_ARGS='-m \"not embedded\"')"
	@echo "  chaos: fault rounds under load (kill -9 each service, NATS/PostgreSQL outages, NATS store loss)"

install: $(STAMP)

$(VENV_PY):
	@if [ -z "$(PYTHON)" ]; then echo "error: Python >= 3.11 not found; use make PYTHON=/path/to/python3.11" >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV_PY)
	$(VENV_PY) -m pip install -q -e '.[dev]'
	@touch $@

run: install
	$(VENV)/bin/agentport serve all

test: install
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(VENV_PY) -m bench

# Starts its own nats-server and PostgreSQL (it stops them on purpose); NATS_URL / DATABASE_URL are not used.
chaos: install
	$(VENV_PY) -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache tests/artifacts
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
