"""The owner of the account settings: the marker that holds a second owner back, AWS IoT logging declared on
or off, and the documented import of what an owner keeps after it is destroyed."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.pulumi_mocks import ACCOUNT_ID, ROOT, Build, Declared, Deployment

REGION = "us-east-1"
MARKER_TYPE = "aws:ssm/parameter:Parameter"
LOGGING_TYPES = ("aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy")
"""The logging role and its policy: declared by every owner, whether logging is on or off."""
SWITCHES = ("aws:iot/eventConfigurations:EventConfigurations", "aws:iot/loggingOptions:LoggingOptions")
"""What a second owner would change for the whole account and region (and the audit rule, with logging)."""
IMPORT_STEPS = ROOT / "docs" / "account-settings.md"
IMPORT_COMMAND = re.compile(r"^pulumi import (\S+) (\S+) (\S+) --parent account=<URN>", re.MULTILINE)
LOGGING_ROLE = "<logging-role>"
"""The placeholder the import steps use for the logging role's name, as the stack builds it."""


def with_audit_logging(build: Build, enabled: bool) -> Deployment:
    return build({"aws:region": REGION, "enableAuditLogging": enabled})


def account_resources(deployment: Deployment) -> list[Declared]:
    """The resources the AccountSettings component ``account`` declares (its children's names start so)."""
    return [r for r in deployment.mocks.resources if r.custom and r.name.startswith("account-")]


def waits_for(deployment: Deployment, resource: Declared) -> list[str]:
    """The names of the resources ``resource`` was declared to depend on."""
    depends_on = deployment.mocks.options[resource.name].depends_on or []
    return [str(dependency._name) for dependency in depends_on]  # type: ignore[union-attr]


@pytest.mark.parametrize("audit_logging", [True, False])
def test_a_second_owner_fails_at_the_marker_before_any_switch_changes(
    build: Build, audit_logging: bool
) -> None:
    deployment = with_audit_logging(build, audit_logging)
    marker = deployment.mocks.one(MARKER_TYPE)
    # One name per account and region, naming the setting: a second owner's create fails with
    # ParameterAlreadyExists on this name. `overwrite` unset: the provider creates with Overwrite false and
    # updates with Overwrite true (terraform-provider-aws ssm/parameter.go, shouldUpdateParameter).
    assert marker.inputs["name"] == "/iot-fleet-provisioning/accountSettings/owner"
    assert marker.inputs.get("overwrite") is None
    assert marker.inputs["insecureValue"] == "iot-fleet-provisioning/dev"
    assert not marker.retain_on_delete, "another stack takes over only once the owner's marker is deleted"
    others = [r for r in account_resources(deployment) if r is not marker]
    switches = {*SWITCHES, *(["aws:iot/topicRule:TopicRule"] if audit_logging else [])}
    assert {r.type for r in others} >= switches
    assert [r.name for r in others if marker.name not in waits_for(deployment, r)] == []


def test_a_stack_without_account_settings_claims_nothing(build: Build) -> None:
    other = build({"aws:region": REGION, "accountSettings": False})
    assert not other.mocks.of_type(MARKER_TYPE)


def test_with_audit_logging_off_the_owner_declares_aws_iot_logging_disabled(build: Build) -> None:
    # Without this, logging an earlier `true` switched on would stay on: the provider's delete is a no-op.
    off = with_audit_logging(build, False)
    logging = off.mocks.one("aws:iot/loggingOptions:LoggingOptions")
    assert logging.inputs["disableAllLogs"] is True
    assert logging.inputs["defaultLogLevel"] == "DISABLED"
    role = named_logging_role(off)
    assert logging.inputs["roleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{role.inputs['name']}"
    assert "AWSIotLogsV2" not in {
        g.inputs["name"] for g in off.mocks.of_type("aws:cloudwatch/logGroup:LogGroup")
    }
    assert not [
        r for r in off.mocks.of_type("aws:iot/topicRule:TopicRule") if "$aws/events/#" in r.inputs["sql"]
    ]
    # Logging is disabled, so the role may go with the stack: nothing is kept after a destroy.
    assert [r.name for r in off.mocks.resources if r.retain_on_delete] == []


def named_logging_role(deployment: Deployment) -> Declared:
    [role] = [
        r for r in deployment.mocks.of_type("aws:iam/role:Role") if r.name == "account-iot-logging-role"
    ]
    return role


def logging_identity(deployment: Deployment) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r.type, r.name): {key: r.inputs[key] for key in ("name", "role", "policy") if key in r.inputs}
        for r in account_resources(deployment)
        if r.type in LOGGING_TYPES and r.name.startswith("account-iot-logging")
    }


def test_switching_audit_logging_off_and_on_keeps_the_logging_role_and_policy(build: Build) -> None:
    # The same names and inputs either way: switching keeps them in the stack, with nothing to re-create.
    on, off = with_audit_logging(build, True), with_audit_logging(build, False)
    assert logging_identity(on) == logging_identity(off)
    assert set(logging_identity(on)) == {
        ("aws:iam/role:Role", "account-iot-logging-role"),
        ("aws:iam/rolePolicy:RolePolicy", "account-iot-logging-policy"),
    }
    [policy] = [
        r for r in on.mocks.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "account-iot-logging-policy"
    ]
    [statement] = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Resource"][0] == f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:AWSIotLogsV2"


def provider_import_id(deployment: Deployment, resource: Declared) -> str:
    """The ID the provider imports ``resource`` by (its docs' "Import" section)."""
    if resource.type in ("aws:cloudwatch/logGroup:LogGroup", "aws:iam/role:Role"):
        return str(resource.inputs["name"])
    if resource.type == "aws:iam/rolePolicy:RolePolicy":
        [role] = [
            r
            for r in deployment.mocks.of_type("aws:iam/role:Role")
            if f"{r.inputs.get('name', r.name)}-id" == resource.inputs["role"]
        ]
        return f"{role.inputs['name']}:{resource.inputs['name']}"
    raise AssertionError(
        f"{resource.type} is kept on delete: add its import ID here and its import step to the docs"
    )


@pytest.mark.parametrize("audit_logging", [True, False])
def test_the_import_steps_adopt_every_resource_an_owner_keeps(build: Build, audit_logging: bool) -> None:
    deployment = with_audit_logging(build, audit_logging)
    text = IMPORT_STEPS.read_text(encoding="utf-8")
    role_name = named_logging_role(deployment).inputs["name"]
    assert f"`{LOGGING_ROLE}` is the role's name as the stack builds it" in text
    assert "shows for `account-iot-logging-role`" in text
    documented = {
        (token, name): import_id.replace(LOGGING_ROLE, role_name)
        for token, name, import_id in IMPORT_COMMAND.findall(text)
    }
    kept = [r for r in deployment.mocks.resources if r.retain_on_delete]
    assert bool(kept) == audit_logging
    for resource in kept:
        assert documented.get((resource.type, resource.name)) == provider_import_id(deployment, resource), (
            resource.name
        )
