"""One attempt per rotation job and serial, recorded in the serial's registry item.

A rotation job execution gets one attempt: a CSR reserves the job (:meth:`RotationAttempts.reserve`, a
conditional write) before AWS IoT is asked for a certificate, so a repeated CSR, a CSR after the rotation
was abandoned, and a second CSR sent at the same moment all find the job taken and issue nothing. A failure
the device reports before any CSR spends the job too (:meth:`DeviceRecords.abandon_rotation
<hook.registry_transitions.DeviceRecords.abandon_rotation>` with a job id). A new attempt needs a new job:
``fleetctl rotate resume`` creates one.

The attempted jobs are ``attemptedRotationJobIds``, the newest :data:`ATTEMPTED_ROTATION_JOBS_KEPT`; each
write that adds one is conditional on the list being as read, so of two concurrent writers one wins. The
rotation function counts a failure only after such a write succeeded: once per serial and job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from boto3.dynamodb.conditions import Attr as Attribute
from boto3.dynamodb.conditions import ConditionBase

from hook import runtime
from hook.contract import REGISTRY_TABLE_ENV, Attr, DeviceStatus
from hook.registry_decisions import attempted_rotation_jobs
from hook.registry_items import Item, conditional_update, key_unchanged

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

ATTEMPTED_ROTATION_JOBS_KEPT: Final = 20
"""How many attempted jobs an item lists. An older job's execution has long ended (an operator runs one
rotation job per device at a time), and the rotation function refuses a CSR of an ended execution anyway."""


def rotation_attempted(item: Item, job_id: str) -> bool:
    """Whether job ``job_id`` had its attempt at the serial of ``item``: it is listed, or its certificate is
    pending (as on an item written before the list existed)."""
    pending = bool(item.get(Attr.PENDING_CERTIFICATE_ID)) and item.get(Attr.ROTATION_JOB_ID) == job_id
    return pending or job_id in _attempted(item)


def with_attempt(item: Item, job_id: str) -> str:
    """The attempted jobs of ``item`` with ``job_id`` added in front, the newest kept only."""
    return attempted_rotation_jobs(item, job_id, ATTEMPTED_ROTATION_JOBS_KEPT)


def attempts_unchanged(item: Item) -> ConditionBase:
    """The serial's attempted jobs are still those of ``item``: no other attempt was recorded since."""
    listed = item.get(Attr.ATTEMPTED_ROTATION_JOB_IDS)
    if listed:
        return Attribute(Attr.ATTEMPTED_ROTATION_JOB_IDS).eq(listed)
    return Attribute(Attr.ATTEMPTED_ROTATION_JOB_IDS).not_exists()


class RotationAttempts:
    """The rotation function's reservations of a job for a serial, in the registry table."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table_name = table_name

    def reserve(self, item: Item, job_id: str) -> Item | None:
        """Record ``job_id`` as attempted for the ``ACTIVE`` serial of ``item``, conditional on its
        certificate, key and attempted jobs being those of ``item``; the item as written, or ``None`` when
        the serial changed since it was read (another request reserved a job, or an operator acted)."""
        unchanged = (
            Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE)
            & Attribute(Attr.CERTIFICATE_ID).eq(item.get(Attr.CERTIFICATE_ID, ""))
            & key_unchanged(item.get(Attr.PUBLIC_KEY_SHA256))
            & attempts_unchanged(item)
        )
        assign: Item = {Attr.ATTEMPTED_ROTATION_JOB_IDS: with_attempt(item, job_id)}
        return conditional_update(self._client, self._table_name, item, unchanged, assign=assign)

    def release(self, reserved: Item, job_id: str) -> bool:
        """Take ``job_id`` back off the attempted jobs of ``reserved`` (as :meth:`reserve` wrote it), so
        Lambda's retry of an event that met a passing AWS error may attempt the job again; ``False`` when
        the attempted jobs changed since."""
        kept = [each for each in _attempted(reserved) if each != job_id]
        written = conditional_update(
            self._client,
            self._table_name,
            reserved,
            attempts_unchanged(reserved),
            assign={Attr.ATTEMPTED_ROTATION_JOB_IDS: " ".join(kept)} if kept else {},
            remove=() if kept else (Attr.ATTEMPTED_ROTATION_JOB_IDS,),
        )
        return written is not None


def _attempted(item: Item) -> list[str]:
    return item.get(Attr.ATTEMPTED_ROTATION_JOB_IDS, "").split()


@runtime.once
def function_attempts() -> RotationAttempts:
    """The rotation function's reservations (:data:`~hook.runtime.FUNCTION_CLIENT_CONFIG`), made once."""
    return RotationAttempts(
        runtime.client("dynamodb", runtime.FUNCTION_CLIENT_CONFIG), runtime.required_env(REGISTRY_TABLE_ENV)
    )
