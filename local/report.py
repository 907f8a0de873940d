"""Plain-text tables for the demo: device outcomes, registry states, stack outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from local.fleet import Outcome
from local.manifest import APPROVED
from program.outputs import StackOutput

SECRET_OUTPUTS: Final = frozenset({StackOutput.CLAIM_PRIVATE_KEY})
_MAX_CELL: Final = 72


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned text table with a header rule."""
    cells = [[_cell(value) for value in row] for row in [headers, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def outcome_result(outcome: Outcome) -> str:
    """``APPROVED`` or the hook's rejection reason (``FirmwareTooOld``), else the error code."""
    if outcome.approved:
        return APPROVED
    return outcome.reason.split(":", 1)[0] if outcome.reason else outcome.error_code or "FAILED"


def outcomes_table(outcomes: Sequence[Outcome]) -> str:
    """One row per device: what it claimed, what was expected, what happened and why."""
    rows = []
    for outcome in outcomes:
        identity = outcome.device.identity
        result = outcome_result(outcome)
        detail = (
            outcome.provisioned.thing_name
            if outcome.approved and outcome.provisioned is not None
            else outcome.reason.split(": ", 1)[-1]
            if outcome.reason
            else outcome.error
        )
        rows.append(
            [
                identity.serial_number,
                identity.device_type,
                identity.firmware_version,
                outcome.device.expect,
                result,
                "ok" if result == outcome.device.expect else "UNEXPECTED",
                f"{outcome.seconds:.2f}",
                detail,
            ]
        )
    return table(["serial", "type", "firmware", "expected", "outcome", "check", "s", "thing / reason"], rows)


def registry_table(items: dict[str, dict[str, str]]) -> str:
    """The registry: one row per serial with its status, type and thing."""
    rows = [
        [
            serial,
            item.get("status", ""),
            item.get("deviceType", ""),
            item.get("thingName", ""),
            item.get("certificateId", "")[:12],
        ]
        for serial, item in sorted(items.items())
    ]
    return table(["serial", "status", "type", "thing", "certificate"], rows)


def outputs_table(outputs: dict[str, Any]) -> str:
    """The stack outputs, secrets hidden and long values summarised."""
    rows = []
    for name, value in sorted(outputs.items()):
        if name in SECRET_OUTPUTS:
            shown = "[secret]"
        elif isinstance(value, str) and "-----BEGIN" in value:
            shown = f"(PEM, {len(value)} characters)"
        elif isinstance(value, str) and "\n" in value:
            shown = (
                f"({value.count(chr(10)) + 1} lines; see below)"
                if name == "deploymentInstructions"
                else value
            )
        else:
            shown = str(value)
        rows.append([name, shown])
    return table(["output", "value"], rows)


def _cell(value: str) -> str:
    value = " ".join(str(value).split())
    return value if len(value) <= _MAX_CELL else value[: _MAX_CELL - 1] + "…"
