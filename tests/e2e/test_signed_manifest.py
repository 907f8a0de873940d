"""Signed manifests on the emulator: the local stack's ``smart-valve`` type trusts the simulated vendor whose
root the deployment pinned (``local/deploy/vendor_roots.py``) for signed manifests.

- an element pre-registered with ``fleetctl preregister --signer`` from the vendor's signed manifest
  provisions with its element's key, and its registry item keeps the manifest's provenance;
- the claim certificate with another key for that serial is denied ``PublicKeyMismatch``;
- a manifest with a refused entry writes nothing, and its devices are denied and leave nothing behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from hook.contract import Attr, DeviceStatus, RejectionReason, certificate_binding_key, thing_name
from local.devices.firmware import Identity
from local.devices.secure_element import SecureElement
from local.devices.vendor import Vendor, VendorElement
from local.devices.vendor_manifest import element_record, signed_entry, signed_manifest, write_signed_manifest
from local.scenario.fleetctl_runner import FleetctlFailed
from local.scenario.sandbox import Sandbox
from local.scenario.signed_manifests import preregister_arguments
from tests.e2e.conftest import Fleetctl
from tests.e2e.test_key_binding import _denied, _items_naming, _provisioned_and_active, _raw_item

pytestmark = pytest.mark.e2e

DEVICE_TYPE = "smart-valve"


def _vendor(box: Sandbox) -> Vendor:
    vendor = box.stack.vendor
    assert vendor is not None
    return vendor


BATCH = Identity("", DEVICE_TYPE, "AcmeIoT", "1.0.0", "line-v")
"""What the import's options give every entry (the serial is each entry's)."""


def _identity(made: VendorElement) -> Identity:
    return dataclasses.replace(BATCH, serial_number=f"SV-{made.unique_id}")


def _import(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path, entries: list[dict[str, object]]
) -> dict[str, object]:
    manifest, signer = tmp_path / "signed-manifest.json", tmp_path / "manifest-signer.pem"
    write_signed_manifest(manifest, entries)
    signer.write_text(_vendor(box).manifest_signer.certificate_pem(), encoding="utf-8")
    return fleetctl(*preregister_arguments(manifest, signer, BATCH))


def test_an_element_from_a_signed_manifest_provisions_with_its_key_and_keeps_its_provenance(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path
) -> None:
    vendor = _vendor(box)
    made = vendor.make_element()
    report = _import(box, fleetctl, tmp_path, signed_manifest(vendor, [made]))
    assert report == {"created": 1, "unchanged": 0, "conflicts": [], "skipped": []}
    identity = _identity(made)

    device = _provisioned_and_active(box, identity, made.element)

    assert made.element.carries_key(device.credentials.certificate_pem)
    item = box.inspector.registry(box.registry_table)[identity.serial_number]
    signer = vendor.manifest_signer.certificate.public_bytes(serialization.Encoding.DER)
    manifest_digest = hashlib.sha256((tmp_path / "signed-manifest.json").read_bytes()).hexdigest()
    assert (item[Attr.STATUS], item[Attr.CERTIFICATE_ID]) == (DeviceStatus.ACTIVE, device.certificate_id)
    assert item[Attr.PUBLIC_KEY_SHA256] == made.element.public_key_sha256()
    assert item[Attr.ATTESTED_BY] == hashlib.sha256(signer).hexdigest()
    assert (item[Attr.MANIFEST_DIGEST], item[Attr.UNIQUE_ID]) == (manifest_digest, made.unique_id)


def test_another_key_for_a_serial_of_the_manifest_is_denied(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path
) -> None:
    vendor = _vendor(box)
    made = vendor.make_element()
    _import(box, fleetctl, tmp_path, signed_manifest(vendor, [made]))
    identity = _identity(made)
    before = _raw_item(box, identity.serial_number)

    reason, certificate_id = _denied(box, identity, SecureElement())

    assert reason == RejectionReason.PUBLIC_KEY_MISMATCH
    assert _raw_item(box, identity.serial_number) == before
    assert _items_naming(box, certificate_id) == []


def test_a_manifest_with_a_refused_entry_writes_nothing_and_its_devices_are_denied(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path
) -> None:
    vendor = _vendor(box)
    genuine, changed = vendor.make_element(), vendor.make_element()
    tampered = signed_entry(vendor.manifest_signer, element_record(changed))
    tampered["payload"] = signed_entry(vendor.manifest_signer, element_record(vendor.make_element()))[
        "payload"
    ]

    with pytest.raises(FleetctlFailed, match="entry 2: bad-signature"):
        _import(box, fleetctl, tmp_path, [*signed_manifest(vendor, [genuine]), tampered])

    for made in (genuine, changed):
        identity = _identity(made)
        assert _raw_item(box, identity.serial_number) is None
        reason, certificate_id = _denied(box, identity, made.element)
        assert reason == RejectionReason.NOT_PREREGISTERED
        assert _raw_item(box, identity.serial_number) is None
        assert _raw_item(box, certificate_binding_key(certificate_id)) is None
        assert box.inspector.thing(thing_name(box.settings.base_name, identity.serial_number)) is None
