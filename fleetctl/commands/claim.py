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
    """Set a claim certificate INACTIVE in every region of the fleet that holds it, once the factory has
    moved to its replacement."""
    stack = stack_of(ctx)
    found = claim_certificates.fleet_claim_certificates(stack, certificate_id)
    active = [region.region for region, description in found if description["status"] == ACTIVE]
    if active and not yes:
        current = any(certificate_id == region.claim_certificate_id for region, _ in found)
        warning = (
            " It is the claim certificate the stack outputs name: new devices will stop provisioning."
            if current
            else ""
        )
        question = f"Deactivate claim certificate {certificate_id} in {', '.join(active)}?{warning}"
        if not typer.confirm(question, err=True):
            raise Declined(f"{certificate_id}: left {ACTIVE}")
    results = []
    for region, description in found:
        changed = claim_certificates.deactivate(region, description)
        results.append((region.region, "INACTIVE" if changed else description["status"], changed))
    print_claim_deactivation(certificate_id, results, json_output)
