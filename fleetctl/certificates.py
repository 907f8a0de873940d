"""Certificates: the claim certificate(s) of the stack, and device certificates close to expiry.

Device certificates are found through the registry, never by listing the account's certificates: every
``ACTIVE`` device's item records when its current certificate expires (``certificateNotAfter``, written by
the activation and rotation functions), so a report reads the registry and describes only the certificates
it is about to report. Items without it (a registry from before it was kept, or a device re-provisioned
since) are counted, and ``fleetctl registry backfill`` records theirs (:func:`record_missing_expiry`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from boto3.dynamodb.conditions import Attr as Attribute

from fleetctl.context import AWS_CONCURRENCY
from fleetctl.errors import NotFound, UsageProblem
from fleetctl.iot import (
    attached_policies,
    certificate_expiry,
    describe_certificate,
    policy_certificate_ids,
)
from fleetctl.registry import count_by_claim_certificate
from hook.contract import Attr, DeviceStatus
from hook.registry_items import Item, timestamp

if TYPE_CHECKING:
    from fleetctl.context import StackContext

ACTIVE: Final = "ACTIVE"


@dataclass(frozen=True)
class ExpiringCertificates:
    """What :func:`expiring_certificates` found."""

    certificates: list[dict[str, Any]]
    """The certificates, soonest first: each one's summary with its device's serial and thing."""
    without_recorded_expiry: int
    """``ACTIVE`` devices whose registry item records no certificate expiry: not checked."""

    def report(self) -> dict[str, Any]:
        """The JSON form: ``{"certificates": [...], "withoutRecordedExpiry": n}``."""
        return {"certificates": self.certificates, "withoutRecordedExpiry": self.without_recorded_expiry}


@dataclass(frozen=True)
class ExpiryBackfillReport:
    """What :func:`record_missing_expiry` did."""

    scanned: int
    """``ACTIVE`` device items read that record no certificate expiry."""
    recorded: int
    """Items given their certificate's expiry."""
    skipped: int
    """Items whose certificate changed meanwhile (its rotation records its own), or that AWS IoT does not
    know; a re-run tries these again."""


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


def expiring_certificates(stack: StackContext, days: int) -> ExpiringCertificates:
    """The current certificates of ``ACTIVE`` devices that expire at most ``days`` away, already expired
    ones included, soonest first; and how many devices record no expiry.

    One parallel Scan of the registry (``ACTIVE`` devices whose recorded expiry is within the window or
    missing), then one ``DescribeCertificate`` per device in the window, which confirms the certificate is
    ``ACTIVE`` and reads its ``notAfter`` from the PEM."""
    now = datetime.now(UTC)
    horizon = now + timedelta(days=days)
    recorded = Attribute(Attr.CERTIFICATE_NOT_AFTER)
    items = stack.records.scan_devices(
        attributes=[Attr.CERTIFICATE_ID, Attr.CERTIFICATE_NOT_AFTER, Attr.THING_NAME],
        having=[Attr.CERTIFICATE_ID],
        filter_by=Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE)
        & (recorded.not_exists() | recorded.lte(timestamp(horizon))),
    )
    candidates: list[Item] = []
    without_recorded_expiry = 0
    for item in items:
        if Attr.CERTIFICATE_NOT_AFTER in item:
            candidates.append(item)
        else:
            without_recorded_expiry += 1
    with ThreadPoolExecutor(max_workers=AWS_CONCURRENCY) as pool:
        described = pool.map(
            lambda item: (item, describe_certificate(stack.iot, item[Attr.CERTIFICATE_ID])), candidates
        )
        confirmed = [
            (item, description)
            for item, description in described
            if description is not None
            and description["status"] == ACTIVE
            and certificate_expiry(description) <= horizon
        ]
    confirmed.sort(key=lambda pair: certificate_expiry(pair[1]))
    return ExpiringCertificates(
        [
            {
                **certificate_summary(description, now),
                "serial": item[Attr.SERIAL_NUMBER],
                "thingName": item.get(Attr.THING_NAME),
            }
            for item, description in confirmed
        ],
        without_recorded_expiry,
    )


def record_missing_expiry(
    stack: StackContext, *, concurrency: int, on_item: Callable[[], None] | None = None
) -> ExpiryBackfillReport:
    """Record the certificate expiry of every ``ACTIVE`` device whose item lacks it: a parallel Scan for
    those items, then per item one ``DescribeCertificate`` (``notAfter`` from the PEM) and one conditional
    ``UpdateItem`` (:meth:`~fleetctl.operator_transitions.OperatorRecords.record_certificate_expiry`),
    ``concurrency`` at a time. Safe to interrupt and re-run: only items still without it are read.
    ``on_item`` is called per item read."""
    items = stack.records.scan_devices(
        attributes=[Attr.CERTIFICATE_ID],
        having=[Attr.CERTIFICATE_ID],
        filter_by=Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE)
        & Attribute(Attr.CERTIFICATE_NOT_AFTER).not_exists(),
    )

    def record(item: Item) -> bool:
        certificate = item[Attr.CERTIFICATE_ID]
        description = describe_certificate(stack.iot, certificate)
        if description is None:
            return False
        not_after = timestamp(certificate_expiry(description))
        return stack.records.record_certificate_expiry(item[Attr.SERIAL_NUMBER], certificate, not_after)

    scanned, recorded = _count_in_parallel(record, items, concurrency, on_item)
    return ExpiryBackfillReport(scanned=scanned, recorded=recorded, skipped=scanned - recorded)


def _count_in_parallel(
    work: Callable[[Item], bool],
    items: Iterable[Item],
    concurrency: int,
    on_item: Callable[[], None] | None,
) -> tuple[int, int]:
    """``work`` on each item, ``concurrency`` at a time and at most four times that many in flight (so
    memory stays flat however many items the scan yields): how many items, and for how many it was true."""
    started = succeeded = 0
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        in_flight: set[Future[bool]] = set()
        for item in items:
            if on_item is not None:
                on_item()
            if len(in_flight) >= 4 * concurrency:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                succeeded += sum(each.result() for each in done)
            in_flight.add(pool.submit(work, item))
            started += 1
        succeeded += sum(each.result() for each in wait(in_flight).done)
    return started, succeeded


def _claim_certificate_ids(stack: StackContext, *, include_all: bool) -> list[str]:
    ids = [] if stack.claim_certificate_id is None else [stack.claim_certificate_id]
    if include_all:
        ids += [each for each in policy_certificate_ids(stack.iot, stack.claim_policy) if each not in ids]
    return ids
