"""The sweep before the acceptance run destroys its stack: ``fleetctl teardown`` (:func:`run_teardown`, the
documented operator command, so the run exercises it on AWS) finds by ownership what of the stack's
devices would make ``pulumi destroy`` fail (every approved device, the leftover things of its thing types,
whatever its device policies are attached to) and removes it; then the certificates the devices were
issued, recorded as each was created, and those the teardown revoked are deleted, with the shadows of the
things it deleted. What remains is named with its ids."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from fleetctl.errors import FleetctlError
from fleetctl.iot_reads import attached_policies, describe_certificate, principal_things
from fleetctl.pacing import aws_iot_pacer
from fleetctl.stack_teardown import (
    WAIT_SECONDS,
    PolicyTarget,
    StackScope,
    Teardown,
    remaining_problem,
    run_teardown,
)

if TYPE_CHECKING:
    from fleetctl.bulk import BulkRun, Row
    from fleetctl.context import StackContext
    from fleetctl.device_removal import Step

DELETE_ATTEMPTS: Final = 6
"""AWS IoT detaches policies and things asynchronously: deleting a certificate may fail for a few seconds."""


@dataclass(frozen=True)
class Sweep:
    """What the sweep removed, and what remains (each line with its ids)."""

    decommissioned: int
    certificates: int
    shadows: int
    left: list[str]
    blocks_destroy: bool
    """Something remains that ``pulumi destroy`` would fail on (``fleetctl teardown``'s check)."""

    def __str__(self) -> str:
        return (
            f"{self.decommissioned} devices decommissioned, {self.certificates} certificates and "
            f"{self.shadows} shadows deleted"
        )


@dataclass
class _Removed:
    """The teardown's steps, as :class:`~fleetctl.stack_teardown.TeardownSteps`: the devices
    decommissioned, the certificates revoked and the things deleted."""

    decommissioned: int = 0
    revoked: set[str] = field(default_factory=set)
    things: list[str] = field(default_factory=list)

    def cancelled(self, job_ids: list[str]) -> None:
        """Rotation jobs do not block the destroy."""

    def ran(self, run: BulkRun, rows: Iterator[Row]) -> None:
        for row in rows:
            if row.steps is not None:
                self.decommissioned += 1
                self._took(row.steps)

    def released(self, targets: list[PolicyTarget]) -> None:
        for target in targets:
            self._took(target.steps)

    def _took(self, steps: Iterable[Step]) -> None:
        for step in steps:
            if step.action == "revoke-certificate":
                self.revoked.add(step.target)
            elif step.action == "delete-thing":
                self.things.append(step.target)


def sweep(
    stack: StackContext, iot_data: Any, certificate_ids: Collection[str], *, wait: float = WAIT_SECONDS
) -> Sweep:
    """Tear down the stack's devices as ``fleetctl teardown`` does (looking for what remains for up to
    ``wait`` seconds), delete the shadows of the things it deleted, then every certificate of
    ``certificate_ids`` and those it revoked (the stack's claim certificates excepted: the destroy deletes
    them)."""
    work = Teardown(stack, StackScope.of(stack))
    removed = _Removed()
    left: list[str] = []
    blocked = True  # until the teardown has looked
    try:
        remaining = run_teardown(work, aws_iot_pacer(), wait, removed)
        if remaining is None:
            left.append(f"fleetctl teardown stopped at a failure: {work.failure}")
            remaining = work.remaining()
        blocked = bool(remaining)
        if remaining:
            left.append(remaining_problem(remaining, work.scope))
    except (BotoCoreError, ClientError, FleetctlError) as error:
        left.append(f"fleetctl teardown failed: {error}")
    shadows = 0
    for thing in removed.things:
        try:
            shadows += _delete_shadow(iot_data, thing)
        except (BotoCoreError, ClientError) as error:
            left.append(f"shadow of {thing}: {error}")
    certificates = 0
    for certificate_id in sorted((set(certificate_ids) | removed.revoked) - work.scope.claim_certificate_ids):
        try:
            certificates += _delete_certificate(stack.iot, certificate_id)
        except (BotoCoreError, ClientError) as error:
            left.append(f"certificate {certificate_id}: {error}")
    return Sweep(removed.decommissioned, certificates, shadows, left, blocks_destroy=blocked)


def _delete_shadow(iot_data: Any, thing_name: str) -> bool:
    """Delete the thing's classic shadow; ``False`` if it has none. The teardown deletes things, not their
    shadows, which DeleteThingShadow addresses by the thing's name alone (AWS IoT Data Plane API)."""
    with contextlib.suppress(iot_data.exceptions.ResourceNotFoundException):
        iot_data.delete_thing_shadow(thingName=thing_name)
        return True
    return False


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
