"""The pure validation rules and the rules document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hook.contract import Parameter, ProvisioningDenied, RejectionReason
from hook.rules import (
    DeviceRequest,
    RulesError,
    load_rules,
    parse_firmware_version,
    parse_rules,
    validate_request,
)
from tests.support import RULES, valid_parameters

RULE_SET = parse_rules(RULES)


def rejection(parameters: Any) -> ProvisioningDenied:
    with pytest.raises(ProvisioningDenied) as caught:
        validate_request(parameters, RULE_SET)
    return caught.value


def test_a_valid_request_is_trimmed_and_its_firmware_version_normalised() -> None:
    request = validate_request(
        valid_parameters(SerialNumber="  TS-000123 ", FirmwareVersion="v01.4.2", Location="Line-3\t"),
        RULE_SET,
    )
    assert request == DeviceRequest(
        serial_number="TS-000123",
        device_type="temperature-sensor",
        manufacturer="AcmeIoT",
        firmware_version="1.4.2",
        location="Line-3",
    )
    assert request.parameters() == {
        "SerialNumber": "TS-000123",
        "DeviceType": "temperature-sensor",
        "Manufacturer": "AcmeIoT",
        "FirmwareVersion": "1.4.2",
        "Location": "Line-3",
    }


@pytest.mark.parametrize(
    "name", ["SerialNumber", "DeviceType", "Manufacturer", "FirmwareVersion", "Location"]
)
@pytest.mark.parametrize("value", [None, "", "   "])
def test_absent_or_blank_parameter_is_missing(name: str, value: Any) -> None:
    parameters = valid_parameters(**{name: value})
    denial = rejection(parameters)
    assert denial.reason is RejectionReason.MISSING_PARAMETER
    assert name in denial.detail


@pytest.mark.parametrize(
    "name", ["SerialNumber", "DeviceType", "Manufacturer", "FirmwareVersion", "Location"]
)
def test_parameter_left_out_is_missing(name: str) -> None:
    parameters = valid_parameters()
    del parameters[name]
    assert rejection(parameters).reason is RejectionReason.MISSING_PARAMETER


@pytest.mark.parametrize("value", [123, 1.5, True, ["TS-000123"], {"S": "TS-000123"}])
def test_non_string_parameter_is_invalid(value: Any) -> None:
    denial = rejection(valid_parameters(SerialNumber=value))
    assert denial.reason is RejectionReason.INVALID_PARAMETER
    assert "must be a string" in denial.detail


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("SerialNumber", 64),
        ("DeviceType", 64),
        ("Manufacturer", 64),
        ("FirmwareVersion", 32),
        ("Location", 128),
    ],
)
def test_parameter_longer_than_its_bound_is_invalid(name: str, limit: int) -> None:
    denial = rejection(valid_parameters(**{name: "A" * (limit + 1)}))
    assert denial.reason is RejectionReason.INVALID_PARAMETER
    assert f"longer than {limit}" in denial.detail


def test_serial_of_maximum_length_fits_a_thing_name() -> None:
    rules = parse_rules({"deviceTypes": {"humidity-sensor": {}}})
    serial = "S" * 64
    request = validate_request(valid_parameters(SerialNumber=serial, DeviceType="humidity-sensor"), rules)
    assert len(f"{'p' * 63}-{request.serial_number}") == 128


@pytest.mark.parametrize(
    "serial", ["TS 000123", "TS/000123", "TS-00012#", "TS.000123", "\u0422S-000123", "TS-\uff1000123"]
)
def test_serial_outside_the_thing_name_charset_is_invalid(serial: str) -> None:
    denial = rejection(valid_parameters(SerialNumber=serial))
    assert denial.reason is RejectionReason.INVALID_PARAMETER
    assert "SerialNumber" in denial.detail


def test_unknown_device_type_is_denied() -> None:
    assert rejection(valid_parameters(DeviceType="toaster")).reason is RejectionReason.UNKNOWN_DEVICE_TYPE


def test_key_binding_is_per_device_type_and_off_unless_given() -> None:
    rules = parse_rules({"deviceTypes": {"gateway": {}, "meter": {"keyBinding": True}}})
    assert (rules.device_types["gateway"].key_binding, rules.device_types["meter"].key_binding) == (
        False,
        True,
    )


def test_retired_device_type_is_denied_whatever_else_it_sends() -> None:
    rules = parse_rules({"deviceTypes": {"gateway": {}, "meter": {"retired": True}}})
    with pytest.raises(ProvisioningDenied) as caught:
        validate_request(valid_parameters(DeviceType="meter", SerialNumber="M-1"), rules)
    assert caught.value.reason is RejectionReason.DEVICE_TYPE_RETIRED
    assert caught.value.parameter is Parameter.DEVICE_TYPE
    assert validate_request(valid_parameters(DeviceType="gateway"), rules).device_type == "gateway"


@pytest.mark.parametrize(
    "device_type", ["Temperature-Sensor", "temperature-s\u0435nsor", "temperature-sensor\u200b"]
)
def test_device_type_must_match_exactly(device_type: str) -> None:
    # Case variants and look-alikes (a Cyrillic e, a zero-width space) are not the configured type.
    assert rejection(valid_parameters(DeviceType=device_type)).reason in {
        RejectionReason.UNKNOWN_DEVICE_TYPE,
        RejectionReason.INVALID_PARAMETER,
    }


@pytest.mark.parametrize("serial", ["TS-12345", "TS-1234567", "XTS-123456", "ts-123456"])
def test_serial_must_fully_match_the_type_pattern(serial: str) -> None:
    assert rejection(valid_parameters(SerialNumber=serial)).reason is RejectionReason.SERIAL_PATTERN_MISMATCH


def test_manufacturer_not_in_the_allowed_list_is_denied() -> None:
    denial = rejection(valid_parameters(Manufacturer="CheapClones"))
    assert denial.reason is RejectionReason.MANUFACTURER_NOT_ALLOWED
    assert "CheapClones" in denial.detail


def test_type_without_manufacturer_list_accepts_any_manufacturer() -> None:
    request = validate_request(
        valid_parameters(SerialNumber="HS1", DeviceType="humidity-sensor", Manufacturer="Anyone"), RULE_SET
    )
    assert request.manufacturer == "Anyone"


@pytest.mark.parametrize("location", ["Factory Floor A", "Floor-A;DROP", "Halle-Ä"])
def test_location_must_be_a_valid_thing_attribute(location: str) -> None:
    denial = rejection(valid_parameters(Location=location))
    assert denial.reason is RejectionReason.INVALID_PARAMETER
    assert "Location" in denial.detail


@pytest.mark.parametrize(
    ("firmware", "allowed"), [("1.2.0", True), ("v1.2.0", True), ("1.1.99", False), ("0.9.0", False)]
)
def test_firmware_below_the_type_minimum_is_denied(firmware: str, allowed: bool) -> None:
    parameters = valid_parameters(FirmwareVersion=firmware)
    if allowed:
        assert validate_request(parameters, RULE_SET).firmware_version == firmware.removeprefix("v")
    else:
        assert rejection(parameters).reason is RejectionReason.FIRMWARE_TOO_OLD


def test_firmware_versions_compare_numerically_not_as_text() -> None:
    rules = parse_rules({"deviceTypes": {"gateway": {"minFirmwareVersion": "1.9.0"}}})
    parameters = valid_parameters(SerialNumber="GW1", DeviceType="gateway", FirmwareVersion="1.10.0")
    assert validate_request(parameters, rules).firmware_version == "1.10.0"


@pytest.mark.parametrize(
    "firmware", ["1.2", "1.2.3.4", "latest", "v", "1.2.x", "\u0661.\u0662.\u0663", "1.2.3-beta"]
)
def test_malformed_firmware_is_invalid(firmware: str) -> None:
    denial = rejection(valid_parameters(FirmwareVersion=firmware))
    assert denial.reason is RejectionReason.INVALID_PARAMETER
    assert "FirmwareVersion" in denial.detail


def test_firmware_versions_parse_as_numbers_with_an_optional_lowercase_v() -> None:
    assert parse_firmware_version("v10.0.1") == (10, 0, 1)
    assert parse_firmware_version("1.10.0") > parse_firmware_version("1.9.0")  # type: ignore[operator]
    assert parse_firmware_version("V1.0.0") is None


def test_huge_value_is_refused_by_length_first() -> None:
    denial = rejection(valid_parameters(Location=" " * 5_000_000 + "A"))
    assert denial.reason is RejectionReason.INVALID_PARAMETER


@pytest.mark.parametrize(
    "undeclared",
    [
        {"AWS::IoT::Certificate::Id": "f" * 64},
        {"ThingName": "someone-else"},
        {"location": "Line-1"},  # names are case-sensitive
        {"x" * 5000: ""},
    ],
    ids=lambda value: repr(value)[:40],
)
def test_a_parameter_the_template_does_not_declare_is_denied_first(undeclared: dict[str, str]) -> None:
    denial = rejection(valid_parameters(SerialNumber="not valid!", **undeclared))

    assert denial.reason is RejectionReason.UNKNOWN_PARAMETER
    assert denial.parameter is None
    name = next(iter(undeclared))
    assert ascii(name[:64]) in denial.detail
    assert len(denial.detail) < 200  # a device's key is shortened before it is logged


def test_parameters_not_an_object_are_malformed() -> None:
    assert rejection(["SerialNumber", "TS-000123"]).reason is RejectionReason.MALFORMED_EVENT


# --- the rules document --------------------------------------------------------------------------------


def test_the_rules_document_gives_each_type_its_manufacturers_firmware_and_pattern() -> None:
    rule = RULE_SET.device_types["temperature-sensor"]
    assert rule.manufacturers == frozenset({"AcmeIoT", "SensorWorks"})
    assert rule.min_firmware_version == (1, 2, 0)
    assert rule.serial_pattern is not None and rule.serial_pattern.pattern == "TS-[0-9]{6}"
    assert RULE_SET.device_types["humidity-sensor"].serial_pattern is None
    assert RULE_SET.require_preregistration is False


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "rules: expected a JSON object"),
        ({}, "rules: missing required key(s) deviceTypes"),
        ({"deviceTypes": {}}, "deviceTypes: expected at least one device type"),
        (
            {"deviceTypes": {"a": {}}, "requirePreregistration": "yes"},
            "requirePreregistration: expected true or false",
        ),
        ({"deviceTypes": {"a": {}}, "requirePreregistraton": True}, "unknown key(s) requirePreregistraton"),
        ({"deviceTypes": {"bad name": {}}}, "deviceTypes.bad name: a device type name must be"),
        ({"deviceTypes": {"a": {"serialPatern": "x"}}}, "deviceTypes.a: unknown key(s) serialPatern"),
        (
            {"deviceTypes": {"a": {"serialPattern": "(unclosed"}}},
            "deviceTypes.a.serialPattern: '(unclosed' is not",
        ),
        (
            {"deviceTypes": {"a": {"serialPattern": ""}}},
            "deviceTypes.a.serialPattern: expected a regular expression",
        ),
        (
            {"deviceTypes": {"a": {"manufacturers": []}}},
            "deviceTypes.a.manufacturers: expected a non-empty list",
        ),
        (
            {"deviceTypes": {"a": {"manufacturers": "Acme"}}},
            "deviceTypes.a.manufacturers: expected a non-empty list",
        ),
        ({"deviceTypes": {"a": {"manufacturers": ["Acme Corp"]}}}, "'Acme Corp' is not a valid manufacturer"),
        (
            {"deviceTypes": {"a": {"minFirmwareVersion": "1.2"}}},
            'deviceTypes.a.minFirmwareVersion: expected "x.y.z"',
        ),
        ({"deviceTypes": {"a": {"minFirmwareVersion": 1}}}, "deviceTypes.a.minFirmwareVersion"),
        ({"deviceTypes": {"a": {"retired": "yes"}}}, "deviceTypes.a.retired: expected true or false"),
        (
            {"deviceTypes": {"a": {"keyBinding": 1}}},
            "deviceTypes.a.keyBinding: expected true or false, got 1",
        ),
        ({"deviceTypes": {"a": {"keybinding": True}}}, "unknown key(s) keybinding; allowed: keyBinding"),
    ],
)
def test_invalid_rules_document_names_the_field(document: Any, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(document)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(a+)+", "a group is repeated"),
        ("([A-Z0-9]+-?)*", "a group is repeated"),
        ("(TS|TS-)*[0-9]", "a group is repeated"),
        ("(?:[0-9]?[0-9]?)*X", "a group is repeated"),
        ("(x+x+)+y", "a group is repeated"),
        ("(TS)-\\1", "a backreference"),
        ("(?=TS)TS-[0-9]+", "an unsupported construct"),
        ("[A-Z0-9]*-?" * 7 + "-[0-9]{4}", "it can match a serial in about"),
        ("[A-Z0-9]+[A-Z0-9]+[A-Z0-9]+", "it can match a serial in about"),
        ("(?:TS|T)" * 18, "it can match a serial in about"),
    ],
)
def test_serial_patterns_that_can_backtrack_catastrophically_are_refused(pattern: str, problem: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules({"deviceTypes": {"a": {"serialPattern": pattern}}})
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    "pattern", ["TS-[0-9]{6}", "(?:GW|GT)-[A-F0-9]{4,12}", "SN[0-9]+(?:-[A-Z]{2})?", "(?:ab){2}"]
)
def test_ordinary_serial_patterns_are_accepted(pattern: str) -> None:
    assert parse_rules({"deviceTypes": {"a": {"serialPattern": pattern}}}).device_types["a"].serial_pattern


def test_load_rules_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(RulesError, match="is not valid JSON"):
        load_rules(broken)
    good = tmp_path / "rules.json"
    good.write_text(json.dumps(RULES), encoding="utf-8")
    assert load_rules(good) == RULE_SET


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"SerialNumber": None}, Parameter.SERIAL_NUMBER),
        ({"SerialNumber": "TS-12"}, Parameter.SERIAL_NUMBER),
        ({"DeviceType": "toaster"}, Parameter.DEVICE_TYPE),
        ({"Manufacturer": "CheapClones"}, Parameter.MANUFACTURER),
        ({"FirmwareVersion": "0.1.0"}, Parameter.FIRMWARE_VERSION),
        ({"Location": "Floor A"}, Parameter.LOCATION),
    ],
)
def test_denials_name_the_parameter_at_fault(overrides: dict[str, Any], parameter: Parameter) -> None:
    assert rejection(valid_parameters(**overrides)).parameter is parameter


def test_a_malformed_parameters_object_names_no_parameter() -> None:
    assert rejection("not an object").parameter is None
