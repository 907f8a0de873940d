"""Certificate rotation by AWS IoT job: which devices, the jobs that ask them to rotate, a job's failures
resumed in a new job, and a job's progress.

The device does the rotation (a new key and CSR on the device; see ``hook/rotation.py``); fleetctl only
asks, with a ``SNAPSHOT`` job whose document is ``{"operation": "rotate-certificate", "keyAlgorithm": ...}``
targeting the devices' things. Devices are chosen through the registry
(:class:`~hook.registry.DeviceRecords`): only ``ACTIVE`` devices with a thing can rotate.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from fleetctl.context import AWS_CONCURRENCY
from fleetctl.devices import SERIAL_NUMBER_FORM, is_serial_number
from fleetctl.errors import AwsProblem, NotFound, UsageProblem
from fleetctl.iot import describe_job, job_execution_details, job_executions
from hook.contract import (
    ROTATION_JOB_OPERATION,
    Attr,
    DeviceStatus,
    RotationKeyAlgorithm,
    rotation_job_id_prefix,
    serial_number_of,
)

if TYPE_CHECKING:
    from fleetctl.context import StackContext
    from hook.registry import Item

JOB_TARGETS_MAX: Final = 100
"""Things per job. CreateJob's model sets no maximum, but the AWS IoT API Reference (AssociateTargetsWithJob)
says "the total number of targets associated with a job must not exceed 100"; more devices make more jobs."""
JOB_ID_MAX_LENGTH: Final = 64
JOB_ID_PATTERN: Final = re.compile(r"[a-zA-Z0-9_-]+")
"""A job id's constraints (AWS IoT API Reference, CreateJob: jobId)."""
JOB_ID_RANDOM_HEX_DIGITS: Final = 4
"""Random hex digits after a job id's UTC time: two ``rotate`` runs in the same second get different ids."""
IN_PROGRESS_TIMEOUT_MINUTES: Final = 30
"""How long a device has, once it took the job (IN_PROGRESS), to report it; then AWS IoT ends the execution
``TIMED_OUT`` and ``rotate --resume`` picks the device up. A rotation takes the device seconds (a key, a CSR,
one reconnection); 30 minutes leave room for slow links. AWS IoT API Reference, TimeoutConfig:
``inProgressTimeoutInMinutes`` from 1 to 10080; a QUEUED execution (a device that never took the job) does
not time out."""
JOB_EXECUTION_STATUSES: Final = (
    "QUEUED",
    "IN_PROGRESS",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "REJECTED",
    "REMOVED",
    "CANCELED",
)
"""Every JobExecutionStatus (AWS IoT API Reference, JobExecutionSummary)."""
UNSUCCESSFUL: Final = frozenset({"FAILED", "TIMED_OUT", "REJECTED", "REMOVED", "CANCELED"})
"""Execution statuses that ended without a rotation: resumed by ``rotate --resume``."""
_SECONDS_PER_DAY: Final = 86400
_AGE_ATTRIBUTES: Final = (Attr.ROTATED_AT, Attr.REPROVISIONED_AT, Attr.APPROVED_AT)
"""When the current certificate was issued: its rotation, its re-provisioning or the first approval."""


@dataclass(frozen=True)
class Selection:
    """What ``rotate`` was told to select; each selector given narrows the selection (intersection)."""

    serial: str | None = None
    device_type: str | None = None
    older_than_days: int | None = None
    serials_file: Path | None = None


@dataclass(frozen=True)
class Target:
    """A device a job will ask to rotate."""

    serial: str
    thing_name: str
    device_type: str
    certificate_since: str | None
    """The latest of ``rotatedAt``, ``reprovisionedAt`` and ``approvedAt``."""
    certificate_age_days: int | None


@dataclass(frozen=True)
class Skipped:
    """A device that was named but will not be asked, and why."""

    serial: str
    reason: str


@dataclass(frozen=True)
class Job:
    """One CreateJob: its id and its devices; ``arn`` once created."""

    job_id: str
    targets: list[Target]
    arn: str | None = None


@dataclass(frozen=True)
class Plan:
    """The jobs to create, the document they carry and the devices left out."""

    document: dict[str, str]
    jobs: list[Job]
    skipped: list[Skipped]
    resumed_from: str | None = None
    targets: list[Target] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", [target for job in self.jobs for target in job.targets])

    def report(self, *, created: bool) -> dict[str, Any]:
        """The plan (or what was done) as JSON-ready data."""
        return {
            "created": created,
            "resumedFrom": self.resumed_from,
            "document": self.document,
            "jobs": [
                {"jobId": job.job_id, "jobArn": job.arn, "serials": [each.serial for each in job.targets]}
                for job in self.jobs
            ],
            "targets": [_target_row(target) for target in self.targets],
            "skipped": [{"serial": each.serial, "reason": each.reason} for each in self.skipped],
        }


def read_serials(path: Path) -> list[str]:
    """The serial numbers in ``path``, one a line (surrounding blanks and empty lines ignored, duplicates
    kept once); every bad line is reported by its number, and then nothing is returned."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageProblem(f"--file {path}: cannot read it: {error}") from error
    serials: dict[str, None] = {}
    problems = []
    for number, line in enumerate(lines, start=1):
        value = line.strip()
        if not value:
            continue
        if is_serial_number(value):
            serials[value] = None
        else:
            problems.append(
                f"--file {path} line {number}: {value!r} is not a serial number; "
                f"expected {SERIAL_NUMBER_FORM}"
            )
    if problems:
        raise UsageProblem("\n".join(problems))
    if not serials:
        raise UsageProblem(f"--file {path}: no serial numbers in it; expected one a line")
    return list(serials)


def plan_rotation(
    stack: StackContext, selection: Selection, key_algorithm: RotationKeyAlgorithm, now: datetime
) -> Plan:
    """The jobs that would ask the selected devices to rotate to a ``key_algorithm`` key."""
    targets, skipped = _select(stack, selection, now)
    document = {"operation": ROTATION_JOB_OPERATION, "keyAlgorithm": key_algorithm.value}
    return Plan(document, _jobs(stack, targets, now), skipped)


def plan_resume(stack: StackContext, job_id: str, now: datetime) -> Plan:
    """A new job, with the document of rotation job ``job_id``, for its devices whose execution ended
    without success (:data:`UNSUCCESSFUL`) and that are still ``ACTIVE`` and not rotated since."""
    job, document = _rotation_job(stack, job_id)
    created: datetime = job["createdAt"]
    failed = [thing for thing, status in job_executions(stack.iot, job_id) if status in UNSUCCESSFUL]
    by_thing = {thing: serial_number_of(stack.base_name, thing) for thing in failed}
    items = _items(stack, [serial for serial in by_thing.values() if serial])
    targets, skipped = [], []
    for thing, serial in by_thing.items():
        item = items.get(serial) if serial else None
        reason = _not_resumable(stack, thing, serial, item, created)
        if reason:
            skipped.append(Skipped(serial or thing, reason))
        elif serial and item:
            targets.append(_target(serial, thing, item, now))
    return Plan(document, _jobs(stack, targets, now), skipped, resumed_from=job_id)


def create_jobs(stack: StackContext, plan: Plan) -> Plan:
    """Create the plan's jobs; the plan with each job's ARN. When a request fails, the jobs already
    created are named in the error."""
    created: list[Job] = []
    parts = len(plan.jobs)
    for number, job in enumerate(plan.jobs, start=1):
        origin = f"resumes {plan.resumed_from}" if plan.resumed_from else "fleetctl rotate"
        description = f"{origin}: {len(job.targets)} device(s), key {plan.document.get('keyAlgorithm')}" + (
            f" (part {number} of {parts})" if parts > 1 else ""
        )
        try:
            response = stack.iot.create_job(
                jobId=job.job_id,
                targets=[stack.thing_arn(target.thing_name) for target in job.targets],
                document=json.dumps(plan.document),
                description=description,
                targetSelection="SNAPSHOT",
                timeoutConfig={"inProgressTimeoutInMinutes": IN_PROGRESS_TIMEOUT_MINUTES},
            )
        except (ClientError, BotoCoreError) as error:
            if not created:
                raise
            names = ", ".join(each.job_id for each in created)
            waiting = sum(len(each.targets) for each in plan.jobs[len(created) :])
            raise AwsProblem(
                f"AWS error: {' '.join(str(error).split())}\n"
                f"created before it: {names}; "
                f"{waiting} device(s) of the other job(s) were not asked to rotate"
            ) from error
        created.append(Job(job.job_id, job.targets, response["jobArn"]))
    return Plan(plan.document, created, plan.skipped, plan.resumed_from)


def job_status(stack: StackContext, job_id: str) -> dict[str, Any]:
    """How a rotation job is doing: its status, how many executions are in each status, and the devices
    whose execution ended without success with the reason they reported (``statusDetails``)."""
    job, _ = _rotation_job(stack, job_id)
    executions = list(job_executions(stack.iot, job_id))
    counts = Counter(status for _, status in executions)
    failed = []
    for thing, status in executions:
        if status in UNSUCCESSFUL:
            details = job_execution_details(stack.iot, job_id, thing)
            failed.append(
                {
                    "serial": serial_number_of(stack.base_name, thing),
                    "thingName": thing,
                    "status": status,
                    "reason": details.get("reason", ""),
                }
            )
    return {
        "jobId": job_id,
        "jobStatus": job.get("status"),
        "createdAt": job["createdAt"].isoformat() if "createdAt" in job else None,
        "executions": {status: counts[status] for status in JOB_EXECUTION_STATUSES},
        "failed": sorted(failed, key=lambda row: row["thingName"]),
    }


def is_job_id(value: str) -> bool:
    """Whether ``value`` can be an AWS IoT job id."""
    return len(value) <= JOB_ID_MAX_LENGTH and JOB_ID_PATTERN.fullmatch(value) is not None


def _select(stack: StackContext, selection: Selection, now: datetime) -> tuple[list[Target], list[Skipped]]:
    """The devices to rotate, and those named (by SERIAL or --file) that will not be, with why. Devices
    found by a query (--type, --older-than alone) that do not match are not news; one without a thing is."""
    named = _named(selection)
    if named is None:
        if selection.device_type is None and selection.older_than_days is None:
            raise UsageProblem("name the devices: SERIAL, --type TYPE, --older-than DAYS and/or --file PATH")
        # Only ACTIVE devices can rotate: the others are not even read.
        found = stack.records.devices(DeviceStatus.ACTIVE, selection.device_type)
        candidates: Iterable[tuple[str, Item | None]] = ((item[Attr.SERIAL_NUMBER], item) for item in found)
    else:
        items = _items(stack, named)
        if selection.serial is not None and selection.serial not in items:
            raise NotFound(f"serial {selection.serial!r}: no item in registry {stack.table}")
        candidates = ((serial, items.get(serial)) for serial in named)
    targets, skipped = [], []
    for serial, item in candidates:
        if item is not None and named is None and _mismatch(item, selection, now):
            continue
        reason = _ineligible(item) or _mismatch(item or {}, selection, now)
        if reason:
            skipped.append(Skipped(serial, reason))
        elif item is not None:
            targets.append(_target(serial, item[Attr.THING_NAME], item, now))
    return sorted(targets, key=lambda each: each.serial), skipped


def _named(selection: Selection) -> list[str] | None:
    """The serials named by the argument and ``--file`` (both: those in both); ``None`` when neither."""
    if selection.serials_file is None:
        return None if selection.serial is None else [selection.serial]
    serials = read_serials(selection.serials_file)
    return serials if selection.serial is None else [each for each in serials if each == selection.serial]


def _ineligible(item: Item | None) -> str | None:
    """Why a device cannot rotate at all, or ``None``."""
    if item is None:
        return "not in the registry"
    status = item.get(Attr.STATUS)
    if status != DeviceStatus.ACTIVE:
        return f"{status}; only ACTIVE devices rotate"
    if not item.get(Attr.THING_NAME):
        return "no thingName in the registry item"
    return None


def _mismatch(item: Item, selection: Selection, now: datetime) -> str | None:
    """How a device misses --type or --older-than, or ``None``."""
    device_type = item.get(Attr.DEVICE_TYPE)
    if selection.device_type is not None and device_type != selection.device_type:
        return f"type {device_type}, not {selection.device_type}"
    if selection.older_than_days is not None:
        since = certificate_since(item)
        if since is None:
            return "no approvedAt, reprovisionedAt or rotatedAt: certificate age unknown"
        age = now - since
        if age.total_seconds() <= selection.older_than_days * _SECONDS_PER_DAY:
            return f"certificate {age.days} day(s) old, not older than {selection.older_than_days}"
    return None


def _not_resumable(
    stack: StackContext, thing: str, serial: str | None, item: Item | None, job_created: datetime
) -> str | None:
    if serial is None:
        return f"thing {thing} is not of stack {stack.base_name}"
    if item is None:
        return "not in the registry"
    status = item.get(Attr.STATUS)
    if status != DeviceStatus.ACTIVE:
        return f"{status}; only ACTIVE devices rotate"
    rotated = item.get(Attr.ROTATED_AT)
    if rotated and datetime.fromisoformat(rotated) > job_created:
        return f"rotated since the job was created (rotatedAt {rotated})"
    return None


def certificate_since(item: Item) -> datetime | None:
    """When the device's current certificate was issued: the latest of ``rotatedAt``,
    ``reprovisionedAt`` and ``approvedAt``."""
    moments = [datetime.fromisoformat(item[name]) for name in _AGE_ATTRIBUTES if item.get(name)]
    return max(moments, default=None)


def _target(serial: str, thing: str, item: Item, now: datetime) -> Target:
    since = certificate_since(item)
    return Target(
        serial,
        thing,
        item.get(Attr.DEVICE_TYPE, ""),
        None if since is None else since.isoformat(timespec="seconds"),
        None if since is None else (now - since).days,
    )


def _items(stack: StackContext, serials: Sequence[str]) -> dict[str, Item]:
    """The registry items of ``serials`` that exist, read :data:`AWS_CONCURRENCY` at a time."""
    with ThreadPoolExecutor(max_workers=AWS_CONCURRENCY) as pool:
        items = pool.map(stack.records.get, serials)
        return {serial: item for serial, item in zip(serials, items, strict=True) if item is not None}


def _jobs(stack: StackContext, targets: Sequence[Target], now: datetime) -> list[Job]:
    """The targets in jobs of at most :data:`JOB_TARGETS_MAX`, named
    ``<base>-rotate-<UTC time>-<4 random hex digits>[-n]``: the rotation function answers only CSRs of a job
    whose id starts ``<base>-rotate-`` (:func:`~hook.contract.rotation_job_id_prefix`)."""
    chunks = [targets[start : start + JOB_TARGETS_MAX] for start in range(0, len(targets), JOB_TARGETS_MAX)]
    unique = secrets.token_hex(JOB_ID_RANDOM_HEX_DIGITS // 2)
    base = f"{rotation_job_id_prefix(stack.base_name)}{now:%Y%m%d%H%M%S}-{unique}"
    ids = [base] if len(chunks) == 1 else [f"{base}-{number}" for number in range(1, len(chunks) + 1)]
    for job_id in ids:
        if not is_job_id(job_id):
            raise UsageProblem(
                f"job id {job_id!r} is not a valid AWS IoT job id (at most {JOB_ID_MAX_LENGTH} characters of "
                "a-z A-Z 0-9 _ -): the stack's base name is too long"
            )
    return [Job(job_id, list(chunk)) for job_id, chunk in zip(ids, chunks, strict=True)]


def _rotation_job(stack: StackContext, job_id: str) -> tuple[Mapping[str, Any], dict[str, str]]:
    """The description and the document of job ``job_id``: :class:`NotFound` when it does not exist, a
    :class:`UsageProblem` when it is not a certificate rotation job."""
    job = describe_job(stack.iot, job_id)
    if job is None:
        raise NotFound(f"job {job_id!r} does not exist in AWS IoT ({stack.region})")
    document = json.loads(stack.iot.get_job_document(jobId=job_id).get("document") or "{}")
    operation = document.get("operation") if isinstance(document, dict) else None
    if operation != ROTATION_JOB_OPERATION:
        raise UsageProblem(
            f"job {job_id!r} is not a certificate rotation job (its operation is {operation!r}, "
            f"expected {ROTATION_JOB_OPERATION!r})"
        )
    return job, document


def _target_row(target: Target) -> dict[str, Any]:
    return {
        "serial": target.serial,
        "thingName": target.thing_name,
        "deviceType": target.device_type,
        "certificateSince": target.certificate_since,
        "certificateAgeDays": target.certificate_age_days,
    }
