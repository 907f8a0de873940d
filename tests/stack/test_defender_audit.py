"""Device Defender audit under mocks: the owner's audit, its roles and notification, and the suppressions of
exactly the stack's claim certificates. The emulator has no Device Defender API, so nothing here runs
end to end; the resources' create, update and delete are tested against botocore's Stubber
(tests/unit/test_defender_provider.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.defender import AUDIT_CHECKS, DefenderAudit
from program.settings import SettingsError
from tests.pulumi_mocks import (
    ACCOUNT_ID,
    Build,
    Declared,
    Deployment,
    defender_config,
    deploy,
    settings_for,
)

REGION = "us-east-1"
BASE = "iot-provisioning-dev"
AUDIT = "pulumi-python:dynamic/defender:AccountAudit"
SUPPRESSION = "pulumi-python:dynamic/defender:AuditSuppression"
DEFENDER = {"aws:region": REGION, **defender_config(), "claimCertificates": ["1", "2"]}
EXPIRES = DEFENDER["defenderSuppressionExpires"]


@pytest.fixture(scope="module")
def owner(build: Build) -> Deployment:
    return build(DEFENDER)


@pytest.fixture(scope="module")
def other_stack(build: Build) -> Deployment:
    return build({**DEFENDER, "accountSettings": False}, stack="staging")


def role(deployment: Deployment, purpose: str) -> Declared:
    [declared] = [
        r
        for r in deployment.mocks.of_type("aws:iam/role:Role")
        if r.inputs.get("name") == f"{BASE}-{REGION}-{purpose}"
    ]
    return declared


def test_off_by_default_nothing_of_defender_is_declared(build: Build) -> None:
    deployment = build({"aws:region": REGION})
    types = {r.type for r in deployment.mocks.resources}
    assert not types & {AUDIT, SUPPRESSION}
    assert not [r for r in deployment.mocks.resources if r.name.startswith("defender")]


def test_owner_audits_the_fleet_checks_daily_with_findings_to_the_alert_topic(owner: Deployment) -> None:
    audit = owner.mocks.one(AUDIT).inputs
    topic = owner.mocks.one("aws:sns/topic:Topic")
    assert audit["region"] == REGION
    assert audit["checks"] == list(AUDIT_CHECKS)
    for check in (
        "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
        "LOGGING_DISABLED_CHECK",
        "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
        "CONFLICTING_CLIENT_IDS_CHECK",
        "DEVICE_CERTIFICATE_EXPIRING_CHECK",
        "DEVICE_CERTIFICATE_AGE_CHECK",
        "DEVICE_CERTIFICATE_SHARED_CHECK",
    ):
        assert check in audit["checks"]
    assert audit["scheduleName"] == f"{BASE}-daily"
    assert audit["topicArn"] == f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{topic.inputs['name']}"
    assert audit["roleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{BASE}-{REGION}-defender-audit"
    assert audit["notificationRoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{BASE}-{REGION}-defender-alerts"


def test_the_roles_are_assumable_by_aws_iot_of_this_account_and_region_only(owner: Deployment) -> None:
    for purpose in ("defender-audit", "defender-alerts"):
        [statement] = json.loads(role(owner, purpose).inputs["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {"Service": "iot.amazonaws.com"}
        assert statement["Condition"]["StringEquals"] == {
            "aws:SourceAccount": ACCOUNT_ID,
            "aws:SourceArn": f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:",
        }


def test_the_audit_role_reads_with_aws_managed_audit_policy_only(owner: Deployment) -> None:
    [attachment] = [
        a
        for a in owner.mocks.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == f"{BASE}-{REGION}-defender-audit"
    ]
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/service-role/AWSIoTDeviceDefenderAudit"


def test_the_notification_role_publishes_to_the_alert_topic_and_nothing_else(owner: Deployment) -> None:
    [policy] = [
        p
        for p in owner.mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs.get("name") == "defender-alerts"
    ]
    topic = owner.mocks.one(AUDIT).inputs["topicArn"]
    key = owner.mocks.one("aws:kms/key:Key")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    granted = {(json.dumps(s["Action"]), s["Resource"]) for s in statements if s["Effect"] == "Allow"}
    assert granted == {
        ('"sns:Publish"', topic),
        ('["kms:GenerateDataKey*", "kms:Decrypt"]', f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key.name}"),
    }


def suppressions(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {r.inputs["certificateId"]: r.inputs for r in deployment.mocks.of_type(SUPPRESSION)}


@pytest.mark.parametrize("stack", ["owner", "other_stack"])
def test_each_stack_suppresses_exactly_its_claim_certificates(stack: str, request: Any) -> None:
    deployment: Deployment = request.getfixturevalue(stack)
    claim_ids: dict[str, str] = deployment.outputs["claimCertificateIds"]
    declared = suppressions(deployment)
    assert len(set(claim_ids.values())) == 2
    assert set(declared) == set(claim_ids.values())  # one each, and no other certificate
    for generation, certificate_id in claim_ids.items():
        suppression = declared[certificate_id]
        assert suppression["region"] == REGION
        assert suppression["expires"] == EXPIRES
        assert f"generation {generation} of " in suppression["description"]


def test_only_the_owner_declares_the_account_audit(other_stack: Deployment) -> None:
    assert other_stack.mocks.of_type(AUDIT) == []
    names = {r.inputs.get("name") for r in other_stack.mocks.of_type("aws:iam/role:Role")}
    assert not {name for name in names if name and "defender" in name}


def test_the_owner_suppresses_after_its_audit_turns_the_check_on() -> None:
    # CreateAuditSuppression: the check "must be enabled for your account". Deployed here and read at
    # once: the options a later deployment records under the same names would hide these.
    owner = deploy(DEFENDER)
    for suppression in owner.mocks.of_type(SUPPRESSION):
        depends_on = owner.mocks.options[suppression.name].depends_on
        assert isinstance(depends_on, list)
        assert [type(resource) for resource in depends_on] == [DefenderAudit]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "defenderAudit needs defenderSuppressionExpires"),
        ({"defenderSuppressionExpires": "2020-01-01"}, "expected a day after today"),
        (
            {"defenderSuppressionExpires": "next year"},
            "defenderSuppressionExpires = next year: expected a day",
        ),
        ({"defenderSuppressionExpires": EXPIRES, "enableMonitoring": False}, "needs enableMonitoring"),
    ],
)
def test_bad_defender_settings_are_refused_with_what_to_set(config: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_for({"aws:region": REGION, "defenderAudit": True, **config})


def test_a_stack_without_the_account_settings_needs_no_monitoring_for_its_suppressions() -> None:
    settings = settings_for({**DEFENDER, "accountSettings": False, "enableMonitoring": False})
    assert settings.defender_audit
