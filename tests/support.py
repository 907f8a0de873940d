"""Helpers shared by the tests and the benchmarks: the registry table and well-formed hook events."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hook.contract import REGISTRY_INDEXES, REGISTRY_PARTITION_KEY, Parameter

TABLE_NAME = "test-device-registry"
TEMPLATE_ARN = "arn:aws:iot:us-east-1:123456789012:provisioningtemplate/test-fleet"
CLAIM_CERTIFICATE_ID = hashlib.sha256(b"claim").hexdigest()

RULES: dict[str, Any] = {
    "deviceTypes": {
        "temperature-sensor": {
            "serialPattern": "TS-[0-9]{6}",
            "manufacturers": ["AcmeIoT", "SensorWorks"],
            "minFirmwareVersion": "1.2.0",
        },
        "humidity-sensor": {"serialPattern": None, "manufacturers": None, "minFirmwareVersion": None},
        "gateway": {
            "serialPattern": "GW-[A-Z0-9]{4,12}",
            "manufacturers": None,
            "minFirmwareVersion": "v2.0.0",
        },
    },
    "requirePreregistration": False,
}


def create_registry_table(client: Any, table_name: str = TABLE_NAME) -> None:
    """Create the registry table with the key schema and indexes the hook contract defines."""
    key_attributes = {REGISTRY_PARTITION_KEY, *(key for keys in REGISTRY_INDEXES.values() for key in keys)}
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in sorted(key_attributes)
        ],
        KeySchema=[{"AttributeName": REGISTRY_PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, (hash_key, range_key) in REGISTRY_INDEXES.items()
        ],
    )


def write_rules(path: Path, rules: dict[str, Any] = RULES) -> Path:
    """Write a rules document where the hook reads it and return the path."""
    path.write_text(json.dumps(rules), encoding="utf-8")
    return path


def certificate_id(seed: str) -> str:
    """A certificate id of the form AWS IoT uses (64 hex digits), derived from ``seed``."""
    return hashlib.sha256(seed.encode()).hexdigest()


def valid_parameters(**overrides: Any) -> dict[str, Any]:
    """Parameters that every rule in :data:`RULES` accepts, with ``overrides`` applied."""
    parameters: dict[str, Any] = {
        Parameter.SERIAL_NUMBER.value: "TS-000123",
        Parameter.DEVICE_TYPE.value: "temperature-sensor",
        Parameter.MANUFACTURER.value: "AcmeIoT",
        Parameter.FIRMWARE_VERSION.value: "v1.4.2",
        Parameter.LOCATION.value: "Factory-Floor-A",
    }
    parameters.update(overrides)
    return parameters


def hook_event(
    parameters: Any = None, *, certificate: str = "device-1", client_id: str = "client-1"
) -> dict[str, Any]:
    """An event as AWS IoT sends it to the hook (payload version 2020-04-01)."""
    return {
        "claimCertificateId": CLAIM_CERTIFICATE_ID,
        "certificateId": certificate_id(certificate),
        "certificatePem": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
        "templateArn": TEMPLATE_ARN,
        "clientId": client_id,
        "parameters": valid_parameters() if parameters is None else parameters,
    }


@dataclass
class FakeLambdaContext:
    """The attributes of the Lambda context object that Powertools reads."""

    function_name: str = "provisioning-hook"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:provisioning-hook"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
