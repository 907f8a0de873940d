"""DynamoDB tables, SQS queues and SSM parameters."""

from __future__ import annotations

from typing import Any, Final

from botocore.exceptions import ClientError

from local.deploy.resources.creators import Created, Emulated, UnsupportedResource, creates, number, tag_list


def _key_schema(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def _index_key_schema(index: dict[str, Any]) -> list[dict[str, str]]:
    if index.get("keySchemas"):
        return [
            {"AttributeName": key["attributeName"], "KeyType": key["keyType"]} for key in index["keySchemas"]
        ]
    return _key_schema(index["hashKey"], index.get("rangeKey"))


def _throughput(settings: dict[str, Any]) -> dict[str, int]:
    return {
        "ReadCapacityUnits": number(settings, "readCapacity") or 0,
        "WriteCapacityUnits": number(settings, "writeCapacity") or 0,
    }


@creates("aws:dynamodb/table:Table")
def table(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A table with its indexes, stream, encryption, deletion protection and point-in-time recovery."""
    client = emulated.client("dynamodb")
    provisioned = inputs.get("billingMode", "PROVISIONED") == "PROVISIONED"
    request: dict[str, Any] = {
        "TableName": inputs["name"],
        "BillingMode": inputs.get("billingMode", "PROVISIONED"),
        "AttributeDefinitions": [
            {"AttributeName": attribute["name"], "AttributeType": attribute["type"]}
            for attribute in inputs["attributes"]
        ],
        "KeySchema": _key_schema(inputs["hashKey"], inputs.get("rangeKey")),
        "DeletionProtectionEnabled": bool(inputs.get("deletionProtectionEnabled", False)),
        "SSESpecification": {"Enabled": bool((inputs.get("serverSideEncryption") or {}).get("enabled"))},
        "Tags": tag_list(inputs),
    }
    if provisioned:
        request["ProvisionedThroughput"] = _throughput(inputs)
    indexes = []
    for index in inputs.get("globalSecondaryIndexes") or []:
        projection: dict[str, Any] = {"ProjectionType": index.get("projectionType", "ALL")}
        if index.get("nonKeyAttributes"):
            projection["NonKeyAttributes"] = list(index["nonKeyAttributes"])
        declared: dict[str, Any] = {
            "IndexName": index["name"],
            "KeySchema": _index_key_schema(index),
            "Projection": projection,
        }
        if provisioned:
            declared["ProvisionedThroughput"] = _throughput(index)
        indexes.append(declared)
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    if inputs.get("streamEnabled"):
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": inputs["streamViewType"]}
    created = client.create_table(**request)["TableDescription"]
    client.get_waiter("table_exists").wait(
        TableName=inputs["name"], WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
    )
    if (inputs.get("pointInTimeRecovery") or {}).get("enabled"):
        client.update_continuous_backups(
            TableName=inputs["name"], PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    outputs = {**inputs, "arn": created["TableArn"]}
    if "LatestStreamArn" in created:
        outputs.update(streamArn=created["LatestStreamArn"], streamLabel=created["LatestStreamLabel"])
    return inputs["name"], outputs


_QUEUE_ATTRIBUTES: Final = {
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
}
"""Queue inputs the deployer passes on, and their CreateQueue attribute names (values as strings)."""
_QUEUE_INPUTS: Final = frozenset({*_QUEUE_ATTRIBUTES, "name", "tags", "tagsAll"})


@creates("aws:sqs/queue:Queue")
def queue(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A standard queue with its retention and encryption; its id is its URL, as the provider's is."""
    unsupported = sorted(
        key for key, value in inputs.items() if value is not None and key not in _QUEUE_INPUTS
    )
    if unsupported:
        raise UnsupportedResource(f"aws:sqs/queue:Queue with {', '.join(unsupported)}")
    attributes: dict[str, str] = {}
    for key, attribute in _QUEUE_ATTRIBUTES.items():
        value = inputs.get(key)
        if isinstance(value, bool):
            attributes[attribute] = "true" if value else "false"
        elif value is not None:
            attributes[attribute] = str(int(value))
    client = emulated.client("sqs")
    url = client.create_queue(QueueName=inputs["name"], Attributes=attributes, tags=inputs.get("tags") or {})[
        "QueueUrl"
    ]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, {**inputs, "arn": arn, "url": url}


@creates("aws:ssm/parameter:Parameter")
def parameter(emulated: Emulated, name: str, inputs: dict[str, Any]) -> Created:
    """A String parameter, created as the provider creates one without ``overwrite``: never over an existing
    parameter (``Overwrite: false``); the error names the parameter, as the provider's does."""
    parameter_name = inputs["name"]
    request: dict[str, Any] = {
        "Name": parameter_name,
        "Value": inputs.get("insecureValue") or inputs["value"],
        "Type": inputs["type"],
        "Overwrite": False,
        "Tags": tag_list(inputs),
    }
    if inputs.get("description"):
        request["Description"] = inputs["description"]
    try:
        version = emulated.client("ssm").put_parameter(**request)["Version"]
    except ClientError as error:
        raise RuntimeError(f"creating SSM Parameter ({parameter_name}): {error}") from error
    arn = f"arn:aws:ssm:{emulated.region}:{emulated.account_id}:parameter{parameter_name}"
    return parameter_name, {**inputs, "arn": arn, "version": version}
