"""How the registry's items, keys and request expressions are built: boto3's condition builder and type
(de)serializers on the low-level DynamoDB client (the ``Table`` resource costs the hook's cold start more).

Every write of a status or a type writes the index keys of the sharded indexes with it
(:func:`shard_attributes`; ``components/device_registry.py`` explains the indexes). Certificate and key
binding items never get them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.conditions import Attr as Attribute
from boto3.dynamodb.conditions import ConditionBase, ConditionExpressionBuilder
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from hook.contract import (
    PARAMETER_ATTRIBUTES,
    REGISTRY_PARTITION_KEY,
    Attr,
    Parameter,
    certificate_binding_key,
    is_binding_key,
    is_certificate_binding_key,
    shard_key,
    shard_of,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from hook.rules import DeviceRequest

Item = dict[str, str]
"""A registry item's string attributes by name (every registry attribute is a string)."""

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def timestamp(moment: datetime | None = None) -> str:
    """A registry timestamp: ISO 8601 in UTC with milliseconds, which sorts as text."""
    return (moment or datetime.now(UTC)).isoformat(timespec="milliseconds")


def shard_attributes(
    serial_number: str, *, status: str | None = None, device_type: str | None = None
) -> Item:
    """The index keys of a device item in ``status`` and/or of ``device_type``: ``statusShard`` and
    ``typeShard``, both in the serial's shard (:func:`~hook.contract.shard_of`). Every write of a status or
    a type writes these with it; a certificate binding never has them."""
    shard = shard_of(serial_number)
    keys: Item = {}
    if status is not None:
        keys[Attr.STATUS_SHARD] = shard_key(status, shard)
    if device_type is not None:
        keys[Attr.TYPE_SHARD] = shard_key(device_type, shard)
    return keys


def request_attributes(request: DeviceRequest) -> Item:
    """The request's normalised values under their registry attribute names."""
    return {PARAMETER_ATTRIBUTES[Parameter(name)]: value for name, value in request.parameters().items()}


def string_attributes(item: Mapping[str, Any]) -> Item:
    """A DynamoDB item's string attributes as plain values (every registry attribute is a string)."""
    plain = {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
    return {name: value for name, value in plain.items() if isinstance(value, str)}


def serialized(item: Mapping[str, str]) -> dict[str, Any]:
    """An item's attributes in DynamoDB's typed form, for ``PutItem``."""
    return {name: _SERIALIZER.serialize(value) for name, value in item.items()}


def device_key(serial_number: str) -> dict[str, Any]:
    """A device's key. A binding's key is refused: no device operation may touch a binding."""
    if is_binding_key(serial_number):
        kind = "certificate binding" if is_certificate_binding_key(serial_number) else "key binding"
        raise ValueError(f"{serial_number!r} is a {kind}'s key, not a serial number")
    return {REGISTRY_PARTITION_KEY: _SERIALIZER.serialize(serial_number)}


def binding_item_key(binding_key: str) -> dict[str, Any]:
    """A binding item's key (:func:`~hook.contract.certificate_binding_key`,
    :func:`~hook.contract.public_key_binding_key`)."""
    return {REGISTRY_PARTITION_KEY: _SERIALIZER.serialize(binding_key)}


def absent() -> ConditionBase:
    """The item does not exist yet."""
    return Attribute(REGISTRY_PARTITION_KEY).not_exists()


def key_unchanged(public_key: str | None) -> ConditionBase:
    """The serial's registered key is still ``public_key`` (still none when ``None``)."""
    if public_key:
        return Attribute(Attr.PUBLIC_KEY_SHA256).eq(public_key)
    return Attribute(Attr.PUBLIC_KEY_SHA256).not_exists()


def expressions(
    condition: ConditionBase | None = None,
    *,
    key: ConditionBase | None = None,
    filter_by: ConditionBase | None = None,
    assign: Mapping[str, str] | None = None,
    assign_if_absent: Mapping[str, str] | None = None,
    remove: Collection[str] = (),
    projection: Collection[str] = (),
) -> dict[str, Any]:
    """The expression arguments of one request. Conditions are built by boto3's builder (placeholders
    ``#n0``, ``:v0``...); boto3 has no builder for updates and projections, so their placeholders are
    numbered here (``#u0``, ``:u0``, ``#r0``, ``#p0``...). Every value goes through ``TypeSerializer``."""
    builder = ConditionExpressionBuilder()
    arguments: dict[str, Any] = {}
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for argument, built_from, is_key in (
        ("ConditionExpression", condition, False),
        ("KeyConditionExpression", key, True),
        ("FilterExpression", filter_by, False),
    ):
        if built_from is not None:
            built = builder.build_expression(built_from, is_key_condition=is_key)
            arguments[argument] = built.condition_expression
            names.update(built.attribute_name_placeholders)
            values.update(built.attribute_value_placeholders)
    keep = assign_if_absent or {}
    assignments = []
    for number, (name, value) in enumerate({**(assign or {}), **keep}.items()):
        target, names[f"#u{number}"], values[f":u{number}"] = f"#u{number}", name, value
        assignments.append(
            f"{target} = if_not_exists({target}, :u{number})" if name in keep else f"{target} = :u{number}"
        )
    removed = {f"#r{number}": name for number, name in enumerate(remove)}
    shown = {f"#p{number}": name for number, name in enumerate(projection)}
    names.update(removed | shown)
    update = ([f"SET {', '.join(assignments)}"] if assignments else []) + (
        [f"REMOVE {', '.join(removed)}"] if removed else []
    )
    if update:
        arguments["UpdateExpression"] = " ".join(update)
    if shown:
        arguments["ProjectionExpression"] = ", ".join(shown)
    if names:
        arguments["ExpressionAttributeNames"] = names
    if values:
        arguments["ExpressionAttributeValues"] = {
            placeholder: _SERIALIZER.serialize(value) for placeholder, value in values.items()
        }
    return arguments


def conditional_update(
    client: DynamoDBClient,
    table_name: str,
    item: Item,
    condition: ConditionBase,
    *,
    assign: Mapping[str, str],
    remove: Collection[str] = (),
) -> Item | None:
    """Update the serial of ``item`` if ``condition`` holds: the item as written, else ``None``."""
    try:
        written = client.update_item(
            TableName=table_name,
            Key=device_key(item[Attr.SERIAL_NUMBER]),
            ReturnValues="ALL_NEW",
            **expressions(condition, assign=assign, remove=remove),
        )
    except client.exceptions.ConditionalCheckFailedException:
        return None
    return string_attributes(written.get("Attributes", {}))


def update_member(
    table_name: str,
    key: dict[str, Any],
    condition: ConditionBase,
    *,
    assign: Mapping[str, str],
    assign_if_absent: Mapping[str, str] | None = None,
    remove: Collection[str] = (),
) -> TransactWriteItemTypeDef:
    """A conditional update as a transaction member that returns the stored item when refused."""
    update = {
        "TableName": table_name,
        "Key": key,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        **expressions(condition, assign=assign, assign_if_absent=assign_if_absent, remove=remove),
    }
    return cast("TransactWriteItemTypeDef", {"Update": update})


def binding_member(
    table_name: str, binding_key: str, held: Item, serial_number: str, now: str
) -> TransactWriteItemTypeDef:
    """The transaction member writing binding item ``binding_key`` (``held`` and the serial): it holds
    when the item is not bound yet or bound to this serial already."""
    unbound_or_ours = absent() | Attribute(Attr.DEVICE_SERIAL_NUMBER).eq(serial_number)
    return update_member(
        table_name,
        binding_item_key(binding_key),
        unbound_or_ours,
        assign={**held, Attr.DEVICE_SERIAL_NUMBER: serial_number},
        assign_if_absent={Attr.CREATED_AT: now},
    )


def certificate_binding_member(
    table_name: str, certificate_id: str, serial_number: str, now: str
) -> TransactWriteItemTypeDef:
    """The transaction member binding a certificate to a serial (:func:`binding_member`)."""
    held: Item = {Attr.CERTIFICATE_ID: certificate_id}
    return binding_member(table_name, certificate_binding_key(certificate_id), held, serial_number, now)
