"""Every name and enumerated input the stack declares meets the constraints of the API call that creates it.

botocore's service models carry each request member's ``min``/``max`` length, ``pattern`` and ``enum``.
The stack is built under mocks once per partition, in the partition's longest region the settings accept,
with the longest resource prefix, environment, device type and claim generation the settings accept (found
by asking the settings, not written down here), and each input in :data:`CONSTRAINTS` is checked against
its member. A resource type the stack declares must be in :data:`CONSTRAINTS` or :data:`NOTHING_TO_CHECK`,
and each of its ``name``-like inputs in :data:`CONSTRAINTS`, so a later feature cannot skip the check.
Policy documents are held to AWS's documented sizes (:data:`MAX_NON_WHITESPACE`).

AWS validates a whole value against a member's pattern (``Member must satisfy regular expression
pattern``): patterns are matched with :func:`re.fullmatch`. botocore's patterns are Java regular
expressions; the Java-only classes among those checked are translated by :data:`JAVA_CLASSES`, and a
pattern that still does not compile fails the test rather than being skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, Final

import botocore.session
import pytest
from botocore.model import Shape

from components.powertools import COMMERCIAL_ARM64_REGIONS, OTHER_PARTITION_LAYER_ACCOUNTS, partition_of
from program.settings import TEMPLATE_NAME_MAX_LENGTH, SettingsError
from tests.pulumi_mocks import Build, Declared, Deployment, settings_for

Member = tuple[str, str, str]
"""(service, operation, member path) in botocore: ``A.B`` a structure's member, ``A[]`` a list's items,
``A.<key>`` / ``A.<value>`` a map's keys / values."""

_RECORD_SET: Final = "ChangeBatch.Changes[].ResourceRecordSet"
CONSTRAINTS: Final[dict[str, dict[str, Member]]] = {
    "aws:iam/role:Role": {
        "name": ("iam", "CreateRole", "RoleName"),
        "assumeRolePolicy": ("iam", "CreateRole", "AssumeRolePolicyDocument"),
    },
    "aws:iam/rolePolicy:RolePolicy": {
        "name": ("iam", "PutRolePolicy", "PolicyName"),
        "role": ("iam", "PutRolePolicy", "RoleName"),
        "policy": ("iam", "PutRolePolicy", "PolicyDocument"),
    },
    "aws:ssm/parameter:Parameter": {
        "name": ("ssm", "PutParameter", "Name"),
        "type": ("ssm", "PutParameter", "Type"),
        "tier": ("ssm", "PutParameter", "Tier"),
        "description": ("ssm", "PutParameter", "Description"),
        "insecureValue": ("ssm", "PutParameter", "Value"),
    },
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": {
        "role": ("iam", "AttachRolePolicy", "RoleName"),
        "policyArn": ("iam", "AttachRolePolicy", "PolicyArn"),
    },
    "aws:lambda/function:Function": {
        "name": ("lambda", "CreateFunction", "FunctionName"),
        "runtime": ("lambda", "CreateFunction", "Runtime"),
        "architectures[]": ("lambda", "CreateFunction", "Architectures[]"),
        "handler": ("lambda", "CreateFunction", "Handler"),
        "layers[]": ("lambda", "CreateFunction", "Layers[]"),
        "timeout": ("lambda", "CreateFunction", "Timeout"),
        "memorySize": ("lambda", "CreateFunction", "MemorySize"),
        "description": ("lambda", "CreateFunction", "Description"),
        "environment.variables.<key>": ("lambda", "CreateFunction", "Environment.Variables.<key>"),
        "loggingConfig.logFormat": ("lambda", "CreateFunction", "LoggingConfig.LogFormat"),
        "loggingConfig.logGroup": ("lambda", "CreateFunction", "LoggingConfig.LogGroup"),
    },
    "aws:lambda/permission:Permission": {
        "function": ("lambda", "AddPermission", "FunctionName"),
        "action": ("lambda", "AddPermission", "Action"),
        "principal": ("lambda", "AddPermission", "Principal"),
        "sourceAccount": ("lambda", "AddPermission", "SourceAccount"),
        "sourceArn": ("lambda", "AddPermission", "SourceArn"),
    },
    "aws:lambda/eventSourceMapping:EventSourceMapping": {
        "functionName": ("lambda", "CreateEventSourceMapping", "FunctionName"),
        "startingPosition": ("lambda", "CreateEventSourceMapping", "StartingPosition"),
        "functionResponseTypes[]": ("lambda", "CreateEventSourceMapping", "FunctionResponseTypes[]"),
        "batchSize": ("lambda", "CreateEventSourceMapping", "BatchSize"),
        "maximumRetryAttempts": ("lambda", "CreateEventSourceMapping", "MaximumRetryAttempts"),
    },
    "aws:cloudwatch/logGroup:LogGroup": {"name": ("logs", "CreateLogGroup", "logGroupName")},
    "aws:cloudwatch/metricAlarm:MetricAlarm": {
        "name": ("cloudwatch", "PutMetricAlarm", "AlarmName"),
        "alarmDescription": ("cloudwatch", "PutMetricAlarm", "AlarmDescription"),
        "comparisonOperator": ("cloudwatch", "PutMetricAlarm", "ComparisonOperator"),
        "statistic": ("cloudwatch", "PutMetricAlarm", "Statistic"),
        "treatMissingData": ("cloudwatch", "PutMetricAlarm", "TreatMissingData"),
        "metricName": ("cloudwatch", "PutMetricAlarm", "MetricName"),
        "namespace": ("cloudwatch", "PutMetricAlarm", "Namespace"),
        "dimensions.<key>": ("cloudwatch", "PutMetricAlarm", "Dimensions[].Name"),
        "dimensions.<value>": ("cloudwatch", "PutMetricAlarm", "Dimensions[].Value"),
        "evaluationPeriods": ("cloudwatch", "PutMetricAlarm", "EvaluationPeriods"),
        "period": ("cloudwatch", "PutMetricAlarm", "Period"),
        "metricQueries[].id": ("cloudwatch", "PutMetricAlarm", "Metrics[].Id"),
        "metricQueries[].expression": ("cloudwatch", "PutMetricAlarm", "Metrics[].Expression"),
        "metricQueries[].metric.metricName": (
            "cloudwatch",
            "PutMetricAlarm",
            "Metrics[].MetricStat.Metric.MetricName",
        ),
        "metricQueries[].metric.namespace": (
            "cloudwatch",
            "PutMetricAlarm",
            "Metrics[].MetricStat.Metric.Namespace",
        ),
        "metricQueries[].metric.dimensions.<key>": (
            "cloudwatch",
            "PutMetricAlarm",
            "Metrics[].MetricStat.Metric.Dimensions[].Name",
        ),
        "metricQueries[].metric.dimensions.<value>": (
            "cloudwatch",
            "PutMetricAlarm",
            "Metrics[].MetricStat.Metric.Dimensions[].Value",
        ),
        "metricQueries[].metric.period": ("cloudwatch", "PutMetricAlarm", "Metrics[].MetricStat.Period"),
    },
    "aws:cloudwatch/dashboard:Dashboard": {"dashboardName": ("cloudwatch", "PutDashboard", "DashboardName")},
    "aws:cloudwatch/eventRule:EventRule": {
        "name": ("events", "PutRule", "Name"),
        "scheduleExpression": ("events", "PutRule", "ScheduleExpression"),
    },
    "aws:cloudwatch/eventTarget:EventTarget": {"rule": ("events", "PutTargets", "Rule")},
    "aws:dynamodb/table:Table": {
        "name": ("dynamodb", "CreateTable", "TableName"),
        "billingMode": ("dynamodb", "CreateTable", "BillingMode"),
        "attributes[].name": ("dynamodb", "CreateTable", "AttributeDefinitions[].AttributeName"),
        "attributes[].type": ("dynamodb", "CreateTable", "AttributeDefinitions[].AttributeType"),
        "hashKey": ("dynamodb", "CreateTable", "KeySchema[].AttributeName"),
        "globalSecondaryIndexes[].name": ("dynamodb", "CreateTable", "GlobalSecondaryIndexes[].IndexName"),
        "globalSecondaryIndexes[].keySchemas[].attributeName": (
            "dynamodb",
            "CreateTable",
            "GlobalSecondaryIndexes[].KeySchema[].AttributeName",
        ),
        "globalSecondaryIndexes[].keySchemas[].keyType": (
            "dynamodb",
            "CreateTable",
            "GlobalSecondaryIndexes[].KeySchema[].KeyType",
        ),
        "globalSecondaryIndexes[].projectionType": (
            "dynamodb",
            "CreateTable",
            "GlobalSecondaryIndexes[].Projection.ProjectionType",
        ),
        "streamViewType": ("dynamodb", "CreateTable", "StreamSpecification.StreamViewType"),
    },
    "aws:iot/thingType:ThingType": {
        "name": ("iot", "CreateThingType", "thingTypeName"),
        "properties.description": ("iot", "CreateThingType", "thingTypeProperties.thingTypeDescription"),
        "properties.searchableAttributes[]": (
            "iot",
            "CreateThingType",
            "thingTypeProperties.searchableAttributes[]",
        ),
    },
    "aws:iot/thingGroup:ThingGroup": {
        "name": ("iot", "CreateThingGroup", "thingGroupName"),
        "parentGroupName": ("iot", "CreateThingGroup", "parentGroupName"),
    },
    "aws:iot/policy:Policy": {
        "name": ("iot", "CreatePolicy", "policyName"),
        "policy": ("iot", "CreatePolicy", "policyDocument"),
    },
    "aws:iot/policyAttachment:PolicyAttachment": {"policy": ("iot", "AttachPolicy", "policyName")},
    "aws:iot/topicRule:TopicRule": {
        "name": ("iot", "CreateTopicRule", "ruleName"),
        "cloudwatchLogs[].logGroupName": (
            "iot",
            "CreateTopicRule",
            "topicRulePayload.actions[].cloudwatchLogs.logGroupName",
        ),
        "errorAction.cloudwatchLogs.logGroupName": (
            "iot",
            "CreateTopicRule",
            "topicRulePayload.errorAction.cloudwatchLogs.logGroupName",
        ),
    },
    "aws:iot/provisioningTemplate:ProvisioningTemplate": {
        "name": ("iot", "CreateProvisioningTemplate", "templateName"),
        "type": ("iot", "CreateProvisioningTemplate", "type"),
        "description": ("iot", "CreateProvisioningTemplate", "description"),
        "preProvisioningHook.payloadVersion": (
            "iot",
            "CreateProvisioningTemplate",
            "preProvisioningHook.payloadVersion",
        ),
        "provisioningRoleArn": ("iot", "CreateProvisioningTemplate", "provisioningRoleArn"),
        "templateBody": ("iot", "CreateProvisioningTemplate", "templateBody"),
    },
    "aws:iot/loggingOptions:LoggingOptions": {
        "defaultLogLevel": ("iot", "SetV2LoggingOptions", "defaultLogLevel")
    },
    "aws:iot/eventConfigurations:EventConfigurations": {
        "eventConfigurations.<key>": ("iot", "UpdateEventConfigurations", "eventConfigurations.<key>")
    },
    "aws:iot/domainConfiguration:DomainConfiguration": {
        "name": ("iot", "CreateDomainConfiguration", "domainConfigurationName"),
        "domainName": ("iot", "CreateDomainConfiguration", "domainName"),
        "serverCertificateArns[]": ("iot", "CreateDomainConfiguration", "serverCertificateArns[]"),
        "serviceType": ("iot", "CreateDomainConfiguration", "serviceType"),
    },
    "aws:route53/record:Record": {
        "name": ("route53", "ChangeResourceRecordSets", f"{_RECORD_SET}.Name"),
        "type": ("route53", "ChangeResourceRecordSets", f"{_RECORD_SET}.Type"),
        "setIdentifier": ("route53", "ChangeResourceRecordSets", f"{_RECORD_SET}.SetIdentifier"),
        "latencyRoutingPolicies[].region": ("route53", "ChangeResourceRecordSets", f"{_RECORD_SET}.Region"),
        "zoneId": ("route53", "ChangeResourceRecordSets", "HostedZoneId"),
    },
    "aws:kms/alias:Alias": {"name": ("kms", "CreateAlias", "AliasName")},
    "aws:kms/key:Key": {"description": ("kms", "CreateKey", "Description")},
    "aws:sns/topic:Topic": {"name": ("sns", "CreateTopic", "Name")},
    "aws:sqs/queue:Queue": {"name": ("sqs", "CreateQueue", "QueueName")},
}
"""Pulumi type token -> input path (as :data:`Member`, in the provider's camelCase) -> the member the
provider sends it as."""

NOTHING_TO_CHECK: Final = {
    "aws:iot/certificate:Certificate": "no name: a CSR (or none) and whether it is active",
    "aws:sns/topicPolicy:TopicPolicy": "a topic ARN and a policy document",
    "aws:sns/topicSubscription:TopicSubscription": "a topic ARN, a protocol and an address; no name",
}
"""Declared types without a name or an enumerated input, and why."""

DOCUMENTED_ONLY: Final[dict[Member, tuple[int, int, str]]] = {
    # CreateQueue: "up to 80 characters ... alphanumeric characters, hyphens (-), and underscores (_)".
    ("sqs", "CreateQueue", "QueueName"): (1, 80, r"[A-Za-z0-9_-]+"),
    # CreateTopic: "ASCII letters, numbers, underscores, and hyphens ... between 1 and 256 characters".
    ("sns", "CreateTopic", "Name"): (1, 256, r"[A-Za-z0-9_-]+"),
    # PutDashboard: "The maximum length is 255, and valid characters are A-Z, a-z, 0-9, "-", and "_"".
    ("cloudwatch", "PutDashboard", "DashboardName"): (1, 255, r"[A-Za-z0-9_-]+"),
    # DynamoDB developer guide, "Naming rules": tables and indexes 3-255 of a-z A-Z 0-9 _ - . (the model's
    # TableName also accepts a table ARN, up to 1024).
    ("dynamodb", "CreateTable", "TableName"): (3, 255, r"[A-Za-z0-9_.-]+"),
}
"""Limits the API references state in words where the model's shape has none (min, max, pattern)."""

MAX_NON_WHITESPACE: Final[dict[Member, int]] = {
    # CreatePolicy: "a maximum length of 2048, excluding whitespace" (the model allows 404600).
    ("iot", "CreatePolicy", "policyDocument"): 2048,
    # IAM User Guide, "IAM and AWS STS quotas" (white space not counted; the model allows 131072): role trust
    # policy 2,048 by default, role policy 10,240 for all of a role's inline policies (each role here has one).
    ("iam", "CreateRole", "AssumeRolePolicyDocument"): 2048,
    ("iam", "PutRolePolicy", "PolicyDocument"): 10240,
}
"""Documented size limits on policy documents, counted without white space, tighter than the model's."""

JAVA_CLASSES: Final = {
    r"\p{Graph}": "!-~",  # Java's POSIX class: a visible US-ASCII character
    r"\p{C}": r"\x00-\x1f\x7f-\x9f",  # Unicode "Other": here only its controls (Cc)
}
"""Java character classes Python's ``re`` lacks, as the contents of a character class."""

MAP_INPUTS: Final = frozenset({"tags", "dimensions", "variables", "eventConfigurations"})
"""Inputs that are maps: their keys are data, not member names."""
_NAME_LIKE: Final = re.compile(r"^name$|[a-z]Name$")


def partition_regions() -> dict[str, str]:
    """Each partition's longest region the settings accept (where the Powertools layer is published)."""
    regions = sorted(COMMERCIAL_ARM64_REGIONS | set(OTHER_PARTITION_LAYER_ACCOUNTS), key=len)
    return {partition_of(region): region for region in regions}


def longest(accepts: Callable[[int], bool]) -> int:
    """The largest length ``accepts`` (true for 1, false from some length on)."""
    length = 1
    while accepts(length + 1):
        length += 1
    return length


def _accepts(config: dict[str, Any]) -> bool:
    try:
        settings_for({"aws:region": "us-east-1", **config})
    except SettingsError:
        return False
    return True


def longest_config() -> dict[str, Any]:
    """The longest environment, then resourcePrefix, device type, claim generation the settings accept."""
    environment = "e" * longest(lambda n: _accepts({"environment": "e" * n, "resourcePrefix": "p"}))
    prefix = "p" * longest(lambda n: _accepts({"environment": environment, "resourcePrefix": "p" * n}))
    names = {"environment": environment, "resourcePrefix": prefix}
    device_type = "T_" + "t" * longest(lambda n: _accepts({**names, "deviceTypes": ["T_" + "t" * n]}))
    generation = "g" * longest(lambda n: _accepts({**names, "claimCertificates": ["g" * n]}))
    return {
        **names,
        "deviceTypes": [device_type, "gateway"],
        "claimCertificates": [generation],
        "alertEmail": "alerts@example.com",
        "provisioningPayloadFormats": ["json", "cbor"],  # the claim policy at its largest
    }


@pytest.fixture(scope="module")
def longest_stacks(build: Build) -> dict[str, Deployment]:
    config = longest_config()
    return {
        partition: build(
            {**config, "aws:region": region, "deviceDomain": longest_domain(partition, region)},
            stack=config["environment"],
        )
        for partition, region in partition_regions().items()
    }


def longest_domain(partition: str, region: str) -> dict[str, str]:
    """A device domain of 253 characters (DNS's longest name), with a certificate in ``region``."""
    name = (("d" * 61 + ".") * 4)[:242] + "example.com"
    certificate = f"arn:{partition}:acm:{region}:123456789012:certificate/{'0' * 36}"
    return {"name": name, "hostedZoneId": "Z" + "A" * 31, "certificateArn": certificate}


def test_the_checked_config_is_the_longest_the_settings_accept() -> None:
    config = longest_config()
    assert len(settings_for({**config, "aws:region": "us-east-1"}).template_name) == TEMPLATE_NAME_MAX_LENGTH
    assert not _accepts({**config, "resourcePrefix": config["resourcePrefix"] + "p"})
    assert set(partition_regions()) == {"aws", "aws-cn", "aws-us-gov"}


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_every_name_and_enumerated_input_meets_its_api_member(
    longest_stacks: dict[str, Deployment], partition: str
) -> None:
    problems = [
        f"{resource.name} {path} = {value!r}: {problem} ({' '.join(member)})"
        for resource in _custom(longest_stacks[partition])
        for path, member in CONSTRAINTS.get(resource.type, {}).items()
        for value in values_at(resource.inputs, path)
        for problem in violations(value, member)
    ]
    assert problems == []


def test_every_declared_type_and_name_like_input_is_in_the_table(
    longest_stacks: dict[str, Deployment],
) -> None:
    resources = [resource for stack in longest_stacks.values() for resource in _custom(stack)]
    missing_types = {r.type for r in resources} - set(CONSTRAINTS) - set(NOTHING_TO_CHECK)
    missing_names = {
        (r.type, path)
        for r in resources
        for path in input_paths(r.inputs)
        if _NAME_LIKE.search(path.rsplit(".", 1)[-1].removesuffix("[]"))
        and path not in CONSTRAINTS.get(r.type, {})
    }
    never_seen = {
        (typ, path)
        for typ, paths in CONSTRAINTS.items()
        for path in paths
        if not any(values_at(r.inputs, path) for r in resources if r.type == typ)
    }
    assert (missing_types, missing_names, never_seen) == (set(), set(), set())


def test_a_name_aws_would_refuse_is_reported() -> None:
    role = ("iam", "CreateRole", "RoleName")
    assert violations("r" * 65, role) == ["65 characters, more than 64"]
    assert violations("two words", role) == ["does not match [\\w+=,.@-]+"]
    assert violations("SPARSE", ("dynamodb", "CreateTable", "BillingMode")) == [
        "not one of ['PROVISIONED', 'PAY_PER_REQUEST']"
    ]
    assert violations("a\x07b", ("iot", "CreateProvisioningTemplate", "description")) != []
    policy = ("iot", "CreatePolicy", "policyDocument")
    assert violations("x" * 2049, policy) == ["2049 characters without white space, more than 2048"]
    assert violations("x " * 2048, policy) == []


# --- reading the inputs and the model ------------------------------------------------------------------


def _custom(deployment: Deployment) -> list[Declared]:
    return [resource for resource in deployment.mocks.resources if resource.custom]


def values_at(value: Any, path: str) -> list[Any]:
    """The values at ``path`` (as :data:`Member` paths) in a resource's inputs."""
    values = [value]
    for segment in path.split("."):
        name = segment.removesuffix("[]")
        step: list[Any] = []
        for current in values:
            if not isinstance(current, dict):
                continue
            if name in ("<key>", "<value>"):
                step.extend(current if name == "<key>" else current.values())
            elif name in current:
                step.append(current[name])
        if segment.endswith("[]"):
            step = [item for items in step if isinstance(items, list) for item in items]
        values = step
    return values


def input_paths(value: Any, path: str = "") -> Iterator[str]:
    """Every path to a value in a resource's inputs; a map's keys and values as ``<key>`` / ``<value>``."""
    if isinstance(value, list):
        for item in value:
            yield from input_paths(item, f"{path}[]")
    elif isinstance(value, dict) and path.rsplit(".", 1)[-1] in MAP_INPUTS:
        yield f"{path}.<key>"
        yield f"{path}.<value>"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from input_paths(item, f"{path}.{key}" if path else key)
    else:
        yield path


def violations(value: Any, member: Member) -> list[str]:
    """What AWS would refuse about ``value`` as ``member``: its length, pattern, enum or range."""
    shape = member_shape(*member)
    metadata = dict(shape.metadata)
    if member in DOCUMENTED_ONLY:
        metadata["min"], metadata["max"], metadata["pattern"] = DOCUMENTED_ONLY[member]
    if shape.type_name in ("integer", "long"):
        number = int(value)
        low, high = metadata.get("min"), metadata.get("max")
        return (
            [f"outside {low}..{high}"]
            if (low is not None and number < low) or (high is not None and number > high)
            else []
        )
    problems = []
    text = str(value)
    if "min" in metadata and len(text) < metadata["min"]:
        problems.append(f"{len(text)} characters, fewer than {metadata['min']}")
    if "max" in metadata and len(text) > metadata["max"]:
        problems.append(f"{len(text)} characters, more than {metadata['max']}")
    if member in MAX_NON_WHITESPACE:
        size, limit = len(re.sub(r"\s", "", text)), MAX_NON_WHITESPACE[member]
        if size > limit:
            problems.append(f"{size} characters without white space, more than {limit}")
    if "pattern" in metadata and not java_pattern(metadata["pattern"]).fullmatch(text):
        problems.append(f"does not match {metadata['pattern']}")
    enum = getattr(shape, "enum", None)
    if enum and text not in enum:
        problems.append(f"not one of {enum}")
    return problems


@cache
def member_shape(service: str, operation: str, path: str) -> Shape:
    """The shape of a request member of a botocore service model."""
    shape: Any = _session().get_service_model(service).operation_model(operation).input_shape
    for segment in path.split("."):
        name = segment.removesuffix("[]")
        if name == "<key>":
            shape = shape.key
        elif name == "<value>":
            shape = shape.value
        else:
            shape = shape.members[name]
        if segment.endswith("[]"):
            shape = shape.member
    assert isinstance(shape, Shape)
    return shape


@cache
def java_pattern(pattern: str) -> re.Pattern[str]:
    """A botocore (Java) pattern in Python, with :data:`JAVA_CLASSES` translated."""
    for java, python in JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    return re.compile(pattern)


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()
