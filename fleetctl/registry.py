"""Operator work on the registry built from the shared :class:`~hook.registry.DeviceRecords`: importing a
factory manifest in parallel and counting approvals per claim certificate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from hook.contract import Attr, DeviceStatus
from hook.registry import Item, request_attributes, timestamp

if TYPE_CHECKING:
    from hook.registry import DeviceRecords
    from hook.rules import DeviceRequest


class ImportOutcome(StrEnum):
    """What pre-registering one manifest row did."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    """Already pre-registered with the same values."""
    CONFLICT = "conflict"
    """Already in the registry with another state or other values; left as it was."""


@dataclass(frozen=True)
class ImportResult:
    """The outcome for one serial, with what conflicts when it does."""

    serial: str
    outcome: ImportOutcome
    detail: str = ""


def preregister(
    records: DeviceRecords,
    requests: Sequence[DeviceRequest],
    on_done: Callable[[], None],
    *,
    concurrency: int,
) -> list[ImportResult]:
    """Store each request as ``PREREGISTERED`` unless its serial exists; calls ``on_done`` per row.

    One conditional ``PutItem`` per row (``BatchWriteItem`` cannot be conditional, and a device may be
    approved between a check and a batch write), ``concurrency`` at a time. A refused write returns the
    stored item, which decides ``unchanged`` or ``conflict`` without another read. On an error, requests
    not yet sent are cancelled; rows already written stay, and a re-run reports them ``unchanged``.
    """
    now = timestamp()

    def import_one(request: DeviceRequest) -> ImportResult:
        stored = records.preregister(request, now)
        if stored is None:
            return ImportResult(request.serial_number, ImportOutcome.CREATED)
        return _compare(request.serial_number, request_attributes(request), stored)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(import_one, request) for request in requests]
        results = []
        try:
            for future in as_completed(futures):
                results.append(future.result())
                on_done()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return results


def count_by_claim_certificate(records: DeviceRecords) -> Counter[str]:
    """How many devices were approved through each claim certificate, in any state after approval.

    Nearly every device of a fleet has been approved, so this reads the whole registry with a parallel
    Scan (only the items carrying a ``claimCertificateId``, only that and the status of each) rather than
    querying every shard of every state."""
    items = records.scan_devices(
        attributes=[Attr.CLAIM_CERTIFICATE_ID, Attr.STATUS], having=[Attr.CLAIM_CERTIFICATE_ID]
    )
    return Counter(
        item[Attr.CLAIM_CERTIFICATE_ID]
        for item in items
        if item.get(Attr.STATUS) != DeviceStatus.PREREGISTERED  # the hook has not seen these yet
    )


def _compare(serial: str, values: Item, stored: Item) -> ImportResult:
    status = stored.get(Attr.STATUS)
    if status != DeviceStatus.PREREGISTERED:
        return ImportResult(serial, ImportOutcome.CONFLICT, f"already {status}; left as it is")
    differences = [
        f"{name} is {stored.get(name)!r}, the manifest says {value!r}"
        for name, value in values.items()
        if stored.get(name) != value
    ]
    if differences:
        return ImportResult(
            serial, ImportOutcome.CONFLICT, "pre-registered with other values: " + "; ".join(differences)
        )
    return ImportResult(serial, ImportOutcome.UNCHANGED)
