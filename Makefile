# The README's two commands: `make demo` (the whole flow on the local emulator) and `make test` (every check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test install lint typecheck unit e2e demo sandbox bench clean aws-acceptance

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
	$(BIN)/pytest -n 2 tests/unit tests/stack tests/property bench

e2e: $(STAMP)
	$(BIN)/pytest -m e2e tests/e2e

demo: $(STAMP)
	$(BIN)/python -m local.scenario.demo

# The emulator with the local stack, until Ctrl-C; docs/sandbox-tour.md.
sandbox: $(STAMP)
	$(BIN)/python -m local.scenario.sandbox_run

# Not part of `make test`: deploys a throwaway stack on AWS (needs the Pulumi CLI and AWS credentials), runs
# the e2e scenario against it and destroys it. README.md, "Acceptance run on AWS".
aws-acceptance: $(STAMP)
	@test -n "$(STACK)" || { echo "usage: make aws-acceptance STACK=<new stack name> [ARGS='--region eu-west-1 ...']"; exit 2; }
	$(BIN)/python -m local.acceptance.aws_runner --stack "$(STACK)" $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.hook_bench
	$(BIN)/python -m bench.program_bench
	$(BIN)/python -m bench.e2e_bench
	$(BIN)/python -m bench.capacity
	$(BIN)/python -m bench.rotation_bench
	$(BIN)/python -m bench.fleet_bench
	$(BIN)/python -m bench.package_bench

clean:
	rm -rf $(VENV) .venv-ministack .pytest_cache .mypy_cache .ruff_cache .hypothesis
