"""``fleetctl certs expiring``: device certificates close to expiry."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetctl.commands.options import JsonFlag, stack_of
from fleetctl.expiring_certificates import expiring_certificates
from fleetctl.output import print_expiring


def expiring(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=0, help="The window, in days from now.")] = 30,
    json_output: JsonFlag = False,
) -> None:
    """ACTIVE devices' certificates that expire within the window (or have expired), soonest first: found
    through the expiry the registry records, each confirmed with AWS IoT."""
    print_expiring(expiring_certificates(stack_of(ctx), days), days, json_output)
