"""Removing the scenario's devices before the stack is destroyed, on moto: nothing the stack does not own is
left, nothing else is touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from fleetctl.context import StackContext
from local.acceptance.aws_scenario import AwsInspector
from local.acceptance.device_cleanup import Removal, remove_devices
from tests.support import create_registry_table

ENDPOINT = "data-ats.iot.us-east-1.amazonaws.com"  # an address moto serves the shadow API on
BASE = "iot-provisioning-acc1"


def _device(iot: Any, thing: str, policy: str) -> str:
    """A thing with an ACTIVE certificate that has ``policy``; returns the certificate id."""
    iot.create_thing(thingName=thing)
    certificate = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName=policy, target=certificate["certificateArn"])
    iot.attach_thing_principal(thingName=thing, principal=certificate["certificateArn"])
    return str(certificate["certificateId"])


def _exists(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return False
    return True


class ShadowRecordingInspector(AwsInspector):
    """Records the shadows it deletes: moto drops a shadow with its thing, so reading it back proves nothing."""

    def __init__(self) -> None:
        super().__init__("us-east-1", ENDPOINT)
        self.deleted_shadows: list[str] = []

    def client(self, service: str) -> Any:
        client = super().client(service)
        if service != "iot-data":
            return client

        def delete_thing_shadow(thingName: str) -> Any:
            self.deleted_shadows.append(thingName)
            return client.delete_thing_shadow(thingName=thingName)

        return SimpleNamespace(delete_thing_shadow=delete_thing_shadow, exceptions=client.exceptions)


def test_remove_devices_leaves_nothing_the_stack_does_not_own() -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_registry_table(dynamodb, f"{BASE}-device-registry")
        iot = boto3.client("iot", region_name="us-east-1")
        iot_data = boto3.client("iot-data", region_name="us-east-1", endpoint_url=f"https://{ENDPOINT}")
        iot.create_policy(
            policyName=f"{BASE}_temperature-sensor", policyDocument=json.dumps({"Statement": []})
        )
        thing = f"{BASE}_TS-100001"
        approved = _device(iot, thing, f"{BASE}_temperature-sensor")
        iot_data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"t": 300}}}))
        dynamodb.put_item(
            TableName=f"{BASE}-device-registry",
            Item={
                "serialNumber": {"S": "TS-100001"},
                "status": {"S": "ACTIVE"},
                "deviceType": {"S": "temperature-sensor"},
                "thingName": {"S": thing},
                "certificateId": {"S": approved},
            },
        )
        rejected = iot.create_keys_and_certificate(setAsActive=False)["certificateId"]  # a denied device's
        other = _device(iot, "someone-else_TS-1", f"{BASE}_temperature-sensor")
        outputs = {
            "deviceRegistryTableName": f"{BASE}-device-registry",
            "region": "us-east-1",
            "baseName": BASE,
        }

        inspector = ShadowRecordingInspector()

        removal = remove_devices(StackContext(outputs), inspector, [rejected])

        assert removal == Removal(devices=1, certificates=2, problems=[])
        assert inspector.deleted_shadows == [thing]
        assert not _exists(lambda: iot.describe_thing(thingName=thing))
        for certificate_id in (approved, rejected):
            assert not _exists(partial(iot.describe_certificate, certificateId=certificate_id))
        assert _exists(lambda: iot.describe_thing(thingName="someone-else_TS-1"))
        assert iot.describe_certificate(certificateId=other)["certificateDescription"]["status"] == "ACTIVE"
