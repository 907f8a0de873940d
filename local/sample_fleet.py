"""The local flow's sample fleet (``local/sample_fleet.json``): the devices to provision and the outcome each
should get. Not a factory manifest (``fleetctl/manifest.py``): it also holds devices the hook must deny."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from local.device import Identity

SAMPLE_FLEET: Final = Path(__file__).with_name("sample_fleet.json")
APPROVED: Final = "APPROVED"


@dataclass(frozen=True)
class FleetDevice:
    """One device of a fleet file: what it claims, and ``APPROVED`` or the rejection reason expected."""

    identity: Identity
    expect: str


def load_fleet(path: Path = SAMPLE_FLEET) -> list[FleetDevice]:
    """The devices of a fleet file, in order."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return [
        FleetDevice(
            identity=Identity(
                serial_number=device["serialNumber"],
                device_type=device["deviceType"],
                manufacturer=device["manufacturer"],
                firmware_version=device["firmwareVersion"],
                location=device["location"],
            ),
            expect=device["expect"],
        )
        for device in document["devices"]
    ]
