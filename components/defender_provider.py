"""Device Defender audit as Pulumi dynamic resources on boto3: the account's audit with its scheduled audit,
and one audit suppression.

pulumi-aws has no Device Defender audit resource, and suppressions exist only as an API
(``CreateAuditSuppression``); docs/defender-audit.md says why these are dynamic resources and not
pulumi-aws-native's. Pulumi runs a dynamic provider in its own Python process with boto3's default
credentials (not the aws provider's ``aws:profile``), so every resource carries its region. The emulator has
no Device Defender API: these resources are exercised against botocore's Stubber (tests/unit).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any, Final

import boto3
from botocore.exceptions import ClientError
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

SHARED_CERTIFICATE_CHECK: Final = "DEVICE_CERTIFICATE_SHARED_CHECK"
"""The check every claim certificate fails by design: all devices of a factory line connect with it."""
NOTIFICATION_TARGET: Final = "SNS"
"""The only audit notification target type (botocore's ``AuditNotificationType``)."""


class AuditAlreadyConfigured(RuntimeError):
    """The account and region already have audit checks on that this stack did not turn on."""


def iot_client(region: str) -> Any:
    """The AWS IoT client of one region, with boto3's default credentials."""
    return boto3.client("iot", region_name=region)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _props(inputs: dict[str, Any]) -> dict[str, Any]:
    """The resource's own inputs, without Pulumi's ``__provider``."""
    return {key: value for key, value in inputs.items() if not key.startswith("__")}


def _diff(olds: dict[str, Any], news: dict[str, Any], replace_on: frozenset[str]) -> DiffResult:
    old, new = _props(olds), _props(news)
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    return DiffResult(
        changes=bool(changed),
        replaces=[key for key in changed if key in replace_on],
        delete_before_replace=False,
    )


# --- the account's audit ----------------------------------------------------------------------------------


def enabled_checks(client: Any) -> set[str]:
    """The audit checks switched on in the client's account and region."""
    configured = client.describe_account_audit_configuration().get("auditCheckConfigurations", {})
    return {name for name, check in configured.items() if check.get("enabled")}


def configure_audit(client: Any, props: dict[str, Any], *, disable: frozenset[str] = frozenset()) -> None:
    """Turn the audit's checks on (and ``disable`` off), with its role and the SNS notification target."""
    checks = {name: {"enabled": True} for name in props["checks"]} | {
        name: {"enabled": False} for name in disable
    }
    client.update_account_audit_configuration(
        roleArn=props["roleArn"],
        auditCheckConfigurations=checks,
        auditNotificationTargetConfigurations={
            NOTIFICATION_TARGET: {
                "targetArn": props["topicArn"],
                "roleArn": props["notificationRoleArn"],
                "enabled": True,
            }
        },
    )


def create_schedule(client: Any, props: dict[str, Any]) -> None:
    """The scheduled audit running every check of the audit each day."""
    client.create_scheduled_audit(
        scheduledAuditName=props["scheduleName"],
        frequency="DAILY",
        targetCheckNames=list(props["checks"]),
    )


def delete_schedule(client: Any, name: str) -> None:
    """Delete a scheduled audit; one already gone is not an error."""
    try:
        client.delete_scheduled_audit(scheduledAuditName=name)
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException":
            raise


class AccountAuditProvider(ResourceProvider):
    """The account's Device Defender audit: its checks, role, SNS notification target and a daily scheduled
    audit of those checks. Inputs: ``region``, ``roleArn``, ``checks``, ``topicArn``,
    ``notificationRoleArn``, ``scheduleName``."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        client = iot_client(props["region"])
        foreign = enabled_checks(client) - set(props["checks"])
        if foreign:
            # Deleting this resource resets the account's whole audit configuration
            # (API DeleteAccountAuditConfiguration), so it must not take over one set up by someone else.
            raise AuditAlreadyConfigured(
                f"Device Defender audit in {props['region']} already has checks on that this stack does not "
                f"declare ({', '.join(sorted(foreign))}): its audit configuration belongs to someone else. "
                "Set defenderAudit: false, or reset it with `aws iot delete-account-audit-configuration` "
                "if nothing else needs it (docs/defender-audit.md)"
            )
        configure_audit(client, props)
        create_schedule(client, props)
        return CreateResult(f"defender-audit-{props['region']}", _props(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return _diff(olds, news, frozenset({"region"}))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Checks added are turned on before the schedule names them; checks dropped are turned off after
        it stops naming them ("You cannot disable a check if it's used by any scheduled audit", API
        UpdateAccountAuditConfiguration). A renamed schedule is created before the old one is deleted."""
        client = iot_client(news["region"])
        configure_audit(client, news)
        if olds["scheduleName"] == news["scheduleName"]:
            client.update_scheduled_audit(
                scheduledAuditName=news["scheduleName"],
                frequency="DAILY",
                targetCheckNames=list(news["checks"]),
            )
        else:
            create_schedule(client, news)
            delete_schedule(client, olds["scheduleName"])
        dropped = frozenset(olds["checks"]) - frozenset(news["checks"])
        if dropped:
            configure_audit(client, news, disable=dropped)
        return UpdateResult(_props(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Delete the schedule, then reset the account's audit: every check off, role and notification
        target removed (API DeleteAccountAuditConfiguration), as in an account that never configured it."""
        client = iot_client(props["region"])
        delete_schedule(client, props["scheduleName"])
        try:
            client.delete_account_audit_configuration(deleteScheduledAudits=False)
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise


class AccountAudit(Resource, module="defender", name="AccountAudit"):
    """The account's Device Defender audit and its daily scheduled audit (:class:`AccountAuditProvider`)."""

    def __init__(self, name: str, props: dict[str, Any], opts: Any = None) -> None:
        super().__init__(AccountAuditProvider(), name, props, opts)


# --- suppressions -----------------------------------------------------------------------------------------


def expiration(day: str) -> datetime:
    """The start (UTC) of an ISO date: when a suppression ending that day expires."""
    return datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC)


def suppression_identity(props: dict[str, Any]) -> dict[str, Any]:
    """What identifies the suppression of one certificate (API DeleteAuditSuppression takes nothing else)."""
    return {
        "checkName": SHARED_CERTIFICATE_CHECK,
        "resourceIdentifier": {"deviceCertificateId": props["certificateId"]},
    }


def suppression_request(props: dict[str, Any]) -> dict[str, Any]:
    """The shared-certificate suppression of one certificate, as ``CreateAuditSuppression`` and
    ``UpdateAuditSuppression`` take it."""
    return {
        **suppression_identity(props),
        "expirationDate": expiration(props["expires"]),
        "suppressIndefinitely": False,
        "description": props["description"],
    }


class SuppressionProvider(ResourceProvider):
    """A ``DEVICE_CERTIFICATE_SHARED_CHECK`` suppression of one certificate, with a description and an
    expiration date. Inputs: ``region``, ``certificateId``, ``description``, ``expires`` (``YYYY-MM-DD``).

    AWS identifies a suppression by its check and resource (API DeleteAuditSuppression takes nothing else),
    so the certificate is its identity: another certificate replaces it, a new description or date updates
    it. One that already exists for the certificate (state lost, a destroy that failed half-way) is taken
    over rather than failing: the certificate is this stack's own."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        client = iot_client(props["region"])
        request = suppression_request(props)
        try:
            client.create_audit_suppression(**request)
        except ClientError as error:
            if _error_code(error) != "ResourceAlreadyExistsException":
                raise
            client.update_audit_suppression(**request)
        return CreateResult(f"{SHARED_CERTIFICATE_CHECK}:{props['certificateId']}", _props(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return _diff(olds, news, frozenset({"region", "certificateId"}))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        iot_client(news["region"]).update_audit_suppression(**suppression_request(news))
        return UpdateResult(_props(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """What AWS holds (``pulumi refresh``): a suppression changed by hand shows its description and day,
        one deleted by hand is gone from the state, and the next ``pulumi up`` puts either back."""
        try:
            found = iot_client(props["region"]).describe_audit_suppression(**suppression_identity(props))
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
            return ReadResult("", {})
        expires = found.get("expirationDate")
        return ReadResult(
            id_,
            _props(props)
            | {
                "description": found.get("description", ""),
                "expires": expires.astimezone(UTC).date().isoformat() if expires else "",
            },
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # DeleteAuditSuppression lists no not-found error (botocore's model): any error is reported.
        iot_client(props["region"]).delete_audit_suppression(**suppression_identity(props))


class AuditSuppression(Resource, module="defender", name="AuditSuppression"):
    """One shared-certificate suppression (:class:`SuppressionProvider`)."""

    def __init__(self, name: str, props: dict[str, Any], opts: Any = None) -> None:
        super().__init__(SuppressionProvider(), name, props, opts)
