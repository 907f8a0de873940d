"""A model of "provisioned once, fleet-wide" under concurrent approvals in several regions, with the
delays of each registry design written down as numbers (``docs/global-fleet.md``).

An approval is the hook's one conditional transaction (``hook.registry_transitions.DeviceRecords.approve``):
it admits a serial that has no certificate yet, or has this one (a retry), and binds a certificate that is
unbound or bound to this serial. What differs between the designs is *where* the condition is checked and
*what it sees*:

- :func:`single_registry` (the design chosen): every region's hook sends its transaction to the one table
  in the registry region. DynamoDB runs transactions on an item one after another ("Isolation levels for
  DynamoDB transactions": serializable), so the registry applies them in the order they arrive: sent time
  plus the region's one-way latency. A transaction arriving while the registry region is out fails; an
  answer that would come back after the hook's deadline is a denial whether or not the write committed
  (the hook fails closed; the committed approval is a stale ``PENDING`` that only the same certificate can
  use again).
- :func:`eventually_consistent` (a global table in multi-Region eventual consistency, the alternative):
  each region's hook checks and writes its own replica; a write reaches the other replicas after the
  replication lag, and concurrent writes to one item are resolved "last writer wins" by timestamp
  (developer guide, "How DynamoDB global tables work"; prescriptive guidance "Key facts about MREC").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from hook.runtime import HOOK_CALL_DEADLINE_SECONDS

APPROVED: Final = "approved"
REFUSED: Final = "refused"
"""The condition failed: the serial has another certificate, or the certificate another serial."""
UNAVAILABLE: Final = "registry-unavailable"
TIMED_OUT: Final = "timed-out"


@dataclass(frozen=True, order=True)
class Request:
    """One device's RegisterThing reaching the hook of ``region`` at ``sent_at`` seconds."""

    region: str
    serial: str
    certificate: str
    sent_at: float


@dataclass(frozen=True)
class Decision:
    """The hook's answer to a request, and whether the registry recorded its approval."""

    request: Request
    outcome: str
    committed: bool

    @property
    def allowed(self) -> bool:
        """Whether AWS IoT was told to provision the device."""
        return self.outcome == APPROVED


@dataclass(frozen=True)
class RegistryLinks:
    """The single-registry design's delays: each region's one-way latency to the registry region (0 for the
    registry region itself), the intervals in which the registry region is out, and the hook's deadline."""

    latency: Mapping[str, float]
    outages: Sequence[tuple[float, float]] = ()
    deadline: float = HOOK_CALL_DEADLINE_SECONDS

    def out_at(self, moment: float) -> bool:
        """Whether the registry region is out at ``moment``."""
        return any(start <= moment < end for start, end in self.outages)


@dataclass
class Registry:
    """The registry's items the condition reads: each serial's certificate, each certificate's serial."""

    certificates: dict[str, str] = field(default_factory=dict)
    serials: dict[str, str] = field(default_factory=dict)

    def admits(self, request: Request) -> bool:
        """The approval's condition, as ``DeviceRecords.approve`` writes it (no pre-registration)."""
        held = self.certificates.get(request.serial, request.certificate)
        bound = self.serials.get(request.certificate, request.serial)
        return held == request.certificate and bound == request.serial

    def record(self, request: Request) -> None:
        """The approval's two updates: the serial's certificate and the certificate's binding."""
        self.certificates[request.serial] = request.certificate
        self.serials[request.certificate] = request.serial


def single_registry(requests: Iterable[Request], links: RegistryLinks) -> list[Decision]:
    """Every hook's transaction applied by the one registry table in the order it arrives."""
    registry = Registry()
    decisions = []
    ordered = sorted(requests, key=lambda request: (request.sent_at + links.latency[request.region], request))
    for request in ordered:
        one_way = links.latency[request.region]
        arrives = request.sent_at + one_way
        if links.out_at(arrives):
            decisions.append(Decision(request, UNAVAILABLE, committed=False))
            continue
        admitted = registry.admits(request)
        if admitted:
            registry.record(request)
        if 2 * one_way > links.deadline:
            decisions.append(Decision(request, TIMED_OUT, committed=admitted))
        else:
            decisions.append(Decision(request, APPROVED if admitted else REFUSED, committed=admitted))
    return decisions


@dataclass(frozen=True)
class _Write:
    region: str
    at: float
    request: Request


def eventually_consistent(requests: Iterable[Request], lag: float) -> list[Decision]:
    """Each hook's transaction checked against its own region's replica, which holds its region's writes
    and the other regions' writes older than ``lag``; an item's value is its last writer's."""
    writes: list[_Write] = []
    decisions = []
    for request in sorted(requests, key=lambda request: (request.sent_at, request)):
        replica = Registry()
        visible = [
            write for write in writes if write.region == request.region or write.at + lag <= request.sent_at
        ]
        for write in sorted(visible, key=lambda write: write.at):  # last writer wins
            replica.record(write.request)
        admitted = replica.admits(request)
        if admitted:
            writes.append(_Write(request.region, request.sent_at, request))
        decisions.append(Decision(request, APPROVED if admitted else REFUSED, committed=admitted))
    return decisions


def violations(decisions: Iterable[Decision]) -> list[str]:
    """Breaches of the invariant among the devices AWS IoT was told to provision: a serial allowed with
    two certificates, or a certificate allowed for two serials."""
    certificates: dict[str, set[str]] = {}
    serials: dict[str, set[str]] = {}
    for decision in decisions:
        if decision.allowed:
            certificates.setdefault(decision.request.serial, set()).add(decision.request.certificate)
            serials.setdefault(decision.request.certificate, set()).add(decision.request.serial)
    return [f"serial {serial}: {sorted(held)}" for serial, held in certificates.items() if len(held) > 1] + [
        f"certificate {certificate}: {sorted(bound)}"
        for certificate, bound in serials.items()
        if len(bound) > 1
    ]
