"""``fleetctl export``: the registry's devices as CSV or JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetctl.commands.options import StatusOption, TypeOption, stack_of
from fleetctl.device_export import ExportFormat, export_devices
from fleetctl.output import print_error
from fleetctl.progress import progress as show_progress


def export(
    ctx: typer.Context,
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="CSV (fixed columns) or JSON lines.")
    ] = ExportFormat.CSV,
    status: StatusOption = None,
    device_type: TypeOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", dir_okay=False, help="Write to this file (complete or not at all) instead of stdout."
        ),
    ] = None,
) -> None:
    """Write the registry's devices, or those in a state and/or of a type, as CSV or JSON lines, streaming:
    a selection through the sharded indexes, the whole registry by a parallel scan."""
    records = stack_of(ctx).records
    with show_progress("exporting", None, unit="devices") as advance:
        count = export_devices(
            records, export_format, output, status=status, device_type=device_type, on_item=advance
        )
    print_error(f"{count} device(s) exported to {output or 'stdout'}")
