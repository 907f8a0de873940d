"""``fleetctl claim status|deactivate``: the stack's claim certificate(s)."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetctl import claim_certificates
from fleetctl.commands.options import JsonFlag, YesFlag, stack_of
from fleetctl.errors import Declined
from fleetctl.iot_reads import ACTIVE
from fleetctl.output import print_claim_certificates, print_claim_deactivation


def status(
    ctx: typer.Context,
    all_certificates: Annotated[
        bool,
        typer.Option("--all", help="Every certificate carrying the claim policy, not only the outputs' one."),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Status, age, expiry and devices approved through the claim certificate(s)."""
    rows = claim_certificates.claim_status(stack_of(ctx), include_all=all_certificates)
    print_claim_certificates(rows, json_output)


def deactivate(
    ctx: typer.Context, certificate_id: str, yes: YesFlag = False, json_output: JsonFlag = False
) -> None:
    """Set a claim certificate INACTIVE, once the factory has moved to its replacement."""
    stack = stack_of(ctx)
    description = claim_certificates.claim_certificate(stack, certificate_id)
    if description["status"] == ACTIVE and not yes:
        current = certificate_id == stack.claim_certificate_id
        warning = (
            " It is the claim certificate the stack outputs name: new devices will stop provisioning."
            if current
            else ""
        )
        if not typer.confirm(f"Deactivate claim certificate {certificate_id}?{warning}", err=True):
            raise Declined(f"{certificate_id}: left {ACTIVE}")
    changed = claim_certificates.deactivate(stack, description)
    status_now = "INACTIVE" if changed else description["status"]
    print_claim_deactivation(certificate_id, status_now, changed, json_output)
