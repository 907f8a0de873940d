"""Stack settings: every bad value is refused with the key, the value and the expected form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_core import PydanticUndefined

from hook.contract import SERIAL_NUMBER_MAX_LENGTH, THING_NAME_MAX_LENGTH, thing_name
from program.config import CONFIG_KEYS, parse_settings, read_stack_file, settings_from_config
from program.device_types import DEFAULT_DEVICE_TYPES
from program.settings import TEMPLATE_NAME_MAX_LENGTH, Settings, SettingsError
from tests.support import rules_entry

ROOT = Path(__file__).resolve().parents[2]


def parse(stack: str = "dev", **values: Any) -> Settings:
    raw = {"aws:region": "us-east-1"} | {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()
    }
    return parse_settings(raw, stack)


def problem(**values: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        parse(**values)
    return str(caught.value)


def test_a_stack_with_only_a_region_gets_the_documented_defaults() -> None:
    settings = parse()
    assert settings.environment == "dev"
    assert settings.base_name == "iot-provisioning-dev"
    assert [device_type.name for device_type in settings.device_types] == list(DEFAULT_DEVICE_TYPES)
    assert (settings.lambda_timeout, settings.lambda_memory_size) == (5, 256)
    assert settings.dynamodb_billing_mode == "PAY_PER_REQUEST"
    assert settings.enable_monitoring and settings.enable_audit_logging
    assert settings.protect_data is False
    assert settings.require_preregistration is False


def test_environment_defaults_to_the_stack_and_prod_protects_data_and_keeps_logs_longer() -> None:
    assert (parse(stack="prod").log_retention_days, parse(stack="dev").log_retention_days) == (365, 30)
    assert parse(stack="prod", logRetentionDays=90).log_retention_days == 90
    assert parse(stack="prod").protect_data is True
    assert parse(stack="staging", environment="prod").protect_data is True
    assert parse(stack="prod", protectData=False).protect_data is False
    assert parse(stack="dev", protectData=True).protect_data is True


@pytest.mark.parametrize("environment", ["prod-eu", "production", "prod2", "eu-prd", "live"])
def test_auto_protects_and_keeps_logs_for_every_name_that_says_production(environment: str) -> None:
    settings = parse(environment=environment)
    assert (settings.protect_data, settings.log_retention_days) == (True, 365)
    explicit = parse(environment=environment, protectData=False, logRetentionDays=14)
    assert (explicit.protect_data, explicit.log_retention_days) == (False, 14)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"lambdaTimeout": 60}, "lambdaTimeout = 60: expected 1-5 seconds: AWS IoT stops waiting"),
        ({"lambdaTimeout": 0}, "lambdaTimeout = 0: expected 1-5 seconds"),
        ({"lambdaTimeout": "five"}, "lambdaTimeout = five: Input should be a valid integer"),
        ({"lambdaMemorySize": 64}, "lambdaMemorySize = 64: Input should be greater than or equal to 128"),
        (
            {"lambdaMemorySize": 20000},
            "lambdaMemorySize = 20000: Input should be less than or equal to 10240",
        ),
        (
            {"dynamodbBillingMode": "ON_DEMAND"},
            "dynamodbBillingMode = ON_DEMAND: Input should be 'PAY_PER_REQUEST'",
        ),
        ({"deviceTypes": []}, "deviceTypes = []: expected a non-empty list"),
        ({"deviceTypes": "gateway"}, "deviceTypes = gateway: expected a non-empty list"),
        ({"deviceTypes": ["gateway", "gateway"]}, "device type(s) listed twice: gateway"),
        ({"deviceTypes": ["smart sensor"]}, "deviceTypes.smart sensor: a device type name must be"),
        ({"deviceTypes": ["acme:meter"]}, "acme:meter: ':' is not allowed in IoT policy names"),
        ({"initialShadow": {"blob": "x" * 5000}}, "initialShadow = "),
        ({"deviceTypes": [{"name": "gw", "initialShadow": ["on"]}]}, "Input should be a valid dictionary"),
        ({"deviceTypes": [{"name": "gw", "serialPattern": "(a+)+"}]}, "could make matching slow"),
        (
            {"deviceTypes": [{"name": "gw", "minFirmwareVersion": "2"}]},
            'minFirmwareVersion: expected "x.y.z"',
        ),
        ({"deviceTypes": [{"name": "gw", "firmware": "2.0.0"}]}, "deviceTypes.0.firmware = "),
        ({"environment": "Prod_1"}, "environment = Prod_1: expected 1-16 characters of a-z 0-9 -"),
        ({"resourcePrefix": "-iot"}, "resourcePrefix = -iot: expected 1-32 characters"),
        ({"alertEmail": "ops-team"}, "alertEmail = ops-team: expected an e-mail address"),
        ({"tags": {"Environment": "x"}}, "tag 'Environment' is set by the program"),
        ({"tags": {"aws:owner": "x"}}, "tag 'aws:owner'"),
        ({"tags": ["Owner"]}, 'tags = ["Owner"]: Input should be a valid dictionary'),
        ({"protectData": "maybe"}, "protectData = maybe: Input should be a valid boolean"),
        ({"logRetentionDays": 42}, "logRetentionDays = 42: expected one of CloudWatch's retention periods"),
        (
            {"claimCertificates": [{"name": "1", "csr": "not a csr"}]},
            "claimCertificates.0.csr = ",
        ),
        (
            {"claimCertificates": [{"name": "1", "csr": "not a csr"}]},
            "expected a PEM certificate signing request",
        ),
        ({"claimCsr": "-----BEGIN CERTIFICATE REQUEST-----"}, "claimCsr = -----BEGIN CERTIFICATE REQUEST"),
        ({"claimCsr": "x"}, "moved: give each generation its own CSR"),
        ({"claimCertificates": []}, "claimCertificates = []: expected a non-empty list of generation names"),
        ({"claimCertificates": [{"name": "1", "status": "off"}]}, "claimCertificates.0.status = "),
        (
            {"claimCertificates": ["1", {"name": "2", "maxProvisioningPerHour": 0}]},
            "claimCertificates.1.maxProvisioningPerHour = ",
        ),
        (
            {"claimCertificates": ["1", {"name": "2", "maxProvisioningPerHour": 0}]},
            "expected a whole number of approvals per hour >= 1, or leave it out",
        ),
        (
            {"claimCertificates": ["1", {"name": "2", "active": False}]},
            "the last generation (2) is the one factories ship and must be active",
        ),
        ({"provisioningRolePolicy": "custom"}, "provisioningRolePolicy = custom: Input should be 'managed'"),
        ({"deviceKeys": "csr"}, 'deviceKeys = csr: expected "device" (devices make their key pair'),
        ({"deviceKeys": "aws"}, 'deviceKeys = aws: expected "device" (devices make'),
        ({"requireKeyBinding": "maybe"}, "requireKeyBinding = maybe: Input should be a valid boolean"),
        ({"deviceTypes": [{"name": "gw", "keyBinding": "sometimes"}]}, "deviceTypes.0.keyBinding = "),
        (
            {"requireKeyBinding": True, "deviceKeys": "device-or-aws"},
            "deviceKeys = device-or-aws: every device type binds keys (requireKeyBinding, or keyBinding or "
            'vendor on each), so a key pair AWS IoT makes could never pass the hook: expected "device", or leave '
            "deviceKeys unset",
        ),
        (
            {"deviceTypes": [{"name": "gw", "keyBinding": True}], "deviceKeys": "device-or-aws"},
            "deviceKeys = device-or-aws: every device type binds keys",
        ),
        (
            {"provisioningPayloadFormats": []},
            'provisioningPayloadFormats = []: expected a non-empty list of "json" and "cbor"',
        ),
        (
            {"provisioningPayloadFormats": "cbor"},
            "provisioningPayloadFormats = cbor: expected a non-empty list",
        ),
        (
            {"provisioningPayloadFormats": ["json", "xml"]},
            "provisioningPayloadFormats.1 = [\"json\", \"xml\"]: Input should be 'json' or 'cbor'",
        ),
        ({"accountSettings": "shared"}, "accountSettings = shared: Input should be a valid boolean"),
        (
            {"aws:region": "ca-west-1"},
            "aws:region = ca-west-1: the Powertools layer is not published for arm64",
        ),
        (
            {"aws:region": "ap-east-2"},
            "aws:region = ap-east-2: the Powertools layer is not published for arm64",
        ),
        ({"accountEventTypes": ["JOB"]}, 'accountEventTypes = ["JOB"]: THING events must stay on'),
        ({"accountEventTypes": ["THING", "THINGS"]}, "accountEventTypes.1 = "),
        (
            {"aws:region": "cn-northwest-1"},
            "aws:region = cn-northwest-1: the Powertools layer is not published",
        ),
        ({"aws:region": "us-iso-east-1"}, "the Powertools layer is not published in us-iso-east-1 (aws-iso)"),
        ({"claimCertificates": ["1", "1"]}, "a generation is listed twice"),
        ({"claimCertificates": ["Gen 2"]}, "generation 'Gen 2': expected 1-16 characters"),
        ({"alarmThreshold": 0}, "alarmThreshold = 0: Input should be greater than or equal to 1"),
        ({"lambdaTimout": 3}, "lambdaTimout = 3: not a known setting (a typo?)"),
        ({"aws:region": "mars-1"}, "aws:region = mars-1: expected an AWS region"),
        (
            {"resourcePrefix": "p" * 24, "environment": "staging"},
            "longer than the 36 characters AWS IoT allows",
        ),
    ],
    ids=lambda value: str(value)[:40],
)
def test_bad_value_is_reported_with_key_value_and_expected_form(
    values: dict[str, Any], expected: str
) -> None:
    message = problem(**values)
    assert message.startswith("invalid stack config:")
    assert expected in message


def test_claim_key_and_payload_settings_default_to_any_key_maker_and_json_only() -> None:
    settings = parse()
    assert (settings.device_keys, settings.provisioning_payload_formats) == ("device-or-aws", ("json",))
    settings = parse(deviceKeys="device", provisioningPayloadFormats=["cbor", "json", "cbor"])
    assert (settings.device_keys, settings.provisioning_payload_formats) == ("device", ("json", "cbor"))


def test_key_binding_feeds_the_hook_rules_per_type_or_for_every_type() -> None:
    settings = parse(deviceTypes=["gateway", {"name": "meter", "keyBinding": True}])
    assert settings.hook_rules()["deviceTypes"] == {
        "gateway": rules_entry(),
        "meter": rules_entry(keyBinding=True),
    }
    every = parse(deviceTypes=["gateway", "meter"], requireKeyBinding=True)
    assert every.hook_rules()["deviceTypes"] == {
        "gateway": rules_entry(keyBinding=True),
        "meter": rules_entry(keyBinding=True),
    }


@pytest.mark.parametrize(
    ("values", "aws_keys"),
    [
        ({}, True),
        ({"deviceKeys": "device"}, False),
        ({"deviceTypes": ["gateway", {"name": "meter", "keyBinding": True}]}, True),  # gateway: any key
        ({"requireKeyBinding": True}, False),
        ({"requireKeyBinding": True, "deviceKeys": "device"}, False),
        ({"deviceTypes": [{"name": "gw", "keyBinding": True}]}, False),
        # A retired type provisions nothing: the types that still may all bind.
        ({"deviceTypes": [{"name": "gw", "keyBinding": True}, {"name": "old", "retired": True}]}, False),
    ],
    ids=str,
)
def test_a_stack_where_every_type_binds_keys_is_csr_only(values: dict[str, Any], aws_keys: bool) -> None:
    assert parse(**values).claim_allows_aws_keys is aws_keys


def test_every_problem_is_reported_at_once() -> None:
    message = problem(lambdaTimeout=90, alertEmail="nobody", logRetentionDays=2)
    assert all(
        key in message for key in ("lambdaTimeout = 90", "alertEmail = nobody", "logRetentionDays = 2")
    )


def test_region_is_required() -> None:
    with pytest.raises(SettingsError, match="aws:region is not set"):
        parse_settings({}, "dev")


def test_device_types_accept_names_and_objects_and_feed_the_hook_rules() -> None:
    settings = parse(
        deviceTypes=["gateway", {"name": "meter", "serialPattern": "M-[0-9]+", "manufacturers": ["Acme"]}],
        requirePreregistration=True,
    )
    assert settings.hook_rules() == {
        "deviceTypes": {
            "gateway": rules_entry(),
            "meter": rules_entry(serialPattern="M-[0-9]+", manufacturers=["Acme"]),
        },
        "requirePreregistration": True,
    }


def test_tags_combine_project_environment_and_extra_tags() -> None:
    assert parse(tags={"Owner": "IoT-Team"}).tags_for_resources() == {
        "Project": "iot-fleet-provisioning",
        "Environment": "dev",
        "ManagedBy": "pulumi",
        "Owner": "IoT-Team",
    }


def test_pulumi_yaml_declares_every_key_with_the_models_default() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["config"]
    assert set(declared) == set(CONFIG_KEYS)
    fields = {str(field.alias): field for field in Settings.model_fields.values()}
    for key, declaration in declared.items():
        field = fields[key]
        default = field.default_factory() if field.default is PydanticUndefined else field.default  # type: ignore[call-arg, misc]
        if isinstance(default, tuple):
            default = list(default)
        assert declaration["default"] == default, key
        assert declaration["description"], key


@pytest.mark.parametrize("stack", ["dev", "staging", "prod", "local"])
def test_every_stack_file_is_valid(stack: str) -> None:
    config = read_stack_file(stack)
    assert settings_from_config(config, stack).region == config["aws:region"]


def test_a_stack_file_is_read_as_pulumi_stores_it_full_keys_and_json_values() -> None:
    config = read_stack_file("local")
    assert config["aws:region"] == "us-east-1"
    assert config["aws:skipCredentialsValidation"] == "true"
    assert config["iot-fleet-provisioning:protectData"] == "false"
    assert config["iot-fleet-provisioning:logRetentionDays"] == "1"
    assert json.loads(config["iot-fleet-provisioning:deviceTypes"])[1] == {
        "name": "humidity-sensor",
        "serialPattern": "HS-[0-9]{6}",
    }


def test_prod_stack_carries_the_recipes_production_values() -> None:
    settings = settings_from_config(read_stack_file("prod"), "prod")
    assert settings.region == "us-west-2"
    assert [device_type.name for device_type in settings.device_types][-1] == "actuator"
    assert len(settings.device_types) == 5
    assert settings.lambda_memory_size == 512
    assert settings.alert_email == "alerts@example.com"
    assert settings.tags == {"Owner": "IoT-Team", "CostCenter": "Engineering", "Compliance": "Required"}
    assert settings.protect_data is True


def test_the_longest_accepted_names_leave_room_for_the_longest_serial_in_a_thing_name() -> None:
    settings = parse(resourcePrefix="p" * 13, environment="e" * 16)  # the longest that passes validation
    assert len(settings.template_name) == TEMPLATE_NAME_MAX_LENGTH
    assert len(thing_name(settings.base_name, "S" * SERIAL_NUMBER_MAX_LENGTH)) <= THING_NAME_MAX_LENGTH


def test_each_claim_generation_has_its_own_budget_or_the_stacks() -> None:
    settings = parse(
        maxProvisioningPerHour=200,
        claimCertificates=["1", {"name": "2", "maxProvisioningPerHour": 5000}],
    )

    assert settings.claim_budgets() == {"1": 200, "2": 5000}
