"""Monitoring: alarms on provisioning failures, slowness and abuse, an encrypted alert topic, a dashboard."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.documents import IAM_VERSION, AccountScope
from hook.contract import METRICS_NAMESPACE, REASON_DIMENSION, SERVICE_DIMENSION, Metric, Service

PERIOD_SECONDS = 300
HOOK_DURATION_LIMIT_MS = 4000
"""Alarm when the hook's p99 nears AWS IoT's 5-second wait."""
REGISTRY_OPERATIONS = ("GetItem", "UpdateItem", "Query")
"""The registry operations the functions make; DynamoDB reports SystemErrors per operation."""


@dataclass(frozen=True)
class MonitoredNames:
    """What the alarms and the dashboard watch."""

    hook_function: pulumi.Input[str]
    activation_function: pulumi.Input[str]
    registry_table: pulumi.Input[str]
    template: pulumi.Input[str]
    thing_created_rule: pulumi.Input[str]
    claim_certificates: Mapping[str, pulumi.Input[str]]
    """Claim certificate ids by generation: each has its own abuse alarm."""


@dataclass(frozen=True)
class MonitoringArgs:
    """Arguments of :class:`Monitoring`."""

    name_prefix: str
    names: MonitoredNames
    alarm_threshold: int
    """Failures in five minutes that raise the failure alarms."""
    max_provisioning_per_hour: int
    """Things registered through the claim certificate in an hour above which claim abuse is alarmed."""
    alert_email: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricRef:
    """One CloudWatch metric: namespace, name and dimensions."""

    namespace: str
    name: str
    dimensions: dict[str, pulumi.Input[str]]


@dataclass(frozen=True)
class AlarmSpec:
    """An alarm: on one metric, or on the sum of several (``metrics`` longer than one)."""

    name: str
    description: str
    metrics: tuple[MetricRef, ...]
    threshold: float
    statistic: str = "Sum"
    """``Sum``, ``Maximum``, ... or a percentile such as ``p99``."""
    period: int = PERIOD_SECONDS
    comparison: str = "GreaterThanOrEqualToThreshold"


def alarm_specs(
    names: MonitoredNames, alarm_threshold: int, max_provisioning_per_hour: int
) -> list[AlarmSpec]:
    """Every alarm of the stack, as data."""

    def aws_lambda(metric: str, function: pulumi.Input[str]) -> MetricRef:
        return MetricRef("AWS/Lambda", metric, {"FunctionName": function})

    def registry(metric: str, **dimensions: pulumi.Input[str]) -> MetricRef:
        return MetricRef("AWS/DynamoDB", metric, {"TableName": names.registry_table, **dimensions})

    return [
        AlarmSpec(
            "hook-errors",
            "The pre-provisioning hook failed or timed out",
            (aws_lambda("Errors", names.hook_function),),
            alarm_threshold,
        ),
        AlarmSpec(
            "hook-throttles",
            "The hook was throttled: devices are being denied",
            (aws_lambda("Throttles", names.hook_function),),
            1,
        ),
        AlarmSpec(
            "hook-duration-p99",
            f"The hook's p99 duration is above {HOOK_DURATION_LIMIT_MS} ms; AWS IoT waits 5 s at most",
            (aws_lambda("Duration", names.hook_function),),
            HOOK_DURATION_LIMIT_MS,
            statistic="p99",
            comparison="GreaterThanThreshold",
        ),
        AlarmSpec(
            "provisioning-rejected",
            "The hook rejected provisioning requests (see the dashboard for the reasons)",
            (MetricRef(METRICS_NAMESPACE, Metric.PROVISIONING_REJECTED, {SERVICE_DIMENSION: Service.HOOK}),),
            alarm_threshold,
        ),
        AlarmSpec(
            "register-thing-failed",
            "RegisterThing failed after the hook (template, role or policy problems)",
            (MetricRef("AWS/IoT", "RegisterThingFailed", {"TemplateName": names.template}),),
            alarm_threshold,
        ),
        *(
            AlarmSpec(
                f"claim-abuse-{generation}",
                f"More things registered through claim certificate {generation} than factories make: leaked?",
                (
                    MetricRef(
                        "AWS/IoT",
                        "ApproximateNumberOfThingsRegistered",
                        {"ClaimCertificateId": certificate_id},
                    ),
                ),
                max_provisioning_per_hour,
                period=3600,
                comparison="GreaterThanThreshold",
            )
            for generation, certificate_id in names.claim_certificates.items()
        ),
        AlarmSpec(
            "registry-throttles",
            "The device registry throttled reads or writes",
            (registry("ReadThrottleEvents"), registry("WriteThrottleEvents")),
            1,
        ),
        AlarmSpec(
            "registry-system-errors",
            "DynamoDB returned system errors for the device registry",
            tuple(registry("SystemErrors", Operation=operation) for operation in REGISTRY_OPERATIONS),
            1,
        ),
        AlarmSpec(
            "activation-rule-failures",
            "The thing-created rule could not invoke the activation function",
            (
                MetricRef(
                    "AWS/IoT", "Failure", {"RuleName": names.thing_created_rule, "ActionType": "Lambda"}
                ),
            ),
            1,
        ),
        AlarmSpec(
            "activation-errors",
            "The activation function failed: devices stay PENDING and their shadow is not initialised",
            (aws_lambda("Errors", names.activation_function),),
            alarm_threshold,
        ),
    ]


def alert_key_policy(account_id: str, partition: str) -> str:
    """Key policy of the alert topic's key: the account administers it; CloudWatch alarms of this account
    may encrypt messages with it (they cannot publish to a topic under ``alias/aws/sns``)."""
    return json.dumps(
        {
            "Version": IAM_VERSION,
            "Statement": [
                {
                    "Sid": "AccountAdministersTheKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchAlarmsEncryptAlerts",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ],
        },
        sort_keys=True,
    )


def alert_topic_policy(topic_arn: str, scope: AccountScope) -> str:
    """Topic policy: only this account's CloudWatch alarms may publish."""
    alarms = f"arn:{scope.partition}:cloudwatch:{scope.region}:{scope.account_id}:alarm:*"
    return json.dumps(
        {
            "Version": IAM_VERSION,
            "Statement": [
                {
                    "Sid": "CloudWatchAlarmsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": scope.account_id},
                        "ArnLike": {"aws:SourceArn": alarms},
                    },
                }
            ],
        },
        sort_keys=True,
    )


def dashboard_body(names: MonitoredNames, region: str) -> str:
    """The provisioning dashboard: decisions, reasons, hook latency, things registered, registry errors,
    stale approvals."""

    def widget(
        title: str, metrics: list[list[Any]], stat: str = "Sum", y: int = 0, x: int = 0
    ) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "stat": stat,
                "period": PERIOD_SECONDS,
                "metrics": metrics,
            },
        }

    hook = {SERVICE_DIMENSION: Service.HOOK.value}
    by_reason = (
        f"SEARCH('{{{METRICS_NAMESPACE},{REASON_DIMENSION},{SERVICE_DIMENSION}}} "
        f"MetricName=\"{Metric.PROVISIONING_REJECTED}\"', 'Sum', {PERIOD_SECONDS})"
    )
    widgets = [
        widget(
            "Approvals and rejections",
            [
                [METRICS_NAMESPACE, Metric.PROVISIONING_APPROVED.value, *_flat(hook)],
                [METRICS_NAMESPACE, Metric.PROVISIONING_REJECTED.value, *_flat(hook)],
            ],
        ),
        widget("Rejections by reason", [[{"expression": by_reason, "id": "reasons", "label": ""}]], x=12),
        widget(
            "Hook duration (ms)",
            [
                ["AWS/Lambda", "Duration", "FunctionName", names.hook_function, {"stat": "p50"}],
                ["AWS/Lambda", "Duration", "FunctionName", names.hook_function, {"stat": "p99"}],
            ],
            stat="p99",
            y=6,
        ),
        widget(
            "Things registered and activated",
            [
                *(
                    ["AWS/IoT", "ApproximateNumberOfThingsRegistered", "ClaimCertificateId", certificate_id]
                    for certificate_id in names.claim_certificates.values()
                ),
                [
                    METRICS_NAMESPACE,
                    Metric.DEVICE_ACTIVATED.value,
                    SERVICE_DIMENSION,
                    Service.ACTIVATION.value,
                ],
            ],
            y=6,
            x=12,
        ),
        widget(
            "Registry errors",
            [
                ["AWS/DynamoDB", "ReadThrottleEvents", "TableName", names.registry_table],
                ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", names.registry_table],
                *(
                    [
                        "AWS/DynamoDB",
                        "SystemErrors",
                        "TableName",
                        names.registry_table,
                        "Operation",
                        operation,
                    ]
                    for operation in REGISTRY_OPERATIONS
                ),
            ],
            y=12,
        ),
        widget(
            "Stale PENDING approvals (older than 1 hour)",
            [
                [
                    METRICS_NAMESPACE,
                    Metric.STALE_PENDING_APPROVALS.value,
                    SERVICE_DIMENSION,
                    Service.STALE_APPROVALS.value,
                ]
            ],
            stat="Maximum",
            y=12,
            x=12,
        ),
    ]
    return json.dumps({"widgets": widgets}, sort_keys=True)


def _flat(dimensions: dict[str, str]) -> list[str]:
    return [part for pair in dimensions.items() for part in pair]


class Monitoring(pulumi.ComponentResource):
    """Alarms with alarm and OK actions to a KMS-encrypted SNS topic, and the provisioning dashboard."""

    alert_topic_arn: pulumi.Output[str]
    dashboard_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: MonitoringArgs,
        scope: pulumi.Output[AccountScope],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("iot-fleet-provisioning:index:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(
            f"{name}-alerts-key",
            description=f"Encrypts the {args.name_prefix} provisioning alerts topic",
            enable_key_rotation=True,
            policy=scope.apply(lambda s: alert_key_policy(s.account_id, s.partition)),
            tags=args.tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-alerts-key-alias",
            name=f"alias/{args.name_prefix}-alerts",
            target_key_id=key.id,
            opts=child,
        )
        topic = aws.sns.Topic(
            f"{name}-alerts",
            name=f"{args.name_prefix}-alerts",
            kms_master_key_id=key.arn,
            tags=args.tags,
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, scope).apply(
                lambda values: alert_topic_policy(values[0], values[1])
            ),
            opts=child,
        )
        if args.alert_email:
            aws.sns.TopicSubscription(
                f"{name}-alerts-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.alert_email,
                opts=child,
            )
        for spec in alarm_specs(args.names, args.alarm_threshold, args.max_provisioning_per_hour):
            _create_alarm(
                f"{name}-{spec.name}",
                f"{args.name_prefix}-{spec.name}",
                spec,
                topic_arn=topic.arn,
                tags=args.tags,
                parent=self,
            )
        resolved_names = pulumi.Output.all(
            claim_certificates=pulumi.Output.all(**args.names.claim_certificates),
            **{key: value for key, value in vars(args.names).items() if key != "claim_certificates"},
        ).apply(lambda values: MonitoredNames(**values))
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"{args.name_prefix}-provisioning",
            dashboard_body=pulumi.Output.all(resolved_names, scope).apply(
                lambda values: dashboard_body(values[0], values[1].region)
            ),
            opts=child,
        )
        self.alert_topic_arn = topic.arn
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs(
            {"alert_topic_arn": self.alert_topic_arn, "dashboard_name": self.dashboard_name}
        )


def _create_alarm(
    resource_name: str,
    alarm_name: str,
    spec: AlarmSpec,
    *,
    topic_arn: pulumi.Output[str],
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> aws.cloudwatch.MetricAlarm:
    """One alarm that notifies the topic when it fires and when it recovers."""
    percentile = spec.statistic.startswith("p")
    common: dict[str, Any] = {
        "name": alarm_name,
        "alarm_description": spec.description,
        "threshold": spec.threshold,
        "comparison_operator": spec.comparison,
        "evaluation_periods": 1,
        "treat_missing_data": "notBreaching",
        "alarm_actions": [topic_arn],
        "ok_actions": [topic_arn],
        "tags": tags,
        "opts": pulumi.ResourceOptions(parent=parent),
    }
    if len(spec.metrics) == 1:
        [metric] = spec.metrics
        return aws.cloudwatch.MetricAlarm(
            resource_name,
            namespace=metric.namespace,
            metric_name=metric.name,
            dimensions=metric.dimensions,
            period=spec.period,
            statistic=None if percentile else spec.statistic,
            extended_statistic=spec.statistic if percentile else None,
            **common,
        )
    queries = [
        aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=f"m{index}",
            return_data=False,
            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace=metric.namespace,
                metric_name=metric.name,
                dimensions=metric.dimensions,
                period=spec.period,
                stat=spec.statistic,
            ),
        )
        for index, metric in enumerate(spec.metrics)
    ]
    total = " + ".join(f"m{index}" for index in range(len(queries)))
    queries.append(
        aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id="total", expression=total, label=spec.name, return_data=True
        )
    )
    return aws.cloudwatch.MetricAlarm(resource_name, metric_queries=queries, **common)
