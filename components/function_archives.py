"""Each function's deployment package: the ``hook/`` modules its handler imports, and only the configuration
files it reads.

A function's archive is computed from the imports of its handler's module, followed through ``hook/``
(module-level and inside functions alike), so a change to ``fleetctl`` or to another function's module
leaves its archive, and so its code hash, the same: Pulumi updates only the functions whose code changed.
Powertools comes from its layer, boto3 and botocore from the runtime.

The archives hold sources, not bytecode: Lambda's code directory is read-only, so each cold start compiles
the modules it imports (about 25 ms for the hook's), but bytecode is tied to the interpreter's minor version
(PEP 3147's ``cpython-313`` tag) and this project cannot compile for the runtime's Python where it builds.
"""

from __future__ import annotations

import ast
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pulumi

from hook.contract import ACTIVATION_CONFIG_FILE_NAME, RULES_FILE_NAME

HOOK_DIR: Final = Path(__file__).resolve().parent.parent / "hook"
PACKAGE: Final = HOOK_DIR.name
_TYPE_CHECKING: Final = frozenset({"TYPE_CHECKING", "typing.TYPE_CHECKING"})
_FIXED_TIME: Final = (1980, 1, 1, 0, 0, 0)
"""Every entry's time in :func:`package_bytes`: the zip format's earliest, so a package's bytes depend on
its names and contents alone."""


@dataclass(frozen=True)
class FunctionCode:
    """One function's code: the module whose ``lambda_handler`` the runtime calls, and the configuration
    files (by name, beside the modules) that it reads."""

    module: str
    """The handler's module, ``hook.<name>``."""
    config_files: tuple[str, ...] = ()

    @property
    def handler(self) -> str:
        """The Lambda handler, as the runtime imports it from the package root. Renaming a module moves
        it: the provider sets the new handler before it uploads the new code, so invocations fail in
        between (docs/deploying.md, "Upgrading a deployed stack")."""
        return f"{self.module}.lambda_handler"


PRE_PROVISIONING: Final = FunctionCode(f"{PACKAGE}.pre_provisioning", (RULES_FILE_NAME,))
ACTIVATION: Final = FunctionCode(f"{PACKAGE}.activation", (ACTIVATION_CONFIG_FILE_NAME,))
STALE_APPROVALS: Final = FunctionCode(f"{PACKAGE}.stale_approvals")
CERTIFICATE_ROTATION: Final = FunctionCode(f"{PACKAGE}.certificate_rotation")
CERTIFICATE_RETIREMENT: Final = FunctionCode(f"{PACKAGE}.certificate_retirement")
CLAIM_BREAKER: Final = FunctionCode(f"{PACKAGE}.claim_breaker_trip")
FUNCTIONS: Final = (
    PRE_PROVISIONING,
    ACTIVATION,
    STALE_APPROVALS,
    CERTIFICATE_ROTATION,
    CERTIFICATE_RETIREMENT,
    CLAIM_BREAKER,
)


def imported_modules(module: str, source_dir: Path = HOOK_DIR) -> frozenset[str]:
    """``module`` and every module of the package it imports, directly or through another, read from the
    sources in ``source_dir``."""
    found: set[str] = set()
    waiting = [module]
    while waiting:
        name = waiting.pop()
        if name in found:
            continue
        found.add(name)
        waiting.extend(_package_imports(_source(name, source_dir)))
    return frozenset(found)


def archive_sources(code: FunctionCode, source_dir: Path = HOOK_DIR) -> dict[str, Path]:
    """The source files of ``code``'s archive, keyed by their path inside it (``hook/activation.py``)."""
    modules = imported_modules(code.module, source_dir) | {PACKAGE}
    return {_archive_path(name): _source(name, source_dir) for name in sorted(modules)}


def config_json(document: dict[str, Any]) -> str:
    """A configuration file's content: stable, sorted JSON."""
    return json.dumps(document, sort_keys=True, indent=2)


def function_archive(
    code: FunctionCode, config_files: Mapping[str, str], source_dir: Path = HOOK_DIR
) -> pulumi.AssetArchive:
    """``code``'s deployment package: its sources and, from ``config_files`` (file name -> content), the
    files it reads."""
    missing = sorted(set(code.config_files) - set(config_files))
    if missing:
        raise ValueError(f"{code.module} reads {', '.join(missing)}, which the stack does not generate")
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {
        name: pulumi.FileAsset(str(path)) for name, path in archive_sources(code, source_dir).items()
    }
    for file_name in code.config_files:
        assets[f"{PACKAGE}/{file_name}"] = pulumi.StringAsset(config_files[file_name])
    return pulumi.AssetArchive(assets)


def package_bytes(archive: pulumi.AssetArchive) -> bytes:
    """A zip file of an archive of file and text assets: entries in name order, each with one fixed time,
    so equal names and contents give equal bytes. The local deployer uploads it and the benchmarks measure
    it; on AWS the Pulumi engine zips the archive itself, from the same names and contents."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for path, asset in sorted(archive.assets.items()):
            if isinstance(asset, pulumi.FileAsset):
                content = Path(str(asset.path)).read_bytes()
            elif isinstance(asset, pulumi.StringAsset):
                content = str(asset.text).encode()
            else:
                raise TypeError(
                    f"asset {path} is a {type(asset).__name__}: only file and text assets are packaged"
                )
            package.writestr(zipfile.ZipInfo(path, _FIXED_TIME), content, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _package_imports(source: Path) -> set[str]:
    """The package's modules that ``source`` imports, at module level or inside a function; imports for
    type checkers only (``if TYPE_CHECKING:``) never run and do not count."""
    imported: set[str] = set()
    for node in _executed_nodes(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names if alias.name.startswith(f"{PACKAGE}."))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise ValueError(f"{source}: relative imports are not followed; import {PACKAGE}.<module>")
        elif isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            imported.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{PACKAGE}."):
            imported.add(str(node.module))
    return imported


def _executed_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (its ``else`` runs, and counts)."""
    for child in ast.iter_child_nodes(tree):
        executed: list[ast.AST] = [child]
        if isinstance(child, ast.If) and ast.unparse(child.test) in _TYPE_CHECKING:
            executed = list(child.orelse)
        for node in executed:
            yield node
            yield from _executed_nodes(node)


def _source(module: str, source_dir: Path) -> Path:
    """The source file of a module of the package (``hook`` itself is its ``__init__.py``)."""
    if module.split(".", maxsplit=1)[0] != PACKAGE:
        raise ValueError(f"{module} is not a module of {PACKAGE}")
    path = source_dir.parent / _archive_path(module)
    if not path.is_file():
        raise FileNotFoundError(f"{module}: no source {path}")
    return path


def _archive_path(module: str) -> str:
    """Where a module of the package lies, from the package's parent: ``hook/rules.py``."""
    parts = module.split(".")
    return "/".join(parts) + ("/__init__.py" if len(parts) == 1 else ".py")
