"""The claim breakers' items in the registry table (:mod:`hook.claim_breaker`): counting approvals, tripping,
suspending, resuming and reading a breaker. Used by the claim-breaker function and by ``fleetctl claim``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from hook.claim_breaker import (
    WINDOW,
    BreakerAttr,
    BreakerState,
    approvals_key,
    breaker_change,
    breaker_keys,
    breaker_summary,
    closed,
)
from hook.registry_items import Item, binding_item_key, expressions, string_attributes, timestamp

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

CONFLICT_ATTEMPTS: Final = 5
"""Attempts at a breaker item's write that an approval's transaction on the item rejects."""
CONFLICT_BACKOFF_SECONDS: Final = 0.02
"""The first pause before another attempt, doubled at each: 0.3 s in all."""


class ClaimBreakers:
    """The breakers of a registry table's claim certificates."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table_name = table_name

    def add_approvals(self, claim_certificate_id: str, approvals: int, now: datetime) -> tuple[int, int]:
        """Add ``approvals`` to the count of the hour of ``now``: that hour's count after the addition,
        and the previous hour's (an ``ADD`` creates the item at 0; one writer per stream batch)."""
        written = self._client.update_item(
            TableName=self._table_name,
            Key=binding_item_key(approvals_key(claim_certificate_id, now)),
            UpdateExpression="ADD #n :n",
            ExpressionAttributeNames={"#n": BreakerAttr.APPROVALS},
            ExpressionAttributeValues={":n": {"N": str(approvals)}},
            ReturnValues="UPDATED_NEW",
        )
        current = int(written["Attributes"][BreakerAttr.APPROVALS]["N"])
        return current, self._approvals(claim_certificate_id, now - WINDOW)

    def trip(self, claim_certificate_id: str, reason: str, changed_by: str) -> bool:
        """Open every closed item of the breaker (an open one keeps who opened it, when and why); whether
        any item changed."""
        change = breaker_change(BreakerState.TRIPPED, changed_by, reason, timestamp())
        changed = False
        for key in breaker_keys(claim_certificate_id):
            try:
                self._write_breaker_item(key, expressions(closed(), assign=change))
                changed = True
            except self._client.exceptions.ConditionalCheckFailedException:
                continue
        return changed

    def set_state(self, claim_certificate_id: str, state: BreakerState, changed_by: str, reason: str) -> None:
        """An operator's suspension or resume, on every item of the breaker. A resume also clears the counts
        of this hour and the previous one, so the approvals that tripped it do not trip it again."""
        now = datetime.now(UTC)
        change = breaker_change(state, changed_by, reason, timestamp(now))
        for key in breaker_keys(claim_certificate_id):
            self._write_breaker_item(key, expressions(assign=change))
        if state is BreakerState.CLOSED:
            for hour in (now, now - WINDOW):
                self._client.delete_item(
                    TableName=self._table_name,
                    Key=binding_item_key(approvals_key(claim_certificate_id, hour)),
                )

    def state(self, claim_certificate_id: str) -> Item:
        """The breaker's state (:func:`~hook.claim_breaker.breaker_summary`) and the approvals counted in
        this hour, read consistently."""
        keys = [binding_item_key(key) for key in breaker_keys(claim_certificate_id)]
        response = self._client.batch_get_item(
            RequestItems={self._table_name: {"Keys": keys, "ConsistentRead": True}}
        )
        items = [string_attributes(raw) for raw in response["Responses"].get(self._table_name, [])]
        if response.get("UnprocessedKeys"):
            raise RuntimeError("the registry did not return every item of the breaker; try again")
        summary = breaker_summary(items)
        summary[BreakerAttr.APPROVALS] = str(self._approvals(claim_certificate_id, datetime.now(UTC)))
        return summary

    def _write_breaker_item(self, key: str, update: dict[str, Any]) -> None:
        """Update one breaker item. An approval's transaction in progress on it rejects the write with
        ``TransactionConflictException`` (DynamoDB developer guide, "Transaction conflict handling"), which
        botocore does not retry: the write is tried again after a short pause, as the transaction is over
        in milliseconds."""
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self._client.update_item(TableName=self._table_name, Key=binding_item_key(key), **update)
                return
            except self._client.exceptions.TransactionConflictException:
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                time.sleep(CONFLICT_BACKOFF_SECONDS * 2**attempt)

    def _approvals(self, claim_certificate_id: str, hour: datetime) -> int:
        item = self._client.get_item(
            TableName=self._table_name,
            Key=binding_item_key(approvals_key(claim_certificate_id, hour)),
            ConsistentRead=True,
        ).get("Item", {})
        return int(item.get(BreakerAttr.APPROVALS, {}).get("N", "0"))
