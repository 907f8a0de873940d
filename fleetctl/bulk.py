"""``revoke`` and ``decommission`` of selected devices (:mod:`fleetctl.selection`), and ``teardown``'s of a
stack's devices and leftover things (:mod:`fleetctl.stack_teardown`): what each would do, and doing it
with bounded parallelism, paced to AWS IoT's API rates (:mod:`fleetctl.pacing`).

Nothing is held but a few pages of items and the devices in flight: devices are read, classified and
worked on as they stream, and each result is handed back as soon as it (and every one before it) is done.

Re-running finishes the job. A revocation writes the registry first (so the hook denies the serial at
once), then revokes and detaches the certificates, then records that it did (``certificatesRevokedAt``); a
decommissioning writes ``DECOMMISSIONED`` last. A re-run with the same selectors reads the same devices
from the registry, skips those whose record says they are done without asking AWS IoT anything, and
finishes the others, including a ``REVOKED`` serial whose certificates an interrupted run never reached.
The first device that fails stops the run: no further device is started, those in flight finish, and the
error names the device."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from fleetctl.context import AWS_CONCURRENCY
from fleetctl.errors import FleetctlError, UsageProblem
from fleetctl.pacing import Pacer
from fleetctl.registry_reads import SCAN_SEGMENTS
from hook.contract import Attr

if TYPE_CHECKING:
    from fleetctl.context import StackContext
    from fleetctl.device_removal import Step
    from fleetctl.selection import Candidate
    from hook.registry_items import Item

WORKERS: Final = AWS_CONCURRENCY - SCAN_SEGMENTS
"""Devices worked on at once. Each client pools :data:`~fleetctl.context.AWS_CONCURRENCY` connections,
which a Scan's segment readers share with the workers' registry writes; the AWS IoT rates, not this, set
the pace (at 10 requests a second, a device's ~6 AWS IoT requests of about 100 ms leave 8 workers idle
most of the time)."""
DONE: Final = "done"
SKIP: Final = "skip"


class Candidates(Protocol):
    """Where a bulk run's devices come from: a :class:`~fleetctl.selection.Selection`, or the things and
    devices ``teardown`` finds (:mod:`fleetctl.stack_teardown`)."""

    def candidates(self, stack: StackContext, *, attributes: Collection[Attr] = ()) -> Iterator[Candidate]:
        """Each device, with at least ``attributes`` of its item, or why it is skipped (its ``mismatch``)."""
        ...


class Operation(Protocol):
    """What a bulk command does to one device (:class:`~fleetctl.device_removal.Revocation`,
    :class:`~fleetctl.device_removal.Decommissioning`, :class:`~fleetctl.stack_teardown.LeftoverRemoval`)."""

    @property
    def verb(self) -> str: ...

    @property
    def attributes(self) -> tuple[Attr, ...]: ...

    def left(self, item: Item) -> str | None:
        """What is left to do to the device, or ``None`` when it is done."""
        ...

    def apply(self, stack: StackContext, serial: str, item: Item) -> list[Step]:
        """Do it; the steps taken."""
        ...

    def apply_by_serial(self, stack: StackContext, serial: str) -> list[Step]:
        """Do it to the device of ``serial`` alone, looked up by its serial; the steps taken."""
        ...


@dataclass(frozen=True)
class Row:
    """One selected device: what is (or was) done to it, or why it is skipped."""

    serial: str
    status: str | None
    action: str
    """The operation's action (``revoke``, ``finish-revocation``, ``decommission``), :data:`DONE` or
    :data:`SKIP`."""
    reason: str | None = None
    steps: list[Step] | None = None

    def report(self) -> dict[str, Any]:
        """The row as JSON-ready data (``reason`` only when skipped, ``steps`` only once done)."""
        row: dict[str, Any] = {"serial": self.serial, "status": self.status, "action": self.action}
        if self.reason is not None:
            row["reason"] = self.reason
        if self.steps is not None:
            row["steps"] = [{"action": step.action, "target": step.target} for step in self.steps]
        return row


@dataclass
class Tally:
    """How many selected devices are (or were) to change, already done, and skipped."""

    to_change: int = 0
    done: int = 0
    skipped: int = 0
    error: str | None = None
    """The first failure, which stopped the run (and any of the devices in flight then)."""

    def report(self, *, dry_run: bool) -> dict[str, Any]:
        """The counts as JSON-ready data."""
        return {
            "dryRun": dry_run,
            "toChange" if dry_run else "changed": self.to_change,
            "alreadyDone": self.done,
            "skipped": self.skipped,
            "error": self.error,
        }


@dataclass
class BulkRun:
    """A bulk command over a selection: :meth:`preview` and :meth:`execute` each read the selection afresh
    and stream their rows; :attr:`tally` counts the last one."""

    stack: StackContext
    selection: Candidates
    operation: Operation
    tally: Tally = field(default_factory=Tally)

    def preview(self) -> Iterator[Row]:
        """Every selected device that would change or is skipped, changing nothing (the registry only is
        read; AWS IoT is not asked)."""
        self.tally = Tally()
        for row, _ in self._classified():
            if row.action != DONE:
                yield row

    def execute(self, pacer: Pacer, *, workers: int | None = None) -> Iterator[Row]:
        """Do the operation to every selected device that is not done, ``workers`` (:data:`WORKERS`) at a
        time, paced by ``pacer``; yields each device changed (with its steps) or skipped, in the order
        selected. Stops at the first failure (:attr:`Tally.error`)."""
        workers = workers or WORKERS
        self.tally = Tally()
        classified = self._classified()
        in_flight: deque[tuple[Row, Future[list[Step]]]] = deque()
        with ThreadPoolExecutor(max_workers=workers) as pool, ExitStack() as paced:
            for index, region in enumerate(self.stack.regional()):
                paced.enter_context((pacer.alike() if index else pacer).pacing(region.iot))
            try:
                for row, item in classified:
                    if row.action == SKIP:
                        yield row
                    elif row.action != DONE and item is not None:
                        work = pool.submit(self.operation.apply, self.stack.where(item), row.serial, item)
                        in_flight.append((row, work))
                    while in_flight and (len(in_flight) > 2 * workers or in_flight[0][1].done()):
                        yield from self._settled(in_flight.popleft())
                    if self.tally.error is not None:
                        break
                if self.tally.error is not None:
                    for _, future in in_flight:
                        future.cancel()
                while in_flight:
                    yield from self._settled(in_flight.popleft())
            finally:
                classified.close()
                pool.shutdown(cancel_futures=True)

    def _classified(self) -> Generator[tuple[Row, Item | None], None, None]:
        """Each candidate with what is left to do, counted in :attr:`tally`."""
        wanted = [*self.operation.attributes, Attr.DEVICE_TYPE, Attr.REGION]
        for candidate in self.selection.candidates(self.stack, attributes=wanted):
            item = candidate.item
            status = None if item is None else item.get(Attr.STATUS)
            reason = "not in the registry" if item is None else candidate.mismatch or self._elsewhere(item)
            action = None if item is None or reason else self.operation.left(item)
            if reason is not None:
                self.tally.skipped += 1
                yield Row(candidate.serial, status, SKIP, reason), item
            elif action is None:
                self.tally.done += 1
                yield Row(candidate.serial, status, DONE), item
            else:
                self.tally.to_change += 1
                yield Row(candidate.serial, status, action), item

    def _elsewhere(self, item: Item) -> str | None:
        """Why the device of ``item`` cannot be reached: it lives in a region whose outputs were not given."""
        try:
            self.stack.where(item)
        except UsageProblem as problem:
            return str(problem)
        return None

    def _settled(self, flight: tuple[Row, Future[list[Step]]]) -> Iterator[Row]:
        """The row of a device in flight once it is done; a failure (the first stops the run) is recorded
        in :attr:`tally` instead, and a device cancelled before it started is no longer counted."""
        row, future = flight
        if future.cancelled():
            self.tally.to_change -= 1
            return
        try:
            steps = future.result()
        except (ClientError, BotoCoreError, FleetctlError) as error:
            self.tally.to_change -= 1
            failure = f"{row.serial}: " + " ".join(str(error).split())
            self.tally.error = failure if self.tally.error is None else f"{self.tally.error}\n{failure}"
            return
        yield Row(row.serial, row.status, row.action, steps=steps)


def advancing(rows: Iterator[Row], advance: Callable[[], None]) -> Iterator[Row]:
    """The rows, calling ``advance`` (a progress bar's) for each device done, not for a skipped one."""
    for row in rows:
        if row.steps is not None:
            advance()
        yield row
