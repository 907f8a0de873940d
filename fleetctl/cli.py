"""The ``fleetctl`` command line: arguments in, one call into the module that does the job, results out."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import Progress
from typer.core import TyperGroup

from fleetctl import lifecycle, reprovision, rotation
from fleetctl.certificates import (
    ACTIVE,
    claim_certificate,
    claim_status,
    deactivate,
    expiring_certificates,
)
from fleetctl.context import AWS_CONCURRENCY, StackContext
from fleetctl.devices import SERIAL_NUMBER_FORM, describe_device, is_serial_number
from fleetctl.errors import ExitCode, FleetctlError, UsageProblem
from fleetctl.manifest import HEADER, Manifest, read_manifest
from fleetctl.output import Columns, print_error, print_json, print_line, print_table
from fleetctl.registry import ImportOutcome, ImportResult
from fleetctl.registry import preregister as preregister_rows
from hook.contract import Attr, DeviceStatus, RotationKeyAlgorithm
from hook.registry import SCAN_SEGMENTS


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
    if not is_serial_number(value):
        raise typer.BadParameter(f"{value!r} is not a serial number: expected {SERIAL_NUMBER_FORM}")
    return value


def _optional_serial_number(value: str | None) -> str | None:
    return None if value is None else _serial_number(value)


def _non_blank(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("must not be blank")
    return value.strip()


def _grant_reason(value: str) -> str:
    reason = _non_blank(value)
    if len(reason) > reprovision.REASON_MAX_LENGTH:
        raise typer.BadParameter(
            f"{len(reason)} characters; expected at most {reprovision.REASON_MAX_LENGTH}"
        )
    return reason


def _job_id(value: str | None) -> str | None:
    if value is not None and not rotation.is_job_id(value):
        raise typer.BadParameter(
            f"{value!r} is not an AWS IoT job id: expected 1-{rotation.JOB_ID_MAX_LENGTH} characters "
            "of a-z A-Z 0-9 _ -"
        )
    return value


app = typer.Typer(
    cls=_ReportingGroup,
    no_args_is_help=True,
    add_completion=False,
)
claim_app = typer.Typer(no_args_is_help=True, help="The stack's claim certificate(s).")
certs_app = typer.Typer(no_args_is_help=True, help="Device certificates.")
registry_app = typer.Typer(no_args_is_help=True, help="The registry table itself.")
app.add_typer(claim_app, name="claim")
app.add_typer(certs_app, name="certs")
app.add_typer(registry_app, name="registry")

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
    """List devices, page by page: by status or type through the registry's sharded indexes; with neither,
    the whole registry by a parallel scan."""
    devices = list(_stack(ctx).records.devices(status, device_type, limit=limit))
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


@app.command()
def rotate(
    ctx: typer.Context,
    *,
    serial: Annotated[
        str | None, typer.Argument(callback=_optional_serial_number, help="One device's serial number.")
    ] = None,
    device_type: Annotated[str | None, typer.Option("--type", help="Devices of this type.")] = None,
    older_than: Annotated[
        int | None,
        typer.Option(
            min=0,
            metavar="DAYS",
            help="Devices whose certificate is older than this: since the latest of rotatedAt, "
            "reprovisionedAt, approvedAt.",
        ),
    ] = None,
    serials_file: Annotated[
        Path | None,
        typer.Option(
            "--file", exists=True, dir_okay=False, help="Devices listed in this file, a serial a line."
        ),
    ] = None,
    key_algorithm: Annotated[
        RotationKeyAlgorithm | None,
        typer.Option(help="The key pair the device makes for its new certificate (default EC-P256)."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            metavar="JOB_ID",
            callback=_job_id,
            help="A new job for this rotation job's devices that failed, timed out or were removed.",
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            metavar="JOB_ID", callback=_job_id, help="How this rotation job is doing; changes nothing."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; create no job.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Ask ACTIVE devices to rotate their certificate, with AWS IoT jobs (at most 100 devices a job).
    Selectors combine: a device must match each one given."""
    stack = _stack(ctx)
    selectors = {
        "SERIAL": serial,
        "--type": device_type,
        "--older-than": older_than,
        "--file": serials_file,
        "--key-algorithm": key_algorithm,
    }
    given = [name for name, value in selectors.items() if value is not None]
    if resume is not None and status is not None:
        raise UsageProblem("--resume and --status: give one")
    if status is not None:
        if given or dry_run or yes:
            raise UsageProblem(f"--status JOB_ID takes no {', '.join([*given, *_flags(dry_run, yes)])}")
        _print_job_status(rotation.job_status(stack, status), json_output)
        return
    now = datetime.now(UTC)
    if resume is not None:
        if given:
            raise UsageProblem(
                f"--resume JOB_ID reuses the job's devices and document; it takes no {', '.join(given)}"
            )
        plan = rotation.plan_resume(stack, resume, now)
    else:
        selection = rotation.Selection(serial, device_type, older_than, serials_file)
        plan = rotation.plan_rotation(stack, selection, key_algorithm or RotationKeyAlgorithm.EC_P256, now)
    _carry_out(stack, plan, dry_run=dry_run, yes=yes, json_output=json_output)


def _carry_out(
    stack: StackContext, plan: rotation.Plan, *, dry_run: bool, yes: bool, json_output: bool
) -> None:
    """Show the plan, then (unless a dry run, or declined) create its jobs and show them."""
    if not json_output:
        _print_plan(plan)
    if not plan.targets or dry_run:
        if json_output:
            print_json(plan.report(created=False))
        elif plan.targets:
            print_line(f"dry run: {len(plan.jobs)} job(s) for {len(plan.targets)} device(s) were not created")
        else:
            print_line("no device to rotate; no job created")
        return
    question = (
        f"Create {len(plan.jobs)} job(s) asking {len(plan.targets)} device(s) to rotate their certificate "
        f"({plan.document.get('keyAlgorithm')})?"
    )
    if not yes and not typer.confirm(question, err=True):
        print_error("no job created")
        raise typer.Exit(ExitCode.ABORTED)
    done = rotation.create_jobs(stack, plan)
    if json_output:
        print_json(done.report(created=True))
        return
    jobs = [{"jobId": job.job_id, "devices": len(job.targets), "jobArn": job.arn} for job in done.jobs]
    print_table("Jobs created", [("jobId", "Job"), ("devices", "Devices"), ("jobArn", "ARN")], jobs)
    print_line(f"follow with: fleetctl rotate --status {done.jobs[0].job_id}")


@app.command("reprovision")
def reprovision_command(
    ctx: typer.Context,
    *,
    serial: SerialArgument,
    reason: Annotated[
        str,
        typer.Option(
            callback=_grant_reason, help="Why; stored as reprovisionReason (at most 256 characters)."
        ),
    ],
    window: Annotated[
        int,
        typer.Option(
            min=1,
            max=reprovision.WINDOW_HOURS_MAX,
            metavar="HOURS",
            help="How long the grant lasts (1 to 72). Meanwhile anyone holding the claim certificate who "
            "knows the serial can use it: keep it short.",
        ),
    ] = reprovision.WINDOW_HOURS_DEFAULT,
    json_output: JsonFlag = False,
) -> None:
    """Allow an ACTIVE device to provision once more with a new certificate (lost or wiped key), for a
    while; it keeps its thing and its old certificate is retired."""
    granted = reprovision.grant(_stack(ctx), serial, reason, window)
    if json_output:
        print_json(granted)
        return
    print_line(
        f"{serial} may provision once more, with a new certificate and the same type and manufacturer, "
        f"until {granted['allowedUntil']} ({window} h). It stays ACTIVE on thing {granted['thingName']}; "
        f"certificate {granted['certificateId']} is then replaced and revoked."
    )
    print_line(f"granted by {granted['grantedBy']}: {granted['reason']}")
    print_line(
        "Until then, anyone holding the claim certificate who knows the serial can use this grant: provision "
        "the device now."
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


@registry_app.command("backfill")
def registry_backfill(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Write the sharded index keys (statusShard, typeShard) on every device item that lacks them or has
    stale ones: a registry created before the indexes were sharded. Safe to re-run; a second run writes
    nothing."""
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("reading the registry", total=None)
        # The client pools AWS_CONCURRENCY connections: the scan's segment readers and the writers share them.
        report = _stack(ctx).records.backfill_shards(
            segments=SCAN_SEGMENTS,
            concurrency=AWS_CONCURRENCY - SCAN_SEGMENTS,
            on_item=lambda: progress.advance(task),
        )
    if json_output:
        print_json(asdict(report))
    else:
        print_line(
            f"{report.scanned} device item(s) read, {report.updated} updated, "
            f"{report.skipped} changed meanwhile (their own transition wrote the keys)"
        )


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


def _flags(*flags: bool) -> list[str]:
    return [name for name, given in zip(("--dry-run", "--yes"), flags, strict=True) if given]


def _print_plan(plan: rotation.Plan) -> None:
    targets = plan.report(created=False)["targets"]
    title = f"Devices to rotate ({plan.document.get('keyAlgorithm')})" + (
        f", resuming {plan.resumed_from}" if plan.resumed_from else ""
    )
    columns = [
        ("serial", "Serial"),
        ("deviceType", "Type"),
        ("thingName", "Thing"),
        ("certificateSince", "Certificate since"),
        ("certificateAgeDays", "Age (days)"),
    ]
    _print_section(title, columns, targets)
    skipped = [{"serial": each.serial, "reason": each.reason} for each in plan.skipped]
    if skipped:
        print_table("Skipped", [("serial", "Serial"), ("reason", "Why")], skipped)


def _print_job_status(report: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(report)
        return
    print_line(f"{report['jobId']}: {report['jobStatus']}, created {report['createdAt']}")
    counts = [{"status": name, "count": count} for name, count in report["executions"].items() if count]
    _print_section("Executions", [("status", "Status"), ("count", "Devices")], counts)
    failed_columns = [
        ("serial", "Serial"),
        ("thingName", "Thing"),
        ("status", "Status"),
        ("reason", "Reason"),
    ]
    _print_section("Not rotated", failed_columns, report["failed"])


def _print_steps(serial: str, steps: list[lifecycle.Step], json_output: bool) -> None:
    if json_output:
        print_json({"serial": serial, "steps": [asdict(step) for step in steps]})
    elif steps:
        print_table(f"Changes to {serial}", [("action", "Action"), ("target", "Target")], map(asdict, steps))
    else:
        print_line(f"{serial}: nothing to do, already done")
