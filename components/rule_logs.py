"""CloudWatch log groups that AWS IoT rules write to, and the roles they write with."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import documents
from components.documents import AccountScope


@dataclass(frozen=True)
class RuleLogDestination:
    """Where an IoT rule action (or error action) sends its messages."""

    log_group: aws.cloudwatch.LogGroup
    role: aws.iam.Role

    def error_action(self) -> aws.iot.TopicRuleErrorActionArgs:
        """A rule's error action writing here."""
        return aws.iot.TopicRuleErrorActionArgs(
            cloudwatch_logs=aws.iot.TopicRuleErrorActionCloudwatchLogsArgs(
                log_group_name=self.log_group.name, role_arn=self.role.arn
            )
        )


def create_rule_log_destination(
    name: str,
    *,
    log_group_name: str,
    retention_days: int,
    scope: pulumi.Output[AccountScope],
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> RuleLogDestination:
    """A log group with retention, and a role AWS IoT (of this account) assumes to write to it only."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs", name=log_group_name, retention_in_days=retention_days, tags=tags, opts=child
    )
    role = aws.iam.Role(
        f"{name}-role",
        assume_role_policy=scope.apply(
            lambda account: documents.service_trust_policy("iot.amazonaws.com", account.account_id)
        ),
        tags=tags,
        opts=child,
    )
    aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=log_group.arn.apply(lambda arn: documents.log_writer_policy(arn, documents.RULE_LOG_ACTIONS)),
        opts=child,
    )
    return RuleLogDestination(log_group, role)
