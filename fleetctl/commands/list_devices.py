"""``fleetctl list``: devices, page by page."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetctl.commands.options import JsonFlag, StatusOption, TypeOption, stack_of
from fleetctl.output import print_devices


def list_devices(
    ctx: typer.Context,
    status: StatusOption = None,
    device_type: TypeOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many devices.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """List devices, page by page: by status or type through the registry's sharded indexes; with neither,
    the whole registry by a parallel scan."""
    print_devices(list(stack_of(ctx).records.devices(status, device_type, limit=limit)), json_output)
