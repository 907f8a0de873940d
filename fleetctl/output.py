"""Printing results: Rich tables for people, plain JSON for scripts, errors on stderr; and what each command
prints of what it did, in one of those forms (``json_output``: JSON and nothing else on stdout)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetctl.expiring_certificates import AWS_IOT_CERTIFICATES_EXPIRE
from fleetctl.manifest_import import ImportOutcome
from fleetctl.signed_manifest import SignedManifest
from hook.contract import Attr, DeviceStatus

if TYPE_CHECKING:
    from fleetctl.bulk import BulkRun, Row
    from fleetctl.device_removal import Step
    from fleetctl.expiring_certificates import ExpiringCertificates
    from fleetctl.manifest import CheckedManifest
    from fleetctl.manifest_import import ImportTally
    from fleetctl.registry_reads import BackfillReport
    from fleetctl.rotation_jobs import Plan

Columns = Sequence[tuple[str, str]]
"""A table's columns: (key in each row, heading)."""

_DEVICE_COLUMNS: Final[Columns] = [
    (Attr.SERIAL_NUMBER, "Serial"),
    (Attr.STATUS, "Status"),
    (Attr.DEVICE_TYPE, "Type"),
    (Attr.MANUFACTURER, "Manufacturer"),
    (Attr.FIRMWARE_VERSION, "Firmware"),
    (Attr.LOCATION, "Location"),
    (Attr.UPDATED_AT, "Updated"),
]
_CERTIFICATE_COLUMNS: Final[Columns] = [
    ("certificateId", "Certificate"),
    ("status", "Status"),
    ("notAfter", "Expires"),
    ("daysLeft", "Days left"),
]
_ROW_COLUMNS: Final[Columns] = [("row", "Row"), ("serial", "Serial"), ("detail", "Detail")]


def print_json(data: object) -> None:
    """``data`` as JSON on stdout, and nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str))


TABLE_ROWS_SHOWN: Final = 1000
"""Rows a table of per-row facts shows at most; ``--json`` lists every one."""
_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
"""C0 and C1 control characters but the line feed: ESC and CSI start terminal escape sequences."""


def print_json_stream(fields: Mapping[str, object]) -> None:
    """``fields`` as one JSON object on stdout, as :func:`print_json` would, except that a field whose value
    is an iterator is written item by item as it is read: a report of a million rows, never held. A field
    whose value is callable is written with what it returns when its turn comes (counts of the rows
    before it)."""
    typer.echo("{")
    for number, (name, given) in enumerate(fields.items()):
        comma = "," if number < len(fields) - 1 else ""
        value = given() if callable(given) else given
        if not isinstance(value, Iterator):
            typer.echo(f"  {json.dumps(name)}: {json.dumps(value, default=str)}{comma}")
            continue
        typer.echo(f"  {json.dumps(name)}: [", nl=False)
        separator = "\n"
        for item in value:
            typer.echo(f"{separator}    {json.dumps(item, default=str)}", nl=False)
            separator = ",\n"
        typer.echo(("\n  " if separator != "\n" else "") + f"]{comma}")
    typer.echo("}")


def print_rows(title: str, columns: Columns, rows: Iterable[Mapping[str, object]], count: int) -> None:
    """``count`` rows as a table of at most :data:`TABLE_ROWS_SHOWN` (the title says when there are more),
    or a line saying there are none."""
    if not count:
        print_line(f"{title}: none")
        return
    if count > TABLE_ROWS_SHOWN:
        title = f"{title}: the first {TABLE_ROWS_SHOWN:,} of {count:,} (--json lists them all)"
    print_table(title, columns, islice(rows, TABLE_ROWS_SHOWN))


def print_table(title: str, columns: Columns, rows: Iterable[Mapping[str, object]]) -> None:
    """Rows as a table; values are shown as they are (never read as Rich markup), but for control
    characters, shown as ``?``: a device writes some cells (a job execution's reason), and an escape
    sequence in one would drive the operator's terminal (Rich passes ESC through)."""
    table = Table(title=title, title_justify="left")
    for _, heading in columns:
        table.add_column(heading, overflow="fold")
    for row in rows:
        table.add_row(*(Text(_CONTROL_CHARACTERS.sub("?", _cell(row.get(key)))) for key, _ in columns))
    Console().print(table)


def print_line(text: str) -> None:
    """One line of plain text on stdout."""
    typer.echo(text)


def print_error(text: str) -> None:
    """Each line of ``text`` on stderr, marked as coming from fleetctl."""
    for line in text.splitlines():
        typer.echo(f"fleetctl: {line}", err=True)


def print_section(title: str, columns: Columns, rows: Sequence[Mapping[str, object]]) -> None:
    """Rows as a table, or a line saying there are none."""
    if rows:
        print_table(title, columns, rows)
    else:
        print_line(f"{title}: none")


def print_manifest_problems(manifest: Path, checked: CheckedManifest | SignedManifest) -> None:
    """Why nothing of a manifest with bad rows (or refused entries) was written, and each one, on stderr."""
    print_error(
        f"{manifest}: {checked.problem_count} bad row(s) or refused entries; nothing was written"
        + ("" if isinstance(checked, SignedManifest) else " (--skip-invalid imports the valid rows)")
    )
    for problem in checked.problems():
        print_error(f"{manifest} {problem}")


def print_import_report(
    manifest: Path, checked: CheckedManifest | SignedManifest, tally: ImportTally, json_output: bool
) -> None:
    """Counts of created and unchanged rows; conflicting and skipped rows by their line in the manifest:
    every one in JSON, the first ones in tables."""
    skipped = (
        {"row": problem.line, "column": problem.column, "detail": problem.message}
        for problem in checked.problems()
    )
    created, unchanged = tally.counts[ImportOutcome.CREATED], tally.counts[ImportOutcome.UNCHANGED]
    if json_output:
        print_json_stream(
            {
                "created": created,
                "unchanged": unchanged,
                "conflicts": iter(tally.conflicts),
                "skipped": skipped,
            }
        )
        return
    print_line(
        f"{manifest}: {created} created, {unchanged} unchanged, {tally.conflicts.count} conflicting, "
        f"{checked.problem_count} skipped"
    )
    print_rows("Conflicts (left as they are)", _ROW_COLUMNS, tally.conflicts, tally.conflicts.count)
    skipped_columns = [("row", "Row"), ("column", "Column"), ("detail", "Problem")]
    print_rows("Skipped rows", skipped_columns, skipped, checked.problem_count)


def print_devices(devices: list[dict[str, Any]], json_output: bool) -> None:
    """Devices' registry items, a row each."""
    if json_output:
        print_json(devices)
    else:
        print_table(f"{len(devices)} device(s)", _DEVICE_COLUMNS, devices)


def print_device(serial: str, device: dict[str, Any], json_output: bool) -> None:
    """One device as :func:`~fleetctl.devices.describe_device` describes it: registry item, thing and
    certificates."""
    if json_output:
        print_json(device)
        return
    record = device["registry"] or {}
    attributes = [{"attribute": name, "value": record[name]} for name in sorted(record)]
    print_section(f"Registry item of {serial}", [("attribute", "Attribute"), ("value", "Value")], attributes)
    things = [] if device["thing"] is None else [device["thing"]]
    thing_columns = [
        ("name", "Thing"),
        ("thingType", "Type"),
        ("groups", "Groups"),
        ("attributes", "Attributes"),
    ]
    print_section("Thing", thing_columns, things)
    certificate_columns = [*_CERTIFICATE_COLUMNS, ("attachedToThing", "Attached"), ("policies", "Policies")]
    print_section("Certificates", certificate_columns, device["certificates"])


def print_steps(serial: str, steps: list[Step], json_output: bool) -> None:
    """The changes made to one device."""
    if json_output:
        print_json({"serial": serial, "steps": [asdict(step) for step in steps]})
    elif steps:
        print_table(f"Changes to {serial}", [("action", "Action"), ("target", "Target")], map(asdict, steps))
    else:
        print_line(f"{serial}: nothing to do, already done")


def print_bulk(rows: Iterator[Row], run: BulkRun, *, json_output: bool, dry_run: bool) -> None:
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
    tally, verb = run.tally, run.operation.verb
    counts = f"{tally.done:,} already done, {tally.skipped:,} skipped"
    if dry_run:
        print_line(
            f"dry run: {verb} would change {tally.to_change:,} device(s); {counts}; nothing was changed"
        )
    else:
        print_line(f"{verb}: {tally.to_change:,} device(s) changed; {counts}")


def print_plan(plan: Plan) -> None:
    """The devices a rotation plan asks, and those it leaves out with why."""
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
    print_section(title, columns, targets)
    skipped = [{"serial": each.serial, "reason": each.reason} for each in plan.skipped]
    if skipped:
        print_table("Skipped", [("serial", "Serial"), ("reason", "Why")], skipped)
    stale = plan.report(created=False)["stalePending"]
    if stale:
        columns = [("serial", "Serial"), ("certificateId", "Certificate")]
        print_table(
            "Pending certificates to retire (unconfirmed past the in-progress timeout)", columns, stale
        )


def print_plan_not_created(plan: Plan, json_output: bool) -> None:
    """That a rotation plan's jobs were not created: a dry run, or no device to ask."""
    if json_output:
        print_json(plan.report(created=False))
    elif plan.targets or plan.stale_pending:
        print_line(
            f"dry run: {len(plan.jobs)} job(s) for {len(plan.targets)} device(s) were not created, "
            f"{len(plan.stale_pending)} pending certificate(s) not retired"
        )
    else:
        print_line("no device to rotate; no job created")


def print_jobs_created(done: Plan, json_output: bool) -> None:
    """The rotation jobs created, and how to follow them."""
    if json_output:
        print_json(done.report(created=True))
        return
    if done.stale_pending:
        print_line(
            f"{len(done.stale_pending)} unconfirmed pending certificate(s) dropped; the registry retires them"
        )
    if not done.jobs:
        return
    jobs = [{"jobId": job.job_id, "devices": len(job.targets), "jobArn": job.arn} for job in done.jobs]
    print_table("Jobs created", [("jobId", "Job"), ("devices", "Devices"), ("jobArn", "ARN")], jobs)
    print_line(f"each ends at {done.ends_at} UTC; follow with: fleetctl rotate status {done.jobs[0].job_id}")


def print_job_status(report: dict[str, Any], json_output: bool) -> None:
    """How a rotation job is doing (:func:`~fleetctl.rotation_status.job_status`)."""
    if json_output:
        print_json(report)
        return
    end = f"end time {report['endTime'] or 'none'}"
    ends = f"ended ({end})" if report["ended"] else end
    print_line(f"{report['jobId']}: {report['jobStatus']}, created {report['createdAt']}, {ends}")
    counts = [{"status": name, "count": count} for name, count in report["executions"].items() if count]
    print_section("Executions", [("status", "Status"), ("count", "Devices")], counts)
    outcomes = [{"outcome": name, "count": count} for name, count in report["outcomes"].items() if count]
    print_section("Outcomes (with the registry)", [("outcome", "Outcome"), ("count", "Devices")], outcomes)
    not_rotated_columns = [
        ("serial", "Serial"),
        ("status", "Status"),
        ("outcome", "Outcome"),
        ("reason", "Reason"),
    ]
    print_section("Not rotated", not_rotated_columns, report["notRotated"])


def print_grant(serial: str, window: int, granted: dict[str, Any], json_output: bool) -> None:
    """A re-provisioning grant, and what it allows meanwhile."""
    if json_output:
        print_json(granted)
        return
    print_line(
        f"{serial} may provision once more, with a new certificate and the same type and manufacturer, "
        f"until {granted['allowedUntil']} ({window} h). It stays ACTIVE on thing {granted['thingName']}; "
        f"certificate {granted['certificateId']} is then replaced and revoked."
    )
    firmware = granted["firmwareVersion"]
    print_line(
        f"Any firmware version is admitted (recorded: {firmware})."
        if granted["allowsDowngrade"]
        else f"Firmware {firmware} or newer is admitted; an older one only with --allow-downgrade."
    )
    print_line(f"granted by {granted['grantedBy']}: {granted['reason']}")
    print_line(
        "Until then, anyone holding the claim certificate who knows the serial can use this grant: provision "
        "the device now."
    )


def print_rebinding(serial: str, done: dict[str, Any], json_output: bool) -> None:
    """A serial's key binding as changed (or found already so), and what follows for the device."""
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


def print_claim_certificates(rows: list[dict[str, Any]], json_output: bool) -> None:
    """Claim certificates with their age, expiry and devices
    (:func:`~fleetctl.claim_certificates.claim_status`)."""
    if json_output:
        print_json(rows)
        return
    columns = [
        *_CERTIFICATE_COLUMNS,
        ("region", "Region"),
        ("current", "Current"),
        ("ageDays", "Age (days)"),
        ("devices", "Devices"),
        ("breaker", "Breaker"),
        ("approvalsThisHour", "Approvals this hour"),
        ("breakerChangedAt", "Since"),
        ("breakerChangedBy", "By"),
        ("breakerReason", "Why"),
    ]
    print_table("Claim certificates", columns, rows)


def print_claim_breaker(row: Mapping[str, Any], json_output: bool) -> None:
    """A claim certificate's breaker after ``claim suspend|resume``."""
    if json_output:
        print_json(row)
    else:
        print_line(
            f"{row['certificateId']}: breaker {row['breaker']} since {row['breakerChangedAt']} by "
            f"{row['breakerChangedBy']}: {row['breakerReason']}"
        )


def print_claim_deactivation(
    certificate_id: str, results: list[tuple[str, str, bool]], json_output: bool
) -> None:
    """A claim certificate's status in each region after ``claim deactivate`` (region, status, changed);
    once changed, that the stack config should say so too."""
    if any(changed for _, _, changed in results):
        print_error(
            f"{certificate_id}: record it in the stack config (its claimCertificates entry with "
            "active: false); the program never re-activates a claim certificate"
        )
    if json_output:
        print_json(
            [
                {"certificateId": certificate_id, "region": region, "status": status, "changed": changed}
                for region, status, changed in results
            ]
        )
        return
    for region, status, changed in results:
        print_line(f"{certificate_id} ({region}): {status}" + ("" if changed else " already; nothing to do"))


def print_expiring(found: ExpiringCertificates, days: int, json_output: bool) -> None:
    """Certificates expiring within ``days``, and how many devices hold AWS IoT's certificates instead."""
    if json_output:
        print_json(found.report())
        return
    columns = [*_CERTIFICATE_COLUMNS, ("serial", "Serial"), ("thingName", "Thing")]
    print_section(f"Certificates expiring within {days} days", columns, found.certificates)
    if found.without_recorded_expiry:
        print_line(
            f"{found.without_recorded_expiry} ACTIVE device(s) hold certificates AWS IoT issued, which all "
            f"expire at {AWS_IOT_CERTIFICATES_EXPIRE}: rotate those by age "
            "(`fleetctl rotate start --older-than DAYS --dry-run` lists them)"
        )


def print_backfill(report: BackfillReport, json_output: bool) -> None:
    """What ``registry backfill`` wrote: index keys."""
    if json_output:
        print_json(asdict(report))
        return
    print_line(
        f"{report.scanned} device item(s) read, {report.updated} updated, "
        f"{report.skipped} changed meanwhile (their own transition wrote the keys)"
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)
