"""One device as the stack knows it: registry item, thing, certificates, policies and groups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from fleetctl.errors import NotFound
from fleetctl.iot_reads import (
    attached_policies,
    certificate_id,
    certificate_summary,
    describe_certificate,
    describe_thing,
    thing_certificate_arns,
    thing_groups,
)
from hook.contract import SERIAL_NUMBER_MAX_LENGTH, Attr
from hook.rules import is_valid_name

if TYPE_CHECKING:
    from fleetctl.context import StackContext
    from hook.registry_items import Item

SERIAL_NUMBER_FORM: Final = f"1-{SERIAL_NUMBER_MAX_LENGTH} characters of A-Z a-z 0-9 : _ -"


def is_serial_number(value: str) -> bool:
    """Whether ``value`` can be a serial number (:data:`SERIAL_NUMBER_FORM`)."""
    return is_valid_name(value) and len(value) <= SERIAL_NUMBER_MAX_LENGTH


@dataclass(frozen=True)
class Device:
    """Where a serial lives: its registry item and its thing, either of which may be gone."""

    serial: str
    record: Item | None
    thing_name: str
    thing_certificate_arns: list[str] | None
    """The certificates attached to the thing; ``None`` when there is no thing."""

    @property
    def has_thing(self) -> bool:
        """Whether the thing exists."""
        return self.thing_certificate_arns is not None

    @property
    def certificate_ids(self) -> list[str]:
        """The certificates attached to the thing, then the registry's current and pending (a rotation in
        progress) certificates that are not among them."""
        ids = [certificate_id(arn) for arn in self.thing_certificate_arns or []]
        record = self.record or {}
        recorded = [record.get(Attr.CERTIFICATE_ID), record.get(Attr.PENDING_CERTIFICATE_ID)]
        return ids + [each for each in recorded if each and each not in ids]


NEVER_APPROVED_ATTRIBUTES: Final = (Attr.CERTIFICATE_ID, Attr.PENDING_CERTIFICATE_ID, Attr.THING_NAME)
"""A registry item with none of these was never approved: no certificate and no thing of it exist."""


def device_of(stack: StackContext, serial: str, record: Item | None) -> Device:
    """The device of ``serial`` whose registry item is ``record`` (``None``: none), its thing read with
    ``ListThingPrincipals`` (``ResourceNotFoundException``: no thing). An item that was never approved
    (none of :data:`NEVER_APPROVED_ATTRIBUTES`: pre-registered, or released) has neither certificate nor
    thing, and AWS IoT is not asked."""
    name = (record or {}).get(Attr.THING_NAME) or stack.thing_name(serial)
    if record is not None and not any(record.get(each) for each in NEVER_APPROVED_ATTRIBUTES):
        return Device(serial, record, name, None)
    try:
        arns: list[str] | None = thing_certificate_arns(stack.iot, name)
    except stack.iot.exceptions.ResourceNotFoundException:
        arns = None
    return Device(serial, record, name, arns)


def find_device(stack: StackContext, serial: str) -> Device:
    """The device of ``serial``; :class:`NotFound` when neither the registry nor AWS IoT knows it."""
    device = device_of(stack, serial, stack.records.get(serial))
    if device.record is None and not device.has_thing:
        raise NotFound(
            f"serial {serial!r}: no item in registry {stack.table} and no thing {device.thing_name!r}"
        )
    return device


def describe_device(stack: StackContext, serial: str) -> dict[str, Any]:
    """Everything known about ``serial``, as JSON-ready data."""
    device = find_device(stack, serial)
    now = datetime.now(UTC)
    certificates = []
    for each in device.certificate_ids:
        description = describe_certificate(stack.iot, each)
        if description is not None:
            arn = description["certificateArn"]
            certificates.append(
                {
                    **certificate_summary(description, now),
                    "attachedToThing": arn in (device.thing_certificate_arns or []),
                    "policies": attached_policies(stack.iot, arn),
                }
            )
    described = describe_thing(stack.iot, device.thing_name)
    thing = None
    if described is not None:
        thing = {
            "name": device.thing_name,
            "thingType": described.get("thingTypeName"),
            "attributes": described.get("attributes", {}),
            "groups": thing_groups(stack.iot, device.thing_name),
        }
    return {"serial": serial, "registry": device.record, "thing": thing, "certificates": certificates}
