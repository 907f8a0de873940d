"""A fleet's stack outputs: one ``pulumi stack output --json`` document per region's stack, given as
repeated ``--outputs FILE`` or as a directory of them (``docs/global-fleet.md``).

The documents must describe one fleet: each names its own region once, and all name the same fleet and
registry region, whose document is among them (its table and rules are the fleet's)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleetctl.errors import UsageProblem
from program.outputs import StackOutput

Outputs = Mapping[str, object]


def read_fleet(paths: Sequence[Path]) -> tuple[Outputs, dict[str, Outputs]]:
    """The registry region's outputs (those of the only document, when one is given) and every document
    by its region. A directory stands for the ``*.json`` files in it."""
    files = [each for path in paths for each in _files(path)]
    documents = [(path, read_outputs(path)) for path in files]
    if len(documents) == 1:
        [(_, only)] = documents
        region = only.get(StackOutput.REGION)
        return only, ({region: only} if isinstance(region, str) and region else {})
    by_region: dict[str, Outputs] = {}
    for path, document in documents:
        region = _text(path, document, StackOutput.REGION)
        if region in by_region:
            raise UsageProblem(
                f"stack outputs {path}: region {region} is given twice; expected one per region"
            )
        by_region[region] = document
    first_path, first = documents[0]
    for field in (StackOutput.FLEET_NAME, StackOutput.REGISTRY_REGION):
        expected = _text(first_path, first, field)
        for path, document in documents[1:]:
            if _text(path, document, field) != expected:
                raise UsageProblem(
                    f"stack outputs {path}: {field} {document[field]!r}, but {first_path} has {expected!r}; "
                    "expected the outputs of one fleet's stacks"
                )
    registry_region = str(first[StackOutput.REGISTRY_REGION])
    if registry_region not in by_region:
        raise UsageProblem(
            f"no stack outputs of the registry region {registry_region} among "
            f"{', '.join(sorted(by_region))}; expected one --outputs FILE for every region of the fleet, "
            "the registry region's included"
        )
    return by_region[registry_region], by_region


def read_outputs(path: Path) -> Outputs:
    """One stack's outputs: the JSON object ``pulumi stack output --json`` prints."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UsageProblem(f"cannot read stack outputs {path}: {error}") from error
    except ValueError as error:
        raise UsageProblem(
            f"stack outputs {path} are not JSON ({error}); expected `pulumi stack output --json`"
        ) from error
    if not isinstance(document, dict):
        raise UsageProblem(f"stack outputs {path}: expected a JSON object, got {type(document).__name__}")
    return document


def _files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("*.json"))
    if not files:
        raise UsageProblem(f"stack outputs directory {path} holds no *.json file; expected one per region")
    return files


def _text(path: Path, document: Outputs, field: StackOutput) -> str:
    value = document.get(field)
    if not isinstance(value, str) or not value:
        raise UsageProblem(
            f"stack outputs {path}: no {field}; with several --outputs each must be a fleet stack's "
            "`pulumi stack output --json`"
        )
    return value
