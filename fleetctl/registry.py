"""The registry as operators use it: pre-registration, listing through the indexes, lifecycle changes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from fleetctl.errors import UsageProblem
from hook.contract import (
    DEVICE_TYPE_INDEX,
    PARAMETER_ATTRIBUTES,
    REGISTRY_INDEXES,
    STATUS_INDEX,
    Attr,
    DeviceStatus,
    Parameter,
)
from hook.registry import DeviceRegistry, string_attributes, timestamp

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from hook.rules import DeviceRequest

Item = dict[str, str]
"""A registry item's string attributes by name (every registry attribute is a string)."""

_APPROVAL_ATTRIBUTES = (
    Attr.CERTIFICATE_ID,
    Attr.CLAIM_CERTIFICATE_ID,
    Attr.TEMPLATE_ARN,
    Attr.CLIENT_ID,
    Attr.APPROVED_AT,
)
"""What the hook's approval adds to a pre-registered item."""


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


class Registry:
    """Operator reads and writes of the registry table. Lists use the indexes; nothing here scans."""

    def __init__(self, client: DynamoDBClient, table_name: str, *, concurrency: int) -> None:
        self._client = client
        self._table_name = table_name
        self._concurrency = concurrency
        self._hook_view = DeviceRegistry(client, table_name)

    def get(self, serial: str) -> Item | None:
        """The item of ``serial``, read consistently, or ``None``."""
        return self._hook_view.get(serial)

    def preregister(
        self, requests: Sequence[DeviceRequest], on_done: Callable[[], None]
    ) -> list[ImportResult]:
        """Store each request as ``PREREGISTERED`` unless its serial exists; calls ``on_done`` per row.

        One conditional ``PutItem`` per row (``BatchWriteItem`` cannot be conditional, and a device may be
        approved between a check and a batch write), ``concurrency`` at a time. A refused write returns the
        stored item, which decides ``unchanged`` or ``conflict`` without another read. On an error, requests
        not yet sent are cancelled; rows already written stay, and a re-run reports them ``unchanged``.
        """
        now = timestamp()
        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            futures = [pool.submit(self._put_new, request, now) for request in requests]
            results = []
            try:
                for future in as_completed(futures):
                    results.append(future.result())
                    on_done()
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
        return results

    def devices(self, status: DeviceStatus | None = None, device_type: str | None = None) -> Iterator[Item]:
        """Devices in ``status`` and/or of ``device_type`` (all devices when neither), fetched page by page
        from the ``byStatus`` index (by last update) or, for a type alone, ``byDeviceType`` (by serial)."""
        if status is None and device_type is not None:
            yield from self._query(DEVICE_TYPE_INDEX, device_type)
            return
        type_filter = {} if device_type is None else {Attr.DEVICE_TYPE: device_type}
        for each in DeviceStatus if status is None else [status]:
            yield from self._query(STATUS_INDEX, each, equal=type_filter)

    def count_by_claim_certificate(self) -> Counter[str]:
        """How many devices were approved through each claim certificate, in any state after approval."""
        counts: Counter[str] = Counter()
        for status in DeviceStatus:
            if status is not DeviceStatus.PREREGISTERED:  # the hook has not seen these yet
                items = self._query(STATUS_INDEX, status, projection=[Attr.CLAIM_CERTIFICATE_ID])
                counts.update(
                    item[Attr.CLAIM_CERTIFICATE_ID] for item in items if Attr.CLAIM_CERTIFICATE_ID in item
                )
        return counts

    def transition(
        self,
        serial: str,
        status: DeviceStatus,
        *,
        unless: Collection[DeviceStatus],
        extra: Mapping[str, str],
    ) -> Item | None:
        """Move ``serial`` to ``status`` with ``extra`` attributes, creating the item if absent, unless it
        already is in one of the ``unless`` states; returns the item as written, or ``None`` if unchanged."""
        values: dict[str, str] = {Attr.STATUS: status, Attr.UPDATED_AT: timestamp(), **extra}
        excluded = {f":unless{index}": {"S": state.value} for index, state in enumerate(unless)}
        try:
            written = self._client.update_item(
                TableName=self._table_name,
                Key={Attr.SERIAL_NUMBER: {"S": serial}},
                ReturnValues="ALL_NEW",
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
                ConditionExpression=f"attribute_not_exists(#{Attr.SERIAL_NUMBER}) "
                f"OR NOT #{Attr.STATUS} IN ({', '.join(excluded)})",
                ExpressionAttributeNames={f"#{name}": name for name in [*values, Attr.SERIAL_NUMBER]},
                ExpressionAttributeValues={
                    **{f":{name}": {"S": value} for name, value in values.items()},
                    **excluded,
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return string_attributes(written.get("Attributes", {}))

    def release(self, approval: Item) -> str:
        """Undo a ``PENDING`` approval: back to ``PREREGISTERED`` when a manifest had pre-registered the
        serial (its item was created before the approval), else delete the item. Conditional on the item
        still being this approval; returns ``restored`` or ``deleted``."""
        serial = approval[Attr.SERIAL_NUMBER]
        key: dict[str, Any] = {Attr.SERIAL_NUMBER: {"S": serial}}
        condition = "#status = :pending AND #approved = :approved"
        names = {"#status": Attr.STATUS, "#approved": Attr.APPROVED_AT}
        values: dict[str, Any] = {
            ":pending": {"S": DeviceStatus.PENDING},
            ":approved": {"S": approval[Attr.APPROVED_AT]},
        }
        preregistered = approval.get(Attr.CREATED_AT, "") < approval[Attr.APPROVED_AT]
        try:
            if not preregistered:
                self._client.delete_item(
                    TableName=self._table_name,
                    Key=key,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
                return "deleted"
            removed = {f"#{name}": name for name in _APPROVAL_ATTRIBUTES}
            self._client.update_item(
                TableName=self._table_name,
                Key=key,
                UpdateExpression=f"SET #status = :preregistered, #updated = :now REMOVE {', '.join(removed)}",
                ConditionExpression=condition,
                ExpressionAttributeNames={**names, **removed, "#updated": Attr.UPDATED_AT},
                ExpressionAttributeValues={
                    **values,
                    ":preregistered": {"S": DeviceStatus.PREREGISTERED},
                    ":now": {"S": timestamp()},
                },
            )
            return "restored"
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise UsageProblem(f"serial {serial!r} changed while being released; look again") from error
            raise

    def _put_new(self, request: DeviceRequest, now: str) -> ImportResult:
        values = _attributes(request)
        item = {**values, Attr.STATUS: DeviceStatus.PREREGISTERED, Attr.CREATED_AT: now, Attr.UPDATED_AT: now}
        try:
            self._client.put_item(
                TableName=self._table_name,
                Item={name: {"S": value} for name, value in item.items()},
                ConditionExpression="attribute_not_exists(#serial)",
                ExpressionAttributeNames={"#serial": Attr.SERIAL_NUMBER},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            response: Mapping[str, object] = error.response
            stored = response.get("Item")
            return _compare(
                request.serial_number, values, string_attributes(stored if isinstance(stored, dict) else {})
            )
        return ImportResult(request.serial_number, ImportOutcome.CREATED)

    def _query(
        self,
        index: str,
        hash_value: str,
        *,
        equal: Mapping[Attr, str] | None = None,
        projection: Sequence[Attr] = (),
    ) -> Iterator[Item]:
        """Items of ``index`` whose hash key is ``hash_value`` and whose ``equal`` attributes match, paged."""
        hash_key = REGISTRY_INDEXES[index][0]
        filters = dict(equal or {})
        names = {f"#{name}": name for name in [hash_key, *filters, *projection]}
        values = {f":{name}": {"S": value} for name, value in {hash_key: hash_value, **filters}.items()}
        arguments: dict[str, Any] = {
            "TableName": self._table_name,
            "IndexName": index,
            "KeyConditionExpression": f"#{hash_key} = :{hash_key}",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if filters:
            arguments["FilterExpression"] = " AND ".join(f"#{name} = :{name}" for name in filters)
        if projection:
            arguments["ProjectionExpression"] = ", ".join(f"#{name}" for name in projection)
        for page in self._client.get_paginator("query").paginate(**arguments):
            yield from (string_attributes(item) for item in page.get("Items", []))


def _attributes(request: DeviceRequest) -> Item:
    """The request's normalised values under their registry attribute names."""
    return {PARAMETER_ATTRIBUTES[Parameter(name)]: value for name, value in request.parameters().items()}


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
