"""Factory manifests for the local fleet: the devices to provision and the outcome each should get."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from local.device import Identity

SAMPLE_MANIFEST: Final = Path(__file__).with_name("sample_fleet.json")
APPROVED: Final = "APPROVED"


@dataclass(frozen=True)
class ManifestDevice:
    """One device of a manifest: what it claims, and ``APPROVED`` or the rejection reason expected."""

    identity: Identity
    expect: str


def load_manifest(path: Path = SAMPLE_MANIFEST) -> list[ManifestDevice]:
    """The devices of a manifest file, in order."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return [
        ManifestDevice(
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
