"""The local deployer writes the root of its simulated vendor to every root file the stack config names, so
the zero-touch type pins the vendor the scenario makes devices with; reading the config alone only needs
some root there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from local.deploy import vendor_roots
from local.deploy.vendor_roots import ensure_vendor_roots, vendor_root_paths, write_vendor_roots
from local.devices.vendor import Vendor


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setattr(vendor_roots, "PROJECT_DIR", tmp_path)
    device_types = [
        "gateway",
        {"name": "meter", "vendor": {"roots": ["vendors/a.pem", "vendors/b.pem"], "serial": "M-{uniqueId}"}},
    ]
    return {"iot-fleet-provisioning:deviceTypes": json.dumps(device_types)}


def test_every_named_root_file_gets_the_vendors_root(config: dict[str, str], tmp_path: Path) -> None:
    vendor = Vendor()
    write_vendor_roots(config, vendor)

    assert vendor_root_paths(config) == [tmp_path / "vendors/a.pem", tmp_path / "vendors/b.pem"]
    for path in vendor_root_paths(config):
        assert x509.load_pem_x509_certificate(path.read_bytes()) == vendor.root.certificate
    assert sorted(path.name for path in (tmp_path / "vendors").iterdir()) == [
        "a.pem",
        "b.pem",
    ]  # no temp left


def test_ensure_keeps_roots_that_exist_and_writes_missing_ones(config: dict[str, str]) -> None:
    vendor = Vendor()
    write_vendor_roots(config, vendor)
    ensure_vendor_roots(config)
    first, second = vendor_root_paths(config)
    assert x509.load_pem_x509_certificate(first.read_bytes()) == vendor.root.certificate

    second.unlink()
    ensure_vendor_roots(config)
    assert x509.load_pem_x509_certificate(first.read_bytes()) == vendor.root.certificate
    assert x509.load_pem_x509_certificate(second.read_bytes()) != vendor.root.certificate


def test_a_config_without_vendors_names_no_root() -> None:
    assert vendor_root_paths({"iot-fleet-provisioning:deviceTypes": '["gateway"]'}) == []
    assert vendor_root_paths({}) == []
