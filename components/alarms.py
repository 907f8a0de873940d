"""The stack's alarms as data: which metric, statistic, period and threshold each watches, and why.

Pure functions of the monitored names (:func:`alarm_specs`); :class:`~components.monitoring.Monitoring`
declares them, and ``tests/stack/test_alarm_semantics.py`` evaluates them as CloudWatch would against the
functions' real metric output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import pulumi

from hook.contract import (
    CLAIM_CERTIFICATE_DIMENSION,
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
BREAKER_ITERATOR_AGE_LIMIT_MS = 60_000
"""The claim-breaker function is more than a minute behind the registry's stream: its trips come that late
(docs/claim-certificate.md gives about a second)."""
HOOK_DURATION_LIMIT_MS = 4000
"""Alarm when the hook's p99 nears AWS IoT's 5-second wait."""
REGISTRY_OPERATIONS = ("GetItem", "UpdateItem", "TransactWriteItems", "Query")
"""The registry operations the functions make; DynamoDB reports SystemErrors per operation."""


@dataclass(frozen=True)
class MonitoredNames:
    """What the alarms and the dashboard watch."""

    hook_function: pulumi.Input[str]
    activation_function: pulumi.Input[str]
    registry_table: pulumi.Input[str] | None
    """None outside a global fleet's registry region: a CloudWatch alarm watches metrics of its own region
    only, so the registry region's stack alarms on the table."""
    template: pulumi.Input[str]
    thing_created_rule: pulumi.Input[str]
    retirement_function: pulumi.Input[str] | None
    """None outside the registry region, which alone follows the table's stream."""
    retirement_failures_queue: pulumi.Input[str] | None
    """The retirement mapping's on-failure queue: each message is a batch of registry changes given up on."""
    claim_certificates: Mapping[str, pulumi.Input[str]]
    """Claim certificate ids by generation: each has its own abuse alarm."""
    claim_breaker_function: pulumi.Input[str] | None
    """The function that counts approvals per claim certificate and trips their breakers; None outside the
    registry region."""
    metrics_namespace: str
    """The stack's namespace of the functions' metrics (:func:`hook.contract.metrics_namespace`)."""


@dataclass(frozen=True)
class MetricRef:
    """One CloudWatch metric: namespace, name and dimensions."""

    namespace: str
    name: str
    dimensions: dict[str, pulumi.Input[str] | None]
    """``None`` for a resource the stack does not have: :func:`alarm_specs` leaves its alarms out."""
    query_id: str = ""
    """Its name in the alarm's ``expression``; ``m<index>`` when not given."""

    @property
    def given_dimensions(self) -> dict[str, pulumi.Input[str]]:
        """The dimensions with a value: all of them in every alarm :func:`alarm_specs` returns."""
        return {key: value for key, value in self.dimensions.items() if value is not None}


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
    names: MonitoredNames, alarm_threshold: int, claim_budgets: Mapping[str, int]
) -> list[AlarmSpec]:
    """Every alarm of the stack, as data: those on a resource the stack watches (not ``None``);
    ``claim_budgets``: approvals per hour, by claim generation."""

    def aws_lambda(metric: str, function: pulumi.Input[str] | None) -> MetricRef:
        return MetricRef("AWS/Lambda", metric, {"FunctionName": function})

    def registry(metric: str, **dimensions: pulumi.Input[str] | None) -> MetricRef:
        return MetricRef("AWS/DynamoDB", metric, {"TableName": names.registry_table, **dimensions})

    def approvals_through(claim_certificate_id: pulumi.Input[str]) -> MetricRef:
        return MetricRef(
            names.metrics_namespace,
            Metric.PROVISIONING_APPROVED,
            {SERVICE_DIMENSION: Service.HOOK, CLAIM_CERTIFICATE_DIMENSION: claim_certificate_id},
        )

    def stream_lag(name: str, description: str, function: pulumi.Input[str] | None, limit: int) -> AlarmSpec:
        # IteratorAge: "for event source mappings that read from streams, the age of the last record in the
        # event", in milliseconds, per FunctionName; Maximum shows the worst lag.
        # https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
        return AlarmSpec(
            name,
            description,
            (aws_lambda("IteratorAge", function),),
            limit,
            statistic="Maximum",
            comparison="GreaterThanThreshold",
        )

    def key_binding_rejected(service: Service) -> MetricRef:
        return MetricRef(names.metrics_namespace, Metric.KEY_BINDING_REJECTED, {SERVICE_DIMENSION: service})

    hook_rejections = MetricRef(
        names.metrics_namespace, Metric.PROVISIONING_REJECTED, {SERVICE_DIMENSION: Service.HOOK}
    )

    specs = [
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
        # Counted by the hook for PublicKeyMismatch, PublicKeyNotRegistered and CertificateUnreadable, and for
        # zero-touch's Vendor* reasons (hook/contract.py KEY_BINDING_REJECTIONS): never a device's honest
        # mistake. The rotation function's count has its own alarm, so a rotation's attempt at another key
        # raises a notification of its own whatever the hook's alarm is doing.
        AlarmSpec(
            "key-binding-rejected",
            "A certificate did not carry the key registered or vendor-attested for its serial: someone "
            "holding the claim certificate tries a serial with another key or a chain no pinned vendor root "
            "signed, or a factory manifest has a wrong or missing key (the hook's WARNING logs name the "
            "serial and the reason)",
            (key_binding_rejected(Service.HOOK),),
            1,
        ),
        # Counted once per serial and rotation job (the job's one attempt, hook/rotation_attempts.py), and
        # only for an open execution: one device, even one whose certificate was stolen, adds at most one
        # per job an operator created for it, so it cannot keep this alarm in ALARM on its own.
        AlarmSpec(
            "rotation-key-binding-rejected",
            "A rotation CSR of a device with a registered key carried another key: whoever holds the "
            "device's certificate tries to move the serial to a key of their own (the rotation function's "
            "WARNING log names the serial and the job)",
            (key_binding_rejected(Service.CERTIFICATE_ROTATION),),
            1,
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
                f"More than {claim_budgets[generation]} approvals in an hour through claim certificate "
                f"{generation}: more than the factories make, has it leaked? (its breaker trips at this "
                "budget too: see claim-breaker-tripped)",
                (approvals_through(certificate_id),),
                claim_budgets[generation],
                period=CLAIM_ABUSE_PERIOD_SECONDS,
                comparison="GreaterThanThreshold",
            )
            for generation, certificate_id in names.claim_certificates.items()
        ),
        # Counted once by the claim-breaker function for each breaker it opens (hook/claim_breaker_trip.py).
        AlarmSpec(
            "claim-breaker-tripped",
            "A claim certificate's breaker tripped: approvals through it passed its generation's budget and "
            "the hook now denies its requests (ClaimSuspended). `fleetctl claim status` says which, when "
            "and why; `fleetctl claim resume` after checking (docs/claim-certificate.md)",
            (
                MetricRef(
                    names.metrics_namespace,
                    Metric.CLAIM_BREAKER_TRIPPED,
                    {SERVICE_DIMENSION: Service.CLAIM_BREAKER},
                ),
            ),
            1,
        ),
        # A failed invocation is retried (its batch counted again); one still failing after the retries is
        # skipped, and its approvals are never counted: the breaker then trips late.
        AlarmSpec(
            "claim-breaker-errors",
            "The claim-breaker function failed: approvals may go uncounted and a breaker trip late",
            (aws_lambda("Errors", names.claim_breaker_function),),
            1,
        ),
        # A breaker behind the stream (throttled, failing) counts late, so trips late; approvals go on.
        stream_lag(
            "claim-breaker-iterator-age",
            "The claim-breaker function is more than a minute behind the device registry's stream (throttled "
            "or failing): approvals are counted late and a breaker past its budget trips that much later",
            names.claim_breaker_function,
            BREAKER_ITERATOR_AGE_LIMIT_MS,
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
        # The rotation function counts a rotation job's failed attempt once per serial and job (refused after
        # the job was reserved, or reported failed by the device) with its service dimension alone, and once
        # more per Reason; refusals a device can repeat at will (malformed, no open execution, not its
        # current certificate) count RotationStepRefused instead, which no alarm watches. CloudWatch's
        # statistics have no distinct count; Contributor Insights' UniqueContributors has one (CloudWatch API
        # reference, GetInsightRuleReport) but needs a rule on the function's logs, which the alarm tests
        # cannot evaluate. So the count itself is made distinct: a Sum is a number of (serial, job) pairs, and
        # one device adds at most one per job an operator created for it.
        AlarmSpec(
            "rotation-failed",
            "A rotation job's attempt failed on a device (counted once per serial and job): the rotation "
            "function refused its CSR (bad CSR, registry changed meanwhile) or the device reported that the "
            "rotation failed; the device keeps its current certificate and needs a new job (rotate resume)",
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
        stream_lag(
            "retirement-iterator-age",
            "The certificate retirement function is more than an hour behind the device registry's stream "
            "(throttled, failing or stuck on a record): certificates the registry dropped are not being "
            "retired, and changes older than 24 hours leave the stream unretired",
            names.retirement_function,
            RETIREMENT_ITERATOR_AGE_LIMIT_MS,
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
    return [
        spec
        for spec in specs
        if all(value is not None for metric in spec.metrics for value in metric.dimensions.values())
    ]


def rule_failures_query(rule_name: str) -> str:
    """Metrics Insights query: ``AWS/IoT`` ``Failure`` of a rule's actions, whatever their ``ActionType``."""
    if not re.fullmatch(r"\w+", rule_name):  # AWS IoT rule names are letters, digits and underscores
        raise ValueError(f"not an AWS IoT rule name: {rule_name!r}")
    return f"SELECT SUM(Failure) FROM \"AWS/IoT\" WHERE RuleName = '{rule_name}'"  # noqa: S608
