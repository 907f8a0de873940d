"""One device as the stack knows it: registry item, thing, certificates, policies and groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from fleetctl.certificates import certificate_summary
from fleetctl.errors import NotFound
from fleetctl.iot import (
    attached_policies,
    certificate_id,
    describe_certificate,
    describe_thing,
    thing_certificate_arns,
    thing_groups,
)
from hook.contract import SERIAL_NUMBER_MAX_LENGTH, Attr
from hook.rules import is_valid_name

if TYPE_CHECKING:
    from fleetctl.context import StackContext
    from hook.registry import Item

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
    thing: Mapping[str, Any] | None
    thing_certificate_arns: list[str]

    @property
    def certificate_ids(self) -> list[str]:
        """The certificates attached to the thing, then the registry's current and pending (a rotation in
        progress) certificates that are not among them."""
        ids = [certificate_id(arn) for arn in self.thing_certificate_arns]
        record = self.record or {}
        recorded = [record.get(Attr.CERTIFICATE_ID), record.get(Attr.PENDING_CERTIFICATE_ID)]
        return ids + [each for each in recorded if each and each not in ids]


def find_device(stack: StackContext, serial: str) -> Device:
    """The device of ``serial``; :class:`NotFound` when neither the registry nor AWS IoT knows it."""
    record = stack.records.get(serial)
    name = (record or {}).get(Attr.THING_NAME) or stack.thing_name(serial)
    thing = describe_thing(stack.iot, name)
    if record is None and thing is None:
        raise NotFound(f"serial {serial!r}: no item in registry {stack.table} and no thing {name!r}")
    arns = [] if thing is None else thing_certificate_arns(stack.iot, name)
    return Device(serial, record, name, thing, arns)


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
                    "attachedToThing": arn in device.thing_certificate_arns,
                    "policies": attached_policies(stack.iot, arn),
                }
            )
    thing = None
    if device.thing is not None:
        thing = {
            "name": device.thing_name,
            "thingType": device.thing.get("thingTypeName"),
            "attributes": device.thing.get("attributes", {}),
            "groups": thing_groups(stack.iot, device.thing_name),
        }
    return {"serial": serial, "registry": device.record, "thing": thing, "certificates": certificates}
