# Every target works alone on a fresh machine with Python 3.11: it creates .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# Two CPU workers match the CI machine; override with `make test PYTEST_WORKERS=auto`.
PYTEST_WORKERS ?= 2

.PHONY: install install-test demo test lint bench gpu-check clean

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
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q -p no:cacheprovider --durations=25

lint: install-test
	$(BIN)/ruff check cbrun tests bench

# Whole processes, cbrun against hand-written Keras, in turn; a few minutes (docs/speed.md).
bench: install
	$(BIN)/python bench/bench_whole.py

# On a machine with a GPU: one GPU, mixed precision, two GPUs mirrored; exact resume on each.
gpu-check: install
	$(BIN)/python bench/gpu_check.py

clean:
	rm -rf $(VENV) build *.egg-info
