"""Revoking and decommissioning devices. Every step checks before it acts, so a re-run after a partial
failure finishes the job and a run after success changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fleetctl.devices import Device, find_device
from fleetctl.iot import attached_policies, describe_certificate
from hook.contract import Attr, DeviceStatus
from hook.registry import timestamp

if TYPE_CHECKING:
    from fleetctl.context import StackContext

REVOKED: Final = "REVOKED"


@dataclass(frozen=True)
class Step:
    """One change that was made: what was done, and to which certificate, policy, thing or serial."""

    action: str
    target: str


def revoke(stack: StackContext, serial: str, reason: str) -> list[Step]:
    """Revoke every certificate of the device, detach its policies and its thing, and mark the registry
    ``REVOKED`` with ``reason`` (a ``DECOMMISSIONED`` item stays so); returns the steps taken."""
    return _revoke(stack, find_device(stack, serial), reason)


def decommission(stack: StackContext, serial: str, reason: str, *, keep_thing: bool) -> list[Step]:
    """Revoke, delete the thing unless ``keep_thing``, and mark the registry ``DECOMMISSIONED``."""
    device = find_device(stack, serial)
    steps = _revoke(stack, device, reason)
    if device.thing is not None and not keep_thing:
        stack.iot.delete_thing(thingName=device.thing_name)
        steps.append(Step("delete-thing", device.thing_name))
    decommissioned = stack.registry.transition(
        serial, DeviceStatus.DECOMMISSIONED, unless=[DeviceStatus.DECOMMISSIONED], extra={}
    )
    return [*steps, Step("registry-decommissioned", serial)] if decommissioned else steps


def _revoke(stack: StackContext, device: Device, reason: str) -> list[Step]:
    steps = []
    for certificate_id in device.certificate_ids:
        steps += _revoke_certificate(stack, device, certificate_id)
    revoked = stack.registry.transition(
        device.serial,
        DeviceStatus.REVOKED,
        unless=[DeviceStatus.REVOKED, DeviceStatus.DECOMMISSIONED],
        extra={Attr.REVOCATION_REASON: reason, Attr.REVOKED_AT: timestamp()},
    )
    return [*steps, Step("registry-revoked", device.serial)] if revoked else steps


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
