"""The hook's deployment package: the ``hook/`` sources plus the rules file generated from settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import pulumi

HOOK_DIR: Final = Path(__file__).resolve().parent.parent / "hook"
PACKAGE: Final = HOOK_DIR.name
HOOK_HANDLER: Final = f"{PACKAGE}.handler.lambda_handler"
ACTIVATION_HANDLER: Final = f"{PACKAGE}.activation.lambda_handler"
STALE_APPROVALS_HANDLER: Final = f"{PACKAGE}.stale_approvals.lambda_handler"
ROTATION_HANDLER: Final = f"{PACKAGE}.rotation.lambda_handler"
CERTIFICATE_RETIREMENT_HANDLER: Final = f"{PACKAGE}.certificate_retirement.lambda_handler"
"""The Lambda handlers, as the runtime imports them from the package root."""


def hook_sources() -> dict[str, Path]:
    """Every source file of the hook, keyed by its path inside the package (``hook/handler.py``, ...)."""
    return {
        f"{PACKAGE}/{path.relative_to(HOOK_DIR).as_posix()}": path for path in sorted(HOOK_DIR.rglob("*.py"))
    }


def config_json(document: dict[str, Any]) -> str:
    """A configuration file's content: stable, sorted JSON."""
    return json.dumps(document, sort_keys=True, indent=2)


def hook_archive(config_files: dict[str, str]) -> pulumi.AssetArchive:
    """The functions' code: the ``hook/`` sources and the given configuration files beside them.
    Powertools comes from its layer."""
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {
        name: pulumi.FileAsset(str(path)) for name, path in hook_sources().items()
    }
    for file_name, content in config_files.items():
        assets[f"{PACKAGE}/{file_name}"] = pulumi.StringAsset(content)
    return pulumi.AssetArchive(assets)
