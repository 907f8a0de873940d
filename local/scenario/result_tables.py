"""The demo's tables, laid out by Rich as plain text: device outcomes, registry states, stack outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from rich import box
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from hook.contract import Attr
from local.devices.fleet_runner import Outcome
from local.devices.sample_fleet import APPROVED, FleetDevice
from program.outputs import StackOutput

SECRET_OUTPUTS: Final = frozenset({StackOutput.CLAIM_PRIVATE_KEY})
_MAX_CELL: Final = 72
_WIDTH: Final = 1000
"""Of the console the tables are laid out on: wider than any of them (a cell is at most ``_MAX_CELL``), so
Rich never narrows a column or wraps a line; the terminal shows them as they are."""


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned text table with a header rule; each cell on one line, long ones cut with ``…``."""
    grid = Table(
        *(Column(header, max_width=_MAX_CELL, no_wrap=True, overflow="ellipsis") for header in headers),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for row in rows:
        grid.add_row(*(Text(" ".join(str(value).split())) for value in row))  # Text: never read as markup
    console = Console(width=_WIDTH, color_system=None, highlight=False)
    with console.capture() as captured:
        console.print(grid)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def outcome_result(outcome: Outcome) -> str:
    """``APPROVED`` or the hook's rejection reason (``FirmwareTooOld``), else the error code."""
    if outcome.approved:
        return APPROVED
    return outcome.reason.split(":", 1)[0] if outcome.reason else outcome.error_code or "FAILED"


def manifest_entry(device: FleetDevice) -> str:
    """How the factory manifest lists a device: ``public key`` (pre-registered with its secure element's
    key), ``row`` (pre-registered without a key), ``vendor chain`` (in none: zero-touch), or empty."""
    if not device.preregister:
        return "vendor chain" if device.vendor_chain is not None else ""
    return "public key" if device.element is not None else "row"


def outcomes_table(outcomes: Sequence[Outcome]) -> str:
    """One row per device: what it claimed, who made its key pair (``device ec-p256``: the device sent a CSR;
    ``secure element ec-p256``: its secure element holds the key and signed the CSR; ``aws``:
    CreateKeysAndCertificate), how the factory manifest pre-registered it, what was expected, what happened
    and why."""
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
                outcome.device.keys.label,
                manifest_entry(outcome.device),
                outcome.device.expect,
                result,
                "ok" if result == outcome.device.expect else "UNEXPECTED",
                f"{outcome.seconds:.2f}",
                detail,
            ]
        )
    return table(
        [
            "serial",
            "type",
            "firmware",
            "keys",
            "manifest",
            "expected",
            "outcome",
            "check",
            "s",
            "thing / reason",
        ],
        rows,
    )


def registry_table(items: dict[str, dict[str, str]]) -> str:
    """The registry: one row per serial with its status, type, thing, certificate and bound key (the first
    12 hex digits of each)."""
    rows = [
        [
            serial,
            item.get(Attr.STATUS, ""),
            item.get(Attr.DEVICE_TYPE, ""),
            item.get(Attr.THING_NAME, ""),
            item.get(Attr.CERTIFICATE_ID, "")[:12],
            item.get(Attr.PUBLIC_KEY_SHA256, "")[:12],
        ]
        for serial, item in sorted(items.items())
    ]
    return table(["serial", "status", "type", "thing", "certificate", "bound key"], rows)


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
                if name == StackOutput.DEPLOYMENT_INSTRUCTIONS
                else value
            )
        else:
            shown = str(value)
        rows.append([name, shown])
    return table(["output", "value"], rows)
