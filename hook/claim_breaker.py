"""The claim circuit breaker: its items in the registry table, and the pure rules of a trip and a denial.

One breaker per claim certificate (so per claim generation). Its state is written to
:data:`BREAKER_SHARDS` items, ``claimBreaker#<claimCertificateId>#<shard>``, all alike; an approval's
transaction checks only the item of its serial's shard (:func:`~hook.contract.shard_of`) with a
``ConditionCheck`` (:func:`breaker_check_member`). A ``ConditionCheck`` writes nothing, but an item in a
``TransactWriteItems`` conflicts with the same item in another ongoing one (DynamoDB developer guide,
"Transaction conflict handling"; AWS Knowledge Center "dynamodb-transactwriteitems"), so one item per
breaker would be a key every concurrent approval of a generation touches: the shards spread them as the
registry's indexes spread their keys.

The approvals are counted apart from the hook, by the claim-breaker function on the registry table's
stream (:mod:`hook.claim_breaker_trip`): per claim certificate and clock hour, in items
``claimApprovals#<claimCertificateId>#<hour>`` that only it writes, once per stream batch, never per
approval. An hour's estimate weighs the previous hour's count by the part of it still inside the last 60
minutes (:func:`estimated_approvals`); above the generation's budget the breaker trips. An operator suspends
or resumes it with ``fleetctl claim suspend|resume`` (who, when, why on every item); a resume also clears
the counts of the current and the previous hour, or the next approval would trip it again at once.

Breaker and count items have no ``status``: the registry's sparse indexes and device scans never see them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final, cast

from boto3.dynamodb.conditions import Attr as Attribute
from boto3.dynamodb.conditions import ConditionBase

from hook.contract import (
    BINDING_PREFIXES,
    REGISTRY_PARTITION_KEY,
    REGISTRY_SHARDS,
    ProvisioningDenied,
    RejectionReason,
    shard_of,
)
from hook.registry_items import Item, binding_item_key, expressions

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

CLAIM_BREAKER_PREFIX: Final = "claimBreaker#"
CLAIM_APPROVALS_PREFIX: Final = "claimApprovals#"
"""Start the keys of a breaker's items and of its approval counts: ``#`` is never in a serial number."""
BREAKER_SHARDS: Final = REGISTRY_SHARDS
"""Items per breaker: the registry's shard count, so an approval checks the shard of its serial."""
WINDOW: Final = timedelta(hours=1)
"""The budget's period: approvals per hour (``maxProvisioningPerHour``)."""
TRIPPED_BY: Final = "claim-breaker"
"""``changedBy`` of a trip made by the claim-breaker function rather than by an operator."""
CLAIM_BUDGETS_ENV: Final = "CLAIM_BUDGETS"
"""Environment variable of the claim-breaker function: ``{"<claimCertificateId>": <approvals per hour>}``."""


class BreakerState(StrEnum):
    """A breaker's state; an item without one is ``CLOSED``."""

    CLOSED = "CLOSED"
    """Approvals through the claim certificate go on (never tripped, or resumed)."""
    TRIPPED = "TRIPPED"
    """The claim-breaker function saw more approvals in an hour than the budget."""
    SUSPENDED = "SUSPENDED"
    """An operator stopped approvals (``fleetctl claim suspend``)."""


class BreakerAttr(StrEnum):
    """Attributes of breaker and count items."""

    STATE = "breakerState"
    CHANGED_BY = "breakerChangedBy"
    CHANGED_AT = "breakerChangedAt"
    REASON = "breakerReason"
    APPROVALS = "approvals"
    """A count item's number of approvals (a DynamoDB number, added to with ``ADD``)."""


def is_device_key(key: str) -> bool:
    """Whether a registry key is a device's: not a binding's, a breaker's or an approval count's."""
    return not key.startswith((*BINDING_PREFIXES, CLAIM_BREAKER_PREFIX, CLAIM_APPROVALS_PREFIX))


def breaker_key(claim_certificate_id: str, shard: int) -> str:
    """The key of one shard's item of a claim certificate's breaker."""
    return f"{CLAIM_BREAKER_PREFIX}{claim_certificate_id}#{shard}"


def breaker_keys(claim_certificate_id: str) -> list[str]:
    """Every item of a breaker, shard 0 first."""
    return [breaker_key(claim_certificate_id, shard) for shard in range(BREAKER_SHARDS)]


def window_start(now: datetime) -> datetime:
    """The clock hour ``now`` falls in."""
    return now.replace(minute=0, second=0, microsecond=0)


def approvals_key(claim_certificate_id: str, window: datetime) -> str:
    """The key of the item counting the approvals through a claim certificate in the hour ``window``."""
    return f"{CLAIM_APPROVALS_PREFIX}{claim_certificate_id}#{window_start(window).strftime('%Y-%m-%dT%H')}"


def estimated_approvals(current: int, previous: int, now: datetime) -> float:
    """Approvals in the 60 minutes before ``now``: this hour's count, and the previous hour's weighted by
    the part of it still inside them (a sliding window from two fixed ones, so a burst across the hour's
    turn is not halved)."""
    elapsed = (now - window_start(now)) / WINDOW
    return current + previous * (1 - elapsed)


def over_budget(current: int, previous: int, now: datetime, budget: int) -> bool:
    """Whether the approvals of the last hour passed ``budget``: the breaker trips."""
    return estimated_approvals(current, previous, now) > budget


def closed() -> ConditionBase:
    """The breaker item admits approvals: never tripped, or ``CLOSED`` again. Any other value denies."""
    return Attribute(BreakerAttr.STATE).not_exists() | Attribute(BreakerAttr.STATE).eq(BreakerState.CLOSED)


def breaker_check_member(
    table_name: str, claim_certificate_id: str, serial_number: str
) -> TransactWriteItemTypeDef:
    """The approval's ``ConditionCheck`` on the breaker item of the serial's shard: it fails while the
    breaker is open, and then returns the item (who, when, why) for the denial."""
    key = breaker_key(claim_certificate_id, shard_of(serial_number))
    check = {
        "TableName": table_name,
        "Key": binding_item_key(key),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        **expressions(closed()),
    }
    return cast("TransactWriteItemTypeDef", {"ConditionCheck": check})


def suspension(stored: Item | None) -> ProvisioningDenied:
    """The ``ClaimSuspended`` denial, from the breaker item a failed check returned."""
    item = stored or {}
    return ProvisioningDenied(
        RejectionReason.CLAIM_SUSPENDED,
        f"the claim certificate's breaker is {item.get(BreakerAttr.STATE, 'open')} since "
        f"{item.get(BreakerAttr.CHANGED_AT, '?')} by {item.get(BreakerAttr.CHANGED_BY, '?')}: "
        f"{item.get(BreakerAttr.REASON, 'no reason recorded')}",
    )


def breaker_change(state: BreakerState, changed_by: str, reason: str, now: str) -> Item:
    """What a trip, a suspension or a resume writes on every item of a breaker."""
    return {
        BreakerAttr.STATE: state,
        BreakerAttr.CHANGED_BY: changed_by,
        BreakerAttr.CHANGED_AT: now,
        BreakerAttr.REASON: reason,
    }


def breaker_summary(items: list[Item]) -> Item:
    """One breaker's state from its shards' items: the most restrictive state any shard holds (a trip
    that stopped half-way denies on the shards it reached), with that shard's who, when and why."""
    order = (BreakerState.SUSPENDED, BreakerState.TRIPPED)
    for state in order:
        for item in items:
            if item.get(BreakerAttr.STATE) == state:
                return {name: value for name, value in item.items() if name != REGISTRY_PARTITION_KEY}
    latest = max(items, key=lambda item: item.get(BreakerAttr.CHANGED_AT, ""), default={})
    return {BreakerAttr.STATE: BreakerState.CLOSED} | {
        name: value for name, value in latest.items() if name in set(BreakerAttr) - {BreakerAttr.STATE}
    }


def parse_budgets(text: str) -> dict[str, int]:
    """The budgets of :data:`CLAIM_BUDGETS_ENV`, or ``ValueError`` naming the variable and the form."""
    form = f'{CLAIM_BUDGETS_ENV} must be a JSON object {{"<claimCertificateId>": <approvals per hour >= 1>}}'
    try:
        budgets = json.loads(text)
    except ValueError:
        raise ValueError(f"{form}; got text that is not JSON") from None
    if not isinstance(budgets, dict) or not all(
        isinstance(key, str) and type(value) is int and value >= 1 for key, value in budgets.items()
    ):
        raise ValueError(f"{form}; got {text[:200]!r}")
    return budgets
