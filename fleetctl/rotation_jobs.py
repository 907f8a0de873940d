"""Certificate rotation by AWS IoT job: which devices, the jobs that ask them to rotate, and a job's
devices that did not rotate resumed in a new job (:mod:`fleetctl.rotation_status` follows a job).

The device does the rotation (a new key and CSR on the device; see ``hook/certificate_rotation.py``);
fleetctl only asks, with a ``SNAPSHOT`` job whose document is ``{"operation": "rotate-certificate",
"keyAlgorithm": ...}`` targeting the devices' things. Devices are chosen through the registry by
:mod:`fleetctl.selection`, and ``--older-than``: only ``ACTIVE`` devices with a thing can rotate. Jobs are
created at the pace of ``CreateJob``'s rate (:mod:`fleetctl.pacing`), each with an end
(:mod:`fleetctl.job_ends`).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from fleetctl.errors import AwsProblem, NotFound, UsageProblem
from fleetctl.iot_reads import job_executions, jobs_in_progress
from fleetctl.job_ends import has_ended, scheduling_config
from fleetctl.rotation_executions import read_executions, rotation_job
from fleetctl.rotation_outcomes import OPEN_STATUSES, RESUMABLE, Outcome
from hook.contract import Attr, DeviceStatus
from hook.registry_decisions import stale_pending_rotation
from hook.rotation_contract import ROTATION_JOB_OPERATION, RotationKeyAlgorithm, rotation_job_id_prefix

if TYPE_CHECKING:
    from mypy_boto3_iot.type_defs import SchedulingConfigTypeDef

    from fleetctl.context import StackContext
    from fleetctl.pacing import Pacer
    from fleetctl.selection import Selection
    from hook.registry_items import Item

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
``TIMED_OUT`` and ``rotate resume`` picks the device up. A rotation takes the device seconds (a key, a CSR,
one reconnection); 30 minutes leave room for slow links. AWS IoT API Reference, TimeoutConfig:
``inProgressTimeoutInMinutes`` from 1 to 10080; a QUEUED execution (a device that never took the job) does
not time out: the job's end cancels it (:mod:`fleetctl.job_ends`). A device retries its new certificate's
first connection for about a minute (``local/devices/jobs_agent.py``), well within this."""
STALE_PENDING_REASON: Final = "no confirmation within the job's in-progress timeout (fleetctl rotate resume)"
"""Why ``rotate resume`` dropped a pending certificate, as the registry records it."""
_LIMIT_EXCEEDED: Final = "LimitExceededException"
_AT_ACTIVE_JOBS_LIMIT: Final = (
    "AWS IoT limits the jobs in progress in an account, and those rolling out at once. A job is in "
    "progress until each of its devices has finished, and a device that stays offline keeps it so: run "
    "the same command again once jobs finish (rotate status shows how each does), cancel the jobs whose "
    "remaining devices are offline (aws iot cancel-job --job-id ID), or ask for a higher active jobs quota "
    "in Service Quotas. A new run leaves out the devices an unfinished job asked."
)
"""What to do when CreateJob answers LimitExceededException: the active jobs limit ("AWS IoT Jobs limits",
https://docs.aws.amazon.com/iot/latest/developerguide/job-limits.html)."""
_SECONDS_PER_DAY: Final = 86400
_AGE_ATTRIBUTES: Final = (Attr.ROTATED_AT, Attr.REPROVISIONED_AT, Attr.APPROVED_AT)
"""When the current certificate was issued: its rotation, its re-provisioning or the first approval."""


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
    """The jobs to create, the document they carry, when they end, the devices left out, and (resuming)
    the pending certificates to retire first: their job's in-progress timeout passed unconfirmed."""

    document: dict[str, str]
    jobs: list[Job]
    skipped: list[Skipped]
    end_after: timedelta
    resumed_from: str | None = None
    stale_pending: list[Item] = field(default_factory=list)
    ends_at: str | None = None
    """The jobs' ``endTime``, once created."""
    targets: list[Target] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", [target for job in self.jobs for target in job.targets])

    def report(self, *, created: bool) -> dict[str, Any]:
        """The plan (or what was done) as JSON-ready data."""
        return {
            "created": created,
            "resumedFrom": self.resumed_from,
            "document": self.document,
            "endAfterHours": self.end_after // timedelta(hours=1),
            "endTime": self.ends_at,
            "jobs": [
                {"jobId": job.job_id, "jobArn": job.arn, "serials": [each.serial for each in job.targets]}
                for job in self.jobs
            ],
            "targets": [_target_row(target) for target in self.targets],
            "skipped": [{"serial": each.serial, "reason": each.reason} for each in self.skipped],
            "stalePending": [
                {"serial": item[Attr.SERIAL_NUMBER], "certificateId": item[Attr.PENDING_CERTIFICATE_ID]}
                for item in self.stale_pending
            ],
        }


def plan_rotation(
    stack: StackContext,
    selection: Selection,
    older_than_days: int | None,
    key_algorithm: RotationKeyAlgorithm,
    now: datetime,
    *,
    end_after: timedelta,
    pacer: Pacer,
) -> Plan:
    """The jobs, ending ``end_after`` after their creation, that would ask the selected devices (those of
    ``older_than_days`` among them, when given) to rotate to a ``key_algorithm`` key, leaving out the
    devices an unfinished rotation job of the stack has asked already (read at ``pacer``'s pace): a run
    stopped by AWS IoT's limit on active jobs, run again later, asks only the others."""
    targets, skipped = _select(stack, selection, older_than_days, now)
    targets = _not_asked_already(stack, targets, skipped, pacer)
    document = {"operation": ROTATION_JOB_OPERATION, "keyAlgorithm": key_algorithm.value}
    return Plan(document, _jobs(stack, targets, now), skipped, end_after)


def _not_asked_already(
    stack: StackContext,
    targets: list[Target],
    skipped: list[Skipped],
    pacer: Pacer,
    ended_job: str | None = None,
) -> list[Target]:
    """The targets without an open execution of one of the stack's rotation jobs in progress other than
    ``ended_job`` (the job resumed: past its end, AWS IoT may still list it in progress for a while, and with
    ``STOP_ROLLOUT`` keep its executions QUEUED), read at ``pacer``'s pace; the others are added to
    ``skipped`` with that job's id."""
    with pacer.pacing(stack.iot):
        asked = {
            thing: job_id
            for job_id in jobs_in_progress(stack.iot, rotation_job_id_prefix(stack.base_name))
            if job_id != ended_job
            for thing, status in job_executions(stack.iot, job_id)
            if status in OPEN_STATUSES
        }
    skipped += [
        Skipped(target.serial, f"asked by job {asked[target.thing_name]}, not finished (see rotate status)")
        for target in targets
        if target.thing_name in asked
    ]
    return [target for target in targets if target.thing_name not in asked]


def plan_resume(
    stack: StackContext, job_id: str, now: datetime, *, end_after: timedelta, pacer: Pacer
) -> Plan:
    """A new job, with the document of rotation job ``job_id``, for its devices that did not rotate
    (:data:`~fleetctl.rotation_outcomes.RESUMABLE`: a ``SUCCEEDED`` execution counts only when the registry
    shows the job's rotation completed) and that are still ``ACTIVE`` and not rotated since, leaving out
    those another unfinished rotation job has asked. The pending certificates of ``job_id`` older than its
    in-progress timeout are retired first, so each such device can rotate again."""
    job, document = rotation_job(stack, job_id)
    created: datetime = job["createdAt"]
    executions = read_executions(stack, job_id, job, now)
    minutes = job.get("timeoutConfig", {}).get("inProgressTimeoutInMinutes", IN_PROGRESS_TIMEOUT_MINUTES)
    timeout = timedelta(minutes=minutes)
    stale = [
        each.item
        for each in executions
        if each.item is not None
        and each.outcome is not Outcome.WAITING
        and stale_pending_rotation(each.item, job_id, timeout, now)
    ]
    targets, skipped = [], []
    for each in executions:
        if each.outcome not in RESUMABLE:
            continue
        reason = _not_resumable(stack, each.thing_name, each.serial, each.item, created)
        if not reason and each.outcome is Outcome.UNCONFIRMED:
            reason = _confirmation_due(each.item, job_id, timeout, now)
        if reason:
            skipped.append(Skipped(each.serial or each.thing_name, reason))
        elif each.serial and each.item:
            targets.append(_target(each.serial, each.thing_name, each.item, now))
    ended = job_id if has_ended(job, now) else None
    targets = _not_asked_already(stack, targets, skipped, pacer, ended)
    return Plan(document, _jobs(stack, targets, now), skipped, end_after, job_id, stale)


def create_jobs(stack: StackContext, plan: Plan, pacer: Pacer, now: datetime) -> Plan:
    """Retire the plan's stale pending certificates, then create its jobs, ending ``plan.end_after`` from
    ``now``, paced by ``pacer``; the plan with each job's ARN. When a request fails, the jobs already
    created are named in the error."""
    for item in plan.stale_pending:
        # Conditional on the pending certificate: a confirmation that arrived meanwhile wins. The
        # registry's stream then revokes and detaches the certificate (hook.certificate_retirement).
        stack.records.abandon_rotation(item, STALE_PENDING_REASON)
    with pacer.pacing(stack.iot):
        return _create_jobs(stack, plan, scheduling_config(now, plan.end_after))


def _create_jobs(stack: StackContext, plan: Plan, scheduling: SchedulingConfigTypeDef) -> Plan:
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
                schedulingConfig=scheduling,
            )
        except (ClientError, BotoCoreError) as error:
            at_limit = isinstance(error, ClientError) and error.response["Error"]["Code"] == _LIMIT_EXCEEDED
            if not created and not at_limit:
                raise
            names = ", ".join(each.job_id for each in created) or "none"
            waiting = sum(len(each.targets) for each in plan.jobs[len(created) :])
            raise AwsProblem(
                f"AWS error: {' '.join(str(error).split())}\n"
                f"created before it: {names}; "
                f"{waiting} device(s) of the other job(s) were not asked to rotate"
                + (f"\n{_AT_ACTIVE_JOBS_LIMIT}" if at_limit else "")
            ) from error
        created.append(Job(job.job_id, job.targets, response["jobArn"]))
    return Plan(
        plan.document,
        created,
        plan.skipped,
        plan.end_after,
        plan.resumed_from,
        plan.stale_pending,
        scheduling.get("endTime"),
    )


def is_job_id(value: str) -> bool:
    """Whether ``value`` can be an AWS IoT job id."""
    return len(value) <= JOB_ID_MAX_LENGTH and JOB_ID_PATTERN.fullmatch(value) is not None


def _select(
    stack: StackContext, selection: Selection, older_than_days: int | None, now: datetime
) -> tuple[list[Target], list[Skipped]]:
    """The devices to rotate, and those named (by SERIAL or --file) that will not be, with why. Only
    ``ACTIVE`` devices can rotate: a query reads no other. Devices found by a query that are not older than
    ``older_than_days`` are not news; one without a thing is."""
    named = selection.selectors.serial is not None or selection.serials is not None
    targets, skipped = [], []
    serial_found = False
    for candidate in selection.candidates(stack, status=DeviceStatus.ACTIVE):
        serial, item = candidate.serial, candidate.item
        serial_found = serial_found or (serial == selection.selectors.serial and item is not None)
        too_young = _too_young(item or {}, older_than_days, now)
        elsewhere = _elsewhere(stack, item or {})
        if not named and (too_young or elsewhere):
            continue
        reason = _ineligible(item) or candidate.mismatch or elsewhere or too_young
        if reason:
            skipped.append(Skipped(serial, reason))
        elif item is not None:
            targets.append(_target(serial, item[Attr.THING_NAME], item, now))
    if selection.selectors.serial is not None and not serial_found:
        raise NotFound(f"serial {selection.selectors.serial!r}: no item in registry {stack.table}")
    return sorted(targets, key=lambda each: each.serial), skipped


def _ineligible(item: Item | None) -> str | None:
    """Why a device cannot rotate at all, or ``None``."""
    if item is None:
        return "not in the registry"
    status = item.get(Attr.STATUS)
    if status != DeviceStatus.ACTIVE:
        return f"{status}; only ACTIVE devices rotate"
    if not item.get(Attr.THING_NAME):
        return "no thingName in the registry item"
    pending = item.get(Attr.PENDING_CERTIFICATE_ID)
    if pending:
        # The device may be on it (it reported SUCCEEDED and the confirmation was lost): a CSR it sends
        # for a new job would come from a certificate the registry does not call current, and be refused.
        job_id = item.get(Attr.ROTATION_JOB_ID, "?")
        return (
            f"pending certificate {pending} of job {job_id} not confirmed: rotate resume {job_id} retires it "
            "once that job's in-progress timeout has passed, and asks the device again"
        )
    return None


def _elsewhere(stack: StackContext, item: Item) -> str | None:
    """Why a device of another region of the fleet is not asked: a job targets things of its own region
    (CreateJob's targets are thing ARNs, which carry it), so each region's devices rotate in a run of
    their own."""
    region = item.get(Attr.REGION) or stack.registry_region
    if region == stack.region:
        return None
    return f"provisioned in {region}: rotate it with that region's outputs alone (--outputs FILE)"


def _too_young(item: Item, older_than_days: int | None, now: datetime) -> str | None:
    """How a device misses --older-than, or ``None``."""
    if older_than_days is None:
        return None
    since = certificate_since(item)
    if since is None:
        return "no approvedAt, reprovisionedAt or rotatedAt: certificate age unknown"
    age = now - since
    if age.total_seconds() <= older_than_days * _SECONDS_PER_DAY:
        return f"certificate {age.days} day(s) old, not older than {older_than_days}"
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


def _confirmation_due(item: Item | None, job_id: str, timeout: timedelta, now: datetime) -> str | None:
    """Why a device that reported ``SUCCEEDED`` without a confirmation on record is not asked again yet:
    it holds a pending certificate of ``job_id`` younger than the job's in-progress timeout, so it may be
    using that certificate and its confirmation may still arrive (the rule invokes the rotation function
    asynchronously, and Lambda retries). A new job now would find it on a certificate the registry does
    not call current, which the rotation function refuses a CSR from; once the timeout has passed,
    ``rotate resume`` retires the certificate and the device, back on its old one, is asked again."""
    if item is None or item.get(Attr.ROTATION_JOB_ID) != job_id or not item.get(Attr.PENDING_CERTIFICATE_ID):
        return None
    if stale_pending_rotation(item, job_id, timeout, now) or not item.get(Attr.ROTATION_REQUESTED_AT):
        return None
    due = datetime.fromisoformat(item[Attr.ROTATION_REQUESTED_AT]) + timeout
    return (
        f"reported SUCCEEDED and may still confirm its new certificate {item[Attr.PENDING_CERTIFICATE_ID]}: "
        f"resume again after {due.isoformat(timespec='seconds')}"
    )


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


def _jobs(stack: StackContext, targets: Sequence[Target], now: datetime) -> list[Job]:
    """The targets in jobs of at most :data:`JOB_TARGETS_MAX`, named
    ``<base>-rotate-<UTC time>-<4 random hex digits>[-n]``: the rotation function answers only CSRs of a job
    whose id starts ``<base>-rotate-`` (:func:`~hook.rotation_contract.rotation_job_id_prefix`)."""
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


def _target_row(target: Target) -> dict[str, Any]:
    return {
        "serial": target.serial,
        "thingName": target.thing_name,
        "deviceType": target.device_type,
        "certificateSince": target.certificate_since,
        "certificateAgeDays": target.certificate_age_days,
    }
