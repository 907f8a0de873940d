"""What a rotation step requires of the device's registry item and of AWS IoT before the rotation function
acts on it (:mod:`hook.certificate_rotation`); each refuses with :class:`RotationRefused`."""

from __future__ import annotations

from typing import Final

from botocore.exceptions import ClientError

from hook import runtime
from hook.contract import Attr, DeviceStatus
from hook.registry_items import Item
from hook.rotation_contract import RotationRejection
from hook.rotation_requests import RotationRefused, RotationRequest

OPEN_JOB_STATES: Final = frozenset({"QUEUED", "IN_PROGRESS"})
"""The states of a job execution before it ends (DescribeJobExecution, AWS IoT API reference)."""


def require_active_thing(request: RotationRequest, item: Item) -> None:
    if item.get(Attr.STATUS) != DeviceStatus.ACTIVE or item.get(Attr.THING_NAME) != request.thing_name:
        raise RotationRefused(
            RotationRejection.NOT_ACTIVE,
            f"the device is {item.get(Attr.STATUS)}, not ACTIVE as this thing",
            request.thing_name,
        )


def require_bound_key(request: RotationRequest, item: Item) -> None:
    """A serial with a registered key (its secure element's) gets a certificate only for that key: the CSR
    must carry it, re-certified. Checked here, before any AWS request; only such serials load the parser."""
    bound = item.get(Attr.PUBLIC_KEY_SHA256)
    if not bound:
        return
    from hook.public_keys import PublicKeyError, csr_key_sha256  # noqa: PLC0415 (key binding only)

    try:
        key = csr_key_sha256(request.csr)
    except PublicKeyError as error:
        raise RotationRefused(RotationRejection.INVALID_CSR, f"csr: {error}", request.thing_name) from None
    if key != bound:
        raise RotationRefused(
            RotationRejection.PUBLIC_KEY_MISMATCH,
            "the CSR's key is not the device's registered key: a rotation re-certifies the same key",
            request.thing_name,
        )


def require_job_in_progress(request: RotationRequest, item: Item) -> None:
    """The result is about the rotation in progress: the job of its CSR."""
    if item.get(Attr.ROTATION_JOB_ID, request.job_id) != request.job_id:
        raise RotationRefused(
            RotationRejection.MALFORMED_REQUEST,
            f"job {request.job_id} is not the rotation in progress",
            request.thing_name,
        )


def require_open_job(request: RotationRequest) -> None:
    """The CSR belongs to a job execution of this thing that has not ended: an operator asked for the
    rotation, and a device cannot have certificates issued at will (DescribeJobExecution, AWS IoT API
    reference; QUEUED and IN_PROGRESS are the states before an execution ends)."""
    try:
        execution = runtime.iot().describe_job_execution(jobId=request.job_id, thingName=request.thing_name)
        status = execution["execution"]["status"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        status = "none"
    if status not in OPEN_JOB_STATES:
        raise RotationRefused(
            RotationRejection.NO_ROTATION_JOB,
            f"job {request.job_id} has no open execution for this thing (status {status})",
            request.thing_name,
        )


def already_rotated(request: RotationRequest, item: Item) -> bool:
    """A repeated ``SUCCEEDED`` of the rotation that already completed: the caller is now current."""
    return (
        item.get(Attr.CERTIFICATE_ID) == request.caller_certificate_id
        and item.get(Attr.ROTATION_JOB_ID) == request.job_id
        and Attr.ROTATED_AT in item
    )
