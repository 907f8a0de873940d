"""``fleetctl preregister --signer`` on moto: a verified signed manifest is stored as the CSV path stores a
row with its key, plus its provenance, which ``fleetctl show`` prints; a refused entry writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from fleetctl.errors import ExitCode
from fleetctl.manifest import HEADER
from hook.contract import Attr, DeviceStatus, public_key_binding_key
from hook.public_keys import key_sha256
from local.devices.firmware import Identity
from local.devices.vendor import Vendor, VendorElement
from local.devices.vendor_manifest import element_record, signed_entry, signed_manifest, write_signed_manifest
from local.scenario.signed_manifests import preregister_arguments
from program.outputs import StackOutput
from tests.support import RULES, TABLE_NAME, Fleet

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")

DEVICE_TYPE = "smart-valve"
BATCH = Identity("", DEVICE_TYPE, "AcmeIoT", "1.0.0", "plant-a")


@pytest.fixture
def vendor(fleet: Fleet) -> Vendor:
    """A vendor trusted for ``smart-valve`` in the stack outputs (``vendorTrust``), the type binding keys."""
    made = Vendor()
    outputs = json.loads(fleet.outputs.read_text(encoding="utf-8"))
    rules = {
        **RULES,
        "deviceTypes": {
            **RULES["deviceTypes"],
            DEVICE_TYPE: {"serialPattern": "SV-[0-9a-f]{18}", "keyBinding": True},
        },
    }
    root = made.root.certificate.public_bytes(serialization.Encoding.PEM).decode()
    outputs |= {
        StackOutput.HOOK_RULES: rules,
        StackOutput.VENDOR_TRUST: {DEVICE_TYPE: {"roots": [root], "serial": "SV-{uniqueId}"}},
    }
    fleet.outputs.write_text(json.dumps(outputs), encoding="utf-8")
    (fleet.tmp_path / "signer.pem").write_text(made.manifest_signer.certificate_pem(), encoding="utf-8")
    return made


def _manifest(fleet: Fleet, entries: list[dict[str, object]]) -> Path:
    path = fleet.tmp_path / "manifest.json"
    write_signed_manifest(path, entries)
    return path


def _import(fleet: Fleet, manifest: Path, *extra: str) -> list[str]:
    return [*preregister_arguments(manifest, fleet.tmp_path / "signer.pem", BATCH), *extra]


def _key(made: VendorElement) -> str:
    return key_sha256(made.device_certificate.public_key())


def test_a_signed_manifest_preregisters_each_element_with_its_key_binding_and_provenance(
    fleet: Fleet, vendor: Vendor
) -> None:
    elements = [vendor.make_element(), vendor.make_element()]
    manifest = _manifest(fleet, signed_manifest(vendor, elements))

    report = fleet.run_json(*_import(fleet, manifest))

    assert report == {"created": 2, "unchanged": 0, "conflicts": [], "skipped": []}
    serial = f"SV-{elements[0].unique_id}"
    item = fleet.item(serial)
    assert item[Attr.STATUS] == DeviceStatus.PREREGISTERED
    assert item[Attr.PUBLIC_KEY_SHA256] == _key(elements[0])
    assert item[Attr.UNIQUE_ID] == elements[0].unique_id
    assert item[Attr.PART_NUMBER] == "ATECC608B-TNGTLS"
    assert len(item[Attr.MANIFEST_DIGEST]) == len(item[Attr.ATTESTED_BY]) == 64
    binding = fleet.dynamodb.get_item(
        TableName=TABLE_NAME, Key={Attr.SERIAL_NUMBER: {"S": public_key_binding_key(_key(elements[0]))}}
    )["Item"]
    assert binding[Attr.DEVICE_SERIAL_NUMBER] == {"S": serial}
    assert fleet.run_json(*_import(fleet, manifest)) == {
        "created": 0,
        "unchanged": 2,
        "conflicts": [],
        "skipped": [],
    }


def test_show_prints_where_a_key_came_from(fleet: Fleet, vendor: Vendor) -> None:
    made = vendor.make_element()
    fleet.run_json(*_import(fleet, _manifest(fleet, signed_manifest(vendor, [made]))))

    shown = fleet.run_json("show", f"SV-{made.unique_id}")["registry"]

    assert shown[Attr.UNIQUE_ID] == made.unique_id
    assert {Attr.ATTESTED_BY, Attr.MANIFEST_DIGEST, Attr.PART_NUMBER} <= shown.keys()


def test_one_refused_entry_writes_nothing_and_names_the_entry_and_reason(
    fleet: Fleet, vendor: Vendor
) -> None:
    genuine, other = vendor.make_element(), vendor.make_element()
    tampered = signed_entry(vendor.manifest_signer, element_record(other))
    tampered["payload"] = signed_entry(vendor.manifest_signer, element_record(genuine))["payload"]
    manifest = _manifest(fleet, [*signed_manifest(vendor, [vendor.make_element()]), tampered])

    result = fleet.run(*_import(fleet, manifest))

    assert result.exit_code == ExitCode.USAGE
    assert "entry 2: bad-signature:" in result.stderr
    assert "nothing was written" in result.stderr
    assert fleet.item_count() == 0


def test_skip_invalid_does_not_apply_to_a_signed_manifest(fleet: Fleet, vendor: Vendor) -> None:
    manifest = _manifest(fleet, signed_manifest(vendor, [vendor.make_element()]))

    result = fleet.run(*_import(fleet, manifest, "--skip-invalid"))

    assert result.exit_code == ExitCode.USAGE
    assert "--skip-invalid" in result.stderr
    assert fleet.item_count() == 0


def test_a_type_no_vendor_is_trusted_for_is_refused(fleet: Fleet, vendor: Vendor) -> None:
    manifest = _manifest(fleet, signed_manifest(vendor, [vendor.make_element()]))
    args = _import(fleet, manifest)
    args[args.index(DEVICE_TYPE)] = "gateway"

    result = fleet.run(*args)

    assert result.exit_code == ExitCode.USAGE
    assert "--device-type gateway: no vendor is trusted for it" in result.stderr
    assert fleet.item_count() == 0


def test_a_signed_manifest_needs_the_requests_values(fleet: Fleet, vendor: Vendor) -> None:
    manifest = _manifest(fleet, signed_manifest(vendor, [vendor.make_element()]))

    result = fleet.run("preregister", str(manifest), "--signer", str(fleet.tmp_path / "signer.pem"))

    assert result.exit_code == ExitCode.USAGE
    assert "needs --device-type, --manufacturer, --firmware, --location" in result.stderr


def test_a_csv_row_of_a_type_that_takes_signed_manifests_is_refused(fleet: Fleet, vendor: Vendor) -> None:
    """A forged CSV row cannot bind a key of its own to a serial of such a type through fleetctl."""
    made = vendor.make_element()
    manifest = fleet.manifest(
        f'SV-{made.unique_id},{DEVICE_TYPE},AcmeIoT,1.0.0,plant-a,"{made.element.public_key_pem()}"',
        header=f"{HEADER},public_key",
    )

    result = fleet.run("preregister", str(manifest))

    assert result.exit_code == ExitCode.USAGE
    assert (
        "row 2, column device_type: device type 'smart-valve' takes its keys from its vendor's"
        in result.stderr
    )
    assert fleet.item_count() == 0
