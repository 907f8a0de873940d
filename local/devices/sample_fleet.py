"""The local flow's sample fleet (``local/devices/sample_fleet.json``): the devices to provision and the
outcome each
should get. Not a factory manifest (``fleetctl/manifest.py``): it also holds devices the hook must deny."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from local.devices.firmware import Identity
from local.devices.key_pairs import AwsKeys, DeviceKeys, KeyAlgorithm, KeySource
from local.devices.secure_element import SecureElement

SAMPLE_FLEET: Final = Path(__file__).with_name("sample_fleet.json")
APPROVED: Final = "APPROVED"
KEYS: Final[dict[str, Callable[[], KeySource]]] = {
    "device": lambda: DeviceKeys(KeyAlgorithm.EC_P256),
    "device-rsa": lambda: DeviceKeys(KeyAlgorithm.RSA_2048),
    "aws": AwsKeys,
    "secure-element": lambda: SecureElement(KeyAlgorithm.EC_P256),
    "secure-element-rsa": lambda: SecureElement(KeyAlgorithm.RSA_2048),
}
"""A fleet entry's ``keys``: the device makes an EC P-256 or RSA 2048 key and sends a CSR, its own secure
element (made for the entry, as at the factory) holds such a key and signs the CSR, or AWS IoT makes the key
pair."""
DEFAULT_KEYS: Final = "aws"


class FleetFileError(ValueError):
    """A fleet file entry is malformed."""


@dataclass(frozen=True)
class FleetDevice:
    """One device of a fleet file: what it claims, and ``APPROVED`` or the rejection reason expected."""

    identity: Identity
    expect: str
    keys: KeySource = field(default_factory=AwsKeys)
    """Who makes the device's key pair, and so how it gets its certificate."""
    preregister: bool = False
    """In the factory manifest that ``fleetctl preregister`` imports before the fleet provisions, with its
    secure element's public key when it has one."""
    vendor_chain: str | None = None
    """A zero-touch device's factory certificate chain, sent when it provisions
    (``local/scenario/zero_touch.py`` makes such devices; a fleet file holds none: the chain depends on the
    vendor of the deployment)."""
    manifest_entry: dict[str, Any] | None = None
    """A device pre-registered from its vendor's signed manifest: its entry there, imported with ``fleetctl
    preregister --signer`` (``local/scenario/signed_manifests.py``)."""

    @property
    def element(self) -> SecureElement | None:
        """The device's secure element, if it has one."""
        return self.keys if isinstance(self.keys, SecureElement) else None


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
            keys=_keys(device.get("keys", DEFAULT_KEYS), device["serialNumber"]),
            preregister=_flag(device, "preregister"),
        )
        for device in document["devices"]
    ]


def preregistered(devices: Iterable[FleetDevice]) -> list[FleetDevice]:
    """The devices of the factory manifest, in order."""
    return [device for device in devices if device.preregister]


def _keys(name: str, serial_number: str) -> KeySource:
    if name not in KEYS:
        raise FleetFileError(f"{serial_number}: keys {name!r}: expected one of {', '.join(KEYS)}")
    return KEYS[name]()


def _flag(device: dict[str, object], name: str) -> bool:
    value = device.get(name, False)
    if not isinstance(value, bool):
        raise FleetFileError(f"{device['serialNumber']}: {name} {value!r}: expected true or false")
    return value
