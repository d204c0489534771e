# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The suite runs on two processes, a file's tests together (they share its servers). The fuzz
# test runs apart: under pytest-xdist its one test per operation collapses into a single test.
PARALLEL ?= -n 2 --dist loadfile

.PHONY: run test bench lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/realtime serve

test: install-test
	$(BIN)/ruff check realtime tests
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PARALLEL) --ignore=tests/test_fuzz.py $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

# `make bench BENCH_ARGS="--keep DIR"` keeps each step's JSON, to draw results.md again later.
bench: install-test
	$(BIN)/python bench/all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
