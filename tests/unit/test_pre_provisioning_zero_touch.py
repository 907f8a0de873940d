"""The hook with a zero-touch type: a genuine element provisions with no pre-registration, in one request that
records its attestation; every refusal is counted as a key-binding rejection and writes nothing; a serial
provisions once; other types load nothing of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetctl.operator_transitions import OperatorRecords
from hook.contract import VENDOR_CHAIN_PARAMETER, Attr
from hook.rules import parse_rules, validate_request
from local.devices.vendor import Vendor, VendorElement
from tests.support import (
    RULES,
    TABLE_NAME,
    decision_logs,
    device_certificate,
    device_key,
    element_certificate,
    hook_event,
    output_lines,
    rules_entry,
    valid_parameters,
)
from tests.unit.test_pre_provisioning import DENIED, emf_metrics
from tests.unit.test_pre_provisioning_key_binding import KEY_BINDING_REJECTED, run_imports_probe

Invoke = Callable[[Any], dict[str, Any]]
VENDOR = Vendor()
ZERO_TOUCH_RULES: dict[str, Any] = RULES | {
    "deviceTypes": RULES["deviceTypes"]
    | {
        "smart-lock": rules_entry(
            serialPattern="SL-[0-9a-f]{18}",
            zeroTouch={"roots": [VENDOR.root.certificate_pem()], "serial": "SL-{uniqueId}"},
        )
    },
    "requirePreregistration": True,  # zero-touch types need none whatever the stack says
}


@pytest.fixture
def zero_touch(configure_hook: Callable[[dict[str, Any]], None]) -> None:
    configure_hook(ZERO_TOUCH_RULES)


def event(made: VendorElement, certificate_pem: str | None = None, **parameters: Any) -> dict[str, Any]:
    pem = certificate_pem or element_certificate(made.element)
    values = {
        "SerialNumber": f"SL-{made.unique_id}",
        "DeviceType": "smart-lock",
        VENDOR_CHAIN_PARAMETER: made.chain_parameter(),
    }
    result = hook_event(valid_parameters(**(values | parameters)), certificate=pem[-60:])
    result["certificatePem"] = pem
    return result


def everything(dynamodb: Any) -> list[dict[str, Any]]:
    return sorted(dynamodb.scan(TableName=TABLE_NAME, ConsistentRead=True)["Items"], key=json.dumps)


@pytest.mark.usefixtures("zero_touch")
def test_a_genuine_element_provisions_without_pre_registration_and_records_its_attestation(
    invoke: Invoke, dynamodb: Any
) -> None:
    made = VENDOR.make_element()
    answer = invoke(event(made))

    assert answer["allowProvisioning"] is True
    assert VENDOR_CHAIN_PARAMETER not in answer["parameterOverrides"]
    item = dynamodb.get_item(TableName=TABLE_NAME, Key={"serialNumber": {"S": f"SL-{made.unique_id}"}})[
        "Item"
    ]
    assert item[Attr.STATUS] == {"S": "PENDING"}
    assert item[Attr.UNIQUE_ID] == {"S": made.unique_id}
    assert len(item[Attr.ATTESTED_BY]["S"]) == 64
    assert item[Attr.PUBLIC_KEY_SHA256] == {"S": made.element.public_key_sha256()}  # rotations keep to it


@pytest.mark.usefixtures("zero_touch")
def test_a_serial_provisions_once_a_retry_with_its_certificate_passes_another_certificate_does_not(
    invoke: Invoke, dynamodb: Any
) -> None:
    made = VENDOR.make_element()
    first = event(made)
    assert invoke(first)["allowProvisioning"] is True
    assert invoke(first)["allowProvisioning"] is True  # the device's own retry
    before = everything(dynamodb)

    again = event(made)  # the same genuine element, a new certificate: a clone of its chain and key
    assert invoke(again) == DENIED
    assert everything(dynamodb) == before


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("self-made", "VendorChainUntrusted"),
        ("another key", "VendorKeyMismatch"),
        ("another serial", "VendorSerialMismatch"),
        ("no chain", "VendorChainUnreadable"),
        ("oversized", "VendorChainUnreadable"),
    ],
)
@pytest.mark.usefixtures("zero_touch")
def test_a_refused_chain_is_denied_counted_as_key_binding_and_leaves_nothing(
    invoke: Invoke, dynamodb: Any, hook_output: pytest.CaptureFixture[str], case: str, reason: str
) -> None:
    made = VENDOR.make_element()
    attempts = {
        "self-made": lambda: event(
            made, **{VENDOR_CHAIN_PARAMETER: Vendor().make_element().chain_parameter()}
        ),
        "another key": lambda: event(made, device_certificate(device_key())),
        "another serial": lambda: event(made, SerialNumber="SL-" + "0" * 18),
        "no chain": lambda: event(made, **{VENDOR_CHAIN_PARAMETER: None}),
        "oversized": lambda: event(made, **{VENDOR_CHAIN_PARAMETER: "A" * 5000}),
    }
    attempt = attempts[case]()
    if attempt["parameters"][VENDOR_CHAIN_PARAMETER] is None:
        del attempt["parameters"][VENDOR_CHAIN_PARAMETER]
    hook_output.readouterr()

    assert invoke(attempt) == DENIED

    lines = output_lines(hook_output)
    [log] = decision_logs(lines)
    assert log["reason"] == reason
    assert KEY_BINDING_REJECTED in emf_metrics(lines)
    assert ("ProvisioningRejected", {"Reason": reason, "service": "provisioning-hook"}) in emf_metrics(lines)
    assert everything(dynamodb) == []


@pytest.mark.usefixtures("zero_touch")
def test_a_plain_type_ignores_nothing_it_needs_and_still_requires_pre_registration(invoke: Invoke) -> None:
    # requirePreregistration holds for the other types: the vendor chain grants them nothing.
    made = VENDOR.make_element()
    plain = hook_event(valid_parameters(**{VENDOR_CHAIN_PARAMETER: made.chain_parameter()}))
    assert invoke(plain) == DENIED


def test_other_types_load_nothing_of_zero_touch(tmp_path: Path) -> None:
    made = VENDOR.make_element()
    events = {
        "without binding": hook_event(valid_parameters(SerialNumber="HS-1", DeviceType="humidity-sensor")),
        "with binding": event(made),
    }
    result = run_imports_probe(tmp_path, ZERO_TOUCH_RULES | {"requirePreregistration": False}, events)
    assert result["answers"] == [True, True]
    assert result["loaded"] == {"after import": False, "without binding": False, "with binding": True}


@pytest.mark.parametrize(("registered", "approved"), [("element", True), ("other", False)])
@pytest.mark.usefixtures("zero_touch")
def test_a_pre_registered_zero_touch_serial_is_admitted_with_the_attested_key_only(
    invoke: Invoke, dynamodb: Any, registered: str, approved: bool
) -> None:
    made = VENDOR.make_element()
    key = made.element.public_key_sha256() if registered == "element" else "b" * 64
    parameters = valid_parameters(SerialNumber=f"SL-{made.unique_id}", DeviceType="smart-lock")
    request = validate_request(parameters, parse_rules(ZERO_TOUCH_RULES))
    assert (
        OperatorRecords(dynamodb, TABLE_NAME).preregister(request, "2026-01-01T00:00:00.000+00:00", key)
        is None
    )

    assert invoke(event(made))["allowProvisioning"] is approved


@pytest.mark.parametrize("provisioned_first", [True, False], ids=["after provisioning", "before"])
@pytest.mark.parametrize(
    ("ended", "reason"), [("revoke", "DeviceRevoked"), ("decommission", "DeviceDecommissioned")]
)
@pytest.mark.usefixtures("zero_touch")
def test_a_revoked_or_decommissioned_zero_touch_serial_stays_refused_to_its_genuine_element(
    invoke: Invoke,
    dynamodb: Any,
    hook_output: pytest.CaptureFixture[str],
    provisioned_first: bool,
    ended: str,
    reason: str,
) -> None:
    # A zero-touch serial needs no item to provision: an operator's revocation (even of a serial not seen
    # yet) must still hold against the genuine element's chain and a fresh certificate of its key.
    made = VENDOR.make_element()
    if provisioned_first:
        assert invoke(event(made))["allowProvisioning"] is True
    operator = OperatorRecords(dynamodb, TABLE_NAME)
    if ended == "revoke":
        assert operator.revoke(f"SL-{made.unique_id}", "compromised") is not None
    else:
        assert operator.decommission(f"SL-{made.unique_id}") is not None
    before = everything(dynamodb)
    hook_output.readouterr()

    assert invoke(event(made)) == DENIED

    [log] = decision_logs(output_lines(hook_output))
    assert log["reason"] == reason
    assert everything(dynamodb) == before


@pytest.mark.parametrize(
    "root",
    [
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",  # passes the rules file's shape check
        "-----BEGIN CERTIFICATE-----\n" + "\u00e9" * 8 + "\n-----END CERTIFICATE-----\n",
    ],
    ids=["not a certificate", "not base64"],
)
def test_a_pinned_root_the_hook_cannot_read_denies_every_zero_touch_request(
    configure_hook: Callable[[dict[str, Any]], None],
    invoke: Invoke,
    dynamodb: Any,
    hook_output: pytest.CaptureFixture[str],
    root: str,
) -> None:
    # The chain path fails closed: an error reading the roots is no approval, and nothing is written.
    smart_lock = ZERO_TOUCH_RULES["deviceTypes"]["smart-lock"]
    broken = smart_lock | {"zeroTouch": smart_lock["zeroTouch"] | {"roots": [root]}}
    configure_hook(
        ZERO_TOUCH_RULES | {"deviceTypes": ZERO_TOUCH_RULES["deviceTypes"] | {"smart-lock": broken}}
    )
    hook_output.readouterr()

    assert invoke(event(VENDOR.make_element())) == DENIED

    [log] = decision_logs(output_lines(hook_output))
    assert log["reason"] == "InternalError"
    assert everything(dynamodb) == []
