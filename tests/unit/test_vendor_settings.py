"""A device type's vendor in stack config: pinned roots read from PEM files, the serial rule, zero-touch and
the deny list; every bad value named with its field and expected form."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from hook.rules import RulesError, parse_rules
from local.devices.vendor import Vendor
from program.config import parse_settings
from program.outputs import deployment_instructions
from program.settings import Settings, SettingsError


@pytest.fixture(scope="module")
def vendor() -> Vendor:
    return Vendor()


@pytest.fixture
def root_file(tmp_path: Path, vendor: Vendor) -> str:
    path = tmp_path / "vendor-root.pem"
    path.write_text(vendor.root.certificate_pem())
    return str(path)  # absolute: read as it is, not relative to the project


def parse(*device_types: Any, **values: Any) -> Settings:
    raw = {"aws:region": "us-east-1", "deviceTypes": json.dumps(list(device_types))}
    return parse_settings(raw | {key: json.dumps(value) for key, value in values.items()}, "dev")


def lock(root_file: str, **vendor: Any) -> dict[str, Any]:
    return {
        "name": "smart-lock",
        "serialPattern": "SL-[0-9a-f]{18}",
        "vendor": {"roots": [root_file], "serial": "SL-{uniqueId}"} | vendor,
    }


def test_a_vendor_type_exposes_its_roots_serial_rule_zero_touch_and_deny_list(
    root_file: str, vendor: Vendor
) -> None:
    settings = parse(lock(root_file, zeroTouch=True, deniedCertificates=["00:0A:1b", "ff"]))
    smart_lock = settings.device_types[0]

    assert smart_lock.vendor is not None
    assert smart_lock.vendor.roots == (vendor.root.certificate,)
    assert smart_lock.zero_touch
    assert smart_lock.vendor.denied_certificates == ("a1b", "ff")
    assert smart_lock.serial_for_unique_id("0123456789abcdef01") == "SL-0123456789abcdef01"
    rule = settings.hook_rules()["deviceTypes"]["smart-lock"]["zeroTouch"]
    assert rule == {
        "roots": [vendor.root.certificate_pem()],
        "serial": "SL-{uniqueId}",
        "deniedCertificates": ["a1b", "ff"],
    }
    assert parse_rules(settings.hook_rules()).device_types["smart-lock"].zero_touch is not None


def test_a_vendor_without_zero_touch_gives_the_hook_no_chain_rule(root_file: str) -> None:
    settings = parse(lock(root_file))
    assert not settings.device_types[0].zero_touch
    assert settings.hook_rules()["deviceTypes"]["smart-lock"]["zeroTouch"] is None


def test_a_vendor_without_zero_touch_binds_keys_from_its_signed_manifests(root_file: str) -> None:
    """Issue 23: its keys come from the vendor's signed manifests, so the hook checks them (and a stack of
    such types is CSR-only)."""
    settings = parse(lock(root_file))
    assert settings.hook_rules()["deviceTypes"]["smart-lock"]["keyBinding"] is True
    assert not settings.claim_allows_aws_keys
    assert parse(lock(root_file), "gateway").claim_allows_aws_keys
    instructions = deployment_instructions(
        settings, client_id_prefix="p-", template="t", claim_certificate_id="c", endpoint="e", table="r"
    )
    assert "fleetctl preregister MANIFEST.json --signer SIGNER.pem" in instructions
    assert "--signer" not in deployment_instructions(
        parse(lock(root_file, zeroTouch=True)),
        client_id_prefix="p-",
        template="t",
        claim_certificate_id="c",
        endpoint="e",
        table="r",
    )


def test_every_vendor_type_is_in_the_vendor_trust_output_with_its_roots_and_rule(
    root_file: str, vendor: Vendor
) -> None:
    meter = lock(root_file, zeroTouch=True) | {"name": "smart-meter"}
    settings = parse(lock(root_file), meter, "gateway")

    assert settings.vendor_trust() == {
        name: {"roots": [vendor.root.certificate_pem()], "serial": "SL-{uniqueId}"}
        for name in ("smart-lock", "smart-meter")
    }


def test_zero_touch_types_bind_keys_so_a_stack_of_them_is_csr_only(root_file: str) -> None:
    assert not parse(lock(root_file, zeroTouch=True)).claim_allows_aws_keys
    assert parse(lock(root_file, zeroTouch=True), "gateway").claim_allows_aws_keys
    with pytest.raises(SettingsError, match=r"keyBinding or vendor on each"):
        parse(lock(root_file, zeroTouch=True), deviceKeys="device-or-aws")


@pytest.mark.parametrize(
    ("unique_id", "problem"),
    [
        ("0123456789ABCDEF01", "is not 2-64 lowercase hex digits"),
        ("0123", "does not match the type's serialPattern 'SL-[0-9a-f]{18}'"),
        ("sn0123456789abcdef01", "is not 2-64 lowercase hex digits"),
    ],
)
def test_a_unique_id_that_makes_no_serial_of_the_type_is_refused(
    root_file: str, unique_id: str, problem: str
) -> None:
    smart_lock = parse(lock(root_file)).device_types[0]
    with pytest.raises(ValueError, match=re.escape(problem)):
        smart_lock.serial_for_unique_id(unique_id)


def test_a_type_without_vendor_maps_no_unique_id() -> None:
    with pytest.raises(ValueError, match="names no vendor"):
        parse("gateway").device_types[0].serial_for_unique_id("01ab")


def _expired_root(tmp_path: Path) -> str:
    old = Vendor(valid_from=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
    path = tmp_path / "old.pem"
    path.write_text(old.root.certificate_pem())
    return str(path)


@pytest.mark.parametrize(
    ("vendor_fields", "expected"),
    [
        ({"roots": ["no/such/root.pem"]}, "no/such/root.pem: cannot read it"),
        ({"roots": []}, "expected a list of 1-8 paths"),
        ({"roots": "root.pem"}, "expected a list of 1-8 paths"),
        ({"roots": ["NOT-PEM"]}, "holds no readable PEM certificate"),
        ({"roots": ["DEVICE"]}, "is not a CA certificate (basicConstraints CA:TRUE)"),
        ({"roots": ["EXPIRED"]}, "expired on"),
        ({"serial": "SL-{uniqueid}"}, "expected a serial rule holding {uniqueId} once"),
        ({"serial": "SL {uniqueId}"}, "around it only A-Z a-z 0-9 : _ -"),
        ({"serial": "{uniqueId}{uniqueId}"}, "holding {uniqueId} once"),
        ({"deniedCertificates": ["0x1f"]}, "expected a certificate serial number in hex"),
        ({"deniedCertificates": ["1" * 41]}, "expected a certificate serial number in hex"),
        ({"zeroTouch": "sometimes"}, "vendor.zeroTouch = "),
        ({"zerotouch": True}, "vendor.zerotouch"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_a_bad_vendor_field_is_named_with_its_expected_form(
    tmp_path: Path, root_file: str, vendor: Vendor, vendor_fields: dict[str, Any], expected: str
) -> None:
    files = {"NOT-PEM": tmp_path / "not.pem", "DEVICE": tmp_path / "device.pem"}
    files["NOT-PEM"].write_text("hello")
    files["DEVICE"].write_text(vendor.make_element().device_certificate_pem())
    named = {key: str(path) for key, path in files.items()} | {"EXPIRED": _expired_root(tmp_path)}
    if isinstance(vendor_fields.get("roots"), list):
        vendor_fields = {"roots": [named.get(root, root) for root in vendor_fields["roots"]]}
    with pytest.raises(SettingsError) as caught:
        parse(lock(root_file, **vendor_fields))
    message = str(caught.value)
    assert "iot-fleet-provisioning:deviceTypes.0.vendor" in message
    assert expected in message


def test_the_loaded_roots_are_certificates_not_paths(root_file: str) -> None:
    roots = parse(lock(root_file)).device_types[0].vendor.roots  # type: ignore[union-attr]
    assert all(isinstance(root, x509.Certificate) for root in roots)


@pytest.mark.parametrize(
    ("zero_touch", "message"),
    [
        ({"serial": "SL-{uniqueId}"}, "zeroTouch: missing required key(s) roots"),
        ({"roots": [], "serial": "SL-{uniqueId}"}, "zeroTouch.roots: expected a non-empty list of PEM"),
        ({"roots": ["x"], "serial": "SL-{uniqueId}"}, "zeroTouch.roots: expected a non-empty list of PEM"),
        ({"roots": ["PEM"], "serial": "SL"}, "zeroTouch.serial: expected a serial rule"),
        ({"roots": ["PEM"], "serial": 5}, "zeroTouch.serial: expected a serial rule"),
        (
            {"roots": ["PEM"], "serial": "SL-{uniqueId}", "deniedCertificates": "ab"},
            "zeroTouch.deniedCertificates: expected a list of a certificate serial",
        ),
        (
            {"roots": ["PEM"], "serial": "SL-{uniqueId}", "deniedCertificates": ["zz"]},
            "zeroTouch.deniedCertificates: expected a certificate serial",
        ),
        ({"roots": ["PEM"], "serial": "SL-{uniqueId}", "crl": []}, "zeroTouch: unknown key(s) crl"),
    ],
)
def test_a_bad_zero_touch_rule_in_the_rules_file_names_the_field(
    vendor: Vendor, zero_touch: dict[str, Any], message: str
) -> None:
    if zero_touch.get("roots") == ["PEM"]:
        zero_touch = zero_touch | {"roots": [vendor.root.certificate_pem()]}
    with pytest.raises(RulesError) as caught:
        parse_rules({"deviceTypes": {"smart-lock": {"zeroTouch": zero_touch}}})
    assert f"deviceTypes.smart-lock.{message}" in str(caught.value)
