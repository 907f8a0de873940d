"""The ``fleetctl`` command line: arguments in, one call into the module that does the job, results out."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import Progress
from typer.core import TyperGroup

from fleetctl import lifecycle
from fleetctl.certificates import (
    ACTIVE,
    claim_certificate,
    claim_status,
    deactivate,
    expiring_certificates,
)
from fleetctl.context import AWS_CONCURRENCY, StackContext
from fleetctl.devices import describe_device
from fleetctl.errors import ExitCode, FleetctlError, UsageProblem
from fleetctl.manifest import HEADER, Manifest, read_manifest
from fleetctl.output import Columns, print_error, print_json, print_line, print_table
from fleetctl.registry import ImportOutcome, ImportResult
from fleetctl.registry import preregister as preregister_rows
from hook.contract import SERIAL_NUMBER_MAX_LENGTH, Attr, DeviceStatus
from hook.rules import is_valid_name


class _ReportingGroup(TyperGroup):
    """Reports fleetctl's errors and AWS errors as lines on stderr with their exit code, not a traceback."""

    def invoke(self, ctx: Any) -> Any:  # Any: Click's Context, which newer Typer versions vendor
        try:
            return super().invoke(ctx)
        except FleetctlError as error:
            print_error(str(error))
            raise typer.Exit(error.exit_code) from None
        except (ClientError, BotoCoreError) as error:
            print_error("AWS error: " + " ".join(str(error).split()))
            raise typer.Exit(ExitCode.AWS) from None


def _serial_number(value: str) -> str:
    if not (is_valid_name(value) and len(value) <= SERIAL_NUMBER_MAX_LENGTH):
        expected = f"1-{SERIAL_NUMBER_MAX_LENGTH} characters of A-Z a-z 0-9 : _ -"
        raise typer.BadParameter(f"{value!r} is not a serial number: expected {expected}")
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("must not be blank")
    return value.strip()


app = typer.Typer(
    cls=_ReportingGroup,
    no_args_is_help=True,
    add_completion=False,
)
claim_app = typer.Typer(no_args_is_help=True, help="The stack's claim certificate(s).")
certs_app = typer.Typer(no_args_is_help=True, help="Device certificates.")
app.add_typer(claim_app, name="claim")
app.add_typer(certs_app, name="certs")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
ReasonOption = Annotated[str, typer.Option(callback=_non_blank, help="Why; stored as revocationReason.")]
SerialArgument = Annotated[str, typer.Argument(callback=_serial_number, help="The device's serial number.")]

_DEVICE_COLUMNS: Columns = [
    (Attr.SERIAL_NUMBER, "Serial"),
    (Attr.STATUS, "Status"),
    (Attr.DEVICE_TYPE, "Type"),
    (Attr.MANUFACTURER, "Manufacturer"),
    (Attr.FIRMWARE_VERSION, "Firmware"),
    (Attr.LOCATION, "Location"),
    (Attr.UPDATED_AT, "Updated"),
]
_CERTIFICATE_COLUMNS: Columns = [
    ("certificateId", "Certificate"),
    ("status", "Status"),
    ("notAfter", "Expires"),
    ("daysLeft", "Days left"),
]
_ROW_COLUMNS: Columns = [("row", "Row"), ("serial", "Serial"), ("detail", "Detail")]


@app.callback()
def stack_options(
    ctx: typer.Context,
    *,
    outputs: Annotated[
        Path | None,
        typer.Option(
            envvar="FLEETCTL_OUTPUTS",
            exists=True,
            dir_okay=False,
            help="The JSON of `pulumi stack output --json`: table, template, region, rules, claim id.",
        ),
    ] = None,
    table: Annotated[str | None, typer.Option(help="Registry table name (instead of the outputs').")] = None,
    template: Annotated[
        str | None,
        typer.Option(help="Provisioning template name, <prefix>-<env>-fleet (instead of the outputs')."),
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (instead of the outputs').")] = None,
    rules: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Hook rules JSON file (instead of the outputs')."),
    ] = None,
) -> None:
    """Operate a fleet-provisioning stack, named by --outputs FILE or by flags: devices, their certificates
    and the claim certificate."""
    ctx.obj = StackContext.resolve(outputs, table=table, template=template, region=region, rules_file=rules)


@app.command()
def preregister(
    ctx: typer.Context,
    manifest: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help=f"CSV with the header {HEADER}.")
    ],
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows even when others are bad.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Import a factory manifest as PREREGISTERED. Nothing is written while a row is bad; existing serials
    are left as they are."""
    stack = _stack(ctx)
    parsed = read_manifest(manifest, stack.rules)
    if parsed.problems and not skip_invalid:
        raise UsageProblem(
            "\n".join(
                [
                    f"{manifest}: {len(parsed.problems)} bad row(s); nothing was written "
                    "(--skip-invalid imports the valid rows)",
                    *(f"{manifest} {problem}" for problem in parsed.problems),
                ]
            )
        )
    requests = [row.request for row in parsed.rows]
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("pre-registering", total=len(requests))
        results = preregister_rows(
            stack.records, requests, lambda: progress.advance(task), concurrency=AWS_CONCURRENCY
        )
    report = _import_report(parsed, results)
    if json_output:
        print_json(report)
        return
    print_line(
        f"{manifest}: {report['created']} created, {report['unchanged']} unchanged, "
        f"{len(report['conflicts'])} conflicting, {len(report['skipped'])} skipped"
    )
    _print_section("Conflicts (left as they are)", _ROW_COLUMNS, report["conflicts"])
    skipped_columns = [("row", "Row"), ("column", "Column"), ("detail", "Problem")]
    _print_section("Skipped rows", skipped_columns, report["skipped"])


@app.command("list")
def list_devices(
    ctx: typer.Context,
    status: Annotated[DeviceStatus | None, typer.Option(help="Only devices in this state.")] = None,
    device_type: Annotated[str | None, typer.Option("--type", help="Only devices of this type.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many devices.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """List devices through the registry's indexes (never a table scan), page by page."""
    devices = list(islice(_stack(ctx).records.devices(status, device_type), limit))
    if json_output:
        print_json(devices)
    else:
        print_table(f"{len(devices)} device(s)", _DEVICE_COLUMNS, devices)


@app.command()
def show(ctx: typer.Context, serial: SerialArgument, json_output: JsonFlag = False) -> None:
    """Show a device: registry item, thing and groups, certificates and their policies."""
    device = describe_device(_stack(ctx), serial)
    if json_output:
        print_json(device)
        return
    record = device["registry"] or {}
    attributes = [{"attribute": name, "value": record[name]} for name in sorted(record)]
    _print_section(f"Registry item of {serial}", [("attribute", "Attribute"), ("value", "Value")], attributes)
    things = [] if device["thing"] is None else [device["thing"]]
    thing_columns = [
        ("name", "Thing"),
        ("thingType", "Type"),
        ("groups", "Groups"),
        ("attributes", "Attributes"),
    ]
    _print_section("Thing", thing_columns, things)
    certificate_columns = [*_CERTIFICATE_COLUMNS, ("attachedToThing", "Attached"), ("policies", "Policies")]
    _print_section("Certificates", certificate_columns, device["certificates"])


@app.command()
def revoke(
    ctx: typer.Context, serial: SerialArgument, reason: ReasonOption, json_output: JsonFlag = False
) -> None:
    """Revoke a device: certificate REVOKED, policies and thing detached, registry REVOKED. Safe to re-run."""
    _print_steps(serial, lifecycle.revoke(_stack(ctx), serial, reason), json_output)


@app.command()
def release(ctx: typer.Context, serial: SerialArgument, json_output: JsonFlag = False) -> None:
    """Undo an approval that never became a thing (PENDING for over an hour), so the device can retry."""
    _print_steps(serial, lifecycle.release(_stack(ctx), serial), json_output)


@app.command()
def decommission(
    ctx: typer.Context,
    serial: SerialArgument,
    reason: ReasonOption = "decommissioned",
    keep_thing: Annotated[bool, typer.Option(help="Keep the thing in AWS IoT.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Retire a device for good: revoke, delete the thing, registry DECOMMISSIONED. Safe to re-run."""
    _print_steps(
        serial, lifecycle.decommission(_stack(ctx), serial, reason, keep_thing=keep_thing), json_output
    )


@claim_app.command("status")
def claim_status_command(
    ctx: typer.Context,
    all_certificates: Annotated[
        bool,
        typer.Option("--all", help="Every certificate carrying the claim policy, not only the outputs' one."),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Status, age, expiry and devices approved through the claim certificate(s)."""
    rows = claim_status(_stack(ctx), include_all=all_certificates)
    if json_output:
        print_json(rows)
        return
    columns = [
        *_CERTIFICATE_COLUMNS,
        ("current", "Current"),
        ("ageDays", "Age (days)"),
        ("devices", "Devices"),
    ]
    print_table("Claim certificates", columns, rows)


@claim_app.command("deactivate")
def claim_deactivate(
    ctx: typer.Context,
    certificate_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Set a claim certificate INACTIVE, once the factory has moved to its replacement."""
    stack = _stack(ctx)
    description = claim_certificate(stack, certificate_id)
    if description["status"] == ACTIVE and not yes:
        current = certificate_id == stack.claim_certificate_id
        warning = (
            " It is the claim certificate the stack outputs name: new devices will stop provisioning."
            if current
            else ""
        )
        if not typer.confirm(f"Deactivate claim certificate {certificate_id}?{warning}", err=True):
            print_error(f"{certificate_id}: left {ACTIVE}")
            raise typer.Exit(ExitCode.ABORTED)
    changed = deactivate(stack, description)
    if changed:
        print_error(
            f"{certificate_id}: record it in the stack config (its claimCertificates entry with "
            "active: false); the program never re-activates a claim certificate"
        )
    status = "INACTIVE" if changed else description["status"]
    if json_output:
        print_json({"certificateId": certificate_id, "status": status, "changed": changed})
    else:
        print_line(f"{certificate_id}: {status}" + ("" if changed else " already; nothing to do"))


@certs_app.command("expiring")
def certs_expiring(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=0, help="The window, in days from now.")] = 30,
    json_output: JsonFlag = False,
) -> None:
    """ACTIVE device certificates that expire within the window (or have expired), soonest first."""
    rows = expiring_certificates(_stack(ctx), days)
    if json_output:
        print_json(rows)
    else:
        columns = [*_CERTIFICATE_COLUMNS, ("things", "Things")]
        _print_section(f"Certificates expiring within {days} days", columns, rows)


def _stack(ctx: typer.Context) -> StackContext:
    return cast(StackContext, ctx.obj)


def _import_report(manifest: Manifest, results: list[ImportResult]) -> dict[str, Any]:
    """Counts of created and unchanged rows; conflicting and skipped rows by their line in the manifest."""
    line_of = {row.request.serial_number: row.line for row in manifest.rows}
    counts = Counter(result.outcome for result in results)
    conflicts = [
        {"row": line_of[result.serial], "serial": result.serial, "detail": result.detail}
        for result in results
        if result.outcome is ImportOutcome.CONFLICT
    ]
    return {
        "created": counts[ImportOutcome.CREATED],
        "unchanged": counts[ImportOutcome.UNCHANGED],
        "conflicts": sorted(conflicts, key=itemgetter("row")),
        "skipped": [
            {"row": problem.line, "column": problem.column, "detail": problem.message}
            for problem in manifest.problems
        ],
    }


def _print_section(title: str, columns: Columns, rows: list[dict[str, Any]]) -> None:
    if rows:
        print_table(title, columns, rows)
    else:
        print_line(f"{title}: none")


def _print_steps(serial: str, steps: list[lifecycle.Step], json_output: bool) -> None:
    if json_output:
        print_json({"serial": serial, "steps": [asdict(step) for step in steps]})
    elif steps:
        print_table(f"Changes to {serial}", [("action", "Action"), ("target", "Target")], map(asdict, steps))
    else:
        print_line(f"{serial}: nothing to do, already done")
