"""Monitoring: alarms on provisioning failures, slowness and abuse, an encrypted alert topic, a dashboard.

The alarms are data (:mod:`components.alarms`) and the dashboard's body a pure function
(:mod:`components.dashboard`); this component declares them with the topic they notify.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components import documents
from components.alarms import AlarmSpec, MonitoredNames, alarm_specs
from components.dashboard import FleetView, dashboard_body
from components.documents import AccountScope
from components.names import AccountWideNames


@dataclass(frozen=True)
class MonitoringArgs:
    """Arguments of :class:`Monitoring`."""

    name_prefix: str
    names: MonitoredNames
    fleet: FleetView
    """The fleet the dashboard shows beside this region."""
    alarm_threshold: int
    """Failures in five minutes that raise the failure alarms."""
    max_provisioning_per_hour: int
    """Approvals through one claim certificate in an hour above which claim abuse is alarmed."""
    alert_email: str = ""
    tags: dict[str, str] = field(default_factory=dict)


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
            policy=scope.apply(documents.alert_key_policy),
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
            policy=pulumi.Output.all(scope, topic.arn).apply(
                lambda values: documents.alert_topic_policy(values[0], values[1])
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
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            # Dashboards are account-wide (components/names.py): the name carries the region.
            dashboard_name=scope.apply(
                lambda account: AccountWideNames(args.name_prefix, account.region).dashboard
            ),
            dashboard_body=dashboard_body(
                args.names, scope.apply(lambda account: account.region), args.fleet
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
    if len(spec.metrics) == 1 and spec.expression is None:
        [metric] = spec.metrics
        return aws.cloudwatch.MetricAlarm(
            resource_name,
            namespace=metric.namespace,
            metric_name=metric.name,
            dimensions=metric.given_dimensions,
            period=spec.period,
            statistic=None if percentile else spec.statistic,
            extended_statistic=spec.statistic if percentile else None,
            **common,
        )
    ids = [metric.query_id or f"m{index}" for index, metric in enumerate(spec.metrics)]
    queries = [
        aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=query_id,
            return_data=False,
            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace=metric.namespace,
                metric_name=metric.name,
                dimensions=metric.given_dimensions,
                period=spec.period,
                stat=spec.statistic,
            ),
        )
        for query_id, metric in zip(ids, spec.metrics, strict=True)
    ]
    if spec.expression is None:
        # FILL(.., 0), as in register-thing-failed: "DynamoDB only sends metrics to CloudWatch when they
        # have a non-zero value", so a period with write throttles alone has no datapoint for reads.
        # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/dynamo-metricscollected.html
        total = " + ".join(f"FILL({query_id}, 0)" for query_id in ids)
        queries.append(
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="total", expression=total, label=spec.name, return_data=True
            )
        )
    else:
        # A Metrics Insights query has no metric queries to take a period from, so it carries its own
        # (pulumi-aws MetricAlarmMetricQueryArgs.period); a math expression takes its metrics' period.
        queries.append(
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="result",
                expression=spec.expression,
                label=spec.name,
                period=None if spec.metrics else spec.period,
                return_data=True,
            )
        )
    return aws.cloudwatch.MetricAlarm(resource_name, metric_queries=queries, **common)
