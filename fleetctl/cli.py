"""The ``fleetctl`` command line: arguments in, one call into the module that does the job, results out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import Progress
from typer.core import TyperGroup

from fleetctl import bulk, pacing, selection
from fleetctl import device_removal as lifecycle
from fleetctl import key_rebinding as rebind
from fleetctl import reprovision_grants as reprovision
from fleetctl import rotation_jobs as rotation
from fleetctl.claim_certificates import claim_certificate, claim_status, deactivate
from fleetctl.context import AWS_CONCURRENCY, StackContext
from fleetctl.device_export import ExportFormat, export_devices
from fleetctl.devices import SERIAL_NUMBER_FORM, describe_device, is_serial_number
from fleetctl.errors import AwsProblem, ExitCode, FleetctlError, UsageProblem
from fleetctl.expiring_certificates import expiring_certificates, record_missing_expiry
from fleetctl.iot_reads import ACTIVE
from fleetctl.manifest import HEADER, PUBLIC_KEY_COLUMN, CheckedManifest, ManifestRow, checked_manifest
from fleetctl.manifest_import import ImportOutcome, ImportResult, ImportTally
from fleetctl.manifest_import import preregister as preregister_rows
from fleetctl.output import (
    Columns,
    print_error,
    print_json,
    print_json_stream,
    print_line,
    print_rows,
    print_table,
)
from fleetctl.pacing import Pacer
from fleetctl.progress import progress as show_progress
from fleetctl.spill import Spill
from hook.contract import Attr, DeviceStatus, RotationKeyAlgorithm
from hook.public_keys import PublicKeyError, registered_key_sha256
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


def _rates(ctx: typer.Context, values: list[str] | None) -> list[str] | None:
    try:
        pacing.own_rates(values or [], pacing.COMMAND_APIS[ctx.info_name or ""])
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    return values


def _pacer(ctx: typer.Context, rates: list[str] | None) -> Pacer:
    """AWS IoT's default rates, with the ``--rate`` values given to the command."""
    apis = pacing.COMMAND_APIS[ctx.info_name or ""]
    return pacing.aws_iot_pacer(pacing.own_rates(rates or [], apis))


def _grant_reason(value: str) -> str:
    reason = _non_blank(value)
    if len(reason) > reprovision.REASON_MAX_LENGTH:
        raise typer.BadParameter(
            f"{len(reason)} characters; expected at most {reprovision.REASON_MAX_LENGTH}"
        )
    return reason


def _public_key(value: str) -> str:
    """A key as ``registered_key_sha256`` reads it, given inline or as ``@FILE``: its fingerprint."""
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise typer.BadParameter(f"cannot read {value[1:]!r}: {error}") from None
    try:
        return registered_key_sha256(value)
    except PublicKeyError as error:
        raise typer.BadParameter(str(error)) from None


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
SelectedSerial = Annotated[
    str | None, typer.Argument(callback=_optional_serial_number, help="One device's serial number.")
]
TypeOption = Annotated[str | None, typer.Option("--type", help="Devices of this type.")]
ClaimGenerationOption = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="Devices approved through this claim certificate generation (the outputs' claimCertificateIds).",
    ),
]
FileOption = Annotated[
    Path | None,
    typer.Option("--file", exists=True, dir_okay=False, help="Devices listed in this file, a serial a line."),
]
ProvisionedBeforeOption = Annotated[
    datetime | None,
    typer.Option(
        metavar="DATE",
        parser=selection.parse_moment,
        help="Devices approved before this ISO date or date and time (UTC unless it gives an offset).",
    ),
]
DryRunFlag = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
YesFlag = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
RateOption = Annotated[
    list[str] | None,
    typer.Option(
        "--rate",
        metavar="API=PER_SECOND",
        callback=_rates,
        help="Pace this AWS IoT API at your account's own quota instead of the default, e.g. "
        "--rate UpdateCertificate=20 after an increase (Service Quotas, service iotcore). Repeatable.",
    ),
]

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
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help=f"CSV with the header {HEADER} (any order), and optionally {PUBLIC_KEY_COLUMN}.",
        ),
    ],
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows even when others are bad.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Import a factory manifest as PREREGISTERED, streaming: checked whole first (nothing is written while a
    row is bad), then written 16 rows at a time, slowing down when DynamoDB throttles, with the rate and the
    time left on stderr. Existing serials are left as they are; run it again to finish an interrupted one."""
    stack = _stack(ctx)
    rules = stack.rules
    with ExitStack() as files:
        with show_progress("checking the manifest", None) as advance:
            checked = files.enter_context(checked_manifest(manifest, rules, advance))
        if checked.problem_count and not skip_invalid:
            print_error(
                f"{manifest}: {checked.problem_count} bad row(s); nothing was written "
                "(--skip-invalid imports the valid rows)"
            )
            for problem in checked.problems():
                print_error(f"{manifest} {problem}")
            raise typer.Exit(ExitCode.USAGE)
        tally = ImportTally(files.enter_context(Spill()))
        with show_progress("pre-registering", checked.valid_rows) as advance:

            def count(row: ManifestRow, result: ImportResult) -> None:
                tally.add(row, result)
                advance()

            preregister_rows(stack.bulk_records, checked.rows(), count, concurrency=AWS_CONCURRENCY)
        _print_import_report(manifest, checked, tally, json_output)


@app.command("export")
def export_command(
    ctx: typer.Context,
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="CSV (fixed columns) or JSON lines.")
    ] = ExportFormat.CSV,
    status: Annotated[DeviceStatus | None, typer.Option(help="Only devices in this state.")] = None,
    device_type: Annotated[str | None, typer.Option("--type", help="Only devices of this type.")] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", dir_okay=False, help="Write to this file (complete or not at all) instead of stdout."
        ),
    ] = None,
) -> None:
    """Write the registry's devices, or those in a state and/or of a type, as CSV or JSON lines, streaming:
    a selection through the sharded indexes, the whole registry by a parallel scan."""
    records = _stack(ctx).records
    with show_progress("exporting", None, unit="devices") as advance:
        count = export_devices(
            records, export_format, output, status=status, device_type=device_type, on_item=advance
        )
    print_error(f"{count} device(s) exported to {output or 'stdout'}")


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
    ctx: typer.Context,
    *,
    serial: SelectedSerial = None,
    reason: ReasonOption,
    device_type: TypeOption = None,
    claim_generation: ClaimGenerationOption = None,
    serials_file: FileOption = None,
    provisioned_before: ProvisionedBeforeOption = None,
    dry_run: DryRunFlag = False,
    yes: YesFlag = False,
    rates: RateOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Revoke devices: registry REVOKED, certificates REVOKED, policies and thing detached. Selectors
    combine: a device must match each one given. Safe to re-run: a re-run finishes an interrupted one."""
    selectors = selection.Selectors(serial, device_type, claim_generation, serials_file, provisioned_before)
    if serial is not None and selectors.one_serial and not dry_run:
        _print_steps(serial, lifecycle.revoke(_stack(ctx), serial, reason), json_output)
        return
    operation = lifecycle.Revocation(reason)
    _run_bulk(ctx, selectors, operation, dry_run=dry_run, yes=yes, rates=rates, json_output=json_output)


@app.command()
def release(ctx: typer.Context, serial: SerialArgument, json_output: JsonFlag = False) -> None:
    """Undo an approval that never became a thing (PENDING for over an hour), so the device can retry."""
    _print_steps(serial, lifecycle.release(_stack(ctx), serial), json_output)


@app.command()
def decommission(
    ctx: typer.Context,
    *,
    serial: SelectedSerial = None,
    reason: ReasonOption = "decommissioned",
    keep_thing: Annotated[bool, typer.Option(help="Keep the thing in AWS IoT.")] = False,
    device_type: TypeOption = None,
    claim_generation: ClaimGenerationOption = None,
    serials_file: FileOption = None,
    provisioned_before: ProvisionedBeforeOption = None,
    dry_run: DryRunFlag = False,
    yes: YesFlag = False,
    rates: RateOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Retire devices for good: revoke, delete the thing, registry DECOMMISSIONED. Selectors combine: a
    device must match each one given. Safe to re-run: a re-run finishes an interrupted one."""
    selectors = selection.Selectors(serial, device_type, claim_generation, serials_file, provisioned_before)
    if serial is not None and selectors.one_serial and not dry_run:
        steps = lifecycle.decommission(_stack(ctx), serial, reason, keep_thing=keep_thing)
        _print_steps(serial, steps, json_output)
        return
    operation = lifecycle.Decommissioning(reason, keep_thing)
    _run_bulk(ctx, selectors, operation, dry_run=dry_run, yes=yes, rates=rates, json_output=json_output)


def _run_bulk(
    ctx: typer.Context,
    selectors: selection.Selectors,
    operation: bulk.Operation,
    *,
    dry_run: bool,
    yes: bool,
    rates: list[str] | None,
    json_output: bool,
) -> None:
    """Show what a bulk command would change (a dry run), or count it, ask, and do it, paced to AWS IoT's
    rates (the defaults, or ``rates`` given as ``--rate``); each device's result is printed as it is done."""
    stack = _stack(ctx)
    run = bulk.BulkRun(stack, selection.resolve(stack, selectors), operation)
    if dry_run:
        _print_bulk(run.preview(), run, operation.verb, json_output=json_output, dry_run=True)
        return
    total = None
    if not yes:
        for _ in run.preview():
            pass
        total = run.tally.to_change
        question = (
            f"{operation.verb.capitalize()} {total:,} device(s)? ({run.tally.done:,} already done, "
            f"{run.tally.skipped:,} skipped; --dry-run lists them)"
        )
        if total and not typer.confirm(question, err=True):
            print_error("nothing was changed")
            raise typer.Exit(ExitCode.ABORTED)
    with show_progress(operation.verb, total, unit="devices") as advance:
        rows = _advancing(run.execute(_pacer(ctx, rates)), advance)
        _print_bulk(rows, run, operation.verb, json_output=json_output, dry_run=False)
    if run.tally.error is not None:
        raise AwsProblem(
            f"stopped at a failure; {run.tally.to_change:,} device(s) were changed before it, and a re-run "
            f"with the same selectors finishes the job:\n{run.tally.error}"
        )


def _advancing(rows: Iterator[bulk.Row], advance: Callable[[], None]) -> Iterator[bulk.Row]:
    for row in rows:
        if row.steps is not None:
            advance()
        yield row


def _print_bulk(
    rows: Iterator[bulk.Row], run: bulk.BulkRun, verb: str, *, json_output: bool, dry_run: bool
) -> None:
    """A bulk command's rows as they come, then its counts: one JSON object, or a line per device."""
    if json_output:
        reports = (row.report() for row in rows)
        print_json_stream({"devices": reports, "counts": lambda: run.tally.report(dry_run=dry_run)})
        return
    for row in rows:
        if row.steps is not None:
            done = ", ".join(f"{step.action} {step.target}" for step in row.steps) or "nothing left to do"
            print_line(f"{row.serial}: {done}")
        elif row.reason is not None:
            print_line(f"{row.serial}: skipped: {row.reason}")
        else:
            print_line(f"{row.serial}: {row.status}: would {row.action}")
    tally = run.tally
    counts = f"{tally.done:,} already done, {tally.skipped:,} skipped"
    if dry_run:
        print_line(
            f"dry run: {verb} would change {tally.to_change:,} device(s); {counts}; nothing was changed"
        )
    else:
        print_line(f"{verb}: {tally.to_change:,} device(s) changed; {counts}")


@app.command()
def rotate(
    ctx: typer.Context,
    *,
    serial: SelectedSerial = None,
    device_type: TypeOption = None,
    claim_generation: ClaimGenerationOption = None,
    provisioned_before: ProvisionedBeforeOption = None,
    older_than: Annotated[
        int | None,
        typer.Option(
            min=0,
            metavar="DAYS",
            help="Devices whose certificate is older than this: since the latest of rotatedAt, "
            "reprovisionedAt, approvedAt.",
        ),
    ] = None,
    serials_file: FileOption = None,
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
    dry_run: DryRunFlag = False,
    yes: YesFlag = False,
    rates: RateOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Ask ACTIVE devices to rotate their certificate, with AWS IoT jobs (at most 100 devices a job).
    Selectors combine: a device must match each one given."""
    stack = _stack(ctx)
    selectors = selection.Selectors(serial, device_type, claim_generation, serials_file, provisioned_before)
    own = {"--older-than DAYS": older_than}
    given = [*selectors.given(), *(["--older-than"] if older_than is not None else [])]
    given += ["--key-algorithm"] if key_algorithm is not None else []
    if resume is not None and status is not None:
        raise UsageProblem("--resume and --status: give one")
    if status is not None:
        if given or dry_run or yes or rates:
            flags = _flags(dry_run, yes, bool(rates))
            raise UsageProblem(f"--status JOB_ID takes no {', '.join([*given, *flags])}")
        _print_job_status(rotation.job_status(stack, status), json_output)
        return
    now = datetime.now(UTC)
    pacer = _pacer(ctx, rates)
    if resume is not None:
        if given:
            raise UsageProblem(
                f"--resume JOB_ID reuses the job's devices and document; it takes no {', '.join(given)}"
            )
        plan = rotation.plan_resume(stack, resume, now, pacer=pacer)
    else:
        selected = selection.resolve(stack, selectors, own=own)
        algorithm = key_algorithm or RotationKeyAlgorithm.EC_P256
        plan = rotation.plan_rotation(stack, selected, older_than, algorithm, now, pacer=pacer)
    _carry_out(stack, plan, pacer, dry_run=dry_run, yes=yes, json_output=json_output)


def _carry_out(
    stack: StackContext, plan: rotation.Plan, pacer: Pacer, *, dry_run: bool, yes: bool, json_output: bool
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
    done = rotation.create_jobs(stack, plan, pacer)
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


@app.command("rebind")
def rebind_command(
    ctx: typer.Context,
    *,
    serial: SerialArgument,
    public_key: Annotated[
        str,
        typer.Option(
            callback=_public_key,
            metavar="KEY",
            help="The device's new key: a PEM public key, base64 DER SubjectPublicKeyInfo or its SHA-256 "
            "fingerprint (sha256:<64 hex>), or @FILE to read it from a file.",
        ),
    ],
    reason: Annotated[
        str,
        typer.Option(
            callback=_grant_reason, help="Why; stored as keyReboundReason (at most 256 characters)."
        ),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Bind a PREREGISTERED or ACTIVE serial to another device key (a replaced secure element, a wrong
    manifest), recording the previous key, who and why. The hook then admits only the new key."""
    done = rebind.rebind(_stack(ctx), serial, public_key, reason)
    if json_output:
        print_json(done)
        return
    if not done["changed"]:
        print_line(f"{serial} is already bound to key sha256:{done['publicKeySha256']}; nothing to do")
        return
    previous = done["previousPublicKeySha256"]
    print_line(
        f"{serial} ({done['status']}) is bound to key sha256:{done['publicKeySha256']}"
        + (f", replacing sha256:{previous}" if previous else " (it had none)")
    )
    print_line(f"rebound by {done['reboundBy']}: {done['reason']}")
    if done["rotationDropped"]:
        print_line("The rotation in progress was dropped: its certificate was issued for the previous key.")
    if done["status"] == DeviceStatus.ACTIVE:
        print_line(
            f"The device keeps certificate {done['certificateId']} (the previous key) until it gets one for "
            f"the new key: `fleetctl reprovision {serial}` lets it provision once more with it."
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
    """ACTIVE devices' certificates that expire within the window (or have expired), soonest first: found
    through the expiry the registry records, each confirmed with AWS IoT."""
    found = expiring_certificates(_stack(ctx), days)
    if json_output:
        print_json(found.report())
        return
    columns = [*_CERTIFICATE_COLUMNS, ("serial", "Serial"), ("thingName", "Thing")]
    _print_section(f"Certificates expiring within {days} days", columns, found.certificates)
    if found.without_recorded_expiry:
        print_line(
            f"{found.without_recorded_expiry} ACTIVE device(s) have no certificate expiry in the registry "
            "(recorded before it was kept, or re-provisioned since) and were not checked: "
            "`fleetctl registry backfill` records it"
        )


@registry_app.command("backfill")
def registry_backfill(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Write the sharded index keys (statusShard, typeShard) on every device item that lacks them or has
    stale ones (a registry created before the indexes were sharded), and the certificate expiry on every
    ACTIVE device item that lacks it. Safe to re-run; a second run writes nothing."""
    stack = _stack(ctx)
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("reading the registry", total=None)
        # The client pools AWS_CONCURRENCY connections: the scan's segment readers and the writers share them.
        report = stack.records.backfill_shards(
            segments=SCAN_SEGMENTS,
            concurrency=AWS_CONCURRENCY - SCAN_SEGMENTS,
            on_item=lambda: progress.advance(task),
        )
        expiry_task = progress.add_task("certificate expiry", total=None)
        expiry = record_missing_expiry(
            stack, concurrency=AWS_CONCURRENCY - SCAN_SEGMENTS, on_item=lambda: progress.advance(expiry_task)
        )
    if json_output:
        print_json({**asdict(report), "certificateExpiry": asdict(expiry)})
    else:
        print_line(
            f"{report.scanned} device item(s) read, {report.updated} updated, "
            f"{report.skipped} changed meanwhile (their own transition wrote the keys)"
        )
        print_line(
            f"{expiry.scanned} ACTIVE device(s) without a certificate expiry, {expiry.recorded} recorded, "
            f"{expiry.skipped} skipped (certificate changed meanwhile, or unknown to AWS IoT)"
        )


def _stack(ctx: typer.Context) -> StackContext:
    return cast(StackContext, ctx.obj)


def _print_import_report(
    manifest: Path, checked: CheckedManifest, tally: ImportTally, json_output: bool
) -> None:
    """Counts of created and unchanged rows; conflicting and skipped rows by their line in the manifest:
    every one in JSON, the first ones in tables."""
    skipped = (
        {"row": problem.line, "column": problem.column, "detail": problem.message}
        for problem in checked.problems()
    )
    if json_output:
        print_json_stream(
            {
                "created": tally.counts[ImportOutcome.CREATED],
                "unchanged": tally.counts[ImportOutcome.UNCHANGED],
                "conflicts": iter(tally.conflicts),
                "skipped": skipped,
            }
        )
        return
    print_line(
        f"{manifest}: {tally.counts[ImportOutcome.CREATED]} created, "
        f"{tally.counts[ImportOutcome.UNCHANGED]} unchanged, {tally.conflicts.count} conflicting, "
        f"{checked.problem_count} skipped"
    )
    print_rows("Conflicts (left as they are)", _ROW_COLUMNS, tally.conflicts, tally.conflicts.count)
    skipped_columns = [("row", "Row"), ("column", "Column"), ("detail", "Problem")]
    print_rows("Skipped rows", skipped_columns, skipped, checked.problem_count)


def _print_section(title: str, columns: Columns, rows: list[dict[str, Any]]) -> None:
    if rows:
        print_table(title, columns, rows)
    else:
        print_line(f"{title}: none")


def _flags(*flags: bool) -> list[str]:
    return [name for name, given in zip(("--dry-run", "--yes", "--rate"), flags, strict=True) if given]


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
