"""Certificates: the claim certificate(s) of the stack, and device certificates close to expiry."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from fleetctl.context import AWS_CONCURRENCY
from fleetctl.errors import NotFound, UsageProblem
from fleetctl.iot import (
    attached_policies,
    certificate_expiry,
    certificates,
    describe_certificate,
    policy_certificate_ids,
    principal_things,
)
from fleetctl.registry import count_by_claim_certificate
from hook.contract import serial_number_of

if TYPE_CHECKING:
    from fleetctl.context import StackContext

ACTIVE: Final = "ACTIVE"


def certificate_summary(description: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Id, status, creation and expiry (from the PEM) of a described certificate, with age and days left."""
    created: datetime = description["creationDate"]
    expires = certificate_expiry(description)
    return {
        "certificateId": description["certificateId"],
        "status": description["status"],
        "createdAt": created.isoformat(),
        "ageDays": (now - created).days,
        "notAfter": expires.isoformat(),
        "daysLeft": (expires - now).days,
    }


def claim_status(stack: StackContext, *, include_all: bool) -> list[dict[str, Any]]:
    """The stack's claim certificate (with ``include_all``, every certificate carrying the claim policy):
    its summary, whether the outputs name it, and how many devices were approved through it."""
    ids = _claim_certificate_ids(stack, include_all=include_all)
    if not ids:
        raise UsageProblem(
            "no claim certificate: pass --outputs FILE (with claimCertificateId), "
            "or --all with --template NAME"
        )
    counts = count_by_claim_certificate(stack.records)
    now = datetime.now(UTC)
    rows = []
    for certificate_id in ids:
        description = describe_certificate(stack.iot, certificate_id)
        if description is None:
            raise NotFound(f"claim certificate {certificate_id} does not exist in AWS IoT ({stack.region})")
        current = certificate_id == stack.claim_certificate_id
        rows.append(
            {**certificate_summary(description, now), "current": current, "devices": counts[certificate_id]}
        )
    return rows


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


def expiring_certificates(stack: StackContext, days: int) -> list[dict[str, Any]]:
    """``ACTIVE`` certificates of this stack's things whose ``notAfter`` is at most ``days`` away, already
    expired ones included; soonest first, each with the things it is attached to."""
    now = datetime.now(UTC)
    horizon = now + timedelta(days=days)
    claim = set(_claim_certificate_ids(stack, include_all=True))
    ids = [
        each["certificateId"]
        for each in certificates(stack.iot)
        if each["status"] == ACTIVE and each["certificateId"] not in claim
    ]
    with ThreadPoolExecutor(max_workers=AWS_CONCURRENCY) as pool:  # one DescribeCertificate per certificate
        described = [
            each for each in pool.map(partial(describe_certificate, stack.iot), ids) if each is not None
        ]
    expiring = sorted(
        (each for each in described if certificate_expiry(each) <= horizon), key=certificate_expiry
    )
    summaries = [
        {**certificate_summary(each, now), "things": principal_things(stack.iot, each["certificateArn"])}
        for each in expiring
    ]
    # The account may hold other stacks: keep the certificates of this stack's things.
    return [
        summary
        for summary in summaries
        if any(serial_number_of(stack.base_name, thing) for thing in summary["things"])
    ]


def _claim_certificate_ids(stack: StackContext, *, include_all: bool) -> list[str]:
    ids = [] if stack.claim_certificate_id is None else [stack.claim_certificate_id]
    if include_all:
        ids += [each for each in policy_certificate_ids(stack.iot, stack.claim_policy) if each not in ids]
    return ids
