"""The stack's claim certificate(s): their status, breaker and the devices approved through each;
suspending or resuming a breaker; and deactivating one once the factory has moved to its replacement."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fleetctl.errors import NotFound, UsageProblem
from fleetctl.iot_reads import (
    ACTIVE,
    attached_policies,
    certificate_summary,
    describe_certificate,
    policy_certificate_ids,
)
from hook.claim_breaker import BreakerAttr, BreakerState
from hook.contract import Attr, DeviceStatus

if TYPE_CHECKING:
    from fleetctl.context import StackContext
    from fleetctl.operator_transitions import OperatorRecords


def claim_status(stack: StackContext, *, include_all: bool) -> list[dict[str, Any]]:
    """The claim certificate of every region's stack (with ``include_all``, every certificate carrying the
    claim policy there): its summary, its region, whether the outputs name it, and how many devices were
    approved through it in that region."""
    counts = count_by_claim_certificate(stack.records, stack.registry_region)
    now = datetime.now(UTC)
    rows = []
    for region in stack.regional():
        ids = _claim_certificate_ids(region, include_all=include_all)
        if not ids:
            raise UsageProblem(
                f"no claim certificate in {region.region}: pass --outputs FILE (with claimCertificateId), "
                "or --all with --template NAME"
            )
        for certificate_id in ids:
            description = describe_certificate(region.iot, certificate_id)
            if description is None:
                raise NotFound(
                    f"claim certificate {certificate_id} does not exist in AWS IoT ({region.region})"
                )
            rows.append(
                {
                    **certificate_summary(description, now),
                    "region": region.region,
                    "current": certificate_id == region.claim_certificate_id,
                    "devices": counts[certificate_id, region.region],
                    **breaker_row(stack.claim_breakers.state(certificate_id)),
                }
            )
    return rows


def fleet_claim_certificates(
    stack: StackContext, certificate_id: str
) -> list[tuple[StackContext, Mapping[str, Any]]]:
    """The claim certificate in every region of the fleet that holds it (:func:`claim_certificate`); a
    region without it is passed over, and :class:`NotFound` is raised when no region holds it."""
    found, missing = [], []
    for region in stack.regional():
        try:
            found.append((region, claim_certificate(region, certificate_id)))
        except NotFound as error:
            missing.append(error)
    if not found:
        raise missing[0]
    return found


def breaker_row(state: Mapping[str, str]) -> dict[str, Any]:
    """A breaker's state as ``claim status`` reports it."""
    return {
        "breaker": state[BreakerAttr.STATE],
        "breakerChangedAt": state.get(BreakerAttr.CHANGED_AT),
        "breakerChangedBy": state.get(BreakerAttr.CHANGED_BY),
        "breakerReason": state.get(BreakerAttr.REASON),
        "approvalsThisHour": int(state.get(BreakerAttr.APPROVALS, "0")),
    }


def set_breaker(stack: StackContext, certificate_id: str, state: BreakerState, reason: str) -> dict[str, Any]:
    """Suspend (``SUSPENDED``) or resume (``CLOSED``) the breaker of a claim certificate of this stack, as
    the caller, with ``reason``; its state as written, for every region of the fleet (the breaker is in the
    one registry). Its certificate stays as it is in AWS IoT."""
    fleet_claim_certificates(stack, certificate_id)
    stack.claim_breakers.set_state(certificate_id, state, stack.caller.arn, reason)
    return {"certificateId": certificate_id, **breaker_row(stack.claim_breakers.state(certificate_id))}


def claim_certificate(stack: StackContext, certificate_id: str) -> Mapping[str, Any]:
    """The description of a claim certificate of this stack: :class:`NotFound` when it does not exist, a
    :class:`UsageProblem` when it does not carry the stack's claim policy."""
    description = describe_certificate(stack.iot, certificate_id)
    if description is None:
        raise NotFound(f"certificate {certificate_id} does not exist in AWS IoT ({stack.region})")
    if stack.claim_policy not in attached_policies(stack.iot, description["certificateArn"]):
        raise UsageProblem(
            f"certificate {certificate_id} is not a claim certificate of this stack: "
            f"policy {stack.claim_policy} is not attached to it"
        )
    return description


def deactivate(stack: StackContext, description: Mapping[str, Any]) -> bool:
    """Set an ``ACTIVE`` certificate ``INACTIVE``; returns whether it changed anything."""
    if description["status"] != ACTIVE:
        return False
    stack.iot.update_certificate(certificateId=description["certificateId"], newStatus="INACTIVE")
    return True


def count_by_claim_certificate(records: OperatorRecords, registry_region: str) -> Counter[tuple[str, str]]:
    """How many devices were approved through each claim certificate in each region (an item without
    ``provisionedRegion`` belongs to ``registry_region``), in any state after approval.

    Nearly every device of a fleet has been approved, so this reads the whole registry with a parallel
    Scan (only the items carrying a ``claimCertificateId``, only that, the status and the region of each)
    rather than querying every shard of every state."""
    items = records.scan_devices(
        attributes=[Attr.CLAIM_CERTIFICATE_ID, Attr.STATUS, Attr.REGION], having=[Attr.CLAIM_CERTIFICATE_ID]
    )
    return Counter(
        (item[Attr.CLAIM_CERTIFICATE_ID], item.get(Attr.REGION) or registry_region)
        for item in items
        if item.get(Attr.STATUS) != DeviceStatus.PREREGISTERED  # the hook has not seen these yet
    )


def _claim_certificate_ids(stack: StackContext, *, include_all: bool) -> list[str]:
    ids = [] if stack.claim_certificate_id is None else [stack.claim_certificate_id]
    if include_all:
        ids += [each for each in policy_certificate_ids(stack.iot, stack.claim_policy) if each not in ids]
    return ids
