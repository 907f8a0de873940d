"""``fleetctl show SERIAL``: one device as the stack knows it."""

from __future__ import annotations

import typer

from fleetctl.commands.options import JsonFlag, SerialArgument, stack_of
from fleetctl.devices import describe_device
from fleetctl.output import print_device


def show(ctx: typer.Context, serial: SerialArgument, json_output: JsonFlag = False) -> None:
    """Show a device: registry item, thing and groups, certificates and their policies (those of the
    region where it provisioned, in a fleet)."""
    print_device(serial, describe_device(stack_of(ctx).for_serial(serial), serial), json_output)
