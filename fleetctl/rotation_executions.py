"""A rotation job as ``fleetctl`` reads it: its description and document, and its executions, each with
its device's registry item and what it amounts to (:mod:`fleetctl.rotation_outcomes`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleetctl.errors import NotFound, UsageProblem
from fleetctl.iot_reads import describe_job, job_executions
from fleetctl.job_ends import has_ended
from fleetctl.rotation_outcomes import Outcome, execution_outcome
from hook.contract import Attr, serial_number_of
from hook.registry_decisions import rotation_completed
from hook.rotation_contract import ROTATION_JOB_OPERATION

if TYPE_CHECKING:
    from fleetctl.context import StackContext
    from hook.registry_items import Item


@dataclass(frozen=True)
class Execution:
    """A device's execution of a rotation job, read with the device's registry item."""

    thing_name: str
    serial: str | None
    status: str
    item: Item | None
    outcome: Outcome


def rotation_job(stack: StackContext, job_id: str) -> tuple[Mapping[str, Any], dict[str, str]]:
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


def read_executions(
    stack: StackContext, job_id: str, job: Mapping[str, Any], now: datetime
) -> list[Execution]:
    """The executions of the described rotation job ``job_id``, each with its device's registry item and
    outcome (:func:`~fleetctl.rotation_outcomes.execution_outcome`) at ``now``."""
    ended = has_ended(job, now)
    listed = [
        (thing, serial_number_of(stack.base_name, thing), status)
        for thing, status in job_executions(stack.iot, job_id)
    ]
    named = [serial for _, serial, _ in listed if serial]
    items = {item[Attr.SERIAL_NUMBER]: item for item in stack.records.get_many(named)}
    executions = []
    for thing, serial, status in listed:
        item = items.get(serial) if serial else None
        rotated = item is not None and rotation_completed(item, job_id)
        outcome = execution_outcome(status, job_ended=ended, rotated=rotated)
        executions.append(Execution(thing, serial, status, item, outcome))
    return executions
