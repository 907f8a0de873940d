"""Each function's package holds exactly the ``hook/`` modules its handler imports, only the configuration
files it reads, and does not change when code it does not import changes."""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from components.function_archives import (
    ACTIVATION,
    CERTIFICATE_RETIREMENT,
    CERTIFICATE_ROTATION,
    FUNCTIONS,
    HOOK_DIR,
    PRE_PROVISIONING,
    STALE_APPROVALS,
    FunctionCode,
    archive_sources,
    function_archive,
    imported_modules,
    package_bytes,
)
from hook import contract
from hook.contract import ACTIVATION_CONFIG_FILE_NAME, RULES_FILE_NAME

CONFIG_FILES = {RULES_FILE_NAME: '{"deviceTypes": {}}', ACTIVATION_CONFIG_FILE_NAME: "{}"}

IMPORTED = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
for name in json.loads(sys.argv[2]):  # imported inside functions: only when that code runs
    importlib.import_module(name)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] == "hook")))
"""
"""Run in a fresh interpreter that sees the unpacked package and the installed libraries only."""


def unpacked(code: FunctionCode, into: Path) -> set[str]:
    """Unpack ``code``'s package into ``into``; the modules it holds."""
    with zipfile.ZipFile(io.BytesIO(package_bytes(function_archive(code, CONFIG_FILES)))) as package:
        package.extractall(into)
        names = [name for name in package.namelist() if name.endswith(".py")]
    return {name.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for name in names}


def imported_inside_functions(package_dir: Path) -> list[str]:
    """The ``hook`` modules named by imports inside function bodies of the unpacked modules."""
    names = set()
    for source in (package_dir / "hook").glob("*.py"):
        for function in ast.walk(ast.parse(source.read_text())):
            if isinstance(function, ast.FunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hook."):
                        names.add(str(node.module))
    return sorted(names)


@pytest.mark.parametrize("code", FUNCTIONS, ids=lambda code: code.module)
def test_a_package_holds_every_module_its_function_imports_and_no_other(
    code: FunctionCode, tmp_path: Path
) -> None:
    held = unpacked(code, tmp_path)
    # No site processing: the project's editable install would otherwise find a module the package lacks.
    run = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-S", "-c", IMPORTED, code.module, json.dumps(imported_inside_functions(tmp_path))],
        env={
            "PYTHONPATH": f"{tmp_path}:{sysconfig.get_paths()['purelib']}",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 0, f"{code.module} imports a module its package lacks:\n{run.stderr}"
    imported = set(json.loads(run.stdout))
    assert not held - imported, f"{code.module}'s package carries modules it never imports: {held - imported}"


def test_every_module_of_hook_is_deployed_with_some_function() -> None:
    deployed = set().union(*(imported_modules(code.module) for code in FUNCTIONS))
    modules = {f"hook.{path.stem}" for path in HOOK_DIR.glob("*.py") if path.stem != "__init__"}

    assert modules - deployed == set(), "hook/ holds only the functions' code; operator code is fleetctl's"


def test_each_function_gets_the_hook_modules_of_its_own_job() -> None:
    hook = imported_modules(PRE_PROVISIONING.module)
    retirement = imported_modules(CERTIFICATE_RETIREMENT.module)

    assert {"hook.rules", "hook.registry_transitions", "hook.public_keys"} <= hook
    assert not {"hook.activation", "hook.certificate_rotation", "hook.certificate_retirement"} & hook
    assert retirement == {"hook.certificate_retirement", "hook.contract", "hook.runtime"}
    assert "hook.rules" not in imported_modules(ACTIVATION.module)  # imported for type checkers only
    assert "hook.rotation_requests" in imported_modules(CERTIFICATE_ROTATION.module)


def test_a_package_carries_only_the_configuration_files_its_function_reads() -> None:
    def files(code: FunctionCode) -> set[str]:
        return {name for name in function_archive(code, CONFIG_FILES).assets if not name.endswith(".py")}

    assert files(PRE_PROVISIONING) == {f"hook/{RULES_FILE_NAME}"}
    assert files(ACTIVATION) == {f"hook/{ACTIVATION_CONFIG_FILE_NAME}"}
    assert files(STALE_APPROVALS) == files(CERTIFICATE_ROTATION) == files(CERTIFICATE_RETIREMENT) == set()


@pytest.mark.parametrize("code", FUNCTIONS, ids=lambda code: code.module)
def test_a_package_carries_every_configuration_file_its_modules_read(code: FunctionCode) -> None:
    read = set()
    for source in archive_sources(code).values():
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("packaged_file"):
                read.add(getattr(contract, ast.unparse(node.args[1])))

    assert read == set(code.config_files), f"{code.module} reads {sorted(read)}"


def test_a_function_reading_a_file_the_stack_does_not_generate_is_refused() -> None:
    with pytest.raises(ValueError, match=rf"hook.pre_provisioning reads {RULES_FILE_NAME}"):
        function_archive(PRE_PROVISIONING, {ACTIVATION_CONFIG_FILE_NAME: "{}"})


def test_a_change_to_code_a_function_does_not_import_leaves_its_package_byte_for_byte_the_same(
    tmp_path: Path,
) -> None:
    sources = tmp_path / "hook"
    shutil.copytree(HOOK_DIR, sources, ignore=shutil.ignore_patterns("__pycache__"))

    def packages() -> dict[str, bytes]:
        return {
            code.module: package_bytes(function_archive(code, CONFIG_FILES, sources)) for code in FUNCTIONS
        }

    before = packages()
    assert packages() == before  # built twice from the same sources: the same bytes
    with (sources / "certificate_retirement.py").open("a") as edited:
        edited.write("\n# an edit of the retirement function only\n")
    after_retirement_edit = packages()
    with (sources / "contract.py").open("a") as edited:
        edited.write("\n# an edit of the contract every function imports\n")
    after_contract_edit = packages()

    changed = {module for module in before if after_retirement_edit[module] != before[module]}
    assert changed == {CERTIFICATE_RETIREMENT.module}
    assert all(after_contract_edit[module] != after_retirement_edit[module] for module in before)


def test_imports_for_type_checkers_only_are_left_out_and_imports_inside_functions_kept(
    tmp_path: Path,
) -> None:
    package = tmp_path / "hook"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "entry.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from hook import shared\n"
        "if TYPE_CHECKING:\n    from hook.typed import Thing\n"
        "def later():\n    from hook.lazy import thing\n"
    )
    for name in ("shared", "typed", "lazy"):
        (package / f"{name}.py").write_text("")

    assert imported_modules("hook.entry", package) == {"hook.entry", "hook.shared", "hook.lazy"}
