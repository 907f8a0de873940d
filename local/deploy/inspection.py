"""Read back what the emulator holds about devices: registry items, things, certificates, shadows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from fleetctl.registry_reads import devices_and_bindings
from local.deploy.resources import Emulated


@dataclass(frozen=True)
class Thing:
    """A thing as AWS IoT describes it, with its groups and principals."""

    name: str
    type_name: str | None
    attributes: dict[str, str]
    groups: list[str]
    principals: list[str]


@dataclass(frozen=True)
class Certificate:
    """A certificate's status, attached policies and things."""

    certificate_id: str
    arn: str
    status: str
    policies: list[str]
    things: list[str]


class Inspector:
    """Read-only views of the emulator's state, with its root credentials."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self._emulated = Emulated(endpoint_url=endpoint_url, region=region)

    def client(self, service: str) -> Any:
        """A boto3 client of the emulator."""
        return self._emulated.client(service)

    def registry(self, table_name: str) -> dict[str, dict[str, str]]:
        """Every device's registry item (string attributes), by serial number."""
        return self.registry_contents(table_name)[0]

    def certificate_bindings(self, table_name: str) -> dict[str, str]:
        """The registry's certificate bindings: the serial number each approved certificate is bound to."""
        return self.registry_contents(table_name)[1]

    def registry_contents(self, table_name: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """The devices' items by serial number and the certificate bindings, read by a consistent scan."""
        scan = self.client("dynamodb").get_paginator("scan")
        pages = scan.paginate(TableName=table_name, ConsistentRead=True)
        return devices_and_bindings(item for page in pages for item in page["Items"])

    def thing(self, name: str) -> Thing | None:
        """A thing, or ``None`` when it does not exist."""
        iot = self.client("iot")
        try:
            described = iot.describe_thing(thingName=name)
        except iot.exceptions.ResourceNotFoundException:
            return None
        groups = [
            group["groupName"] for group in iot.list_thing_groups_for_thing(thingName=name)["thingGroups"]
        ]
        principals = iot.list_thing_principals(thingName=name)["principals"]
        return Thing(
            name, described.get("thingTypeName"), described.get("attributes", {}), groups, principals
        )

    def certificate(self, certificate_id: str) -> Certificate | None:
        """A certificate, or ``None`` when it does not exist."""
        iot = self.client("iot")
        try:
            description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
        except iot.exceptions.ResourceNotFoundException:
            return None
        arn = description["certificateArn"]
        policies = [policy["policyName"] for policy in iot.list_attached_policies(target=arn)["policies"]]
        things = iot.list_principal_things(principal=arn)["things"]
        return Certificate(certificate_id, arn, description["status"], policies, things)

    def shadow(self, thing_name: str) -> dict[str, Any] | None:
        """The thing's classic shadow state, or ``None`` when it has none."""
        try:
            payload = self.client("iot-data").get_thing_shadow(thingName=thing_name)["payload"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        state: dict[str, Any] = json.loads(payload).get("state", {})
        return state
