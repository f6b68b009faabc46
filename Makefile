# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# The torch build is pinned in this constraints file, which every pip call below uses. For another
# build, give your own file (and, for a CUDA wheel, its index):
#   make test CONSTRAINTS=my-constraints.txt PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cu126"
CONSTRAINTS ?= constraints.txt
PIP_ARGS ?=
BIN := $(VENV)/bin
# pip is quiet unless it fails: its log is kept in .venv/pip.log and printed on failure.
PIP = $(BIN)/python -m pip install --quiet --constraint $(CONSTRAINTS) $(PIP_ARGS)
QUIET = >>$(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }

.PHONY: demo test lint bench figures clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip $(QUIET)

$(VENV)/.torch: $(CONSTRAINTS) | $(BIN)/python
	$(PIP) torch $(QUIET)
	touch $@

$(VENV)/.installed: pyproject.toml setup.py $(VENV)/.torch
	$(PIP) -e . $(QUIET)
	touch $@

$(VENV)/.installed-dev: pyproject.toml setup.py $(VENV)/.torch
	$(PIP) -e ".[dev]" $(QUIET)
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/descent demo

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/python -m pytest -n 2 -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks notebooks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/optim_step.py

# The README's gallery (docs/figures/), drawn from the code; committed, so kept under 2 MB in all.
figures: $(VENV)/.installed
	$(BIN)/python -m descent.gallery docs/figures

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
