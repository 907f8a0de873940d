"""``fleetctl claim status|suspend|resume|deactivate``: the claim certificate(s) and their breakers."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetctl import claim_certificates
from fleetctl.commands.options import JsonFlag, YesFlag, grant_reason, stack_of
from fleetctl.errors import Declined
from fleetctl.iot_reads import ACTIVE
from fleetctl.output import print_claim_breaker, print_claim_certificates, print_claim_deactivation
from hook.claim_breaker import BreakerState

_BreakerReason = Annotated[
    str,
    typer.Option("--reason", callback=grant_reason, help="Why; recorded on the breaker with who and when."),
]


def status(
    ctx: typer.Context,
    all_certificates: Annotated[
        bool,
        typer.Option("--all", help="Every certificate carrying the claim policy, not only the outputs' one."),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Status, age, expiry, breaker and devices approved through the claim certificate(s)."""
    rows = claim_certificates.claim_status(stack_of(ctx), include_all=all_certificates)
    print_claim_certificates(rows, json_output)


def deactivate(
    ctx: typer.Context, certificate_id: str, yes: YesFlag = False, json_output: JsonFlag = False
) -> None:
    """Set a claim certificate INACTIVE in every region of the fleet that holds it, once the factory has
    moved to its replacement."""
    stack = stack_of(ctx)
    stack.require_every_region("claim deactivate")
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


def suspend(
    ctx: typer.Context, certificate_id: str, reason: _BreakerReason, json_output: JsonFlag = False
) -> None:
    """Open a claim certificate's breaker: the hook denies its requests (ClaimSuspended); the certificate
    stays ACTIVE, and other generations keep provisioning."""
    row = claim_certificates.set_breaker(stack_of(ctx), certificate_id, BreakerState.SUSPENDED, reason)
    print_claim_breaker(row, json_output)


def resume(
    ctx: typer.Context, certificate_id: str, reason: _BreakerReason, json_output: JsonFlag = False
) -> None:
    """Close a claim certificate's breaker (tripped or suspended) and clear its count of the last hour:
    devices provision through it again."""
    row = claim_certificates.set_breaker(stack_of(ctx), certificate_id, BreakerState.CLOSED, reason)
    print_claim_breaker(row, json_output)
