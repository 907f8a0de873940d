# The README's two commands: `make demo` (the whole flow on the local emulator) and `make test` (every check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test install lint typecheck unit e2e demo bench clean

test: lint typecheck unit e2e

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

unit: $(STAMP)
	$(BIN)/pytest -m "not e2e"

e2e: $(STAMP)
	$(BIN)/pytest -m e2e tests/e2e

demo: $(STAMP)
	$(BIN)/python -m local.demo

bench: $(STAMP)
	$(BIN)/python bench/hook_bench.py
	$(BIN)/python bench/program_bench.py
	$(BIN)/python bench/e2e_bench.py

clean:
	rm -rf $(VENV) .venv-ministack .pytest_cache .mypy_cache .ruff_cache .hypothesis
