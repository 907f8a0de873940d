"""Activation wiring, monitoring and log retention, as the program declares them (Pulumi mocks)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.alarms import rule_failures_query
from components.claim_breaker import budgets_document
from tests.pulumi_mocks import ACCOUNT_ID, Build, Declared, Deployment, comparable

REGION = "us-east-1"
BASE = "iot-provisioning-dev"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{BASE}-alerts"
CLAIM_ID = "0" * 63 + "1"
TABLE = f"{BASE}-device-registry"
NAMESPACE = f"IoTFleetProvisioning/{BASE}"
"""The stack's own metrics namespace: another stack's hook in the account never counts here."""


@pytest.fixture(scope="module")
def dev(build: Build) -> Deployment:
    return build({"aws:region": REGION, "alertEmail": "ops@example.com", "alarmThreshold": 7})


def named(deployment: Deployment, typ: str, name: str) -> Declared:
    [resource] = [r for r in deployment.mocks.of_type(typ) if r.inputs.get("name") == name]
    return resource


def alarms(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {
        alarm.inputs["name"].removeprefix(f"{BASE}-"): alarm.inputs
        for alarm in deployment.mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }


# --- activation wiring ---------------------------------------------------------------------------------


def test_thing_created_rule_invokes_the_activation_function_for_this_stacks_things(dev: Deployment) -> None:
    rule = named(dev, "aws:iot/topicRule:TopicRule", "iot_provisioning_dev_thing_created")
    expected = f"SELECT * FROM '$aws/events/thing/+/created' WHERE startswith(thingName, '{BASE}_')"  # noqa: S608
    assert rule.inputs["sql"] == expected
    assert rule.inputs["sqlVersion"] == "2016-03-23"
    assert rule.inputs["lambdas"] == [
        {"functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{BASE}-device-activation"}
    ]
    errors = rule.inputs["errorAction"]["cloudwatchLogs"]
    assert errors["logGroupName"] == "/aws/iot/rules/iot_provisioning_dev_thing_created/errors"
    [permission] = [
        p
        for p in dev.mocks.of_type("aws:lambda/permission:Permission")
        if p.inputs["function"] == f"{BASE}-device-activation"
    ]
    assert permission.inputs["principal"] == "iot.amazonaws.com"
    assert (
        permission.inputs["sourceArn"]
        == f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:rule/iot_provisioning_dev_thing_created"
    )


def role_statements(deployment: Deployment, role: str) -> list[dict[str, Any]]:
    [policy] = [
        p
        for p in deployment.mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == f"{role}-id"
    ]
    statements: list[dict[str, Any]] = json.loads(policy.inputs["policy"])["Statement"]
    return statements


def test_activation_role_reads_and_activates_the_registry_and_writes_only_this_stacks_shadows(
    dev: Deployment,
) -> None:
    """And reads no certificate: AWS IoT's all expire 2049-12-31 (hook/activation.py)."""
    logs, registry, shadow = role_statements(dev, f"{BASE}-{REGION}-activation")
    assert logs["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert registry == {
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
        "Resource": [f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE}"],
    }
    assert shadow == {
        "Effect": "Allow",
        "Action": ["iot:UpdateThingShadow"],
        "Resource": [f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:thing/{BASE}_*"],
    }


def test_stale_approvals_function_may_only_query_the_status_index_and_read_event_switches(
    dev: Deployment,
) -> None:
    _, query, events = role_statements(dev, f"{BASE}-{REGION}-stale-approvals")
    assert query["Action"] == ["dynamodb:Query"]
    assert query["Resource"] == [f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE}/index/byStatusShard"]
    assert events == {"Effect": "Allow", "Action": ["iot:DescribeEventConfigurations"], "Resource": ["*"]}
    schedule = dev.mocks.one("aws:cloudwatch/eventRule:EventRule")
    assert schedule.inputs["scheduleExpression"] == "rate(15 minutes)"
    target = dev.mocks.one("aws:cloudwatch/eventTarget:EventTarget")
    assert target.inputs["arn"].endswith(f"function:{BASE}-stale-approvals")


def test_activation_package_carries_each_types_initial_shadow(build: Build) -> None:
    deployment = build(
        {
            "aws:region": REGION,
            "initialShadow": {"telemetryIntervalSeconds": 120},
            "deviceTypes": ["gateway", {"name": "meter", "initialShadow": {"valve": "closed"}}],
        }
    )
    [activation] = [
        f
        for f in deployment.mocks.of_type("aws:lambda/function:Function")
        if f.inputs["name"] == f"{BASE}-device-activation"
    ]
    assert activation.inputs["handler"] == "hook.activation.lambda_handler"
    config = json.loads(activation.inputs["code"].assets["hook/activation.json"].text)
    assert config == {
        "thingNamePrefix": BASE,
        "initialShadows": {"gateway": {"telemetryIntervalSeconds": 120}, "meter": {"valve": "closed"}},
    }
    assert (
        activation.inputs["environment"]["variables"]["IOT_DATA_ENDPOINT"]
        == f"https://abc123-ats.iot.{REGION}.amazonaws.com"
    )


# --- monitoring ----------------------------------------------------------------------------------------

GE = "GreaterThanOrEqualToThreshold"
GT = "GreaterThanThreshold"
SINGLE_METRIC_ALARMS = {
    # name: (namespace, metric, dimensions, statistic, threshold, period, comparison)
    "hook-errors": ("AWS/Lambda", "Errors", {"FunctionName": f"{BASE}-provisioning-hook"}, "Sum", 7, 300, GE),
    "hook-throttles": (
        "AWS/Lambda",
        "Throttles",
        {"FunctionName": f"{BASE}-provisioning-hook"},
        "Sum",
        1,
        300,
        GE,
    ),
    "hook-duration-p99": (
        "AWS/Lambda",
        "Duration",
        {"FunctionName": f"{BASE}-provisioning-hook"},
        "p99",
        4000,
        300,
        GT,
    ),
    "provisioning-rejected": (
        NAMESPACE,
        "ProvisioningRejected",
        {"service": "provisioning-hook"},
        "Sum",
        7,
        300,
        GE,
    ),
    "claim-abuse-1": (
        NAMESPACE,
        "ProvisioningApproved",
        {"service": "provisioning-hook", "ClaimCertificateId": CLAIM_ID},
        "Sum",
        100,
        3600,
        GT,
    ),
    "activation-errors": (
        "AWS/Lambda",
        "Errors",
        {"FunctionName": f"{BASE}-device-activation"},
        "Sum",
        7,
        300,
        GE,
    ),
    "thing-events-disabled": (
        NAMESPACE,
        "ThingEventsDisabled",
        {"service": "stale-approvals"},
        "Maximum",
        1,
        900,
        GE,
    ),
    # The hook's and the rotation function's key-binding denials each raise their own alarm.
    "key-binding-rejected": (
        NAMESPACE,
        "KeyBindingRejected",
        {"service": "provisioning-hook"},
        "Sum",
        1,
        300,
        GE,
    ),
    "rotation-key-binding-rejected": (
        NAMESPACE,
        "KeyBindingRejected",
        {"service": "certificate-rotation"},
        "Sum",
        1,
        300,
        GE,
    ),
    "rotation-failed": (
        NAMESPACE,
        "CertificateRotationFailed",
        {"service": "certificate-rotation"},
        "Sum",
        1,
        3600,
        GE,
    ),
    "retirement-failed": (
        NAMESPACE,
        "CertificateRetirementFailed",
        {"service": "certificate-retirement"},
        "Sum",
        1,
        3600,
        GE,
    ),
    "retirement-iterator-age": (
        "AWS/Lambda",
        "IteratorAge",
        {"FunctionName": f"{BASE}-certificate-retirement"},
        "Maximum",
        3_600_000,
        300,
        GT,
    ),
    "claim-breaker-tripped": (
        NAMESPACE,
        "ClaimBreakerTripped",
        {"service": "claim-breaker"},
        "Sum",
        1,
        300,
        GE,
    ),
    "claim-breaker-errors": (
        "AWS/Lambda",
        "Errors",
        {"FunctionName": f"{BASE}-claim-breaker"},
        "Sum",
        1,
        300,
        GE,
    ),
    "claim-breaker-iterator-age": (
        "AWS/Lambda",
        "IteratorAge",
        {"FunctionName": f"{BASE}-claim-breaker"},
        "Maximum",
        60_000,
        300,
        GT,
    ),
    "retirement-failures-queued": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": f"{BASE}-certificate-retirement-failures"},
        "Maximum",
        0,
        300,
        GT,
    ),
}
QUERY_ALARMS = {
    "registry-throttles",
    "registry-system-errors",
    "register-thing-failed",
    "activation-rule-failures",
}


@pytest.mark.parametrize("name", sorted(SINGLE_METRIC_ALARMS))
def test_alarm_watches_its_metric_and_notifies_the_alert_topic(dev: Deployment, name: str) -> None:
    namespace, metric, dimensions, statistic, threshold, period, comparison = SINGLE_METRIC_ALARMS[name]
    alarm = alarms(dev)[name]
    assert (alarm["namespace"], alarm["metricName"], alarm["dimensions"]) == (namespace, metric, dimensions)
    assert alarm.get("extendedStatistic" if statistic.startswith("p") else "statistic") == statistic
    assert (alarm["threshold"], alarm["period"], alarm["evaluationPeriods"]) == (threshold, period, 1)
    assert alarm["comparisonOperator"] == comparison
    assert alarm["alarmActions"] == alarm["okActions"] == [TOPIC]
    assert alarm["treatMissingData"] == "notBreaching"


@pytest.mark.parametrize(
    ("name", "metrics", "total_expression"),
    [
        (
            "registry-throttles",
            [
                (metric, index)
                for index in (
                    {},
                    {"GlobalSecondaryIndexName": "byStatusShard"},
                    {"GlobalSecondaryIndexName": "byTypeShard"},
                )
                for metric in ("ReadThrottleEvents", "WriteThrottleEvents")
            ],
            " + ".join(f"FILL(m{number}, 0)" for number in range(6)),
        ),
        (
            "registry-system-errors",
            [
                ("SystemErrors", {"Operation": op})
                for op in ("GetItem", "UpdateItem", "TransactWriteItems", "Query")
            ],
            "FILL(m0, 0) + FILL(m1, 0) + FILL(m2, 0) + FILL(m3, 0)",
        ),
    ],
)
def test_registry_alarms_sum_their_metrics_counting_a_missing_one_as_zero(
    dev: Deployment, name: str, metrics: list[tuple[str, dict[str, str]]], total_expression: str
) -> None:
    alarm = alarms(dev)[name]
    *queries, total = alarm["metricQueries"]
    assert [(q["metric"]["metricName"], q["metric"]["dimensions"]) for q in queries] == [
        (metric, {"TableName": TABLE, **dimensions}) for metric, dimensions in metrics
    ]
    assert all(q["metric"]["namespace"] == "AWS/DynamoDB" and q["returnData"] is False for q in queries)
    assert total == {
        "id": "total",
        "expression": total_expression,
        "label": name,
        "returnData": True,
    }
    assert (alarm["threshold"], alarm["alarmActions"], alarm["okActions"]) == (1, [TOPIC], [TOPIC])


def test_register_thing_failed_counts_only_the_failures_the_hook_did_not_cause(dev: Deployment) -> None:
    alarm = alarms(dev)["register-thing-failed"]
    assert alarm["metricQueries"] == [
        {
            "id": "failed",
            "returnData": False,
            "metric": {
                "namespace": "AWS/IoT",
                "metricName": "RegisterThingFailed",
                "dimensions": {"TemplateName": f"{BASE}-fleet"},
                "period": 300,
                "stat": "Sum",
            },
        },
        {
            "id": "rejected",
            "returnData": False,
            "metric": {
                "namespace": NAMESPACE,
                "metricName": "ProvisioningRejected",
                "dimensions": {"service": "provisioning-hook"},
                "period": 300,
                "stat": "Sum",
            },
        },
        {
            "id": "result",
            "expression": "FILL(failed, 0) - FILL(rejected, 0)",
            "label": "register-thing-failed",
            "returnData": True,
        },
    ]
    assert (alarm["threshold"], alarm["comparisonOperator"], alarm["evaluationPeriods"]) == (7, GE, 1)
    assert (alarm["alarmActions"], alarm["okActions"], alarm["treatMissingData"]) == (
        [TOPIC],
        [TOPIC],
        "notBreaching",
    )
    assert "other than the hook's denials" in alarm["alarmDescription"]
    assert "provisioning-rejected" in alarm["alarmDescription"]


def test_activation_rule_failures_are_counted_by_rule_whatever_the_action_type(dev: Deployment) -> None:
    alarm = alarms(dev)["activation-rule-failures"]
    assert alarm["metricQueries"] == [
        {
            "id": "result",
            "expression": "SELECT SUM(Failure) FROM \"AWS/IoT\" WHERE RuleName = 'iot_provisioning_dev_thing_created'",
            "period": 300,
            "label": "activation-rule-failures",
            "returnData": True,
        }
    ]
    assert "ActionType" not in json.dumps(alarm)
    assert (alarm["threshold"], alarm["comparisonOperator"], alarm["evaluationPeriods"]) == (1, GE, 1)
    assert (alarm["alarmActions"], alarm["okActions"], alarm["treatMissingData"]) == (
        [TOPIC],
        [TOPIC],
        "notBreaching",
    )


@pytest.mark.parametrize("name", ["", "rule' OR RuleName != '", "my-rule", 'a"b'])
def test_rule_failures_query_refuses_what_is_not_a_rule_name(name: str) -> None:
    with pytest.raises(ValueError, match="not an AWS IoT rule name"):
        rule_failures_query(name)


def test_thing_events_disabled_alarm_says_what_it_means(dev: Deployment) -> None:
    assert alarms(dev)["thing-events-disabled"]["alarmDescription"] == (
        "Thing registry events are off in this account and region: approved devices can never become "
        "ACTIVE (see accountSettings in the README)"
    )


def test_there_are_exactly_the_documented_alarms(dev: Deployment) -> None:
    assert set(alarms(dev)) == set(SINGLE_METRIC_ALARMS) | QUERY_ALARMS


def test_alert_topic_is_encrypted_with_a_key_cloudwatch_may_use(dev: Deployment) -> None:
    key = dev.mocks.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    administer, alarms_use = json.loads(key.inputs["policy"])["Statement"]
    assert administer["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    assert alarms_use == {
        "Sid": "CloudWatchAlarmsEncryptAlerts",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
    }
    topic = dev.mocks.one("aws:sns/topic:Topic")
    assert topic.inputs["kmsMasterKeyId"].endswith(f"key/{key.name}")
    assert "alias/aws/sns" not in json.dumps(topic.inputs)
    [publish] = json.loads(dev.mocks.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])["Statement"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Action"] == "sns:Publish"
    assert publish["Condition"]["ArnLike"] == {
        "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:*"
    }


def test_alert_email_subscribes_only_when_set(dev: Deployment, build: Build) -> None:
    [subscription] = dev.mocks.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert subscription.inputs == {"topic": TOPIC, "protocol": "email", "endpoint": "ops@example.com"}
    assert not build({"aws:region": REGION}).mocks.of_type("aws:sns/topicSubscription:TopicSubscription")


def test_dashboard_shows_decisions_reasons_latency_registrations_errors_and_stale_approvals(
    dev: Deployment,
) -> None:
    body = json.loads(dev.mocks.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    widgets = {widget["properties"]["title"]: widget["properties"] for widget in body["widgets"]}
    assert set(widgets) == {
        "Approvals and rejections",
        "Rejections by reason",
        "Hook duration (ms)",
        "Approvals per claim certificate, and activations",
        "Registry errors",
        "Stale PENDING approvals (older than 1 hour)",
        "Fleet: approvals and rejections by region",
    }
    metrics = {title: json.dumps(properties["metrics"]) for title, properties in widgets.items()}
    assert "ProvisioningApproved" in metrics["Approvals and rejections"]
    assert "Reason" in metrics["Rejections by reason"] and "SEARCH(" in metrics["Rejections by reason"]
    assert f'\\"{NAMESPACE}\\"' in metrics["Rejections by reason"]
    assert '"p50"' in metrics["Hook duration (ms)"] and '"p99"' in metrics["Hook duration (ms)"]
    assert widgets["Approvals per claim certificate, and activations"]["metrics"][0] == [
        NAMESPACE,
        "ProvisioningApproved",
        "service",
        "provisioning-hook",
        "ClaimCertificateId",
        CLAIM_ID,
        {"label": "Approved through claim certificate 1"},
    ]
    assert "ApproximateNumberOfThingsRegistered" not in json.dumps(body)
    assert "StalePendingApprovals" in metrics["Stale PENDING approvals (older than 1 hour)"]
    assert all(properties["region"] == REGION for properties in widgets.values())


# --- log retention and optional features ---------------------------------------------------------------


def test_every_log_group_has_a_retention(build: Build) -> None:
    deployment = build({"aws:region": REGION, "logRetentionDays": 14, "auditLogRetentionDays": 731})
    retention = {
        g.inputs["name"]: g.inputs.get("retentionInDays")
        for g in deployment.mocks.of_type("aws:cloudwatch/logGroup:LogGroup")
    }
    assert retention.pop(f"/aws/iot/{BASE}/audit") == 731
    assert set(retention.values()) == {14}
    assert len(retention) >= 6


@pytest.mark.parametrize(
    ("key", "component", "switched"),
    [
        ("enableMonitoring", "monitoring", set()),
        # Off, the owner declares AWS IoT logging disabled instead of leaving it as it was.
        ("enableAuditLogging", "account", {("aws:iot/loggingOptions:LoggingOptions", "account-iot-logging")}),
    ],
)
def test_turning_a_feature_off_removes_exactly_its_resources(
    key: str, component: str, switched: set[tuple[str, str]], build: Build
) -> None:
    on = build({"aws:region": REGION})
    off = build({"aws:region": REGION, key: False})
    declared_on = {(r.type, r.name): comparable(r.inputs) for r in on.mocks.resources}
    declared_off = {(r.type, r.name): comparable(r.inputs) for r in off.mocks.resources}
    removed = set(declared_on) - set(declared_off)
    assert set(declared_off) < set(declared_on)
    assert removed
    assert all(name == component or name.startswith(f"{component}-") for _, name in removed)
    assert {key_ for key_ in declared_off if declared_off[key_] != declared_on[key_]} == switched


def test_claim_breaker_reads_the_registry_stream_and_writes_only_the_registry_table(dev: Deployment) -> None:
    _, stream, list_streams, registry = role_statements(dev, f"{BASE}-{REGION}-claim-breaker")
    assert stream["Action"] == ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
    assert list_streams == {"Effect": "Allow", "Action": ["dynamodb:ListStreams"], "Resource": ["*"]}
    assert registry == {
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
        "Resource": [f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE}"],
        "Condition": {
            "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["claimBreaker#*", "claimApprovals#*"]}
        },
    }
    [mapping] = [
        m
        for m in dev.mocks.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
        if m.inputs["functionName"].endswith(f"function:{BASE}-claim-breaker")
    ]
    assert mapping.inputs["startingPosition"] == "LATEST"
    [pattern] = [json.loads(f["pattern"]) for f in mapping.inputs["filterCriteria"]["filters"]]
    assert pattern == {"dynamodb": {"NewImage": {"claimCertificateId": {"S": [{"exists": True}]}}}}


def test_each_generations_budget_reaches_its_breaker_and_its_claim_abuse_alarm(build: Build) -> None:
    deployment = build({"aws:region": REGION, "maxProvisioningPerHour": 50, "claimCertificates": ["1"]})
    function = named(deployment, "aws:lambda/function:Function", f"{BASE}-claim-breaker")
    budgets = json.loads(function.inputs["environment"]["variables"]["CLAIM_BUDGETS"])
    alarm = alarms(deployment)["claim-abuse-1"]
    assert budgets == {alarm["dimensions"]["ClaimCertificateId"]: 50} and alarm["threshold"] == 50
    # The mocks give every certificate one id: the mapping of several is checked on its own.
    assert json.loads(budgets_document({"old": "a" * 64, "new": "b" * 64}, {"old": 50, "new": 4000})) == {
        "a" * 64: 50,
        "b" * 64: 4000,
    }
