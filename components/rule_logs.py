"""CloudWatch log groups that AWS IoT rules write to, the roles they write with, and the rules that invoke a
function with their failures logged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
    depends_on: Sequence[pulumi.Resource] = (),
) -> RuleLogDestination:
    """A log group with retention, and a role AWS IoT (of this account) assumes to write to it only; all
    created after ``depends_on``."""
    child = pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on))
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


@dataclass(frozen=True)
class FunctionRule:
    """A topic rule that invokes one function: the logical names of its resources, and what it says."""

    rule_name: str
    """The rule's AWS name (letters, digits, underscores)."""
    resource_name: str
    """The rule's Pulumi resource name."""
    permission_name: str
    """The Pulumi resource name of the function's invoke permission."""
    description: str
    sql: str
    errors_name: str
    """The Pulumi resource name of the rule's error log destination."""
    tags: dict[str, str] = field(default_factory=dict)


def create_function_rule(
    rule: FunctionRule,
    function: aws.lambda_.Function,
    *,
    retention_days: int,
    scope: pulumi.Output[AccountScope],
    parent: pulumi.Resource,
) -> aws.iot.TopicRule:
    """The rule, the function's permission for AWS IoT to invoke it from this rule of this account only
    (``SourceArn`` and ``SourceAccount``: cross-service confused deputy prevention), and the log group its
    error action writes failures to."""
    errors = create_rule_log_destination(
        rule.errors_name,
        log_group_name=documents.rule_errors_log_group_name(rule.rule_name),
        retention_days=retention_days,
        scope=scope,
        tags=rule.tags,
        parent=parent,
    )
    permission = aws.lambda_.Permission(
        rule.permission_name,
        action="lambda:InvokeFunction",
        function=function.name,
        principal="iot.amazonaws.com",
        source_account=scope.account_id,
        source_arn=scope.apply(lambda each: each.iot_arn(f"rule/{rule.rule_name}")),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return aws.iot.TopicRule(
        rule.resource_name,
        name=rule.rule_name,
        description=rule.description,
        enabled=True,
        sql=rule.sql,
        sql_version=documents.IOT_SQL_VERSION,
        lambdas=[aws.iot.TopicRuleLambdaArgs(function_arn=function.arn)],
        error_action=errors.error_action(),
        tags=rule.tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[permission]),
    )
