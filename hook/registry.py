"""The device registry as the hook sees it: one conditional write per decision."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hook.contract import (
    PARAMETER_ATTRIBUTES,
    REGISTRY_TABLE_ENV,
    STATUS_INDEX,
    Attr,
    DeviceStatus,
    Parameter,
    ProvisioningDenied,
    RejectionReason,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from hook.rules import DeviceRequest

_DENIED_STATES = {
    DeviceStatus.REVOKED: RejectionReason.DEVICE_REVOKED,
    DeviceStatus.DECOMMISSIONED: RejectionReason.DEVICE_DECOMMISSIONED,
}
_PROVISIONED_STATES = {DeviceStatus.PENDING, DeviceStatus.ACTIVE}


@dataclass(frozen=True)
class Provenance:
    """Who asked: the identifiers AWS IoT passes to the hook with every request."""

    certificate_id: str
    claim_certificate_id: str
    template_arn: str
    client_id: str


class DeviceRegistry:
    """The functions' access to the registry table: approvals, activations and stale approvals."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table_name = table_name

    def approve(
        self, request: DeviceRequest, provenance: Provenance, *, require_preregistration: bool
    ) -> None:
        """Mark the serial ``PENDING`` for this certificate, or raise :class:`ProvisioningDenied`.

        One ``UpdateItem`` whose condition admits a new serial (unless pre-registration is required) or a
        ``PREREGISTERED`` one with the same type and manufacturer. When the condition fails, DynamoDB
        returns the stored item, and the decision is made from it without a second request: a retry
        by the same certificate, for the same type and manufacturer, is allowed again; anything else
        is denied.
        """
        now = timestamp()
        values: dict[str, str] = {
            Attr.STATUS: DeviceStatus.PENDING,
            Attr.CERTIFICATE_ID: provenance.certificate_id,
            Attr.CLAIM_CERTIFICATE_ID: provenance.claim_certificate_id,
            Attr.TEMPLATE_ARN: provenance.template_arn,
            Attr.CLIENT_ID: provenance.client_id,
            Attr.UPDATED_AT: now,
            Attr.APPROVED_AT: now,
        }
        for parameter, value in request.parameters().items():
            attribute = PARAMETER_ATTRIBUTES[Parameter(parameter)]
            if attribute is not Attr.SERIAL_NUMBER:
                values[attribute] = value
        attribute_values: dict[str, Any] = {f":{attr}": {"S": value} for attr, value in values.items()}
        attribute_values[":preregistered"] = {"S": DeviceStatus.PREREGISTERED}
        assignments = [f"#{attr} = :{attr}" for attr in values]
        assignments.append(f"#{Attr.CREATED_AT} = if_not_exists(#{Attr.CREATED_AT}, :{Attr.UPDATED_AT})")
        condition = (
            f"#{Attr.STATUS} = :preregistered AND #{Attr.DEVICE_TYPE} = :{Attr.DEVICE_TYPE} "
            f"AND #{Attr.MANUFACTURER} = :{Attr.MANUFACTURER}"
        )
        named = [*values, Attr.CREATED_AT]
        if not require_preregistration:
            condition = f"attribute_not_exists(#{Attr.SERIAL_NUMBER}) OR ({condition})"
            named.append(Attr.SERIAL_NUMBER)
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key={Attr.SERIAL_NUMBER: {"S": request.serial_number}},
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression=condition,
                ExpressionAttributeNames={f"#{attr}": attr for attr in named},
                ExpressionAttributeValues=attribute_values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _unavailable(error) from error
            stored: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
            _decide_from_stored(stored, request, provenance)
        except BotoCoreError as error:
            raise _unavailable(error) from error

    def get(self, serial_number: str) -> dict[str, str] | None:
        """The registry item of a serial (string attributes), read consistently; ``None`` if absent."""
        item = self._client.get_item(
            TableName=self._table_name,
            Key={Attr.SERIAL_NUMBER: {"S": serial_number}},
            ConsistentRead=True,
        ).get("Item")
        return None if item is None else string_attributes(item)

    def activate(self, serial_number: str, thing_name: str) -> dict[str, str] | None:
        """Move a ``PENDING`` serial to ``ACTIVE`` with its thing name; return ``None`` when done, or the
        stored item when it was not ``PENDING`` (a redelivered event or an unexpected state)."""
        now = timestamp()
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key={Attr.SERIAL_NUMBER: {"S": serial_number}},
                UpdateExpression="SET #status = :active, #thing = :thing, #activated = :now, #updated = :now",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={
                    "#status": Attr.STATUS,
                    "#thing": Attr.THING_NAME,
                    "#activated": Attr.ACTIVATED_AT,
                    "#updated": Attr.UPDATED_AT,
                },
                ExpressionAttributeValues={
                    ":active": {"S": DeviceStatus.ACTIVE},
                    ":pending": {"S": DeviceStatus.PENDING},
                    ":thing": {"S": thing_name},
                    ":now": {"S": now},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            stored: dict[str, Any] = error.response.get("Item", {})  # type: ignore[assignment]
            return string_attributes(stored)
        return None

    def count_pending_before(self, cutoff: str) -> int:
        """How many ``PENDING`` items were last updated before ``cutoff`` (ISO 8601), by the status index."""
        count = 0
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table_name,
            IndexName=STATUS_INDEX,
            KeyConditionExpression="#status = :pending AND #updated < :cutoff",
            ExpressionAttributeNames={"#status": Attr.STATUS, "#updated": Attr.UPDATED_AT},
            ExpressionAttributeValues={":pending": {"S": DeviceStatus.PENDING}, ":cutoff": {"S": cutoff}},
            Select="COUNT",
        ):
            count += page["Count"]
        return count


def registry_from_environment(config: Config) -> DeviceRegistry:
    """The registry named by ``REGISTRY_TABLE_NAME``, through a DynamoDB client built with ``config``."""
    table_name = os.environ.get(REGISTRY_TABLE_ENV)
    if not table_name:
        raise RuntimeError(f"{REGISTRY_TABLE_ENV} is not set")
    return DeviceRegistry(boto3.client("dynamodb", config=config), table_name)


def timestamp(moment: datetime | None = None) -> str:
    """A registry timestamp: ISO 8601 in UTC with milliseconds, which sorts as text."""
    return (moment or datetime.now(UTC)).isoformat(timespec="milliseconds")


def string_attributes(item: Mapping[str, Any]) -> dict[str, str]:
    """A DynamoDB item's string attributes as plain values (every registry attribute is a string)."""
    return {name: value["S"] for name, value in item.items() if "S" in value}


def _decide_from_stored(item: dict[str, Any] | None, request: DeviceRequest, provenance: Provenance) -> None:
    """Allow a retry by the certificate already on record; deny everything else the condition refused."""
    if item is None:
        raise ProvisioningDenied(RejectionReason.NOT_PREREGISTERED, "serial is not pre-registered")
    status = _string(item, Attr.STATUS)
    if status in _PROVISIONED_STATES:
        if _string(item, Attr.CERTIFICATE_ID) != provenance.certificate_id:
            raise ProvisioningDenied(
                RejectionReason.DUPLICATE_SERIAL,
                f"serial is already {status} with another certificate (a cloned or replayed serial)",
            )
        if not _same_identity(item, request):
            raise ProvisioningDenied(
                RejectionReason.DUPLICATE_SERIAL,
                f"serial is already {status} as {_identity(item)}; "
                "a retry must repeat DeviceType and Manufacturer",
            )
        return
    if status in _DENIED_STATES:
        raise ProvisioningDenied(_DENIED_STATES[DeviceStatus(status)], f"serial is {status}")
    if status == DeviceStatus.PREREGISTERED:
        raise ProvisioningDenied(
            RejectionReason.PREREGISTRATION_MISMATCH,
            f"serial was pre-registered as {_identity(item)}, the request says "
            f"{request.device_type!r} by {request.manufacturer!r}",
        )
    raise ProvisioningDenied(
        RejectionReason.UNKNOWN_REGISTRY_STATE, f"registry status {status!r} is not known"
    )


def _same_identity(item: dict[str, Any], request: DeviceRequest) -> bool:
    return (_string(item, Attr.DEVICE_TYPE), _string(item, Attr.MANUFACTURER)) == (
        request.device_type,
        request.manufacturer,
    )


def _identity(item: dict[str, Any]) -> str:
    return f"{_string(item, Attr.DEVICE_TYPE)!r} by {_string(item, Attr.MANUFACTURER)!r}"


def _string(item: dict[str, Any], attribute: Attr) -> str | None:
    value = item.get(attribute, {}).get("S")
    return value if isinstance(value, str) else None


def _unavailable(error: Exception) -> ProvisioningDenied:
    code = (
        error.response.get("Error", {}).get("Code")
        if isinstance(error, ClientError)
        else type(error).__name__
    )
    return ProvisioningDenied(RejectionReason.REGISTRY_UNAVAILABLE, f"registry request failed: {code}")
