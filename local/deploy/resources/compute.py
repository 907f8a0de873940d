"""IAM roles and policies, Lambda functions and permissions, EventBridge schedules."""

from __future__ import annotations

import json
from typing import Any, Final

import pulumi

from components.function_archives import package_bytes
from hook.contract import REGISTRY_REGION_ENV
from local.deploy.resources.creators import (
    Created,
    Emulated,
    UnsupportedResource,
    auto_name,
    creates,
    number,
    tag_list,
)

REGISTRY_ENDPOINT_VARIABLE: Final = "AWS_ENDPOINT_URL_DYNAMODB"


@creates("aws:iam/role:Role")
def role(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """An IAM role with its trust policy (auto-named when the program gives no name)."""
    role_name = auto_name(name, inputs)
    request: dict[str, Any] = {
        "RoleName": role_name,
        "AssumeRolePolicyDocument": inputs["assumeRolePolicy"],
        "Tags": tag_list(inputs),
    }
    if inputs.get("description"):
        request["Description"] = inputs["description"]
    created = emulated.client("iam").create_role(**request)["Role"]
    return role_name, {**inputs, "name": role_name, "arn": created["Arn"], "uniqueId": created["RoleId"]}


@creates("aws:iam/rolePolicy:RolePolicy")
def role_policy(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """An inline policy of a role, in the emulator's terms where it authorises an action on another resource
    than AWS does (:func:`emulated_policy`)."""
    policy_name = auto_name(name, inputs)
    document = json.loads(inputs["policy"])
    emulated_document = emulated_policy(document)
    if emulated_document != document:
        moved = sorted(
            {
                action
                for statement in emulated_document["Statement"]
                for action in _as_list(statement.get("Action", []))
                if action in _TARGET_POLICY_ACTIONS | _THING_PRINCIPAL_ACTIONS
            }
        )
        emulated.note(
            f"role {inputs['role']}: {', '.join(moved)} granted on the resources the emulator checks "
            "(target policies on *, thing principals on the iot:thingArn pattern)"
        )
    emulated.client("iam").put_role_policy(
        RoleName=inputs["role"], PolicyName=policy_name, PolicyDocument=json.dumps(emulated_document)
    )
    return f"{inputs['role']}:{policy_name}", {**inputs, "name": policy_name}


_TARGET_POLICY_ACTIONS: Final = frozenset({"iot:AttachPolicy", "iot:DetachPolicy"})
"""Authorised by AWS on the target (the certificate); by the emulator on ``*``."""
_THING_PRINCIPAL_ACTIONS: Final = frozenset({"iot:AttachThingPrincipal", "iot:DetachThingPrincipal"})
"""Authorised by AWS on the certificate, with the thing in the ``iot:thingArn`` condition key; by the emulator
on the thing, with no such key."""
_THING_ARN_CONDITION: Final = "iot:thingArn"


def emulated_policy(document: dict[str, Any]) -> dict[str, Any]:
    """An identity policy as the emulator must see it to allow what AWS allows.

    AWS authorises ``iot:AttachPolicy`` and ``iot:DetachPolicy`` on the target certificate, and
    ``iot:AttachThingPrincipal`` and ``iot:DetachThingPrincipal`` on the certificate with the thing in
    ``iot:thingArn`` (Service Authorization Reference for AWS IoT). The emulator checks the first two on
    ``*`` and the other two on the thing's ARN, and has no ``iot:thingArn``. So a statement granting the
    thing-principal actions under an ``ArnLike iot:thingArn`` condition becomes one granting them on those
    thing ARNs (the same things), and the target-policy actions are granted on ``*`` (wider than on AWS:
    the emulator cannot tell certificates apart there). Every other statement is kept as it is."""
    statements = document["Statement"]
    emulated: list[dict[str, Any]] = []
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = _as_list(statement.get("Action", []))
        condition = statement.get("Condition") or {}
        things = (condition.get("ArnLike") or {}).get(_THING_ARN_CONDITION)
        if (
            things is not None
            and set(actions) <= _THING_PRINCIPAL_ACTIONS
            and condition == {"ArnLike": {_THING_ARN_CONDITION: things}}
        ):
            emulated.append({"Effect": statement["Effect"], "Action": actions, "Resource": _as_list(things)})
            continue
        moved = [action for action in actions if action in _TARGET_POLICY_ACTIONS]
        if not moved or "Condition" in statement or statement.get("Effect") != "Allow":
            emulated.append(statement)
            continue
        emulated.append({"Effect": "Allow", "Action": moved, "Resource": ["*"]})
        kept = [action for action in actions if action not in _TARGET_POLICY_ACTIONS]
        if kept:
            emulated.append({**statement, "Action": kept})
    return {**document, "Statement": emulated}


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@creates("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
def role_policy_attachment(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A managed policy attached to a role."""
    emulated.client("iam").attach_role_policy(RoleName=inputs["role"], PolicyArn=inputs["policyArn"])
    return f"{inputs['role']}/{inputs['policyArn']}", inputs


@creates("aws:lambda/function:Function")
def function(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A Lambda function from its asset archive, once it is ``Active``.

    Layers are passed as declared: the emulator resolves an AWS-managed layer it does not hold to an
    empty one, and its own interpreter provides Powertools instead.
    """
    client = emulated.client("lambda")
    variables = {
        key: emulated.function_environment_overrides.get(value, value)
        for key, value in ((inputs.get("environment") or {}).get("variables") or {}).items()
    }
    if emulated.registry_endpoint and variables.get(REGISTRY_REGION_ENV, emulated.region) != emulated.region:
        # boto3's service-specific endpoint variable (boto3 guide, "Service-specific endpoints"): the
        # function's registry client, built for the registry region, is sent to the other emulator.
        variables[REGISTRY_ENDPOINT_VARIABLE] = emulated.registry_endpoint
    request: dict[str, Any] = {
        "FunctionName": inputs["name"],
        "Runtime": inputs["runtime"],
        "Role": inputs["role"],
        "Handler": inputs["handler"],
        "Code": {"ZipFile": zip_archive(inputs["code"])},
        "Description": inputs.get("description", ""),
        "Timeout": number(inputs, "timeout") or 3,
        "MemorySize": number(inputs, "memorySize") or 128,
        "Environment": {"Variables": variables},
        "Layers": list(inputs.get("layers") or []),
        "Architectures": list(inputs.get("architectures") or ["x86_64"]),
        "Tags": inputs.get("tags") or {},
    }
    logging_config = inputs.get("loggingConfig")
    if logging_config:
        request["LoggingConfig"] = {
            "LogFormat": logging_config.get("logFormat", "Text"),
            **({"LogGroup": logging_config["logGroup"]} if logging_config.get("logGroup") else {}),
        }
    created = client.create_function(**request)
    client.get_waiter("function_active_v2").wait(
        FunctionName=inputs["name"], WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
    )
    arn = created["FunctionArn"]
    return inputs["name"], {
        **inputs,
        "arn": arn,
        "qualifiedArn": f"{arn}:{created['Version']}",
        "version": created["Version"],
        "invokeArn": (
            f"arn:aws:apigateway:{emulated.region}:lambda:path/2015-03-31/functions/{arn}/invocations"
        ),
    }


def zip_archive(archive: pulumi.AssetArchive) -> bytes:
    """The deployment package of an archive of file and text assets, as Pulumi would upload it."""
    if not isinstance(archive, pulumi.AssetArchive):
        raise UnsupportedResource(f"aws:lambda/function:Function code of type {type(archive).__name__}")
    try:
        return package_bytes(archive)
    except TypeError as error:
        raise UnsupportedResource(f"aws:lambda/function:Function code: {error}") from error


@creates("aws:lambda/permission:Permission")
def permission(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A statement of a function's resource policy."""
    statement_id = auto_name(name, inputs, "statementId")
    request: dict[str, Any] = {
        "FunctionName": inputs["function"],
        "StatementId": statement_id,
        "Action": inputs["action"],
        "Principal": inputs["principal"],
    }
    for key, api_key in (("sourceArn", "SourceArn"), ("sourceAccount", "SourceAccount")):
        if inputs.get(key):
            request[api_key] = inputs[key]
    emulated.client("lambda").add_permission(**request)
    return statement_id, {**inputs, "statementId": statement_id}


@creates("aws:cloudwatch/eventRule:EventRule")
def event_rule(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """An EventBridge rule on the default bus: a schedule or an event pattern."""
    rule_name = auto_name(name, inputs)
    request: dict[str, Any] = {
        "Name": rule_name,
        "State": inputs.get("state", "ENABLED"),
        "Tags": tag_list(inputs),
    }
    for key, api_key in (
        ("scheduleExpression", "ScheduleExpression"),
        ("eventPattern", "EventPattern"),
        ("description", "Description"),
    ):
        if inputs.get(key):
            request[api_key] = inputs[key]
    arn = emulated.client("events").put_rule(**request)["RuleArn"]
    return rule_name, {**inputs, "name": rule_name, "arn": arn}


@creates("aws:cloudwatch/eventTarget:EventTarget")
def event_target(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A target of an EventBridge rule."""
    target_id = auto_name(name, inputs, "targetId")
    target: dict[str, Any] = {"Id": target_id, "Arn": inputs["arn"]}
    if inputs.get("input"):
        target["Input"] = inputs["input"]
    emulated.client("events").put_targets(Rule=inputs["rule"], Targets=[target])
    return f"{inputs['rule']}-{target_id}", {**inputs, "targetId": target_id}


_MAPPING_SETTINGS: Final = {
    "startingPosition": "StartingPosition",
    "batchSize": "BatchSize",
    "maximumBatchingWindowInSeconds": "MaximumBatchingWindowInSeconds",
    "bisectBatchOnFunctionError": "BisectBatchOnFunctionError",
    "maximumRetryAttempts": "MaximumRetryAttempts",
    "maximumRecordAgeInSeconds": "MaximumRecordAgeInSeconds",
    "functionResponseTypes": "FunctionResponseTypes",
}
"""EventSourceMapping inputs passed as they are (numbers made integers), and their API names."""
_MAPPING_INPUTS: Final = frozenset(
    {
        *_MAPPING_SETTINGS,
        "functionName",
        "eventSourceArn",
        "enabled",
        "filterCriteria",
        "destinationConfig",
        "tags",
        "tagsAll",
    }
)


@creates("aws:lambda/eventSourceMapping:EventSourceMapping")
def event_source_mapping(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A function's mapping on a stream or queue, with its batching, retries, response types, filters and
    on-failure destination."""
    unsupported = sorted(
        key for key, value in inputs.items() if value is not None and key not in _MAPPING_INPUTS
    )
    if unsupported:
        raise UnsupportedResource(
            f"aws:lambda/eventSourceMapping:EventSourceMapping with {', '.join(unsupported)}"
        )
    request: dict[str, Any] = {
        "FunctionName": inputs["functionName"],
        "EventSourceArn": inputs["eventSourceArn"],
        "Enabled": bool(inputs.get("enabled", True)),
        "Tags": inputs.get("tags") or {},
    }
    for key, api_key in _MAPPING_SETTINGS.items():
        value = inputs.get(key)
        if value is not None:
            request[api_key] = int(value) if isinstance(value, float) else value
    filters = (inputs.get("filterCriteria") or {}).get("filters") or []
    if filters:
        request["FilterCriteria"] = {"Filters": [{"Pattern": each["pattern"]} for each in filters]}
    on_failure = ((inputs.get("destinationConfig") or {}).get("onFailure") or {}).get("destinationArn")
    if on_failure:
        request["DestinationConfig"] = {"OnFailure": {"Destination": on_failure}}
    created = emulated.client("lambda").create_event_source_mapping(**request)
    return created["UUID"], {
        **inputs,
        "uuid": created["UUID"],
        "arn": created.get("EventSourceMappingArn", ""),
        "functionArn": created["FunctionArn"],
        "state": created["State"],
    }
