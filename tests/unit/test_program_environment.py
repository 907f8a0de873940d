"""The Pulumi program runs in the virtualenv ``pulumi install`` builds from ``requirements.txt``: the project
and its runtime dependencies, nothing of the dev extra and nothing only the Lambda runtime provides."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY_MODULES = {
    "aws-lambda-powertools": ["aws_lambda_powertools"],
    "moto": ["moto"],
    "pytest": ["pytest", "_pytest"],
    "pytest-xdist": ["xdist"],
    "hypothesis": ["hypothesis"],
    "ruff": ["ruff"],
    "mypy": ["mypy"],
    "boto3-stubs": ["mypy_boto3_dynamodb", "mypy_boto3_iot"],
    "pyyaml": [],  # the pulumi SDK itself requires PyYAML: it is in the program's environment
    "types-PyYAML": ["yaml-stubs"],
    "awsiotsdk": ["awsiot", "awscrt"],
    "policy_sentry": ["policy_sentry"],
}
"""The modules of each dev-extra distribution (aws-lambda-powertools is also what the Lambda layer brings)."""

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not in the program's environment")
        return None
sys.meta_path.insert(0, Block())
"""


def dev_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0]
        for requirement in project["optional-dependencies"]["dev"]
    }


def test_every_dev_dependency_is_classified() -> None:
    assert dev_distributions() == set(DEV_ONLY_MODULES)


def test_requirements_install_the_project_with_its_runtime_dependencies_only() -> None:
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == ["."]


def test_the_program_imports_without_the_dev_extra_or_the_lambda_runtime() -> None:
    blocked = sorted({module for modules in DEV_ONLY_MODULES.values() for module in modules})
    code = f"BLOCKED = {blocked!r}\n{BLOCKER}\nimport program.stack, program.settings, program.outputs\n"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_blocker_would_catch_a_dev_only_import() -> None:
    code = f"BLOCKED = ['aws_lambda_powertools']\n{BLOCKER}\nimport hook.activation\n"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "aws_lambda_powertools is not in the program's environment" in result.stderr
