"""Account-wide AWS IoT settings: one owner per account and region, and several stacks side by side."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from hook.contract import METRICS_NAMESPACE_ENV, metrics_namespace, metrics_namespace_from_environment
from tests.pulumi_mocks import ACCOUNT_ID, Build, Declared, Deployment, stack_config

REGION = "us-east-1"
BASE = "iot-provisioning-dev"
ACCOUNT_WIDE = (
    "aws:iot/eventConfigurations:EventConfigurations",
    "aws:iot/loggingOptions:LoggingOptions",
)
"""Resource types that are one setting per account and region, whatever their name."""
EVERY_EVENT_TYPE = {
    "THING",
    "THING_GROUP",
    "THING_TYPE",
    "THING_GROUP_MEMBERSHIP",
    "THING_GROUP_HIERARCHY",
    "THING_TYPE_ASSOCIATION",
    "JOB",
    "JOB_EXECUTION",
    "POLICY",
    "CERTIFICATE",
    "CA_CERTIFICATE",
}
"""Every event type of AWS IoT's UpdateEventConfigurations API."""


@pytest.fixture(scope="module")
def owner(build: Build) -> Deployment:
    return build({"aws:region": REGION})


def named(deployment: Deployment, typ: str, name: str) -> Declared:
    [resource] = [r for r in deployment.mocks.of_type(typ) if r.inputs.get("name") == name]
    return resource


def document(resource: Declared, key: str = "policy") -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(resource.inputs[key])
    return parsed


def test_owner_declares_every_event_type_with_thing_events_on(owner: Deployment) -> None:
    # The provider reads every event type back (terraform-provider-aws iot/event_configurations.go), so an
    # undeclared one would show as a change on every preview.
    declared = event_switches(owner)
    assert declared == {event_type: event_type == "THING" for event_type in EVERY_EVENT_TYPE}


def event_switches(deployment: Deployment) -> dict[str, bool]:
    switches: dict[str, bool] = deployment.mocks.one(
        "aws:iot/eventConfigurations:EventConfigurations"
    ).inputs["eventConfigurations"]
    return switches


def test_owner_switches_on_the_event_types_config_names_and_off_the_others(build: Build) -> None:
    # The owner sets all eleven switches of the account and region: other workloads' event types are on
    # only when config says so.
    deployment = build({"aws:region": REGION, "accountEventTypes": ["JOB", "THING", "JOB_EXECUTION"]})
    declared = event_switches(deployment)
    assert {kind for kind, enabled in declared.items() if enabled} == {"JOB", "JOB_EXECUTION", "THING"}
    assert set(declared) == EVERY_EVENT_TYPE


def test_the_account_settings_keep_the_resources_the_audit_trail_component_created(owner: Deployment) -> None:
    # Renamed from AuditTrail("audit"): without the alias, `pulumi up` on an existing stack would create
    # AWSIotLogsV2, the logging role and the audit rule again beside the old ones and fail on their names.
    [component] = [
        r for r in owner.mocks.resources if r.type == "iot-fleet-provisioning:index:AccountSettings"
    ]
    aliases = owner.mocks.options[component.name].aliases or []
    assert [(alias.name, alias.type_) for alias in aliases] == [  # type: ignore[union-attr]
        ("audit", "iot-fleet-provisioning:index:AuditTrail")
    ]


def test_iot_logging_writes_to_the_account_group_with_a_role_that_outlives_the_stack(
    owner: Deployment,
) -> None:
    group = named(owner, "aws:cloudwatch/logGroup:LogGroup", "AWSIotLogsV2")
    role = named(owner, "aws:iam/role:Role", f"{BASE}-{REGION}-iot-logging")
    logging = owner.mocks.one("aws:iot/loggingOptions:LoggingOptions")
    assert logging.inputs["defaultLogLevel"] == "ERROR"
    assert logging.inputs["disableAllLogs"] is False
    assert logging.inputs["roleArn"].endswith(f"role/{BASE}-{REGION}-iot-logging")
    # Deleting LoggingOptions does nothing on AWS: destroying the stack must not leave logging pointing at
    # a deleted role, nor drop the logs.
    [policy] = [
        p
        for p in owner.mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == f"{role.inputs['name']}-id"
    ]
    assert group.retain_on_delete and role.retain_on_delete and policy.retain_on_delete
    [statement] = document(policy)["Statement"]
    group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:AWSIotLogsV2"
    assert statement["Action"] == [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
    ]
    assert statement["Resource"] == [group_arn, f"{group_arn}:*"]


def test_every_rule_log_destination_may_do_what_the_cloudwatch_logs_action_needs(owner: Deployment) -> None:
    rules = owner.mocks.of_type("aws:iot/topicRule:TopicRule")
    destinations = [
        action
        for rule in rules
        for action in [*rule.inputs.get("cloudwatchLogs", []), rule.inputs["errorAction"]["cloudwatchLogs"]]
    ]
    # The audit log, and the error logs of the audit, thing-created and certificate rotation rules.
    assert len(destinations) == 4
    policies = {p.inputs["role"]: document(p) for p in owner.mocks.of_type("aws:iam/rolePolicy:RolePolicy")}
    for destination in destinations:
        role_name = destination["roleArn"].rsplit("/", 1)[1]
        [statement] = policies[f"{role_name}-id"]["Statement"]
        assert statement["Action"] == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
        assert statement["Resource"] == [
            f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{destination['logGroupName']}:*"
        ]


def test_audit_rule_over_every_account_event_belongs_to_the_owner(owner: Deployment, build: Build) -> None:
    rule = named(owner, "aws:iot/topicRule:TopicRule", "iot_provisioning_dev_audit")
    assert rule.inputs["sql"] == "SELECT *, topic() AS topic, timestamp() AS receivedAt FROM '$aws/events/#'"
    assert rule.inputs["cloudwatchLogs"][0]["logGroupName"] == f"/aws/iot/{BASE}/audit"
    assert (
        named(owner, "aws:cloudwatch/logGroup:LogGroup", f"/aws/iot/{BASE}/audit").inputs["retentionInDays"]
        == 365
    )
    non_owner = build({"aws:region": REGION, "accountSettings": False})
    assert not [
        r
        for r in non_owner.mocks.of_type("aws:iot/topicRule:TopicRule")
        if r.inputs["sql"].endswith("'$aws/events/#'")
    ]


def test_a_stack_without_account_settings_declares_nothing_account_wide_and_keeps_the_rest(
    build: Build,
) -> None:
    owner = build({"aws:region": REGION})
    other = build({"aws:region": REGION, "accountSettings": False})
    for typ in ACCOUNT_WIDE:
        assert not other.mocks.of_type(typ)
    assert not [
        g
        for g in other.mocks.of_type("aws:cloudwatch/logGroup:LogGroup")
        if g.inputs["name"] == "AWSIotLogsV2"
    ]
    removed = {(r.type, r.name) for r in owner.mocks.resources} - {
        (r.type, r.name) for r in other.mocks.resources
    }
    assert all(name == "account" or name.startswith("account-") for _, name in removed)
    # Activation still depends on THING events, now switched on by another stack: the stale-approvals
    # function reads the switch and its alarm fires when it is off.
    policies = [document(p) for p in other.mocks.of_type("aws:iam/rolePolicy:RolePolicy")]
    assert any(
        statement["Action"] == ["iot:DescribeEventConfigurations"] and statement["Resource"] == ["*"]
        for policy in policies
        for statement in policy["Statement"]
    )
    alarms = {a.inputs["name"] for a in other.mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert f"{BASE}-thing-events-disabled" in alarms


def physical_names(deployment: Deployment) -> Counter[tuple[str, str]]:
    """(type, name) of every resource whose name AWS makes unique in an account and region (or account)."""
    names: Counter[tuple[str, str]] = Counter()
    for resource in deployment.mocks.resources:
        name = resource.inputs.get("name") or resource.inputs.get("dashboardName")
        if resource.type in ACCOUNT_WIDE:
            name = "(account setting)"
        if isinstance(name, str) and not resource.type.startswith("iot-fleet-provisioning:"):
            names[(resource.type, name)] += 1
    return names


def test_dev_staging_and_prod_fit_in_one_account_and_region(build: Build) -> None:
    # prod normally has an account of its own; sharing dev's region, it leaves the account settings to dev.
    overrides = {"dev": {}, "staging": {}, "prod": {"accountSettings": False}}
    stacks = {
        stack: build({**stack_config(stack), "aws:region": REGION, **extra}, stack=stack)
        for stack, extra in overrides.items()
    }
    seen: Counter[tuple[str, str]] = Counter()
    for deployment in stacks.values():
        names = physical_names(deployment)
        assert max(names.values()) == 1, [name for name, count in names.items() if count > 1]
        seen.update(names)
    clashes = sorted(name for name, count in seen.items() if count > 1)
    assert clashes == []
    for typ in ACCOUNT_WIDE:
        assert [stack for stack, d in stacks.items() if d.mocks.of_type(typ)] == ["dev"], typ
    assert sum(1 for name in seen if name[1] == "AWSIotLogsV2") == 1


def test_shipped_stack_files_name_one_owner_per_region() -> None:
    owners: dict[str, list[str]] = {}
    for stack in ("dev", "staging", "prod"):
        config = stack_config(stack)
        if config.get("accountSettings", True):
            owners.setdefault(config["aws:region"], []).append(stack)
    assert owners == {"us-east-1": ["dev"], "us-west-2": ["prod"]}


def custom_metric_namespaces(deployment: Deployment) -> set[str]:
    """Namespaces of the project's own metrics that the stack's alarms watch or its functions write."""
    watched = {
        metric["namespace"]
        for alarm in deployment.mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        for metric in [
            alarm.inputs,
            *(query.get("metric", {}) for query in alarm.inputs.get("metricQueries", [])),
        ]
        if str(metric.get("namespace", "")).startswith("IoTFleetProvisioning")
    }
    written = {
        function.inputs["environment"]["variables"]["POWERTOOLS_METRICS_NAMESPACE"]
        for function in deployment.mocks.of_type("aws:lambda/function:Function")
    }
    return watched | written


def test_stacks_sharing_a_region_never_count_each_others_metrics(build: Build) -> None:
    dev = build({"aws:region": REGION}, stack="dev")
    staging = build({"aws:region": REGION, "accountSettings": False}, stack="staging")
    assert custom_metric_namespaces(dev) == {"IoTFleetProvisioning/iot-provisioning-dev"}
    assert custom_metric_namespaces(staging) == {"IoTFleetProvisioning/iot-provisioning-staging"}


def test_functions_read_their_namespace_from_the_deployed_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(METRICS_NAMESPACE_ENV, raising=False)
    assert metrics_namespace_from_environment() == "IoTFleetProvisioning"
    monkeypatch.setenv(METRICS_NAMESPACE_ENV, metrics_namespace("iot-provisioning-dev"))
    assert metrics_namespace_from_environment() == "IoTFleetProvisioning/iot-provisioning-dev"
