"""Monitoring: alarms on provisioning failures, slowness and abuse, an encrypted alert topic, a dashboard."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_aws as aws

from components import documents
from components.documents import AccountScope
from hook.contract import (
    CLAIM_CERTIFICATE_DIMENSION,
    REASON_DIMENSION,
    REGISTRY_INDEXES,
    SERVICE_DIMENSION,
    Metric,
    Service,
)

PERIOD_SECONDS = 300
CLAIM_ABUSE_PERIOD_SECONDS = 3600
STALE_APPROVALS_PERIOD_SECONDS = 900
"""The stale-approvals function runs every 15 minutes: each period holds one of its reports."""
ROTATION_FAILED_PERIOD_SECONDS = 3600
"""Rotations are rare (a job at a time): one failure in an hour is worth a look."""
RETIREMENT_FAILED_PERIOD_SECONDS = 3600
"""Retirements are as rare as rotations, revocations and re-provisionings: one failure in an hour is worth a
look (a certificate the registry dropped may still be active)."""
RETIREMENT_ITERATOR_AGE_LIMIT_MS = 3_600_000
"""The retirement function is more than an hour behind the registry's stream (which keeps 24 hours)."""
HOOK_DURATION_LIMIT_MS = 4000
"""Alarm when the hook's p99 nears AWS IoT's 5-second wait."""
REGISTRY_OPERATIONS = ("GetItem", "UpdateItem", "TransactWriteItems", "Query")
"""The registry operations the functions make; DynamoDB reports SystemErrors per operation."""


@dataclass(frozen=True)
class MonitoredNames:
    """What the alarms and the dashboard watch."""

    hook_function: pulumi.Input[str]
    activation_function: pulumi.Input[str]
    registry_table: pulumi.Input[str]
    template: pulumi.Input[str]
    thing_created_rule: pulumi.Input[str]
    retirement_function: pulumi.Input[str]
    retirement_failures_queue: pulumi.Input[str]
    """The retirement mapping's on-failure queue: each message is a batch of registry changes given up on."""
    claim_certificates: Mapping[str, pulumi.Input[str]]
    """Claim certificate ids by generation: each has its own abuse alarm."""
    metrics_namespace: str
    """The stack's namespace of the functions' metrics (:func:`hook.contract.metrics_namespace`)."""


@dataclass(frozen=True)
class MonitoringArgs:
    """Arguments of :class:`Monitoring`."""

    name_prefix: str
    names: MonitoredNames
    alarm_threshold: int
    """Failures in five minutes that raise the failure alarms."""
    max_provisioning_per_hour: int
    """Approvals through one claim certificate in an hour above which claim abuse is alarmed."""
    alert_email: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricRef:
    """One CloudWatch metric: namespace, name and dimensions."""

    namespace: str
    name: str
    dimensions: dict[str, pulumi.Input[str]]
    query_id: str = ""
    """Its name in the alarm's ``expression``; ``m<index>`` when not given."""


@dataclass(frozen=True)
class AlarmSpec:
    """An alarm on one metric; on the sum of several (``metrics`` longer than one, no ``expression``); on a
    metric math ``expression`` over ``metrics``; or on a Metrics Insights query (``expression``, no
    ``metrics``)."""

    name: str
    description: str
    metrics: tuple[MetricRef, ...]
    threshold: float
    statistic: str = "Sum"
    """``Sum``, ``Maximum``, ... or a percentile such as ``p99``."""
    period: int = PERIOD_SECONDS
    comparison: str = "GreaterThanOrEqualToThreshold"
    expression: pulumi.Input[str] | None = None


def alarm_specs(
    names: MonitoredNames, alarm_threshold: int, max_provisioning_per_hour: int
) -> list[AlarmSpec]:
    """Every alarm of the stack, as data."""

    def aws_lambda(metric: str, function: pulumi.Input[str]) -> MetricRef:
        return MetricRef("AWS/Lambda", metric, {"FunctionName": function})

    def registry(metric: str, **dimensions: pulumi.Input[str]) -> MetricRef:
        return MetricRef("AWS/DynamoDB", metric, {"TableName": names.registry_table, **dimensions})

    def approvals_through(claim_certificate_id: pulumi.Input[str]) -> MetricRef:
        return MetricRef(
            names.metrics_namespace,
            Metric.PROVISIONING_APPROVED,
            {SERVICE_DIMENSION: Service.HOOK, CLAIM_CERTIFICATE_DIMENSION: claim_certificate_id},
        )

    hook_rejections = MetricRef(
        names.metrics_namespace, Metric.PROVISIONING_REJECTED, {SERVICE_DIMENSION: Service.HOOK}
    )

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
        # Counted by the hook for PublicKeyMismatch, PublicKeyNotRegistered and CertificateUnreadable, and
        # by the rotation function for a CSR of another key: never a device's honest mistake. FILL(.., 0), as
        # in register-thing-failed: a period with only one function's count has no datapoint for the other.
        AlarmSpec(
            "key-binding-rejected",
            "A certificate or CSR did not carry the key registered for its serial: someone holding the "
            "claim certificate (or a device's) tries a serial with another key, or a factory manifest has a "
            "wrong or missing key (the hook's and the rotation function's WARNING logs name the serial)",
            tuple(
                MetricRef(
                    names.metrics_namespace, Metric.KEY_BINDING_REJECTED, {SERVICE_DIMENSION: service}, query
                )
                for service, query in ((Service.HOOK, "hook"), (Service.CERTIFICATE_ROTATION, "rotation"))
            ),
            1,
            expression="FILL(hook, 0) + FILL(rotation, 0)",
        ),
        AlarmSpec(
            "provisioning-rejected",
            "The hook denied provisioning requests: devices sent bad or unknown parameters, or the registry "
            "or the rules were unavailable (see the dashboard for the reasons)",
            (hook_rejections,),
            alarm_threshold,
        ),
        # A RegisterThing the hook denies fails with ACCESS_DENIED and counts in RegisterThingFailed too, so
        # that metric alone would fire with provisioning-rejected for the same denials. RegisterThingFailed
        # is emitted with 1 on failure and 0 on success, so its Sum counts failures; taking away the hook's
        # denials in the same period leaves the failures the hook did not cause. FILL(.., 0): a period with
        # failures and no denial (or the reverse) has no datapoint for the other metric.
        # https://docs.aws.amazon.com/iot/latest/developerguide/metrics_dimensions.html (RegisterThingFailed)
        AlarmSpec(
            "register-thing-failed",
            "RegisterThing failed for reasons other than the hook's denials (which provisioning-rejected "
            "counts): template, provisioning role or IoT policy problems, or the hook timing out",
            (
                MetricRef("AWS/IoT", "RegisterThingFailed", {"TemplateName": names.template}, "failed"),
                replace(hook_rejections, query_id="rejected"),
            ),
            alarm_threshold,
            expression="FILL(failed, 0) - FILL(rejected, 0)",
        ),
        # AWS/IoT ApproximateNumberOfThingsRegistered is a running total ("the count of things that have
        # been registered"), so an hourly Sum of it passes any threshold for good once the fleet is large:
        # the hook counts its approvals per claim certificate instead, and an hour's Sum is a rate.
        # https://docs.aws.amazon.com/iot/latest/developerguide/metrics_dimensions.html (provisioning metrics)
        *(
            AlarmSpec(
                f"claim-abuse-{generation}",
                f"More than {max_provisioning_per_hour} approvals in an hour through claim certificate "
                f"{generation}: more than the factories make, has it leaked?",
                (approvals_through(certificate_id),),
                max_provisioning_per_hour,
                period=CLAIM_ABUSE_PERIOD_SECONDS,
                comparison="GreaterThanThreshold",
            )
            for generation, certificate_id in names.claim_certificates.items()
        ),
        # The TableName dimension alone counts the table's throttles, not its indexes': each index's have its
        # GlobalSecondaryIndexName too, and an index that cannot keep up throttles the table's writes.
        # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/dynamo-metricscollected.html
        AlarmSpec(
            "registry-throttles",
            "The device registry or one of its indexes throttled reads or writes",
            tuple(
                registry(metric, **index)
                for index in ({}, *({"GlobalSecondaryIndexName": name} for name in REGISTRY_INDEXES))
                for metric in ("ReadThrottleEvents", "WriteThrottleEvents")
            ),
            1,
        ),
        AlarmSpec(
            "registry-system-errors",
            "DynamoDB returned system errors for the device registry",
            tuple(registry("SystemErrors", Operation=operation) for operation in REGISTRY_OPERATIONS),
            1,
        ),
        # AWS documents no list of ActionType values ("the action type specified by the rule that triggered
        # the request"), so the alarm must not name one: a Metrics Insights query sums Failure over every
        # dimension set that carries this rule's name (its one action invokes the activation function).
        # Alarms on a Metrics Insights query that returns a single time series are supported:
        # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Create_Metrics_Insights_Alarm.html
        AlarmSpec(
            "activation-rule-failures",
            "The thing-created rule could not invoke the activation function",
            (),
            1,
            expression=pulumi.Output.from_input(names.thing_created_rule).apply(rule_failures_query),
        ),
        AlarmSpec(
            "activation-errors",
            "The activation function failed: devices stay PENDING and their shadow is not initialised",
            (aws_lambda("Errors", names.activation_function),),
            alarm_threshold,
        ),
        AlarmSpec(
            "thing-events-disabled",
            "Thing registry events are off in this account and region: approved devices can never become "
            "ACTIVE (see accountSettings in the README)",
            (
                MetricRef(
                    names.metrics_namespace,
                    Metric.THING_EVENTS_DISABLED,
                    {SERVICE_DIMENSION: Service.STALE_APPROVALS},
                ),
            ),
            1,
            statistic="Maximum",
            period=STALE_APPROVALS_PERIOD_SECONDS,
        ),
        # The rotation function counts each refused or failed step once with its service dimension alone
        # (and once more per Reason, which the dashboard can break down), as the hook counts rejections.
        AlarmSpec(
            "rotation-failed",
            "A certificate rotation step failed: the rotation function refused a device's request (bad CSR, "
            "not its current certificate, not ACTIVE) or a device reported that its new certificate did not "
            "work; the device keeps its current certificate",
            (
                MetricRef(
                    names.metrics_namespace,
                    Metric.CERTIFICATE_ROTATION_FAILED,
                    {SERVICE_DIMENSION: Service.CERTIFICATE_ROTATION},
                ),
            ),
            1,
            period=ROTATION_FAILED_PERIOD_SECONDS,
        ),
        # Counted once for every stream record whose retirement raised, retried or not: the failures that
        # Lambda retries and the ones it finally gives up on alike.
        AlarmSpec(
            "retirement-failed",
            "Certificates the registry no longer holds could not be revoked or detached (see the retirement "
            "function's ERROR logs): a replaced, revoked or decommissioned device's certificate may still be "
            "active. Lambda retries the change a few times, then records it in the retirement failures queue",
            (
                MetricRef(
                    names.metrics_namespace,
                    Metric.CERTIFICATE_RETIREMENT_FAILED,
                    {SERVICE_DIMENSION: Service.CERTIFICATE_RETIREMENT},
                ),
            ),
            1,
            period=RETIREMENT_FAILED_PERIOD_SECONDS,
        ),
        # IteratorAge: "for event source mappings that read from streams, the age of the last record in the
        # event", in milliseconds, per FunctionName; Maximum shows the worst lag.
        # https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
        AlarmSpec(
            "retirement-iterator-age",
            "The certificate retirement function is more than an hour behind the device registry's stream "
            "(throttled, failing or stuck on a record): certificates the registry dropped are not being "
            "retired, and changes older than 24 hours leave the stream unretired",
            (aws_lambda("IteratorAge", names.retirement_function),),
            RETIREMENT_ITERATOR_AGE_LIMIT_MS,
            statistic="Maximum",
            comparison="GreaterThanThreshold",
        ),
        # Each message is Lambda's record of a batch it stopped retrying (shard and sequence numbers, not
        # the changes): those certificates were never retired. Alarmed while any message waits.
        # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html
        AlarmSpec(
            "retirement-failures-queued",
            "Lambda gave up retiring the certificates of some registry changes and recorded each batch "
            "(stream sequence numbers) in the retirement failures queue: find the serials in the retirement "
            "function's ERROR logs, revoke and detach the certificates their items no longer hold, then "
            "delete the messages",
            (
                MetricRef(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    {"QueueName": names.retirement_failures_queue},
                ),
            ),
            0,
            statistic="Maximum",
            comparison="GreaterThanThreshold",
        ),
    ]


def rule_failures_query(rule_name: str) -> str:
    """Metrics Insights query: ``AWS/IoT`` ``Failure`` of a rule's actions, whatever their ``ActionType``."""
    if not re.fullmatch(r"\w+", rule_name):  # AWS IoT rule names are letters, digits and underscores
        raise ValueError(f"not an AWS IoT rule name: {rule_name!r}")
    return f"SELECT SUM(Failure) FROM \"AWS/IoT\" WHERE RuleName = '{rule_name}'"  # noqa: S608


def dashboard_body(names: MonitoredNames, region: pulumi.Input[str]) -> pulumi.Output[str]:
    """The provisioning dashboard: decisions, reasons, hook latency, approvals per claim certificate and
    activations, registry errors, stale approvals. Sorted JSON, once the names it shows are known."""

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
        f'SEARCH(\'{{"{names.metrics_namespace}",{REASON_DIMENSION},{SERVICE_DIMENSION}}} '
        f"MetricName=\"{Metric.PROVISIONING_REJECTED}\"', 'Sum', {PERIOD_SECONDS})"
    )
    widgets = [
        widget(
            "Approvals and rejections",
            [
                [names.metrics_namespace, Metric.PROVISIONING_APPROVED.value, *_flat(hook)],
                [names.metrics_namespace, Metric.PROVISIONING_REJECTED.value, *_flat(hook)],
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
            "Approvals per claim certificate, and activations",
            [
                *(
                    [
                        names.metrics_namespace,
                        Metric.PROVISIONING_APPROVED.value,
                        *_flat(hook),
                        CLAIM_CERTIFICATE_DIMENSION,
                        certificate_id,
                        {"label": f"Approved through claim certificate {generation}"},
                    ]
                    for generation, certificate_id in names.claim_certificates.items()
                ),
                [
                    names.metrics_namespace,
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
                    names.metrics_namespace,
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
    return pulumi.Output.json_dumps({"widgets": widgets}, sort_keys=True)


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
            dashboard_name=f"{args.name_prefix}-provisioning",
            dashboard_body=dashboard_body(args.names, scope.apply(lambda account: account.region)),
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
            dimensions=metric.dimensions,
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
                dimensions=metric.dimensions,
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
