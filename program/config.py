"""Reading stack config into :class:`~program.settings.Settings`: from the Pulumi engine when the program
runs, or from a ``Pulumi.<stack>.yaml`` file for the tests and the local deployer.

Either way the config is first what Pulumi stores: full keys (``aws:region``,
``iot-fleet-provisioning:deviceTypes``), every value a string, structured values as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pulumi
import yaml
from pulumi.runtime import config as pulumi_config
from pydantic import ValidationError

from program.settings import PROJECT, Settings, SettingsError

PROJECT_DIR: Final = Path(__file__).resolve().parent.parent
"""Where ``Pulumi.yaml`` and the stack files are."""
CONFIG_KEYS: Final = tuple(
    str(field.alias) for name, field in Settings.model_fields.items() if name not in {"stack", "region"}
)
"""Project config keys, as declared in ``Pulumi.yaml``."""
_TEXT_KEYS: Final = frozenset(
    str(field.alias) for field in Settings.model_fields.values() if field.annotation is str
)
"""Keys whose values are used as text; the others are parsed as JSON, as Pulumi stores structured values."""
_MOVED_KEYS: Final = {
    "claimCsr": "moved: give each generation its own CSR, e.g. claimCertificates: [{name: '1', csr: ...}]"
}
"""Keys of earlier versions, with where their setting went."""


def read_stack_file(stack: str, directory: Path = PROJECT_DIR) -> dict[str, str]:
    """The config of ``Pulumi.<stack>.yaml`` as Pulumi stores it: full keys, structured values as JSON."""
    document = yaml.safe_load((directory / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in document["config"].items()
    }


def program_values(config: Mapping[str, Any]) -> dict[str, str]:
    """The keys of a stack config that the program reads: its own without the project namespace, and
    ``aws:region``."""
    return {
        key.removeprefix(f"{PROJECT}:"): str(value)
        for key, value in config.items()
        if key.startswith(f"{PROJECT}:") or key == "aws:region"
    }


def decode(values: Mapping[str, str]) -> dict[str, Any]:
    """Values as the program reads them: text settings as they are, the others parsed where they are JSON."""
    return {key: text if key in _TEXT_KEYS else _json_or_text(text) for key, text in values.items()}


def parse_settings(values: Mapping[str, str], stack: str) -> Settings:
    """Validate the program's values (:func:`program_values`). Raises :class:`SettingsError` listing every
    problem."""
    problems: list[str] = []
    if "aws:region" not in values:
        problems.append("aws:region is not set; set it with `pulumi config set aws:region us-east-1`")
    try:
        settings = Settings.model_validate({"stack": stack, **decode(values)})
    except ValidationError as error:
        problems.extend(_describe(problem, values) for problem in error.errors())
    if problems:
        raise SettingsError("invalid stack config:\n  " + "\n  ".join(problems))
    return settings


def settings_from_config(config: Mapping[str, str], stack: str) -> Settings:
    """The settings the program derives from a stack's config as Pulumi stores it."""
    return parse_settings(program_values(config), stack)


def load_settings() -> Settings:
    """Read this stack's config once and validate it; raises :class:`SettingsError` before any resource."""
    everything = {**pulumi_config.get_config_env(), **pulumi_config.CONFIG.get()}  # CLI env, or mocks
    return settings_from_config(everything, pulumi.get_stack())


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _describe(problem: Any, values: Mapping[str, str]) -> str:
    location = [str(part) for part in problem["loc"]]
    key = location[0] if location else "config"
    where = ".".join(location) if key == "aws:region" else f"{PROJECT}:{'.'.join(location)}"
    message = str(problem["msg"]).removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message = f"not a known setting (a typo?); known settings: {', '.join(CONFIG_KEYS)}"
        if key in _MOVED_KEYS:
            message = _MOVED_KEYS[key]
    return f"{where} = {values.get(key, '(unset)')}: {message}" if location else message
