"""The provisioning template's body: what a re-provisioning keeps, and that settings never change it.

AWS keeps at most 5 versions of a template and the provider adds one on every body change without deleting
any (terraform-provider-aws #35392), so a body that followed the settings would strand a stack at the limit.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from components.device_registry import RegistryReference
from components.function import FunctionDefaults
from components.provisioning import provisioning_template_body
from hook.contract import VENDOR_CHAIN_PARAMETER
from hook.rules import DECLARED_PARAMETERS
from program.config import parse_settings
from program.stack import provisioning_args

BASELINE: dict[str, Any] = {"aws:region": "eu-west-1"}

CHANGES_USERS_MAKE: dict[str, dict[str, Any]] = {
    "a device type added": {"deviceTypes": ["temperature-sensor", "gateway", "meter"]},
    "a device type retired": {"deviceTypes": ["temperature-sensor", {"name": "gateway", "retired": True}]},
    "a new claim generation": {"claimCertificates": ["1", "2"]},
    "an old claim generation switched off": {"claimCertificates": [{"name": "1", "active": False}, "2"]},
    "key binding for every type": {"requireKeyBinding": True, "deviceKeys": "device"},
    "key binding for one type": {
        "deviceTypes": [{"name": "gateway", "keyBinding": True}],
        "deviceKeys": "device",
    },
    "devices make their keys": {"deviceKeys": "device"},
    "cbor payloads": {"provisioningPayloadFormats": ["json", "cbor"]},
    "the scoped provisioning role": {"provisioningRolePolicy": "scoped"},
    "tags": {"tags": {"team": "devices", "cost-centre": "42"}},
    "log retention": {"logRetentionDays": 90, "auditLogRetentionDays": 30},
    "data protection": {"protectData": True},
    "pre-registration": {"requirePreregistration": True},
    "hook sizing": {"lambdaTimeout": 3, "lambdaMemorySize": 512},
    "monitoring and audit logging off": {"enableMonitoring": False, "enableAuditLogging": False},
    "a provisioning rate": {"maxProvisioningPerHour": 1000},
    "provisioned billing": {"dynamodbBillingMode": "PROVISIONED", "dynamodbReadCapacity": 20},
    "an initial shadow": {"initialShadow": {"reportingIntervalSeconds": 60}},
}
"""Every setting that could reach the provisioning component, changed the way users change it."""


def _body(values: dict[str, Any]) -> str:
    raw = {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}
    settings = parse_settings(raw, "prod")
    # The component's other inputs are references to resources; the body must not depend on them.
    args = provisioning_args(settings, cast(RegistryReference, None), cast(FunctionDefaults, None))
    return provisioning_template_body(args)


@pytest.mark.parametrize("change", sorted(CHANGES_USERS_MAKE))
def test_no_setting_users_change_makes_a_new_template_version(change: str) -> None:
    assert _body(BASELINE | CHANGES_USERS_MAKE[change]) == _body(BASELINE)


def test_the_body_names_the_stack_it_belongs_to() -> None:
    # The one input it does follow: another prefix or environment is another stack with its own template.
    assert _body(BASELINE | {"resourcePrefix": "acme"}) != _body(BASELINE)


def test_a_reprovisioned_thing_keeps_the_groups_and_attributes_operators_gave_it() -> None:
    thing = json.loads(_body(BASELINE))["Resources"]["thing"]
    assert thing["OverrideSettings"] == {
        "AttributePayload": "MERGE",
        "ThingGroups": "MERGE",
        "ThingTypeName": "REPLACE",
    }


def test_the_hook_admits_exactly_the_parameters_the_template_declares() -> None:
    # The hook denies every other key (UnknownParameter); a parameter added to one and not the other would
    # either deny every device or let an undeclared key through.
    assert set(json.loads(_body(BASELINE))["Parameters"]) == DECLARED_PARAMETERS


def test_a_device_that_sends_no_vendor_chain_leaves_out_only_a_parameter_with_a_default() -> None:
    # Only zero-touch devices send the chain; for every other device AWS IoT fills in the declared default
    # rather than meet a declared parameter without a value (developer guide, "Provisioning templates").
    parameters = json.loads(_body(BASELINE))["Parameters"]
    assert parameters.pop(VENDOR_CHAIN_PARAMETER) == {"Type": "String", "Default": ""}
    assert all("Default" not in declared for declared in parameters.values())  # the five are required
