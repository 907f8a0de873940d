"""AWS IoT resources: policies, certificates, thing types and groups, the template, rules, settings."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlencode

from local.deploy.resources.creators import (
    Created,
    Emulated,
    UnsupportedResource,
    creates,
    tag_list,
    unless_unimplemented,
)

_RULE_ACTION_LISTS: Final = {"lambdas": "lambda", "cloudwatchLogs": "cloudwatchLogs"}
"""TopicRule inputs holding actions, and the action's key in the IoT API (the ones the program uses)."""
_STARTSWITH: Final = re.compile(r"startswith\((\w+(?:\(\d*\))?),\s*'([^'\\]*)'\)")
"""``startswith(<operand>, '<literal>')`` in rule SQL, which the emulator does not implement; the operand an
attribute (``thingName``) or a call without arguments or with a number (``topic(2)``)."""
_RULE_SCALARS: Final = frozenset(
    {"name", "description", "enabled", "sql", "sqlVersion", "errorAction", "tags", "tagsAll", "arn"}
)


@creates("aws:iot/policy:Policy")
def policy(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """An IoT policy."""
    created = emulated.client("iot").create_policy(
        policyName=inputs["name"], policyDocument=inputs["policy"], tags=tag_list(inputs)
    )
    return inputs["name"], {
        **inputs,
        "arn": created["policyArn"],
        "defaultVersionId": created["policyVersionId"],
    }


@creates("aws:iot/thingType:ThingType")
def thing_type(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A thing type with its description and searchable attributes."""
    properties = inputs.get("properties") or {}
    created = emulated.client("iot").create_thing_type(
        thingTypeName=inputs["name"],
        thingTypeProperties={
            "thingTypeDescription": properties.get("description", ""),
            "searchableAttributes": properties.get("searchableAttributes", []),
        },
        tags=tag_list(inputs),
    )
    return inputs["name"], {**inputs, "arn": created["thingTypeArn"]}


@creates("aws:iot/thingGroup:ThingGroup")
def thing_group(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A thing group, under its parent group when it has one."""
    request: dict[str, Any] = {"thingGroupName": inputs["name"], "tags": tag_list(inputs)}
    if inputs.get("parentGroupName"):
        request["parentGroupName"] = inputs["parentGroupName"]
    created = emulated.client("iot").create_thing_group(**request)
    return inputs["name"], {**inputs, "arn": created["thingGroupArn"], "version": 1}


@creates("aws:iot/certificate:Certificate")
def certificate(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A certificate issued by the emulator's CA: for the given CSR, or with a new key pair; or an existing
    ``certificatePem`` registered without its CA, as the provider does for ``certificate_pem`` without
    ``ca_pem`` (aws_iot_certificate docs, "From existing certificate without a CA"): a global fleet's
    claim certificate in the regions other than the registry region's."""
    client = emulated.client("iot")
    active = bool(inputs.get("active"))
    if inputs.get("caPem"):
        raise UnsupportedResource("aws:iot/certificate:Certificate with caPem (registering with its CA)")
    if inputs.get("certificatePem"):
        pem = inputs["certificatePem"]
        if isinstance(pem, dict):  # the provider's schema makes it a secret: the engine's wrapped value
            pem = pem["value"]
        created = client.register_certificate_without_ca(
            certificatePem=pem, status="ACTIVE" if active else "INACTIVE"
        )
        return created["certificateId"], {**inputs, "arn": created["certificateArn"]}
    if inputs.get("csr"):
        created = client.create_certificate_from_csr(
            certificateSigningRequest=inputs["csr"], setAsActive=active
        )
    else:
        created = client.create_keys_and_certificate(setAsActive=active)
    outputs = {**inputs, "arn": created["certificateArn"], "certificatePem": created["certificatePem"]}
    if "keyPair" in created:
        outputs["privateKey"] = created["keyPair"]["PrivateKey"]
        outputs["publicKey"] = created["keyPair"]["PublicKey"]
    return created["certificateId"], outputs


@creates("aws:iot/policyAttachment:PolicyAttachment")
def policy_attachment(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A policy attached to a certificate (or another target)."""
    emulated.client("iot").attach_policy(policyName=inputs["policy"], target=inputs["target"])
    return f"{inputs['policy']}|{inputs['target']}", dict(inputs)


@creates("aws:iot/provisioningTemplate:ProvisioningTemplate")
def provisioning_template(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A provisioning template; disabled unless ``enabled`` is set, as the provider's default is."""
    request: dict[str, Any] = {
        "templateName": inputs["name"],
        "templateBody": inputs["templateBody"],
        "enabled": bool(inputs.get("enabled", False)),
        "provisioningRoleArn": inputs["provisioningRoleArn"],
        "type": inputs.get("type", "FLEET_PROVISIONING"),
        "tags": tag_list(inputs),
    }
    if inputs.get("description"):
        request["description"] = inputs["description"]
    hook = inputs.get("preProvisioningHook")
    if hook:
        request["preProvisioningHook"] = {
            "targetArn": hook["targetArn"],
            "payloadVersion": hook.get("payloadVersion", "2020-04-01"),
        }
    created = emulated.client("iot").create_provisioning_template(**request)
    return inputs["name"], {
        **inputs,
        "enabled": request["enabled"],
        "arn": created["templateArn"],
        "defaultVersionId": created["defaultVersionId"],
    }


@creates("aws:iot/topicRule:TopicRule")
def topic_rule(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A topic rule with its actions and error action."""
    unsupported = sorted(
        key for key, value in inputs.items() if value and key not in _RULE_SCALARS | _RULE_ACTION_LISTS.keys()
    )
    if unsupported:
        raise UnsupportedResource(f"aws:iot/topicRule:TopicRule with {', '.join(unsupported)}")
    actions = [
        {api_key: action} for key, api_key in _RULE_ACTION_LISTS.items() for action in inputs.get(key) or []
    ]
    payload: dict[str, Any] = {
        "sql": _emulated_sql(emulated, inputs["name"], inputs["sql"]),
        "awsIotSqlVersion": inputs.get("sqlVersion", "2016-03-23"),
        "ruleDisabled": not inputs.get("enabled", True),
        "actions": actions,
    }
    if inputs.get("description"):
        payload["description"] = inputs["description"]
    if inputs.get("errorAction"):
        payload["errorAction"] = inputs["errorAction"]
    client = emulated.client("iot")
    request: dict[str, Any] = {"ruleName": inputs["name"], "topicRulePayload": payload}
    if inputs.get("tags"):
        request["tags"] = urlencode(inputs["tags"])
    client.create_topic_rule(**request)
    arn = client.get_topic_rule(ruleName=inputs["name"])["ruleArn"]
    return inputs["name"], {**inputs, "arn": arn}


def _emulated_sql(emulated: Emulated, rule_name: str, sql: str) -> str:
    """The rule's SQL with ``startswith(x, 'p')`` written as the equivalent ``regexp_matches(x, '^p')``,
    which the emulator implements (AWS IoT implements both)."""
    emulated_sql = _STARTSWITH.sub(lambda match: f"regexp_matches({match[1]}, '^{re.escape(match[2])}')", sql)
    if emulated_sql != sql:
        emulated.note(f"rule {rule_name}: startswith() is deployed as the equivalent regexp_matches()")
    return emulated_sql


@creates("aws:iot/eventConfigurations:EventConfigurations")
def event_configurations(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """Which registry events AWS IoT publishes (account-wide)."""
    emulated.client("iot").update_event_configurations(
        eventConfigurations={
            kind: {"Enabled": bool(enabled)} for kind, enabled in inputs["eventConfigurations"].items()
        }
    )
    return emulated.region, dict(inputs)


@creates("aws:iot/loggingOptions:LoggingOptions")
def logging_options(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """AWS IoT v2 logging (account-wide); skipped with a note where the emulator lacks it."""
    unless_unimplemented(
        emulated,
        "AWS IoT v2 logging options",
        lambda: emulated.client("iot").set_v2_logging_options(
            roleArn=inputs["roleArn"],
            defaultLogLevel=inputs["defaultLogLevel"],
            disableAllLogs=bool(inputs.get("disableAllLogs", False)),
        ),
    )
    return emulated.region, dict(inputs)


@creates("pulumi-python:dynamic/defender:AccountAudit")
@creates("pulumi-python:dynamic/defender:AuditSuppression")
def defender_audit(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """Device Defender audit: the emulator has no Device Defender API, so a local stack cannot have it."""
    raise UnsupportedResource(
        f"{name}: the emulator has no Device Defender API; set defenderAudit: false in the local stack"
    )
