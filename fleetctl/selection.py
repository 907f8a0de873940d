"""Which devices ``revoke``, ``decommission`` and ``rotate`` act on: a SERIAL, or selectors that combine as an
intersection (a device must match every one given).

Each selector is read the cheapest way that reads no device twice and holds no more than a page of items:

- SERIAL and ``--file PATH`` (named serials): ``BatchGetItem``, 100 keys a request, read consistently
  (:meth:`~fleetctl.registry_reads.RegistryReads.get_many`). The operator named the devices, so exactly their
  items are read, and a serial the registry lacks is reported rather than silently missing. The other
  selectors are checked on each item read, so a named serial that misses one is reported with why. The file
  is read twice and never held: first every line is checked and an 8-byte digest of each serial kept
  (:class:`~fleetctl.repeats.RepeatFinder`, 8 MB a million), so bad lines are reported before anything is
  done and repeats are asked once; then the serials are streamed, 100 a request.
- ``--type T``: the type's 16 shards of the ``byTypeShard`` index
  (:meth:`~fleetctl.registry_reads.RegistryReads.devices`), the other selectors a filter expression: only that
  type's items are read, whatever the fleet's size.
- the state a command acts on (``rotate``: ``ACTIVE``) without ``--type``: that state's shards of
  ``byStatusShard``, the other selectors a filter.
- ``--claim-generation`` and ``--provisioned-before`` otherwise: a parallel Scan (8 segments) with a filter
  expression. No index is keyed by claim certificate or approval time, and none should be: a claim
  generation's devices, or those approved before a date, are a large part of the fleet, and an index would
  cost every approval a write to serve a read that reads most items anyway. DynamoDB charges a filtered
  read for every item it reads but returns only the matches, page by page.

``--claim-generation NAME`` names a generation of the stack outputs' ``claimCertificateIds`` (generation ->
claim certificate id): the devices whose ``claimCertificateId`` is that id. ``--provisioned-before DATE``
(an ISO date or date and time, UTC unless it gives an offset): the devices whose ``approvedAt`` is before it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Final

from boto3.dynamodb.conditions import Attr as Attribute
from boto3.dynamodb.conditions import ConditionBase

from fleetctl.devices import SERIAL_NUMBER_FORM, is_serial_number
from fleetctl.errors import UsageProblem
from fleetctl.registry_reads import BATCH_GET_MAX
from fleetctl.repeats import RepeatFinder, digest
from hook.contract import Attr, DeviceStatus
from hook.registry_items import timestamp
from program.outputs import StackOutput

if TYPE_CHECKING:
    from fleetctl.context import StackContext
    from hook.registry_items import Item

MOMENT_FORM: Final = (
    "an ISO date (2025-06-30) or date and time (2025-06-30T12:00:00, UTC unless it gives an offset)"
)


@dataclass(frozen=True)
class Selectors:
    """What the command line named; each selector given narrows the selection."""

    serial: str | None = None
    device_type: str | None = None
    claim_generation: str | None = None
    serials_file: Path | None = None
    provisioned_before: datetime | None = None

    def given(self) -> list[str]:
        """The names of the selectors given, as the command line spells them."""
        named = {
            "SERIAL": self.serial,
            "--type": self.device_type,
            "--claim-generation": self.claim_generation,
            "--file": self.serials_file,
            "--provisioned-before": self.provisioned_before,
        }
        return [name for name, value in named.items() if value is not None]

    @property
    def one_serial(self) -> bool:
        """Only SERIAL was given: one device, by today's single-device path."""
        return self.given() == ["SERIAL"]


@dataclass(frozen=True)
class Candidate:
    """A device the selectors found, or a named serial that is not selected and why (``mismatch``)."""

    serial: str
    item: Item | None
    """The registry item (only the attributes asked for); ``None``: a named serial the registry lacks."""
    mismatch: str | None = None


@dataclass(frozen=True)
class SerialsFile:
    """A file of serial numbers whose every line was checked; iterating reads it again, each serial once."""

    path: Path
    _repeated: frozenset[int] = field(repr=False)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()  # only serials whose digest repeats: usually none
        for _, value in _values(self.path):
            if digest(value) in self._repeated:
                if value in seen:
                    continue
                seen.add(value)
            yield value


def check_serials_file(path: Path) -> SerialsFile:
    """Check every line of ``path`` (one serial a line; surrounding blanks and empty lines ignored): every
    bad line is reported by its number, and then nothing is returned."""
    repeats = RepeatFinder()
    problems = []
    count = 0
    for number, value in _values(path):
        if is_serial_number(value):
            repeats.add(value)
            count += 1
        else:
            problems.append(
                f"--file {path} line {number}: {value!r} is not a serial number; "
                f"expected {SERIAL_NUMBER_FORM}"
            )
    if problems:
        raise UsageProblem("\n".join(problems))
    if not count:
        raise UsageProblem(f"--file {path}: no serial numbers in it; expected one a line")
    return SerialsFile(path, repeats.repeated())


def parse_moment(value: str) -> datetime:
    """An ISO date or date and time as a UTC moment (a date is its midnight, UTC); ``ValueError`` naming
    :data:`MOMENT_FORM` otherwise."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a date: expected {MOMENT_FORM}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass(frozen=True)
class Selection:
    """The selectors checked against the stack (the file read, the claim generation found), ready to be
    read as often as needed: each :meth:`candidates` reads the registry afresh."""

    selectors: Selectors
    serials: SerialsFile | None
    claim_certificate_id: str | None

    def candidates(
        self, stack: StackContext, *, status: DeviceStatus | None = None, attributes: Collection[Attr] = ()
    ) -> Iterator[Candidate]:
        """The devices selected, streamed, with only ``attributes`` of each when given (the selectors' own are
        added). ``status``: the only state the command acts on; a query then reads no other (named serials
        are read whatever their state, so the command can say why it skips them)."""
        shown = list(dict.fromkeys([*attributes, *_SELECTOR_ATTRIBUTES])) if attributes else []
        named = self._named()
        if named is not None:
            yield from self._read_named(stack, named, shown)
            return
        found = stack.records.devices(
            status, self.selectors.device_type, attributes=shown, filter_by=self._filter()
        )
        yield from (Candidate(item[Attr.SERIAL_NUMBER], item) for item in found)

    def mismatch(self, item: Item) -> str | None:
        """How an item misses ``--type``, ``--claim-generation`` or ``--provisioned-before``, or ``None``."""
        wanted_type = self.selectors.device_type
        device_type = item.get(Attr.DEVICE_TYPE)
        if wanted_type is not None and device_type != wanted_type:
            return f"type {device_type}, not {wanted_type}"
        claim = item.get(Attr.CLAIM_CERTIFICATE_ID)
        if self.claim_certificate_id is not None and claim != self.claim_certificate_id:
            through = f"claim certificate {claim}" if claim else "no claim certificate (never approved)"
            return f"approved through {through}, not generation {self.selectors.claim_generation}"
        cutoff = self.selectors.provisioned_before
        approved = item.get(Attr.APPROVED_AT)
        if cutoff is not None and not (approved and approved < timestamp(cutoff)):
            return f"approved {approved}, not before {timestamp(cutoff)}" if approved else "never approved"
        return None

    def _named(self) -> Iterator[str] | None:
        """The serials named by SERIAL and ``--file`` (both: the SERIAL if the file has it); ``None`` when
        neither was given."""
        serial = self.selectors.serial
        if self.serials is None:
            return None if serial is None else iter([serial])
        return iter(self.serials) if serial is None else (each for each in self.serials if each == serial)

    def _read_named(
        self, stack: StackContext, serials: Iterator[str], shown: list[Attr]
    ) -> Iterator[Candidate]:
        """The items of ``serials``, :data:`~fleetctl.registry_reads.BATCH_GET_MAX` a request, in the order
        named."""
        while batch := list(islice(serials, BATCH_GET_MAX)):
            items = {
                item[Attr.SERIAL_NUMBER]: item for item in stack.records.get_many(batch, attributes=shown)
            }
            for serial in batch:
                item = items.get(serial)
                yield Candidate(serial, item, None if item is None else self.mismatch(item))

    def _filter(self) -> ConditionBase | None:
        """``--claim-generation`` and ``--provisioned-before`` as a filter expression (``--type`` is the
        index's key or its filter, :meth:`~fleetctl.registry_reads.RegistryReads.devices`)."""
        conditions: list[ConditionBase] = []
        if self.claim_certificate_id is not None:
            conditions.append(Attribute(Attr.CLAIM_CERTIFICATE_ID).eq(self.claim_certificate_id))
        if self.selectors.provisioned_before is not None:
            conditions.append(Attribute(Attr.APPROVED_AT).lt(timestamp(self.selectors.provisioned_before)))
        if not conditions:
            return None
        combined = conditions[0]
        for condition in conditions[1:]:
            combined = combined & condition
        return combined


_SELECTOR_ATTRIBUTES: Final = (Attr.DEVICE_TYPE, Attr.CLAIM_CERTIFICATE_ID, Attr.APPROVED_AT, Attr.STATUS)
_USAGES: Final = (
    "--claim-generation NAME",
    "--provisioned-before DATE",
    "SERIAL",
    "--type TYPE",
    "--file PATH",
)
"""The selectors' usages; a command's own go before the last."""


def resolve(
    stack: StackContext, selectors: Selectors, *, own: Mapping[str, object] | None = None
) -> Selection:
    """Check ``selectors`` before anything is read: at least one is given (or one of ``own``, the command's
    own selectors by usage, such as ``{"--older-than DAYS": 30}``), the file's every line, the claim
    generation. A :class:`UsageProblem` says what is wrong."""
    own = own or {}
    if not selectors.given() and all(value is None for value in own.values()):
        usages = [*_USAGES[:-1], *own, _USAGES[-1]]
        raise UsageProblem(f"name the devices: {', '.join(usages[:-1])} and/or {usages[-1]}")
    serials = None if selectors.serials_file is None else check_serials_file(selectors.serials_file)
    claim = (
        None
        if selectors.claim_generation is None
        else _claim_certificate_id(stack, selectors.claim_generation)
    )
    return Selection(selectors, serials, claim)


def _claim_certificate_id(stack: StackContext, generation: str) -> str:
    generations = stack.outputs.get(StackOutput.CLAIM_CERTIFICATE_IDS)
    if not isinstance(generations, Mapping) or not generations:
        raise UsageProblem(
            f"--claim-generation needs the {StackOutput.CLAIM_CERTIFICATE_IDS} output: pass --outputs FILE "
            "(the JSON of `pulumi stack output --json`)"
        )
    certificate_id = generations.get(generation)
    if not isinstance(certificate_id, str) or not certificate_id:
        known = ", ".join(sorted(map(str, generations)))
        raise UsageProblem(
            f"--claim-generation {generation!r} is not a claim generation; expected one of {known}"
        )
    return certificate_id


def _values(path: Path) -> Iterator[tuple[int, str]]:
    """Each non-blank line of ``path`` with its number, stripped."""
    try:
        with path.open(encoding="utf-8-sig") as lines:
            for number, line in enumerate(lines, start=1):
                value = line.strip()
                if value:
                    yield number, value
    except (OSError, UnicodeDecodeError) as error:
        raise UsageProblem(f"--file {path}: cannot read it: {error}") from error
