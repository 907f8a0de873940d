"""The local stack's vendor roots: a zero-touch device type of ``Pulumi.local.yaml`` pins a root read from a
PEM file (``local/vendors/simulated-root.pem``), which no one ships. The local deployer writes the root of the
simulated vendor (``local/devices/vendor.py``) there before the program reads the config, so the devices the
same vendor makes verify; the file is made anew for each deployment (``.gitignore``d)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from local.devices.vendor import Vendor
from program.settings import PROJECT
from program.vendors import PROJECT_DIR


def vendor_root_paths(config: Mapping[str, str]) -> list[Path]:
    """The root files the device types of a stack config (as Pulumi stores it) name."""
    device_types = json.loads(config.get(f"{PROJECT}:deviceTypes", "[]"))
    return [
        PROJECT_DIR / root
        for device_type in device_types
        if isinstance(device_type, dict) and isinstance(device_type.get("vendor"), dict)
        for root in device_type["vendor"].get("roots", [])
    ]


def write_vendor_roots(config: Mapping[str, str], vendor: Vendor) -> None:
    """Write ``vendor``'s root to every root file the config names."""
    for path in vendor_root_paths(config):
        _replace(path, vendor.root.certificate_pem())


def ensure_vendor_roots(config: Mapping[str, str]) -> None:
    """Write a new simulated vendor's root to the root files the config names that do not exist yet: what
    reading the local config needs when no deployment wrote them (a fresh clone's tests)."""
    missing = [path for path in vendor_root_paths(config) if not path.exists()]
    if missing:
        root = Vendor().root.certificate_pem()
        for path in missing:
            _replace(path, root)


def _replace(path: Path, text: str) -> None:
    """Write ``path`` at once, never half (a concurrent reader sees the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
        file.write(text)
    os.replace(file.name, path)
