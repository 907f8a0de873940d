"""A global fleet's regions in the functions: the hook records the region a device provisioned in, and the
registry region's retirement revokes and detaches a device's certificates in that region."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3
import pytest

from fleetctl.operator_transitions import OperatorRecords
from hook.contract import Attr
from hook.registry_items import serialized
from tests.support import TABLE_NAME, TEMPLATE_ARN, RegistryStream
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
