# mmrlaif: `make demo` runs the main job, `make test` the default test suite.
# Both create .venv and install what they need on a fresh machine (Python 3.11 only).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/tiny_cpu.yaml
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: install install-dev demo test test-all lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: the CPU build; an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/mmrlaif demo --config $(CONFIG)

test: install-dev
	$(BIN)/python -m pytest -q

test-all: install-dev
	$(BIN)/python -m pytest -q -m ""

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .ruff_cache
