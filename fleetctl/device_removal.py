"""Revoking and decommissioning devices: one by its serial, or each device of a selection
(:class:`Revocation`, :class:`Decommissioning`, run by :mod:`fleetctl.bulk`). Every step checks before it
acts, so a re-run after a partial failure finishes the job and a run after success changes nothing; a
revocation records ``certificatesRevokedAt`` once its certificates are done, last, so that a bulk re-run
can tell the finished devices from the registry alone."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final

from fleetctl.devices import Device, device_of, find_device
from fleetctl.errors import UsageProblem
from fleetctl.iot_reads import attached_policies, describe_certificate
from hook.contract import STALE_APPROVAL_AFTER_SECONDS, Attr, DeviceStatus
from hook.registry_items import timestamp

if TYPE_CHECKING:
    from fleetctl.context import StackContext
    from hook.registry_items import Item

REVOKED: Final = "REVOKED"
DELETE_THING_ATTEMPTS: Final = 6
DELETE_THING_BACKOFF_SECONDS: Final = 1.0
"""AWS detaches principals from a thing asynchronously; deleting it may fail for a few seconds."""
FINISH: Final = "finish-revocation"
"""What is left of a revocation whose certificates are not recorded as done (see :func:`_revoke`)."""
_ATTRIBUTES: Final = (
    Attr.STATUS,
    Attr.CERTIFICATE_ID,
    Attr.PENDING_CERTIFICATE_ID,
    Attr.THING_NAME,
    Attr.CERTIFICATES_REVOKED_AT,
)
"""What a bulk revoke or decommission reads of each selected item."""


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
    return _decommission(stack, find_device(stack, serial), reason, keep_thing=keep_thing)


@dataclass(frozen=True)
class Revocation:
    """``revoke`` of selected devices (:mod:`fleetctl.bulk`): what is left to do to one, and doing it."""

    reason: str
    verb: ClassVar[str] = "revoke"
    attributes: ClassVar[tuple[Attr, ...]] = _ATTRIBUTES

    def left(self, item: Item) -> str | None:
        """``revoke``; :data:`FINISH` for a ``REVOKED`` serial whose certificates fleetctl has not recorded as
        done (an interrupted run); ``None`` when done (that record, or ``DECOMMISSIONED``)."""
        status = item.get(Attr.STATUS)
        if status == DeviceStatus.DECOMMISSIONED or _certificates_done(item):
            return None
        return FINISH if status == DeviceStatus.REVOKED else self.verb

    def apply(self, stack: StackContext, serial: str, item: Item) -> list[Step]:
        """Revoke the device whose selected item is ``item``."""
        return _revoke(stack, device_of(stack, serial, item), self.reason)

    def apply_by_serial(self, stack: StackContext, serial: str) -> list[Step]:
        """Revoke the device of ``serial`` (:func:`revoke`)."""
        return revoke(stack, serial, self.reason)


@dataclass(frozen=True)
class Decommissioning:
    """``decommission`` of selected devices (:mod:`fleetctl.bulk`)."""

    reason: str
    keep_thing: bool
    verb: ClassVar[str] = "decommission"
    attributes: ClassVar[tuple[Attr, ...]] = _ATTRIBUTES

    def left(self, item: Item) -> str | None:
        """``decommission``; ``None`` once ``DECOMMISSIONED`` (written last)."""
        return None if item.get(Attr.STATUS) == DeviceStatus.DECOMMISSIONED else self.verb

    def apply(self, stack: StackContext, serial: str, item: Item) -> list[Step]:
        """Decommission the device whose selected item is ``item``; certificates fleetctl recorded as
        revoked are not checked again."""
        device = device_of(stack, serial, item)
        return _decommission(stack, device, self.reason, keep_thing=self.keep_thing, recheck=False)

    def apply_by_serial(self, stack: StackContext, serial: str) -> list[Step]:
        """Decommission the device of ``serial`` (:func:`decommission`)."""
        return decommission(stack, serial, self.reason, keep_thing=self.keep_thing)


def release(stack: StackContext, serial: str) -> list[Step]:
    """Undo an approval that never became a thing, so the device can provision again with new keys.

    Only a ``PENDING`` serial without a thing, approved more than an hour ago (the device's certificate
    ownership token has expired, so that approval can no longer complete), is released; the certificate
    it was approved for is revoked.
    """
    device = find_device(stack, serial)
    record = device.record or {}
    status = record.get(Attr.STATUS)
    if device.has_thing:
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


def _decommission(
    stack: StackContext, device: Device, reason: str, *, keep_thing: bool, recheck: bool = True
) -> list[Step]:
    steps = _revoke(stack, device, reason, recheck=recheck)
    if device.has_thing and not keep_thing:
        _delete_thing(stack, device.thing_name)
        steps.append(Step("delete-thing", device.thing_name))
    decommissioned = stack.records.decommission(device.serial)
    return [*steps, Step("registry-decommissioned", device.serial)] if decommissioned is not None else steps


def _revoke(stack: StackContext, device: Device, reason: str, *, recheck: bool = True) -> list[Step]:
    """Revoke ``device``, then record that its certificates are done (``certificatesRevokedAt``, written
    last: a bulk re-run skips the serials that have it). Without ``recheck``, a serial already revoked with
    that record is left as it is."""
    # The registry goes first: from then on the hook denies the serial, so no certificate can be approved
    # behind our back; one approved (or a rotation's, begun) just before is named by the item the write
    # returns.
    revoked = stack.records.revoke(device.serial, reason)
    if revoked is None and not recheck and _certificates_done(device.record or {}):
        return []
    steps = [] if revoked is None else [Step("registry-revoked", device.serial)]
    certificate_ids = list(device.certificate_ids)
    for name in (Attr.CERTIFICATE_ID, Attr.PENDING_CERTIFICATE_ID):
        issued = (revoked or {}).get(name)
        if issued and issued not in certificate_ids:
            certificate_ids.append(issued)
    for certificate_id in certificate_ids:
        steps += _revoke_certificate(stack, device, certificate_id)
    stack.records.record_certificates_revoked(device.serial)
    return steps


def _certificates_done(item: Item) -> bool:
    """Whether fleetctl recorded every certificate of this revoked or decommissioned serial as done."""
    done = {DeviceStatus.REVOKED, DeviceStatus.DECOMMISSIONED}
    return item.get(Attr.STATUS) in done and bool(item.get(Attr.CERTIFICATES_REVOKED_AT))


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


def revoke_and_detach(stack: StackContext, description: Mapping[str, Any]) -> list[Step]:
    """Revoke a described certificate (unless it is already) and detach every policy attached to it."""
    arn = description["certificateArn"]
    steps = []
    if description["status"] != REVOKED:
        stack.iot.update_certificate(certificateId=description["certificateId"], newStatus=REVOKED)
        steps.append(Step("revoke-certificate", description["certificateId"]))
    for policy in attached_policies(stack.iot, arn):
        stack.iot.detach_policy(policyName=policy, target=arn)
        steps.append(Step("detach-policy", policy))
    return steps


def _revoke_certificate(stack: StackContext, device: Device, certificate_id: str) -> list[Step]:
    description = describe_certificate(stack.iot, certificate_id)
    if description is None:
        return []
    arn = description["certificateArn"]
    steps = revoke_and_detach(stack, description)
    if arn in (device.thing_certificate_arns or []):
        stack.iot.detach_thing_principal(thingName=device.thing_name, principal=arn)
        steps.append(Step("detach-thing-principal", device.thing_name))
    return steps
