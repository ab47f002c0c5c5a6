# The two commands a newcomer needs: `make up` (the course) and `make test` (everything, as CI).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_PROJECTS := $(sort $(wildcard apps/*/pyproject.toml))

.PHONY: help up test venv tools test-deps lint format unit e2e clean

help:
	@echo "make up         check the machine, pick (or start) a training cluster, run the first lab"
	@echo "make test       lint + every test, the embedded-cluster end-to-end ones included (= CI)"
	@echo "make tools      build kubectl, helm, the control plane, kwok and (Linux) the real node's"
	@echo "                binaries and images into the cache"
	@echo "make test-deps  install what the tests need from Debian (RabbitMQ, Chromium, buildah, ...)"
	@echo "make lint       ruff check + format check;  make format  to fix"

# One virtualenv for the tool and every app (each app still has its own pyproject for its image).
$(VENV)/.installed: pyproject.toml $(APP_PROJECTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' $(foreach p,$(APP_PROJECTS),-e '$(dir $(p))[test]')
	touch $@

venv: $(VENV)/.installed

up: venv
	$(BIN)/kubelab up

tools: venv
	$(BIN)/python tools/build_k8s.py
	$(BIN)/python -m kubelab.embedded.node

test-deps: venv
	$(BIN)/python scripts/test_deps.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: venv
	$(BIN)/pytest -m "not e2e"

e2e: venv tools
	$(BIN)/pytest -m e2e

# --durations: the slowest tests (each lab end to end among them) in the log, for the run-time
# figures the course keeps an eye on
test: venv test-deps tools lint
	$(BIN)/pytest --durations=40

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache reports
