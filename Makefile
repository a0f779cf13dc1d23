# Every target works alone on a fresh machine with Python 3.11: it creates .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# Two CPU workers match the CI machine; override with `make test PYTEST_WORKERS=auto`.
PYTEST_WORKERS ?= 2

.PHONY: install install-test demo test lint bench clean

install: $(VENV)/.cbrun-installed
install-test: $(VENV)/.cbrun-test-installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.cbrun-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.cbrun-test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	touch $@ $(VENV)/.cbrun-installed

demo: install
	$(BIN)/cbrun train configs/digits.yaml

test: install-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q -p no:cacheprovider

lint: install-test
	$(BIN)/ruff check cbrun tests bench

bench: install
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) build *.egg-info
