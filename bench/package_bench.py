"""Each function's deployment package, as the program declares it for a stack: zipped size, modules and
the source lines Lambda compiles at its cold start, beside the targets.

Run from the repository root::

    .venv/bin/python -m bench.package_bench [--stack dev] [--strict]

Targets: the pre-provisioning hook's package at most 40 KB (AWS IoT waits 5 seconds for it, and its cold
start pays for every module it carries); every other function's package smaller than the single package
all five shared before each function got its own (50,595 bytes, measured on the same stack).
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from typing import Final

from bench.figures import Figure, print_figures
from components.function_archives import FUNCTIONS, PRE_PROVISIONING, package_bytes
from tests.pulumi_mocks import deploy, stack_config

HOOK_TARGET_BYTES: Final = 40 * 1024
SHARED_PACKAGE_BYTES: Final = 50_595
"""The one package every function carried before, for the dev stack (``hook/*.py`` and both
configuration files), as the previous benchmark measured it."""


def packages(stack: str) -> dict[str, bytes]:
    """Each function's package by handler module, zipped by
    :func:`~components.function_archives.package_bytes`."""
    declared = deploy(stack_config(stack)).mocks.of_type("aws:lambda/function:Function")
    by_handler = {function.inputs["handler"]: function.inputs["code"] for function in declared}
    return {code.module: package_bytes(by_handler[code.handler]) for code in FUNCTIONS}


def figures(stack: str) -> list[Figure]:
    """One figure per function: its package's size against its target."""
    measured = []
    for module, package in packages(stack).items():
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            sources = [name for name in archive.namelist() if name.endswith(".py")]
            lines = sum(archive.read(name).count(b"\n") for name in sources)
        target = HOOK_TARGET_BYTES if module == PRE_PROVISIONING.module else SHARED_PACKAGE_BYTES
        measured.append(
            Figure(
                name=f"package {module.removeprefix('hook.')}",
                value=f"{len(package):,}",
                detail=f"bytes zipped; {len(sources)} modules, {lines:,} source lines",
                target=f"<= {target:,}",
                passed=len(package) <= target,
            )
        )
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev", help="stack whose config the program is built with")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    arguments = parser.parse_args(argv)
    return print_figures(figures(arguments.stack), strict=arguments.strict)


if __name__ == "__main__":
    sys.exit(main())
