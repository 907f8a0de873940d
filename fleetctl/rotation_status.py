"""How a rotation job is doing (``fleetctl rotate status``): its executions by status and by outcome, read
with the registry, and each device that did not rotate with why."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from fleetctl.iot_reads import job_execution_details
from fleetctl.job_ends import has_ended, job_end
from fleetctl.rotation_executions import read_executions, rotation_job
from fleetctl.rotation_outcomes import Outcome
from hook.contract import Attr

if TYPE_CHECKING:
    from fleetctl.context import StackContext

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
_NOT_ROTATED: Final = frozenset({Outcome.UNCONFIRMED, Outcome.FAILED, Outcome.ENDED_UNFINISHED})


def job_status(stack: StackContext, job_id: str, now: datetime) -> dict[str, Any]:
    """How rotation job ``job_id`` is doing at ``now``: its status and end, how many executions are in each
    status and each outcome, and the devices that did not rotate, with the reason they reported
    (``statusDetails``) and the pending certificate the registry still holds for them, if any."""
    job, _ = rotation_job(stack, job_id)
    executions = read_executions(stack, job_id, job, now)
    statuses = Counter(each.status for each in executions)
    outcomes = Counter(each.outcome for each in executions)
    end = job_end(job)
    not_rotated = [
        {
            "serial": each.serial,
            "thingName": each.thing_name,
            "status": each.status,
            "outcome": each.outcome.value,
            "reason": job_execution_details(stack.iot, job_id, each.thing_name).get("reason", ""),
            "pendingCertificateId": _pending_of_job(each.item, job_id),
        }
        for each in executions
        if each.outcome in _NOT_ROTATED
    ]
    return {
        "jobId": job_id,
        "jobStatus": job.get("status"),
        "createdAt": job["createdAt"].isoformat() if "createdAt" in job else None,
        "endTime": None if end is None else end.isoformat(),
        "ended": has_ended(job, now),
        "executions": {status: statuses[status] for status in JOB_EXECUTION_STATUSES},
        "outcomes": {outcome.value: outcomes[outcome] for outcome in Outcome},
        "notRotated": sorted(not_rotated, key=lambda row: row["thingName"]),
    }


def _pending_of_job(item: dict[str, str] | None, job_id: str) -> str | None:
    """The pending certificate the registry holds for the device from ``job_id``, if any."""
    if item is None or item.get(Attr.ROTATION_JOB_ID) != job_id:
        return None
    return item.get(Attr.PENDING_CERTIFICATE_ID)
