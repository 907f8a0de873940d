"""``fleetctl reprovision SERIAL``: let an ACTIVE device provision once more, for a while."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetctl import reprovision_grants
from fleetctl.commands.options import JsonFlag, SerialArgument, grant_reason, stack_of
from fleetctl.output import print_grant


def reprovision(
    ctx: typer.Context,
    *,
    serial: SerialArgument,
    reason: Annotated[
        str,
        typer.Option(
            callback=grant_reason, help="Why; stored as reprovisionReason (at most 256 characters)."
        ),
    ],
    window: Annotated[
        int,
        typer.Option(
            min=1,
            max=reprovision_grants.WINDOW_HOURS_MAX,
            metavar="HOURS",
            help="How long the grant lasts (1 to 72). Meanwhile anyone holding the claim certificate who "
            "knows the serial can use it: keep it short.",
        ),
    ] = reprovision_grants.WINDOW_HOURS_DEFAULT,
    allow_downgrade: Annotated[
        bool,
        typer.Option(
            "--allow-downgrade",
            help="Also admit a firmware older than the serial's recorded one (a device restored from an "
            "older factory image); without it such a request is denied as FirmwareDowngrade.",
        ),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Allow an ACTIVE device to provision once more with a new certificate (lost or wiped key), for a
    while, with its recorded firmware or a newer one; it keeps its thing and its old certificate is
    retired."""
    granted = reprovision_grants.grant(stack_of(ctx), serial, reason, window, allow_downgrade=allow_downgrade)
    print_grant(serial, window, granted, json_output)
