"""``fleetctl report``: the fleet's provisioning by region."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from fleetctl.commands.options import JsonFlag, stack_of
from fleetctl.fleet_report import Window, fleet_report
from fleetctl.output import print_json, print_line, print_table


def report(
    ctx: typer.Context,
    hours: Annotated[
        int, typer.Option(min=1, max=24 * 63, help="The hook's approvals and denials of the last HOURS.")
    ] = 24,
    json_output: JsonFlag = False,
) -> None:
    """Each region of the fleet: its devices by state and by claim certificate (the registry), and its
    hook's approvals and denials of the last HOURS (the region's CloudWatch)."""
    stack = stack_of(ctx)
    found = fleet_report(stack, Window.until(hours, datetime.now(UTC)))
    if json_output:
        print_json(found)
        return
    rows = [
        {
            "region": each["region"],
            "approved": each["approved"],
            "denied": each["denied"],
            "devices": ", ".join(f"{state} {count}" for state, count in each["devices"].items()) or "-",
            "claims": ", ".join(
                f"{claim[:12]}… {count}" for claim, count in each["claimCertificates"].items()
            )
            or "-",
        }
        for each in found["regions"]
    ]
    columns = [
        ("region", "Region"),
        ("approved", f"Approved ({hours} h)"),
        ("denied", f"Denied ({hours} h)"),
        ("devices", "Devices by state"),
        ("claims", "Devices by claim certificate"),
    ]
    print_table(f"Fleet {found['fleet'] or '-'} (registry in {found['registryRegion']})", columns, rows)
    print_line(f"{found['preregistered']} serial(s) pre-registered, not provisioned yet")
    for region, counts in found["otherRegions"].items():
        print_line(f"{region}: {sum(counts.values())} device(s) of a region whose outputs were not given")
