"""A global fleet's regions in the functions: the hook records the region a device provisioned in, and the
registry region's retirement revokes and detaches a device's certificates in that region."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from fleetctl.operator_transitions import OperatorRecords
from hook.contract import Attr
from hook.registry_items import serialized, timestamp
from tests.support import TABLE_NAME, TEMPLATE_ARN, Fleet, RegistryStream, hook_event, valid_parameters
from tests.unit.test_certificate_retirement import POLICY, SERIAL, THING, retire
from tests.unit.test_registry_transitions import REQUEST, provenance, stored

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics")  # a batch that retires nothing


def test_approval_records_the_region_of_the_template_the_device_provisioned_with(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    elsewhere = replace(provenance(), template_arn=TEMPLATE_ARN.replace("us-east-1", "ap-southeast-1"))
    registry.approve(REQUEST, elsewhere, require_preregistration=False)
    item = stored(dynamodb)
    assert item is not None and item["provisionedRegion"] == "ap-southeast-1"


def test_a_device_of_another_fleet_region_has_its_certificates_retired_in_that_region(
    dynamodb: Any, registry: OperatorRecords, stream: RegistryStream
) -> None:
    elsewhere = boto3.client("iot", region_name="eu-west-1")
    elsewhere.create_policy(policyName=POLICY, policyDocument='{"Version": "2012-10-17", "Statement": []}')
    elsewhere.create_thing(thingName=THING)
    created = elsewhere.create_keys_and_certificate(setAsActive=True)
    elsewhere.attach_policy(policyName=POLICY, target=created["certificateArn"])
    elsewhere.attach_thing_principal(thingName=THING, principal=created["certificateArn"])
    device: dict[str, str] = {
        Attr.SERIAL_NUMBER: SERIAL,
        Attr.STATUS: "ACTIVE",
        Attr.DEVICE_TYPE: "temperature-sensor",
        Attr.CERTIFICATE_ID: created["certificateId"],
        Attr.THING_NAME: THING,
        Attr.REGION: "eu-west-1",
    }
    dynamodb.put_item(TableName=TABLE_NAME, Item=serialized(device))
    assert retire(stream) == {"batchItemFailures": []}

    assert registry.revoke(SERIAL, "stolen") is not None
    assert retire(stream) == {"batchItemFailures": []}

    described = elsewhere.describe_certificate(certificateId=created["certificateId"])[
        "certificateDescription"
    ]
    assert described["status"] == "REVOKED"
    assert elsewhere.list_principal_things(principal=created["certificateArn"])["things"] == []
    assert elsewhere.list_attached_policies(target=created["certificateArn"])["policies"] == []


def test_a_reprovisioning_in_another_region_retires_the_old_certificate_once_the_new_one_is_attached_there(
    fleet: Fleet,
    registry: OperatorRecords,
    stream: RegistryStream,
    invoke: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)  # the retirement's waits for an attachment
    original = fleet.provision(SERIAL)
    assert retire(stream) == {"batchItemFailures": []}
    registry.grant_reprovision(
        SERIAL, "moved to Europe", "alice", timestamp(datetime.now(UTC) + timedelta(hours=1))
    )
    europe = boto3.client("iot", region_name="eu-west-1")
    europe.create_thing(thingName=THING)
    replacement = europe.create_keys_and_certificate(setAsActive=True)
    event = hook_event(valid_parameters(SerialNumber=SERIAL, FirmwareVersion="2.1.0"))
    event |= {
        "certificateId": replacement["certificateId"],
        "templateArn": TEMPLATE_ARN.replace("us-east-1", "eu-west-1"),
    }
    assert invoke(event)["allowProvisioning"] is True
    europe.attach_thing_principal(thingName=THING, principal=replacement["certificateArn"])

    assert retire(stream) == {"batchItemFailures": []}

    assert waits == []  # the replacement was found attached in its own region at once
    assert fleet.certificate(original)["status"] == "REVOKED"
    assert (
        fleet.iot.list_principal_things(principal=fleet.certificate(original)["certificateArn"])["things"]
        == []
    )
    described = europe.describe_certificate(certificateId=replacement["certificateId"])[
        "certificateDescription"
    ]
    assert described["status"] == "ACTIVE"
    assert europe.list_principal_things(principal=replacement["certificateArn"])["things"] == [THING]
