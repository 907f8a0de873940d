"""Stack config as the Pulumi CLI writes and checks it: the ``pulumi config set-all --path`` arguments of the
runner's config, what the CLI stores for them, and the check ``pulumi up`` makes of stored values against
the types ``Pulumi.yaml`` declares.

The CLI's rules, from pulumi/pulumi: ``pkg/workspace/config.go`` ``validateStackConfigValue`` (a value
stored as a list or map is decoded from JSON, any other is text) with
``sdk/go/common/workspace/project.go`` ``ValidateConfigValue`` and ``InferFullTypeName``;
``sdk/go/common/resource/config/map.go`` ``Map.Set`` and ``object.go`` ``coerce`` for ``--path``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

_ITEM_KEY: Final = re.compile(r"(?P<key>[^\[\].]+)\[(?P<index>\d+)\]")
_INTEGER: Final = re.compile(r"[+-]?\d+")
"""What Go's ``strconv.Atoi`` accepts."""


@dataclass(frozen=True)
class DeclaredType:
    """A ``type`` (with its ``items``) that ``Pulumi.yaml`` declares for a config key."""

    type: str
    items: DeclaredType | None = None

    @property
    def name(self) -> str:
        """As the CLI names it in its error: ``string``, ``array<string>``."""
        return f"array<{self.items.name}>" if self.items is not None else self.type

    def accepts(self, value: Any) -> bool:
        """``ValidateConfigValue``: whether the CLI takes ``value`` (text, or decoded JSON) for this type."""
        if self.type == "string":
            return isinstance(value, str)
        if self.type == "integer":
            if isinstance(value, str):
                return _INTEGER.fullmatch(value) is not None
            return not isinstance(value, bool) and isinstance(value, int | float) and value == int(value)
        if self.type == "boolean":
            return value in ("true", "false") or isinstance(value, bool)
        if self.type == "object":
            return isinstance(value, dict)
        items = self.items
        return isinstance(value, list) and items is not None and all(items.accepts(item) for item in value)


def _declared(declaration: Mapping[str, Any]) -> DeclaredType:
    items = declaration.get("items")
    return DeclaredType(str(declaration["type"]), _declared(items) if isinstance(items, Mapping) else None)


def declared_types(project_file: Path) -> dict[str, DeclaredType]:
    """The config keys ``Pulumi.yaml`` gives a ``type``, in full (``<project>:<key>``), with their types."""
    project = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    return {
        key if ":" in key else f"{project['name']}:{key}": _declared(declaration)
        for key, declaration in (project.get("config") or {}).items()
        if isinstance(declaration, Mapping) and "type" in declaration
    }


@dataclass(frozen=True)
class Stored:
    """A config value as the CLI keeps it: its text, and whether it is a list or map (JSON text)."""

    text: str
    object: bool = False

    def content(self) -> Any:
        """What the CLI checks: the decoded JSON of a list or map, else the text."""
        return json.loads(self.text) if self.object else self.text


def set_all_arguments(config: Mapping[str, str], declared: Mapping[str, DeclaredType]) -> dict[str, str]:
    """``key=value`` pairs for ``pulumi config set-all --path`` that store ``config`` (values as Pulumi
    stores them: structured ones as JSON): a key declared an array gets one ``key[i]`` per item, which the
    CLI stores as a list; a JSON string there would be text, which ``up`` refuses. ``ValueError`` names a
    key that ``--path`` would misread, or an array key whose value is not a JSON list of text."""
    arguments: dict[str, str] = {}
    for key, value in config.items():
        if any(mark in key for mark in "[]."):
            raise ValueError(f"config key {key}: `--path` would read it as a path")
        kind = declared.get(key)
        if kind is None or kind.items is None:
            arguments[key] = value
            continue
        items = json.loads(value)
        if not (isinstance(items, list) and all(isinstance(item, str) for item in items)):
            raise ValueError(f"config key {key}: {value!r} is not a JSON list of text ({kind.name})")
        arguments |= {f"{key}[{index}]": item for index, item in enumerate(items)}
    return arguments


def _coerce(text: str) -> Any:
    """``coerce``: the CLI stores an item set by path as a boolean or integer when it reads as one."""
    if text in ("true", "false"):
        return text == "true"
    if len(text) > 1 and text.startswith("0"):
        return text
    return int(text) if _INTEGER.fullmatch(text) else text


def stored_by_path(arguments: Mapping[str, str]) -> dict[str, Stored]:
    """What ``pulumi config set-all --path --plaintext k=v ...`` stores, in order: a plain key its text, a
    ``key[i]`` item the next item of the list ``key`` (``ValueError`` for an index that skips one)."""
    values: dict[str, Stored] = {}
    lists: dict[str, list[Any]] = {}
    for key, text in arguments.items():
        item = _ITEM_KEY.fullmatch(key)
        if item is None:
            values[key] = Stored(text)
            continue
        items = lists.setdefault(item["key"], [])
        if int(item["index"]) != len(items):
            raise ValueError(f"config key {key}: the list has {len(items)} items")
        items.append(_coerce(text))
        values[item["key"]] = Stored(json.dumps(items, separators=(",", ":")), object=True)
    return values


def type_errors(stack: str, values: Mapping[str, Stored], declared: Mapping[str, DeclaredType]) -> list[str]:
    """The CLI's error for each stored value its declared type refuses, as ``pulumi up`` reports it."""
    return [
        f"Stack '{stack}' with configuration key '{key.split(':', 1)[1]}' must be of type '{kind.name}'"
        for key, kind in sorted(declared.items())
        if key in values and not kind.accepts(values[key].content())
    ]
