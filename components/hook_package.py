"""The hook's deployment package: the ``hook/`` sources plus the rules file generated from settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import pulumi

from hook.contract import RULES_FILE_NAME

HOOK_DIR: Final = Path(__file__).resolve().parent.parent / "hook"
PACKAGE: Final = HOOK_DIR.name
HANDLER: Final = f"{PACKAGE}.handler.lambda_handler"
"""The Lambda handler, as the runtime imports it from the package root."""


def hook_sources() -> dict[str, Path]:
    """Every source file of the hook, keyed by its path inside the package (``hook/handler.py``, ...)."""
    return {
        f"{PACKAGE}/{path.relative_to(HOOK_DIR).as_posix()}": path for path in sorted(HOOK_DIR.rglob("*.py"))
    }


def rules_json(rules: dict[str, Any]) -> str:
    """The rules file's content: stable, sorted JSON."""
    return json.dumps(rules, sort_keys=True, indent=2)


def hook_archive(rules: dict[str, Any]) -> pulumi.AssetArchive:
    """The function's code: the hook sources and ``hook/rules.json``. Powertools comes from its layer."""
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {
        name: pulumi.FileAsset(str(path)) for name, path in hook_sources().items()
    }
    assets[f"{PACKAGE}/{RULES_FILE_NAME}"] = pulumi.StringAsset(rules_json(rules))
    return pulumi.AssetArchive(assets)
