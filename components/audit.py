"""AuditTrail: AWS IoT's own logs, and a log of every registry and lifecycle event."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import documents
from components.documents import AccountScope
from components.lifecycle import IOT_SQL_VERSION
from components.rule_logs import create_rule_log_destination

IOT_LOG_GROUP = "AWSIotLogsV2"
"""The log group AWS IoT v2 logging writes to (one per account and region)."""
IOT_LOG_LEVEL = "ERROR"
"""Failures only: provisioning and policy errors with their reasons, without a line per MQTT message."""
AUDIT_SQL = "SELECT *, topic() AS topic, timestamp() AS receivedAt FROM '$aws/events/#'"


@dataclass(frozen=True)
class AuditTrailArgs:
    """Arguments of :class:`AuditTrail`."""

    name_prefix: str
    log_retention_days: int
    """Retention of AWS IoT's logs and of the audit rule's error log."""
    audit_log_retention_days: int
    """Retention of the audit log of registry and lifecycle events."""
    tags: dict[str, str] = field(default_factory=dict)


class AuditTrail(pulumi.ComponentResource):
    """AWS IoT v2 logging with its own role, and a rule copying ``$aws/events/#`` to an audit log group."""

    audit_log_group_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: AuditTrailArgs,
        scope: pulumi.Output[AccountScope],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("iot-fleet-provisioning:index:AuditTrail", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Declared so that it has a retention; it is per account and region, like the logging options.
        iot_logs = aws.cloudwatch.LogGroup(
            f"{name}-iot-logs",
            name=IOT_LOG_GROUP,
            retention_in_days=args.log_retention_days,
            tags=args.tags,
            opts=child,
        )
        logging_role = aws.iam.Role(
            f"{name}-iot-logging-role",
            name=f"{args.name_prefix}-iot-logging",
            assume_role_policy=scope.apply(
                lambda account: documents.service_trust_policy("iot.amazonaws.com", account.account_id)
            ),
            tags=args.tags,
            opts=child,
        )
        logging_policy = aws.iam.RolePolicy(
            f"{name}-iot-logging-policy",
            role=logging_role.id,
            policy=iot_logs.arn.apply(lambda arn: documents.function_role_policy(arn, [])),
            opts=child,
        )
        aws.iot.LoggingOptions(
            f"{name}-iot-logging",
            default_log_level=IOT_LOG_LEVEL,
            role_arn=logging_role.arn,
            disable_all_logs=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logging_policy]),
        )

        rule_name = f"{args.name_prefix.replace('-', '_')}_audit"
        audit = create_rule_log_destination(
            f"{name}-audit",
            log_group_name=f"/aws/iot/{args.name_prefix}/audit",
            retention_days=args.audit_log_retention_days,
            scope=scope,
            tags=args.tags,
            parent=self,
        )
        errors = create_rule_log_destination(
            f"{name}-audit-errors",
            log_group_name=f"/aws/iot/rules/{rule_name}/errors",
            retention_days=args.log_retention_days,
            scope=scope,
            tags=args.tags,
            parent=self,
        )
        aws.iot.TopicRule(
            f"{name}-audit-rule",
            name=rule_name,
            description="Copies every registry and lifecycle event to the audit log",
            enabled=True,
            sql=AUDIT_SQL,
            sql_version=IOT_SQL_VERSION,
            cloudwatch_logs=[
                aws.iot.TopicRuleCloudwatchLogArgs(
                    log_group_name=audit.log_group.name, role_arn=audit.role.arn
                )
            ],
            error_action=aws.iot.TopicRuleErrorActionArgs(
                cloudwatch_logs=aws.iot.TopicRuleErrorActionCloudwatchLogsArgs(
                    log_group_name=errors.log_group.name, role_arn=errors.role.arn
                )
            ),
            tags=args.tags,
            opts=child,
        )
        self.audit_log_group_name = audit.log_group.name
        self.register_outputs({"audit_log_group_name": self.audit_log_group_name})
