"""``fleetctl release SERIAL``: undo an approval that never became a thing."""

from __future__ import annotations

import typer

from fleetctl import device_removal
from fleetctl.commands.options import JsonFlag, SerialArgument, stack_of
from fleetctl.output import print_steps


def release(ctx: typer.Context, serial: SerialArgument, json_output: JsonFlag = False) -> None:
    """Undo an approval that never became a thing (PENDING for over an hour), so the device can retry."""
    print_steps(serial, device_removal.release(stack_of(ctx).for_serial(serial), serial), json_output)
