"""Removing what a stack's devices left and the stack does not own, so that ``pulumi destroy`` can succeed:
the devices decommissioned with fleetctl, their shadows and certificates deleted."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from fleetctl.context import StackContext
from fleetctl.device_removal import decommission
from fleetctl.devices import find_device
from fleetctl.errors import FleetctlError
from fleetctl.iot_reads import attached_policies, describe_certificate, principal_things
from hook.contract import Attr
from local.deploy.inspection import Inspector

DELETE_ATTEMPTS: Final = 6
"""AWS IoT detaches policies and things asynchronously: deleting a certificate may fail for a few seconds."""
CLEAN_UP_REASON: Final = "acceptance run clean-up"


@dataclass(frozen=True)
class Removal:
    """What :func:`remove_devices` removed, and what it could not."""

    devices: int
    certificates: int
    problems: list[str]

    def __str__(self) -> str:
        removed = f"{self.devices} devices decommissioned, {self.certificates} certificates deleted"
        return removed + "".join(f"\n  could not: {problem}" for problem in self.problems)


def remove_devices(stack: StackContext, inspector: Inspector, certificate_ids: Iterable[str]) -> Removal:
    """Remove what devices created and the stack does not own, so that destroying it can succeed: every
    registry device is decommissioned with fleetctl (certificates revoked and detached, thing deleted)
    and its shadow deleted; then every certificate of those devices and ``certificate_ids`` is deleted."""
    certificates = set(certificate_ids)
    problems: list[str] = []
    registry = inspector.registry(stack.table)
    for serial, item in sorted(registry.items()):
        try:
            certificates.update(find_device(stack, serial).certificate_ids)
            _delete_shadow(
                inspector.client("iot-data"), item.get(Attr.THING_NAME) or stack.thing_name(serial)
            )
            decommission(stack, serial, CLEAN_UP_REASON, keep_thing=False)
        except (BotoCoreError, ClientError, FleetctlError) as error:
            problems.append(f"decommission {serial}: {error}")
    deleted = 0
    for certificate_id in sorted(certificates):
        try:
            deleted += _delete_certificate(stack.iot, certificate_id)
        except (BotoCoreError, ClientError) as error:
            problems.append(f"delete certificate {certificate_id}: {error}")
    return Removal(len(registry), deleted, problems)


def _delete_shadow(iot_data: Any, thing_name: str) -> None:
    with contextlib.suppress(iot_data.exceptions.ResourceNotFoundException):
        iot_data.delete_thing_shadow(thingName=thing_name)


def _delete_certificate(iot: Any, certificate_id: str) -> bool:
    """Detach the certificate's policies and things, deactivate and delete it; ``False`` if it is gone."""
    description = describe_certificate(iot, certificate_id)
    if description is None:
        return False
    arn = description["certificateArn"]
    for policy in attached_policies(iot, arn):
        iot.detach_policy(policyName=policy, target=arn)
    for thing in principal_things(iot, arn):
        iot.detach_thing_principal(thingName=thing, principal=arn)
    if description["status"] == "ACTIVE":
        iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    for attempt in range(1, DELETE_ATTEMPTS):
        try:
            iot.delete_certificate(certificateId=certificate_id)
            return True
        except iot.exceptions.DeleteConflictException:
            time.sleep(attempt)
    iot.delete_certificate(certificateId=certificate_id)  # the last attempt: its error is the one reported
    return True
