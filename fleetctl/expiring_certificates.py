"""Device certificates close to expiry, and recording the expiry the registry lacks.

Device certificates are found through the registry, never by listing the account's certificates: every
``ACTIVE`` device's item records when its current certificate expires (``certificateNotAfter``, written by
the activation and rotation functions), so a report reads the registry and describes only the certificates
it is about to report. Items without it (a registry from before it was kept, or a device re-provisioned
since) are counted, and ``fleetctl registry backfill`` records theirs (:func:`record_missing_expiry`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr as Attribute

from fleetctl.context import AWS_CONCURRENCY
from fleetctl.iot_reads import ACTIVE, certificate_expiry, certificate_summary, describe_certificate
from hook.contract import Attr, DeviceStatus
from hook.registry_items import Item, timestamp

if TYPE_CHECKING:
    from fleetctl.context import StackContext


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
