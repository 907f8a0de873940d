"""The Device Defender dynamic resources' create, update and delete, against botocore's Stubber: each request
is validated against botocore's model of AWS IoT, and the calls must come in the order listed (moto has no
Device Defender audit API, nor has the emulator)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import dill
import pytest
from botocore.stub import Stubber
from pulumi.dynamic.dynamic import serialize_provider

from components import defender_provider
from components.defender_provider import (
    AccountAuditProvider,
    AuditAlreadyConfigured,
    SuppressionProvider,
)

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/p-dev-eu-west-1-defender-audit"
ALERTS_ROLE = "arn:aws:iam::123456789012:role/p-dev-eu-west-1-defender-alerts"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:p-dev-alerts"
AUDIT: dict[str, Any] = {
    "region": REGION,
    "roleArn": ROLE,
    "checks": ["LOGGING_DISABLED_CHECK", "DEVICE_CERTIFICATE_SHARED_CHECK"],
    "topicArn": TOPIC,
    "notificationRoleArn": ALERTS_ROLE,
    "scheduleName": "p-dev-daily",
    "__provider": "serialized",
}
CERTIFICATE = "ab" * 32
SUPPRESSION: dict[str, Any] = {
    "region": REGION,
    "certificateId": CERTIFICATE,
    "description": "Claim certificate of generation 1 of p-dev",
    "expires": "2027-03-01",
    "__provider": "serialized",
}
NOTIFY = {"SNS": {"targetArn": TOPIC, "roleArn": ALERTS_ROLE, "enabled": True}}


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client("iot", region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    regions: list[str] = []

    def iot_client(region: str) -> Any:
        regions.append(region)
        return client

    monkeypatch.setattr(defender_provider, "iot_client", iot_client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()
    assert set(regions) == {REGION}


def configured(checks: dict[str, bool]) -> dict[str, Any]:
    return {"auditCheckConfigurations": {name: {"enabled": on} for name, on in checks.items()}}


def expect_configuration(stub: Stubber, checks: dict[str, bool]) -> None:
    stub.add_response(
        "update_account_audit_configuration",
        {},
        {
            "roleArn": ROLE,
            "auditCheckConfigurations": {name: {"enabled": on} for name, on in checks.items()},
            "auditNotificationTargetConfigurations": NOTIFY,
        },
    )


def test_create_turns_the_checks_on_then_schedules_them_daily(stub: Stubber) -> None:
    stub.add_response("describe_account_audit_configuration", configured({"LOGGING_DISABLED_CHECK": False}))
    expect_configuration(stub, {"LOGGING_DISABLED_CHECK": True, "DEVICE_CERTIFICATE_SHARED_CHECK": True})
    stub.add_response(
        "create_scheduled_audit",
        {"scheduledAuditArn": "arn:aws:iot:eu-west-1:123456789012:scheduledaudit/p-dev-daily"},
        {"scheduledAuditName": "p-dev-daily", "frequency": "DAILY", "targetCheckNames": AUDIT["checks"]},
    )

    result = AccountAuditProvider().create(AUDIT)

    assert result.id == f"defender-audit-{REGION}"
    assert result.outs is not None and "__provider" not in result.outs
    assert result.outs["checks"] == AUDIT["checks"]


def test_create_refuses_an_audit_someone_else_configured_and_changes_nothing(stub: Stubber) -> None:
    stub.add_response(
        "describe_account_audit_configuration",
        configured(
            {"LOGGING_DISABLED_CHECK": True, "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK": True}
        ),
    )

    with pytest.raises(AuditAlreadyConfigured, match="AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK"):
        AccountAuditProvider().create(AUDIT)


def test_update_adds_checks_before_the_schedule_and_drops_them_after(stub: Stubber) -> None:
    olds = {**AUDIT, "checks": ["LOGGING_DISABLED_CHECK", "CONFLICTING_CLIENT_IDS_CHECK"]}
    expect_configuration(stub, {"LOGGING_DISABLED_CHECK": True, "DEVICE_CERTIFICATE_SHARED_CHECK": True})
    stub.add_response(
        "update_scheduled_audit",
        {"scheduledAuditArn": "arn:aws:iot:eu-west-1:123456789012:scheduledaudit/p-dev-daily"},
        {"scheduledAuditName": "p-dev-daily", "frequency": "DAILY", "targetCheckNames": AUDIT["checks"]},
    )
    expect_configuration(
        stub,
        {
            "LOGGING_DISABLED_CHECK": True,
            "DEVICE_CERTIFICATE_SHARED_CHECK": True,
            "CONFLICTING_CLIENT_IDS_CHECK": False,
        },
    )

    AccountAuditProvider().update("id", olds, AUDIT)


def test_update_with_a_new_schedule_name_creates_it_before_deleting_the_old(stub: Stubber) -> None:
    olds = {**AUDIT, "scheduleName": "old-dev-daily"}
    expect_configuration(stub, {"LOGGING_DISABLED_CHECK": True, "DEVICE_CERTIFICATE_SHARED_CHECK": True})
    stub.add_response(
        "create_scheduled_audit",
        {},
        {"scheduledAuditName": "p-dev-daily", "frequency": "DAILY", "targetCheckNames": AUDIT["checks"]},
    )
    stub.add_response("delete_scheduled_audit", {}, {"scheduledAuditName": "old-dev-daily"})

    AccountAuditProvider().update("id", olds, AUDIT)


@pytest.mark.parametrize("schedule_gone", [False, True])
def test_delete_removes_the_schedule_then_resets_the_account_audit(
    stub: Stubber, schedule_gone: bool
) -> None:
    if schedule_gone:
        stub.add_client_error(
            "delete_scheduled_audit",
            "ResourceNotFoundException",
            expected_params={"scheduledAuditName": "p-dev-daily"},
        )
    else:
        stub.add_response("delete_scheduled_audit", {}, {"scheduledAuditName": "p-dev-daily"})
    stub.add_response("delete_account_audit_configuration", {}, {"deleteScheduledAudits": False})

    AccountAuditProvider().delete("id", AUDIT)


def test_delete_reports_any_other_error(stub: Stubber) -> None:
    stub.add_client_error("delete_scheduled_audit", "ThrottlingException")

    with pytest.raises(Exception, match="ThrottlingException"):
        AccountAuditProvider().delete("id", AUDIT)


def suppression_request(**changes: Any) -> dict[str, Any]:
    return {
        "checkName": "DEVICE_CERTIFICATE_SHARED_CHECK",
        "resourceIdentifier": {"deviceCertificateId": CERTIFICATE},
        "expirationDate": datetime(2027, 3, 1, tzinfo=UTC),
        "suppressIndefinitely": False,
        "description": SUPPRESSION["description"],
    } | changes


def test_a_suppression_is_created_for_the_certificate_with_its_description_and_expiry(stub: Stubber) -> None:
    stub.add_response("create_audit_suppression", {}, suppression_request())

    result = SuppressionProvider().create(SUPPRESSION)

    assert result.id == f"DEVICE_CERTIFICATE_SHARED_CHECK:{CERTIFICATE}"


def test_a_suppression_that_already_exists_for_the_certificate_is_taken_over(stub: Stubber) -> None:
    stub.add_client_error(
        "create_audit_suppression", "ResourceAlreadyExistsException", expected_params=suppression_request()
    )
    stub.add_response("update_audit_suppression", {}, suppression_request())

    SuppressionProvider().create(SUPPRESSION)


def test_a_new_date_updates_the_suppression_in_place(stub: Stubber) -> None:
    news = {**SUPPRESSION, "expires": "2027-09-30"}
    stub.add_response(
        "update_audit_suppression", {}, suppression_request(expirationDate=datetime(2027, 9, 30, tzinfo=UTC))
    )

    diff = SuppressionProvider().diff("id", SUPPRESSION, news)
    SuppressionProvider().update("id", SUPPRESSION, news)

    assert (diff.changes, diff.replaces) == (True, [])


def test_another_certificate_replaces_the_suppression_and_nothing_changed_is_no_change() -> None:
    provider = SuppressionProvider()
    replaced = provider.diff("id", SUPPRESSION, {**SUPPRESSION, "certificateId": "cd" * 32})
    same = provider.diff("id", SUPPRESSION, {**SUPPRESSION, "__provider": "reserialized"})

    assert (replaced.changes, replaced.replaces) == (True, ["certificateId"])
    assert same.changes is False


def test_deleting_a_suppression_names_its_check_and_certificate(stub: Stubber) -> None:
    stub.add_response(
        "delete_audit_suppression",
        {},
        {
            "checkName": "DEVICE_CERTIFICATE_SHARED_CHECK",
            "resourceIdentifier": {"deviceCertificateId": CERTIFICATE},
        },
    )

    SuppressionProvider().delete("id", SUPPRESSION)


def test_refresh_reads_back_a_suppression_changed_by_hand(stub: Stubber) -> None:
    stub.add_response(
        "describe_audit_suppression",
        {
            "checkName": "DEVICE_CERTIFICATE_SHARED_CHECK",
            "resourceIdentifier": {"deviceCertificateId": CERTIFICATE},
            "expirationDate": datetime(2026, 12, 31, tzinfo=UTC),
            "description": "changed in the console",
        },
        {
            "checkName": "DEVICE_CERTIFICATE_SHARED_CHECK",
            "resourceIdentifier": {"deviceCertificateId": CERTIFICATE},
        },
    )

    result = SuppressionProvider().read("id", SUPPRESSION)

    assert result.id == "id"
    assert result.outs is not None
    assert (result.outs["expires"], result.outs["description"]) == ("2026-12-31", "changed in the console")
    assert SuppressionProvider().diff("id", result.outs, SUPPRESSION).changes  # the next up puts it back


def test_refresh_drops_a_suppression_deleted_by_hand(stub: Stubber) -> None:
    stub.add_client_error("describe_audit_suppression", "ResourceNotFoundException")

    assert SuppressionProvider().read("id", SUPPRESSION).id == ""


@pytest.mark.parametrize("provider", [AccountAuditProvider, SuppressionProvider])
def test_the_state_holds_the_provider_by_its_module_not_its_code(provider: type) -> None:
    # Pulumi stores the provider in each resource's state and runs what it loads (pulumi.dynamic): a
    # reference to components.defender_provider, so a destroy months later runs the current code.
    stored = base64.b64decode(serialize_provider(provider()))

    assert b"components.defender_provider" in stored
    assert type(dill.loads(stored)) is provider  # noqa: S301 (bytes this test made)
