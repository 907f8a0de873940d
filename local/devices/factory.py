"""The simulated factory's side of pre-registration: the factory manifest that ``fleetctl preregister``
imports, one row per device, with the public key its secure element exported
(``local/devices/secure_element.py``)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Final

from local.devices.firmware import Identity
from local.devices.secure_element import SecureElement

HEADER: Final = ("serial", "device_type", "manufacturer", "firmware", "location", "public_key")
"""The manifest's columns (README, "Operating the fleet"); ``public_key`` is empty for a device without a
secure element."""


class KeyForm(StrEnum):
    """How the manifest spells a public key: both are forms ``fleetctl preregister`` accepts."""

    PEM = "pem"
    """``-----BEGIN PUBLIC KEY-----`` ..., a quoted cell over several lines."""
    DER_BASE64 = "der-base64"
    """The DER SubjectPublicKeyInfo in base64, on one line."""


def public_key_cell(element: SecureElement | None, form: KeyForm) -> str:
    """The ``public_key`` cell of a device: its element's public key in ``form``, empty without one."""
    if element is None:
        return ""
    return element.public_key_pem() if form is KeyForm.PEM else element.public_key_der_base64()


def write_manifest(
    path: Path,
    devices: Iterable[tuple[Identity, SecureElement | None]],
    form: KeyForm = KeyForm.DER_BASE64,
) -> int:
    """Write the manifest of ``devices`` (each one's identity and secure element) to ``path``; the number of
    rows."""
    rows = [
        [
            identity.serial_number,
            identity.device_type,
            identity.manufacturer,
            identity.firmware_version,
            identity.location,
            public_key_cell(element, form),
        ]
        for identity, element in devices
    ]
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return len(rows)
