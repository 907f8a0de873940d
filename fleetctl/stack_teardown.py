"""Preparing a stack for ``pulumi destroy`` (``fleetctl teardown``): what of the stack's devices would make
the destroy fail, and removing it.

What the destroy trips on, and what is done about it, in this order:

1. The stack's rotation jobs in progress are cancelled, ``force`` included (AWS IoT API Reference,
   CancelJob: only then are ``IN_PROGRESS`` executions cancelled too): the rotation function issues a
   certificate only to an open execution of such a job (``hook/certificate_rotation.py``), so no new
   certificate gets a device policy behind the run's back. Jobs do not block the destroy themselves.
2. Every registry device that was ever approved is decommissioned by ``decommission``'s own path
   (:class:`~fleetctl.device_removal.Decommissioning`, :mod:`fleetctl.bulk`: paced, resumable): its
   certificates revoked and detached from their policies and thing, its thing deleted. AWS IoT refuses to
   delete a policy attached to a certificate (API Reference, DeletePolicy: ``DeleteConflictException``;
   terraform-provider-aws ``iot/policy.go`` retries that for 2 minutes, then fails), and a thing type that
   still has things (API Reference, DeleteThingType). Devices never approved have nothing in AWS IoT and
   are left as they are, so a retained registry (``protectData``) keeps its factory manifest.
3. The things of the stack's thing types that the registry no longer holds (an item deleted by hand) or
   holds ``DECOMMISSIONED`` (``decommission --keep-thing``) are decommissioned the same way. A thing of a
   stack's type that is not named ``<base>_<serial>`` is not the stack's: it is reported, never touched.
4. What is still attached to a device-type policy (a certificate the registry never named, say) is
   detached; a device certificate is revoked first. The stack's claim certificates are the stack's own
   resources, left to the destroy (its provider deactivates and deletes them).
5. What remains is looked for until none does or the wait is over: AWS IoT applies detachments and
   deletions asynchronously (API Reference, DetachThingPrincipal; DeletePolicy: "it can take up to five
   minutes after a policy is detached before it's ready to be deleted"). Thing groups an operator made
   under the stack's fleet group are reported too, never deleted: the provider's DeleteThingGroup waits
   while "there are still child groups attached" (terraform-provider-aws ``iot/thing_group.go``), then
   fails. Thing groups are not in the way otherwise: DeleteThingGroup names no conflict with member things.

A second run reads everything afresh: finished devices are skipped by their registry record, deleted
things and detached certificates are no longer listed, so it finishes an interrupted run and repeats
nothing harmful.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

from fleetctl.bulk import BulkRun
from fleetctl.device_removal import Decommissioning, Step, decommission, revoke_and_detach
from fleetctl.devices import NEVER_APPROVED_ATTRIBUTES
from fleetctl.iot_reads import certificate_id, describe_certificate, jobs_in_progress
from fleetctl.registry_reads import BATCH_GET_MAX
from fleetctl.selection import Candidate
from hook.contract import Attr, DeviceStatus, device_type_resource_name, serial_number_of, thing_name
from hook.rotation_contract import rotation_job_id_prefix
from program.outputs import StackOutput

if TYPE_CHECKING:
    from fleetctl.bulk import Row
    from fleetctl.context import StackContext
    from fleetctl.pacing import Pacer
    from hook.registry_items import Item

REASON: Final = "stack teardown"
"""The ``revocationReason`` of every device a teardown revokes, and the comment of the jobs it cancels."""
CANCEL_REASON_CODE: Final = "STACK_TEARDOWN"
WAIT_SECONDS: Final = 300
"""How long the last step looks for what remains by default: the five minutes DeletePolicy's reference
gives a detached policy."""
WAIT_INTERVAL_SECONDS: Final = 10.0
NEVER_APPROVED: Final = "never approved: nothing of it in AWS IoT"
_PAGE_SIZE: Final = 250
"""The most ListThings (maxResults) and ListTargetsForPolicy (pageSize) return at once."""
_CERTIFICATE_ARN_MARKER: Final = ":cert/"


@dataclass(frozen=True)
class StackScope:
    """The names of what the stack declared and its devices use: per device type a policy and a thing type
    (``<base>_<type>``), the claim certificates, the rotation jobs' id prefix."""

    base_name: str
    device_types: tuple[str, ...]
    """Every type of the hook's rules, retired ones included: each has its policy and thing type."""
    claim_certificate_ids: frozenset[str]

    @classmethod
    def of(cls, stack: StackContext) -> StackScope:
        """The scope of the stack the outputs (or flags) name."""
        generations = stack.outputs.get(StackOutput.CLAIM_CERTIFICATE_IDS)
        claims = set(generations.values()) if isinstance(generations, Mapping) else set()
        if stack.claim_certificate_id:
            claims.add(stack.claim_certificate_id)
        return cls(stack.base_name, tuple(sorted(stack.rules.device_types)), frozenset(map(str, claims)))

    @property
    def resource_names(self) -> list[str]:
        """Each device type's policy and thing type name (the two share it)."""
        return [device_type_resource_name(self.base_name, each) for each in self.device_types]

    @property
    def fleet_group(self) -> str:
        """The group every device type's group sits under, as ``components/documents.py`` names it."""
        return f"{self.base_name}-fleet"

    @property
    def rotation_job_prefix(self) -> str:
        """How every rotation job id of the stack starts."""
        return rotation_job_id_prefix(self.base_name)


@dataclass(frozen=True)
class ApprovedDevices:
    """The registry's devices for :class:`BulkRun`: every device item (a parallel Scan), those never
    approved skipped with why."""

    def candidates(self, stack: StackContext, *, attributes: Collection[Attr] = ()) -> Iterator[Candidate]:
        """Each device item, with ``attributes`` and what tells whether it was approved."""
        wanted = list(dict.fromkeys([*attributes, *NEVER_APPROVED_ATTRIBUTES, Attr.STATUS]))
        for item in stack.records.devices(attributes=wanted):
            approved = any(item.get(each) for each in NEVER_APPROVED_ATTRIBUTES)
            yield Candidate(item[Attr.SERIAL_NUMBER], item, None if approved else NEVER_APPROVED)


@dataclass(frozen=True)
class LeftoverThings:
    """The things of the stack's thing types that no registry device stands for: its item gone, or
    ``DECOMMISSIONED`` with the thing kept. A thing the registry does not hold stands as an item of its
    serial and thing name; one not named ``<base>_<serial>`` is skipped with why."""

    scope: StackScope

    def candidates(self, stack: StackContext, *, attributes: Collection[Attr] = ()) -> Iterator[Candidate]:
        """The leftover things, a thing type at a time, their items read 100 a request."""
        shown = list(dict.fromkeys([*attributes, Attr.STATUS, Attr.THING_NAME]))
        for thing_type in self.scope.resource_names:
            names_of_type = things_of_type(stack, thing_type)
            while names := list(islice(names_of_type, BATCH_GET_MAX)):
                serials = {name: serial_number_of(self.scope.base_name, name) for name in names}
                found = stack.records.get_many([each for each in serials.values() if each], attributes=shown)
                items = {item[Attr.SERIAL_NUMBER]: item for item in found}
                for name, serial in serials.items():
                    yield from self._leftover(stack, name, serial, items.get(serial) if serial else None)

    def _leftover(
        self, stack: StackContext, name: str, serial: str | None, item: Item | None
    ) -> Iterator[Candidate]:
        here: dict[str, str] = {
            Attr.REGION: stack.region
        }  # the thing's region, whatever a fleet's registry says
        if serial is None:
            expected = thing_name(self.scope.base_name, "<serial>")
            reason = f"not named {expected}: not the stack's; delete it or remove its thing type"
            yield Candidate(name, {Attr.THING_NAME: name, **here}, reason)
        elif item is None:
            yield Candidate(serial, {Attr.SERIAL_NUMBER: serial, Attr.THING_NAME: name, **here})
        elif item.get(Attr.STATUS) == DeviceStatus.DECOMMISSIONED:
            yield Candidate(serial, {**item, **here})
        # Any other item: a registry device, decommissioned by the registry's step (or, approved after
        # it read the registry, found by the last step and by the next run).


@dataclass(frozen=True)
class LeftoverRemoval:
    """A leftover thing decommissioned by its serial (:func:`~fleetctl.device_removal.decommission`: the
    registry read afresh, every certificate of the thing revoked and detached, the thing deleted)."""

    verb: ClassVar[str] = "remove leftover things"
    attributes: ClassVar[tuple[Attr, ...]] = (Attr.STATUS, Attr.THING_NAME)

    def left(self, item: Item) -> str | None:
        """Always ``delete-thing``: a leftover is a thing that exists."""
        return "delete-thing"

    def apply(self, stack: StackContext, serial: str, item: Item) -> list[Step]:
        """Decommission the serial of the leftover thing."""
        return self.apply_by_serial(stack, serial)

    def apply_by_serial(self, stack: StackContext, serial: str) -> list[Step]:
        """Decommission ``serial``, its thing deleted."""
        return decommission(stack, serial, REASON, keep_thing=False)


@dataclass(frozen=True)
class PolicyTarget:
    """Something a device-type policy is attached to, and what releasing it took."""

    policy: str
    target: str
    steps: list[Step] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {"policy": self.policy, "target": self.target, "steps": [asdict(step) for step in self.steps]}


@dataclass(frozen=True)
class Remaining:
    """What is still in the destroy's way: targets by device-type policy, things by thing type (each only
    when it has some), and the thing groups under the fleet group that the stack did not make."""

    policy_targets: dict[str, list[str]]
    things: dict[str, list[str]]
    groups: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.policy_targets or self.things or self.groups)

    def report(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {"policyTargets": self.policy_targets, "things": self.things, "groups": self.groups}


def things_of_type(stack: StackContext, thing_type: str) -> Iterator[str]:
    """The names of the things of ``thing_type``, page by page."""
    pages = stack.iot.get_paginator("list_things").paginate(
        thingTypeName=thing_type, PaginationConfig={"PageSize": _PAGE_SIZE}
    )
    return pages.search("things[].thingName")


def policy_targets(stack: StackContext, policy: str) -> list[str]:
    """What ``policy`` is attached to (none when the policy does not exist), read whole before anything
    is detached: a listing that shrinks while its pages are read can skip entries."""
    pages = stack.iot.get_paginator("list_targets_for_policy").paginate(
        policyName=policy, PaginationConfig={"PageSize": _PAGE_SIZE}
    )
    try:
        return list(pages.search("targets[]"))
    except stack.iot.exceptions.ResourceNotFoundException:
        return []


@dataclass
class Teardown:
    """The steps of a teardown of one stack, each callable on its own (:meth:`preview_targets` and the
    two runs' ``preview`` change nothing)."""

    stack: StackContext
    scope: StackScope
    devices: BulkRun = field(init=False)
    """Every approved registry device decommissioned."""
    leftovers: BulkRun = field(init=False)
    """The leftover things decommissioned by their serials."""

    def __post_init__(self) -> None:
        self.devices = BulkRun(self.stack, ApprovedDevices(), Decommissioning(REASON, keep_thing=False))
        self.leftovers = BulkRun(self.stack, LeftoverThings(self.scope), LeftoverRemoval())

    @property
    def failure(self) -> str | None:
        """The failure that stopped the devices' or the leftovers' run, if one did."""
        return self.devices.tally.error or self.leftovers.tally.error

    def open_rotation_jobs(self) -> list[str]:
        """The stack's rotation jobs in progress."""
        return list(jobs_in_progress(self.stack.iot, self.scope.rotation_job_prefix))

    def cancel_rotation_jobs(self, pacer: Pacer) -> list[str]:
        """Cancel the stack's rotation jobs in progress, their executions in progress too; the ids of those
        cancelled (a job that ended meanwhile is not)."""
        cancelled = []
        with pacer.pacing(self.stack.iot):
            for job_id in self.open_rotation_jobs():
                try:
                    self.stack.iot.cancel_job(
                        jobId=job_id, reasonCode=CANCEL_REASON_CODE, comment=REASON, force=True
                    )
                except self.stack.iot.exceptions.InvalidStateTransitionException:
                    continue
                cancelled.append(job_id)
        return cancelled

    def preview_targets(self) -> Iterator[PolicyTarget]:
        """What each device-type policy is attached to now, changing nothing."""
        for policy in self.scope.resource_names:
            for target in policy_targets(self.stack, policy):
                yield PolicyTarget(policy, target)

    def release_targets(self, pacer: Pacer) -> list[PolicyTarget]:
        """Detach each device-type policy from whatever it is still attached to, a device certificate
        revoked (and detached from every policy) first; a claim certificate is only detached."""
        released = []
        with pacer.pacing(self.stack.iot):
            for found in list(self.preview_targets()):
                released.append(PolicyTarget(found.policy, found.target, self._release(found)))
        return released

    def _release(self, found: PolicyTarget) -> list[Step]:
        iot = self.stack.iot
        steps: list[Step] = []
        if _CERTIFICATE_ARN_MARKER in found.target:
            certificate = certificate_id(found.target)
            description = describe_certificate(iot, certificate)
            if description is not None and certificate not in self.scope.claim_certificate_ids:
                steps = revoke_and_detach(self.stack, description)
        if not any(step.action == "detach-policy" and step.target == found.policy for step in steps):
            try:
                iot.detach_policy(policyName=found.policy, target=found.target)
            except iot.exceptions.ResourceNotFoundException:
                return steps
            steps.append(Step("detach-policy", found.policy))
        return steps

    def remaining(self) -> Remaining:
        """What is still attached to the device-type policies, the things the thing types still have, and
        the groups under the fleet group that are not the stack's."""
        targets = {name: policy_targets(self.stack, name) for name in self.scope.resource_names}
        things = {name: list(things_of_type(self.stack, name)) for name in self.scope.resource_names}
        return Remaining(
            {name: found for name, found in targets.items() if found},
            {name: found for name, found in things.items() if found},
            self._foreign_groups(),
        )

    def _foreign_groups(self) -> list[str]:
        pages = self.stack.iot.get_paginator("list_thing_groups").paginate(
            parentGroup=self.scope.fleet_group, recursive=True
        )
        try:
            groups = list(pages.search("thingGroups[].groupName"))
        except self.stack.iot.exceptions.ResourceNotFoundException:
            return []
        own = {self.scope.fleet_group, *self.scope.resource_names}  # the emulator lists the parent too
        return [name for name in groups if name not in own]

    def wait_until_clear(
        self,
        seconds: float,
        *,
        interval: float = WAIT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Remaining:
        """Look for what remains until nothing does or ``seconds`` have passed; what remained last."""
        deadline = clock() + seconds
        while (found := self.remaining()) and clock() < deadline:
            sleep(min(interval, max(0.0, deadline - clock())))
        return found


class TeardownSteps(Protocol):
    """Who is handed each step's results as :func:`run_teardown` runs: ``fleetctl teardown``'s output
    (:mod:`fleetctl.teardown_output`), or the acceptance run's sweep."""

    def cancelled(self, job_ids: list[str]) -> None:
        """The rotation jobs cancelled."""

    def ran(self, run: BulkRun, rows: Iterator[Row]) -> None:
        """The rows of the devices' or the leftovers' run as they come; consumes them (that runs it)."""

    def released(self, targets: list[PolicyTarget]) -> None:
        """What the device-type policies were still attached to, and what releasing it took."""


def run_teardown(work: Teardown, pacer: Pacer, wait: float, steps: TeardownSteps) -> Remaining | None:
    """Run the teardown step by step, handing each step's results to ``steps``: cancel the rotation jobs,
    decommission the devices, then the leftover things, release the policy targets, then look for what
    remains for up to ``wait`` seconds. What remained, or ``None`` when a device failed
    (:attr:`Teardown.failure`) and the later steps were not run."""
    steps.cancelled(work.cancel_rotation_jobs(pacer))
    for run in (work.devices, work.leftovers):
        steps.ran(run, run.execute(pacer))
        if work.failure:
            return None
    steps.released(work.release_targets(pacer))
    return work.wait_until_clear(wait)


def remaining_problem(remaining: Remaining, scope: StackScope) -> str:
    """What remains, and what to do about it, as the lines of an error."""
    lines = [f"stack {scope.base_name} is not ready for `pulumi destroy`; still there:"]
    targets, things = remaining.policy_targets.items(), remaining.things.items()
    lines += [f"  {policy} attached to {', '.join(found)}" for policy, found in targets]
    lines += [f"  thing type {kind} has {', '.join(found)}" for kind, found in things]
    if remaining.groups:
        groups = ", ".join(remaining.groups)
        lines.append(f"  thing group {scope.fleet_group} has groups the stack did not make: {groups}")
    lines.append(
        "run `fleetctl teardown` again (a device approved during the run is taken then); a thing not named "
        f"{thing_name(scope.base_name, '<serial>')} is not the stack's: delete it or remove its thing type; "
        "a group the stack did not make: delete it or move it out of the fleet group"
    )
    return "\n".join(lines)


def reports(rows: Iterable[PolicyTarget]) -> list[dict[str, Any]]:
    """Policy targets as JSON-ready data."""
    return [row.report() for row in rows]
