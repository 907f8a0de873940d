"""Importing a checked factory manifest (:mod:`fleetctl.manifest`) into the registry at fleet scale,
through :class:`~fleetctl.operator_transitions.OperatorRecords`: every row ``PREREGISTERED`` or reported."""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import BotoCoreError, ClientError

from fleetctl.errors import AwsProblem
from fleetctl.operator_transitions import PublicKeyInUse
from hook.contract import Attr, DeviceStatus
from hook.registry_items import Item, request_attributes, timestamp

if TYPE_CHECKING:
    from fleetctl.manifest import ManifestRow
    from fleetctl.operator_transitions import OperatorRecords
    from fleetctl.spill import Spill

QUEUED_PER_WORKER: Final = 2
"""Rows submitted per request in flight: the import's window is ``QUEUED_PER_WORKER * concurrency`` rows."""

TRANSACTION_ATTEMPTS: Final = 8
"""Attempts at a row's transaction that DynamoDB cancels for throttling or a conflicting write."""
_TRANSIENT_CANCELLATIONS: Final = frozenset(
    {"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict"}
)
"""Cancellation reasons of a transaction member that another attempt may get past. DynamoDB cancels a whole
transaction when one item lacks capacity or conflicts with another write (API reference,
TransactWriteItems, TransactionCanceledException), and botocore retries none of that: it is a
TransactionCanceledException, not a throttling error."""
_BACKOFF_BASE_SECONDS: Final = 0.05
_BACKOFF_MAX_SECONDS: Final = 5.0


class ImportOutcome(StrEnum):
    """What pre-registering one manifest row did."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    """Already pre-registered with the same values."""
    CONFLICT = "conflict"
    """Already in the registry with another state or other values, or its key is another serial's; left
    as it was."""


@dataclass(frozen=True)
class ImportResult:
    """The outcome for one serial, with what conflicts when it does."""

    serial: str
    outcome: ImportOutcome
    detail: str = ""


class ImportTally:
    """What an import did: a count per outcome, and each conflicting row (``row``, ``serial``, ``detail``)
    in ``conflicts``, in row order (kept on disk: a re-import of a provisioned batch conflicts on every
    row)."""

    def __init__(self, conflicts: Spill) -> None:
        self.counts: Counter[ImportOutcome] = Counter()
        self.conflicts = conflicts

    def add(self, row: ManifestRow, result: ImportResult) -> None:
        """Count one row's outcome."""
        self.counts[result.outcome] += 1
        if result.outcome is ImportOutcome.CONFLICT:
            self.conflicts.append({"row": row.line, "serial": result.serial, "detail": result.detail})


def preregister(
    records: OperatorRecords,
    rows: Iterable[ManifestRow],
    on_result: Callable[[ManifestRow, ImportResult], None],
    *,
    concurrency: int,
) -> None:
    """Store each row as ``PREREGISTERED`` unless its serial exists, and call ``on_result`` for each row, in
    row order.

    One request per row: the conditional ``PutItem`` of :meth:`OperatorRecords.preregister`, or for a row
    with a public key its one ``TransactWriteItems`` (the device item and the key's binding).
    ``BatchWriteItem`` cannot be conditional, and a device may be approved between a check and a batch
    write. A refused write returns the stored item, which decides ``unchanged`` or ``conflict`` without
    another read. ``concurrency`` requests are in flight at once, and at most
    ``QUEUED_PER_WORKER * concurrency`` rows are read ahead of the oldest unfinished one (a bounded window:
    ``rows`` is consumed as the writes progress, never all at once); results are taken oldest first, so
    they come in row order. Throttling is absorbed by the client's retries (fleetctl's bulk client:
    :attr:`~fleetctl.context.StackContext.bulk_records`), and a row's transaction cancelled for throttling
    or a conflicting write is attempted again, up to :data:`TRANSACTION_ATTEMPTS` times with exponential
    back-off and full jitter.

    Interrupted (an AWS error that outlasted the retries, Ctrl-C), rows not yet sent are cancelled and those
    in flight finish; an AWS error is raised as :class:`AwsProblem` saying how far it got. Running the
    same import again finishes it: every row is sent again, and a row stored before is refused by its own
    condition and reported ``unchanged``. No checkpoint of rows done is kept, on purpose: the registry is
    the only record that cannot be stale (a checkpoint would skip a row released or deleted since, and
    could not say whether a skipped row was created, unchanged or conflicting, so the report would no
    longer cover the manifest), and a re-sent row costs one refused conditional write, the same request as
    a first write: a re-run takes as long as the first run did.
    """
    now = timestamp()

    def import_one(row: ManifestRow) -> ImportResult:
        request = row.request
        try:
            stored = _preregister_row(records, row, now)
        except PublicKeyInUse as taken:
            detail = f"its public key is bound to serial {taken.serial_number!r}; left as it is"
            return ImportResult(request.serial_number, ImportOutcome.CONFLICT, detail)
        if stored is None:
            return ImportResult(request.serial_number, ImportOutcome.CREATED)
        values = {**row.provenance, **request_attributes(request)}
        return _compare(request.serial_number, values, row.public_key_sha256, stored)

    done = 0
    window: deque[tuple[ManifestRow, Future[ImportResult]]] = deque()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        try:
            for row in rows:
                window.append((row, pool.submit(import_one, row)))
                while window and (len(window) >= QUEUED_PER_WORKER * concurrency or window[0][1].done()):
                    finished, result = window.popleft()
                    on_result(finished, result.result())
                    done += 1
            while window:
                finished, result = window.popleft()
                on_result(finished, result.result())
                done += 1
        except (ClientError, BotoCoreError) as error:
            _cancel(window)
            raise AwsProblem(
                "AWS error: "
                + " ".join(str(error).split())
                + f"\nstopped after {done} row(s) of the manifest; "
                "run the same command again to finish (rows already stored are reported unchanged)"
            ) from error
        except BaseException:
            _cancel(window)
            raise


def _preregister_row(records: OperatorRecords, row: ManifestRow, now: str) -> Item | None:
    """:meth:`OperatorRecords.preregister` of one row, attempted again while its transaction is cancelled only
    for reasons another attempt may get past."""
    attempt = 1
    while True:
        try:
            return records.preregister(
                row.request, now, public_key_sha256=row.public_key_sha256, provenance=row.provenance
            )
        except ClientError as error:
            if attempt == TRANSACTION_ATTEMPTS or not _transiently_cancelled(error):
                raise
        ceiling = min(_BACKOFF_MAX_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
        time.sleep(random.uniform(0, ceiling))  # noqa: S311 (jitter, not a secret)
        attempt += 1


def _transiently_cancelled(error: ClientError) -> bool:
    """Whether DynamoDB cancelled a transaction for throttling or a conflicting write, and nothing else."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons = cast(Mapping[str, Any], error.response).get("CancellationReasons") or []
    codes = {reason.get("Code") for reason in reasons if isinstance(reason, dict)} - {"None"}
    return bool(codes) and codes <= _TRANSIENT_CANCELLATIONS


def _cancel(window: Iterable[tuple[ManifestRow, Future[ImportResult]]]) -> None:
    """Cancel the rows not sent yet; those in flight finish when the pool shuts down."""
    for _, future in window:
        future.cancel()


def _compare(serial: str, values: Item, public_key_sha256: str | None, stored: Item) -> ImportResult:
    """The outcome of a row whose serial was stored already: unchanged only when it is pre-registered with
    the row's values and the row's key (or, both, none)."""
    status = stored.get(Attr.STATUS)
    if status != DeviceStatus.PREREGISTERED:
        return ImportResult(serial, ImportOutcome.CONFLICT, f"already {status}; left as it is")
    differences = [
        f"{name} is {stored.get(name)!r}, the manifest says {value!r}"
        for name, value in values.items()
        if stored.get(name) != value
    ]
    stored_key = stored.get(Attr.PUBLIC_KEY_SHA256)
    if stored_key != public_key_sha256:
        differences.append(
            f"{Attr.PUBLIC_KEY_SHA256} is {stored_key or 'absent'}, "
            f"the manifest gives {public_key_sha256 or 'none'}"
        )
    if differences:
        return ImportResult(
            serial, ImportOutcome.CONFLICT, "pre-registered with other values: " + "; ".join(differences)
        )
    return ImportResult(serial, ImportOutcome.UNCHANGED)
