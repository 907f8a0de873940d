"""Device Defender audit as code: the account-settings owner's audit with findings to the alert topic, and
every stack's suppressions of the shared-certificate finding for its own claim certificates.

The audit configuration is one per account and region (API UpdateAccountAuditConfiguration), so only the
account-settings owner declares it. Claim certificates belong to each stack, so each stack suppresses its
own: a suppression is identified by its check and certificate (API CreateAuditSuppression), so stacks never
collide, a new claim generation adds one, a dropped generation's is deleted with it, and a device
certificate, never suppressed, still raises ``DEVICE_CERTIFICATE_SHARED_CHECK``. docs/defender-audit.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from components.defender_provider import AccountAudit, AuditSuppression
from components.documents import IAM_VERSION, AccountScope
from components.names import AccountWideNames, Role

AUDIT_CHECKS: Final = (
    "CA_CERTIFICATE_EXPIRING_CHECK",
    "CA_CERTIFICATE_KEY_QUALITY_CHECK",
    "CONFLICTING_CLIENT_IDS_CHECK",
    "DEVICE_CERTIFICATE_AGE_CHECK",
    "DEVICE_CERTIFICATE_EXPIRING_CHECK",
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
    "DEVICE_CERTIFICATE_SHARED_CHECK",
    "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK",
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
    "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK",
    "LOGGING_DISABLED_CHECK",
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK",
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
)
"""The checks that matter to a fleet provisioned by claim: its policies, logging, certificates and client
ids (Device Defender developer guide, "Audit checks"). The Cognito and role-alias checks are left off:
the program declares neither."""
AUDIT_POLICY: Final = "policy/service-role/AWSIoTDeviceDefenderAudit"
"""AWS's managed policy for the audit role: read access to IoT and related resources (AWS managed policy
reference, AWSIoTDeviceDefenderAudit)."""
ALERTS_POLICY: Final = "defender-alerts"
"""The notification role's inline policy."""


def audit_trust_policy(scope: AccountScope) -> str:
    """Trust policy of the audit and notification roles: AWS IoT, for this account and region only. Device
    Defender developer guide, "Cross-service confused deputy prevention": for the roles given to
    UpdateAccountAuditConfiguration, ``aws:SourceArn`` is ``arn:<partition>:iot:<region>:<account>:``."""
    source = f"arn:{scope.partition}:iot:{scope.region}:{scope.account_id}:"
    return json.dumps(
        {
            "Version": IAM_VERSION,
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "iot.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": scope.account_id, "aws:SourceArn": source}
                    },
                }
            ],
        },
        sort_keys=True,
    )


def alerts_policy(topic_arn: str, key_arn: str) -> str:
    """The notification role may publish to the alert topic and nothing else (Device Defender developer
    guide, "Permissions": ``sns:Publish`` on the topic), and use its KMS key as a publisher to an encrypted
    topic needs (SNS developer guide, "Data encryption": ``kms:GenerateDataKey*`` and ``kms:Decrypt``)."""
    return json.dumps(
        {
            "Version": IAM_VERSION,
            "Statement": [
                {"Sid": "PublishFindings", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn},
                {
                    "Sid": "EncryptForTheTopic",
                    "Effect": "Allow",
                    "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                    "Resource": key_arn,
                },
            ],
        },
        sort_keys=True,
    )


def scheduled_audit_name(name_prefix: str) -> str:
    """The daily scheduled audit's name (regional, like every AWS IoT name)."""
    return f"{name_prefix}-daily"


def suppression_description(name_prefix: str, generation: str) -> str:
    """Why a claim certificate's shared-certificate finding is suppressed, as AWS shows it."""
    return (
        f"Claim certificate of generation {generation} of {name_prefix}: every device of the factory line "
        "connects with it until it is provisioned, so it is shared by design. Device certificates are not "
        "suppressed. See docs/defender-audit.md"
    )


@dataclass(frozen=True)
class DefenderAuditArgs:
    """Arguments of :class:`DefenderAudit`."""

    name_prefix: str
    region: str
    alert_topic_arn: pulumi.Input[str]
    alert_key_arn: pulumi.Input[str]
    """The alert topic's KMS key: the notification role encrypts with it."""
    tags: dict[str, str] = field(default_factory=dict)


class DefenderAudit(pulumi.ComponentResource):
    """The account's audit of :data:`AUDIT_CHECKS`, a daily scheduled audit, findings to the alert topic."""

    def __init__(
        self,
        name: str,
        args: DefenderAuditArgs,
        scope: pulumi.Output[AccountScope],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("iot-fleet-provisioning:index:DefenderAudit", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names = AccountWideNames(args.name_prefix, args.region)
        trust = scope.apply(audit_trust_policy)

        def role(purpose: Role) -> aws.iam.Role:
            # One role per purpose: only the notification role may publish.
            return aws.iam.Role(
                f"{name}-{purpose.value.removeprefix('defender-')}-role",
                name=names.role(purpose),
                assume_role_policy=trust,
                tags=args.tags,
                opts=child,
            )

        audit_role = role(Role.DEFENDER_AUDIT)
        audit_access = aws.iam.RolePolicyAttachment(
            f"{name}-audit-access",
            role=audit_role.name,
            policy_arn=scope.apply(lambda account: f"arn:{account.partition}:iam::aws:{AUDIT_POLICY}"),
            opts=child,
        )
        alerts_role = role(Role.DEFENDER_ALERTS)
        alerts_access = aws.iam.RolePolicy(
            f"{name}-alerts-policy",
            name=ALERTS_POLICY,
            role=alerts_role.id,
            policy=pulumi.Output.all(args.alert_topic_arn, args.alert_key_arn).apply(
                lambda arns: alerts_policy(arns[0], arns[1])
            ),
            opts=child,
        )
        AccountAudit(
            f"{name}-configuration",
            {
                "region": args.region,
                "roleArn": audit_role.arn,
                "checks": list(AUDIT_CHECKS),
                "topicArn": args.alert_topic_arn,
                "notificationRoleArn": alerts_role.arn,
                "scheduleName": scheduled_audit_name(args.name_prefix),
            },
            # The roles and their permissions first: AWS IoT checks it may assume them when they are set.
            pulumi.ResourceOptions(parent=self, depends_on=[audit_access, alerts_access]),
        )
        self.register_outputs({})


def suppress_claim_certificates(
    name: str,
    *,
    name_prefix: str,
    region: str,
    claim_certificate_ids: Mapping[str, pulumi.Input[str]],
    expires: str,
    depends_on: list[pulumi.Resource] | None = None,
) -> list[AuditSuppression]:
    """One shared-certificate suppression for each claim generation's certificate, expiring on ``expires``
    (``YYYY-MM-DD``). ``depends_on``: the audit that turns the check on, when this stack declares it
    (a suppression's check "must be enabled for your account", API CreateAuditSuppression)."""
    props: dict[str, Any] = {"region": region, "expires": expires}
    return [
        AuditSuppression(
            f"{name}-{generation}",
            {
                **props,
                "certificateId": certificate_id,
                "description": suppression_description(name_prefix, generation),
            },
            pulumi.ResourceOptions(depends_on=list(depends_on or [])),
        )
        for generation, certificate_id in claim_certificate_ids.items()
    ]
