"""Revoking and decommissioning devices. Every step checks before it acts, so a re-run after a partial
failure finishes the job and a run after success changes nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from fleetctl.devices import Device, find_device
from fleetctl.errors import UsageProblem
from fleetctl.iot import attached_policies, describe_certificate
from hook.contract import STALE_APPROVAL_AFTER_SECONDS, Attr, DeviceStatus
from hook.registry import timestamp

if TYPE_CHECKING:
    from fleetctl.context import StackContext

REVOKED: Final = "REVOKED"
DELETE_THING_ATTEMPTS: Final = 6
DELETE_THING_BACKOFF_SECONDS: Final = 1.0
"""AWS detaches principals from a thing asynchronously; deleting it may fail for a few seconds."""


@dataclass(frozen=True)
class Step:
    """One change that was made: what was done, and to which certificate, policy, thing or serial."""

    action: str
    target: str


def revoke(stack: StackContext, serial: str, reason: str) -> list[Step]:
    """Mark the registry ``REVOKED`` with ``reason`` (a ``DECOMMISSIONED`` item stays so), then revoke every
    certificate of the device and detach its policies and its thing; returns the steps taken."""
    return _revoke(stack, find_device(stack, serial), reason)


def decommission(stack: StackContext, serial: str, reason: str, *, keep_thing: bool) -> list[Step]:
    """Revoke, delete the thing unless ``keep_thing``, and mark the registry ``DECOMMISSIONED``."""
    device = find_device(stack, serial)
    steps = _revoke(stack, device, reason)
    if device.thing is not None and not keep_thing:
        _delete_thing(stack, device.thing_name)
        steps.append(Step("delete-thing", device.thing_name))
    decommissioned = stack.records.decommission(serial)
    return [*steps, Step("registry-decommissioned", serial)] if decommissioned is not None else steps


def release(stack: StackContext, serial: str) -> list[Step]:
    """Undo an approval that never became a thing, so the device can provision again with new keys.

    Only a ``PENDING`` serial without a thing, approved more than an hour ago (the device's certificate
    ownership token has expired, so that approval can no longer complete), is released; the certificate
    it was approved for is revoked.
    """
    device = find_device(stack, serial)
    record = device.record or {}
    status = record.get(Attr.STATUS)
    if device.thing is not None:
        raise UsageProblem(
            f"serial {serial!r} has thing {device.thing_name!r}: it was provisioned; use revoke"
        )
    if status != DeviceStatus.PENDING:
        raise UsageProblem(f"serial {serial!r} is {status}; only a PENDING approval can be released")
    cutoff = timestamp(datetime.now(UTC) - timedelta(seconds=STALE_APPROVAL_AFTER_SECONDS))
    if record.get(Attr.APPROVED_AT, "") >= cutoff:
        raise UsageProblem(f"serial {serial!r} was approved less than an hour ago and may still provision")
    released = stack.records.release(record)
    if released is None:
        raise UsageProblem(f"serial {serial!r} changed while being released; look again")
    steps = [Step(f"registry-{released}", serial)]
    return [*steps, *_revoke_certificate(stack, device, record[Attr.CERTIFICATE_ID])]


def _revoke(stack: StackContext, device: Device, reason: str) -> list[Step]:
    # The registry goes first: from then on the hook denies the serial, so no certificate can be approved
    # behind our back; one approved just before is named by the item the write returns.
    revoked = stack.records.revoke(device.serial, reason)
    steps = [] if revoked is None else [Step("registry-revoked", device.serial)]
    certificate_ids = list(device.certificate_ids)
    approved = (revoked or {}).get(Attr.CERTIFICATE_ID)
    if approved and approved not in certificate_ids:
        certificate_ids.append(approved)
    for certificate_id in certificate_ids:
        steps += _revoke_certificate(stack, device, certificate_id)
    return steps


def _delete_thing(stack: StackContext, name: str) -> None:
    """Delete the thing, waiting out AWS's asynchronous detaching of its certificates."""
    for attempt in range(DELETE_THING_ATTEMPTS):
        try:
            stack.iot.delete_thing(thingName=name)
            return
        except stack.iot.exceptions.InvalidRequestException:  # still attached
            if attempt == DELETE_THING_ATTEMPTS - 1:
                raise
            time.sleep(DELETE_THING_BACKOFF_SECONDS * (attempt + 1))


def _revoke_certificate(stack: StackContext, device: Device, certificate_id: str) -> list[Step]:
    description = describe_certificate(stack.iot, certificate_id)
    if description is None:
        return []
    arn = description["certificateArn"]
    steps = []
    if description["status"] != REVOKED:
        stack.iot.update_certificate(certificateId=certificate_id, newStatus=REVOKED)
        steps.append(Step("revoke-certificate", certificate_id))
    for policy in attached_policies(stack.iot, arn):
        stack.iot.detach_policy(policyName=policy, target=arn)
        steps.append(Step("detach-policy", policy))
    if arn in device.thing_certificate_arns:
        stack.iot.detach_thing_principal(thingName=device.thing_name, principal=arn)
        steps.append(Step("detach-thing-principal", device.thing_name))
    return steps
