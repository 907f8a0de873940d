"""Devices of the scenario pre-registered from their chip vendor's signed manifest: made by the simulated
vendor whose root the deployment pinned (``local/deploy/vendor_roots.py``), so they cannot live in the sample
fleet file. ``fleetctl preregister --signer`` verifies the manifest and binds each element's key to the serial
the type's rule makes of its unique id; the element then provisions with that key."""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from local.devices.firmware import Identity
from local.devices.sample_fleet import APPROVED, FleetDevice
from local.devices.vendor_manifest import element_record, signed_entry
from local.scenario.deployment import Deployment
from local.scenario.expectations import expect, present


def signed_manifest_devices(deployment: Deployment) -> list[FleetDevice]:
    """For the stack's first type that trusts a vendor for signed manifests (a ``vendor`` without
    ``zeroTouch``: ``smart-valve`` in the local stack), none if it has none: a genuine element of the
    deployment's vendor, in the vendor's signed manifest."""
    types = [
        each for each in deployment.settings.device_types if each.vendor is not None and not each.zero_touch
    ]
    if not types:
        return []
    vendor = present(deployment.vendor, "the vendor whose root the signed-manifest type pins")
    made = vendor.make_element()
    serial = types[0].serial_for_unique_id(made.unique_id)
    identity = Identity(serial, types[0].name, "AcmeIoT", "1.0.0", "plant-e/valve-1")
    entry = signed_entry(vendor.manifest_signer, element_record(made))
    return [FleetDevice(identity, APPROVED, made.element, manifest_entry=entry)]


def preregister_signed_manifests(
    deployment: Deployment, devices: Iterable[FleetDevice]
) -> list[dict[str, Any]]:
    """Import the signed manifest of the devices that have an entry in one, with ``fleetctl preregister
    --signer``: one import per type, manufacturer, firmware and location (what the options give every
    entry). fleetctl's reports; fails unless every entry was created or was there already, unchanged."""
    listed = [device for device in devices if device.manifest_entry is not None]
    if not listed:
        return []
    vendor = present(deployment.vendor, "the vendor whose manifest signer signed the entries")

    def options(device: FleetDevice) -> tuple[str, str, str, str]:
        each = device.identity
        return each.device_type, each.manufacturer, each.firmware_version, each.location

    reports = []
    with tempfile.TemporaryDirectory() as directory:
        signer = Path(directory) / "manifest-signer.pem"
        signer.write_text(vendor.manifest_signer.certificate_pem(), encoding="utf-8")
        for number, (_, group) in enumerate(itertools.groupby(sorted(listed, key=options), key=options)):
            batch = list(group)
            manifest = Path(directory) / f"signed-manifest-{number}.json"
            manifest.write_text(json.dumps([device.manifest_entry for device in batch]), encoding="utf-8")
            report: dict[str, Any] = deployment.fleetctl(
                *preregister_arguments(manifest, signer, batch[0].identity)
            )
            expect(not report["conflicts"], f"fleetctl preregister --signer left entries out: {report}")
            reports.append(report)
    return reports


def preregister_arguments(manifest: Path, signer: Path, identity: Identity) -> list[str]:
    """``fleetctl preregister`` of a signed manifest whose entries are devices like ``identity``."""
    return [
        "preregister",
        str(manifest),
        "--signer",
        str(signer),
        *("--device-type", identity.device_type, "--manufacturer", identity.manufacturer),
        *("--firmware", identity.firmware_version, "--location", identity.location),
    ]
