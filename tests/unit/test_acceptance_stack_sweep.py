"""The acceptance run's sweep before destroying its stack, on moto: ``fleetctl teardown`` finds what the
stack's devices left by ownership, every certificate recorded as issued is deleted with those the teardown
revoked, the deleted things' shadows go, and what remains is named with its ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from fleetctl.context import StackContext
from hook.contract import device_type_resource_name, thing_name
from local.acceptance.stack_sweep import sweep
from tests.support import BASE, REGION, Fleet

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")

ENDPOINT = "data-ats.iot.us-east-1.amazonaws.com"  # an address moto serves the shadow API on
SENSORS = device_type_resource_name(BASE, "temperature-sensor")


def _exists(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return False
    return True


def _shadows_deleted() -> tuple[Any, list[str]]:
    """The shadow API, recording the shadows deleted: moto drops a shadow with its thing, so reading it back
    proves nothing."""
    client = boto3.client("iot-data", region_name=REGION, endpoint_url=f"https://{ENDPOINT}")
    deleted: list[str] = []

    def delete_thing_shadow(thingName: str) -> Any:
        deleted.append(thingName)
        return client.delete_thing_shadow(thingName=thingName)

    return SimpleNamespace(delete_thing_shadow=delete_thing_shadow, exceptions=client.exceptions), deleted


def _typed(fleet: Fleet, serial: str) -> str:
    """A device provisioned as the template leaves it, its thing of its type; its certificate id."""
    certificate_id = fleet.provision(serial)
    if not fleet.iot.list_thing_types()["thingTypes"]:
        fleet.iot.create_thing_type(thingTypeName=SENSORS)
    fleet.iot.update_thing(thingName=thing_name(BASE, serial), thingTypeName=SENSORS)
    return certificate_id


def test_the_sweep_removes_what_the_registry_never_knew_and_leaves_what_is_not_the_stacks(
    fleet: Fleet,
) -> None:
    approved = _typed(fleet, "TS-000001")
    boto3.client("iot-data", region_name=REGION, endpoint_url=f"https://{ENDPOINT}").update_thing_shadow(
        thingName=thing_name(BASE, "TS-000001"), payload=json.dumps({"state": {"desired": {"t": 300}}})
    )
    # A thing a failed decommission left: out of the registry, its certificate still attached.
    lost = _typed(fleet, "TS-000002")
    fleet.dynamodb.delete_item(
        TableName=str(StackContext.resolve(fleet.outputs).table), Key={"serialNumber": {"S": "TS-000002"}}
    )
    # A device that failed after AWS IoT issued its certificate: recorded when issued, nowhere else.
    failed_mid_flow = fleet.iot.create_keys_and_certificate(setAsActive=False)["certificateId"]
    other = fleet.iot.create_keys_and_certificate(setAsActive=True)["certificateId"]  # not the run's
    iot_data, shadows = _shadows_deleted()

    swept = sweep(StackContext.resolve(fleet.outputs), iot_data, {approved, failed_mid_flow}, wait=0)

    assert (swept.decommissioned, swept.certificates, swept.left, swept.blocks_destroy) == (2, 3, [], False)
    assert sorted(shadows) == [thing_name(BASE, "TS-000001"), thing_name(BASE, "TS-000002")]
    for certificate_id in (approved, lost, failed_mid_flow):
        assert not _exists(partial(fleet.iot.describe_certificate, certificateId=certificate_id))
    assert fleet.iot.list_things(thingTypeName=SENSORS)["things"] == []
    assert fleet.certificate(other)["status"] == "ACTIVE"
    assert fleet.certificate(fleet.claim_certificate_id)["status"] == "ACTIVE"  # the destroy's to delete


def test_what_would_make_the_destroy_fail_is_named_and_blocks_it(fleet: Fleet) -> None:
    recorded = _typed(fleet, "TS-000001")
    fleet.iot.create_thing(thingName="bench-unit", thingTypeName=SENSORS)  # not the stack's: left alone
    iot_data, _ = _shadows_deleted()

    swept = sweep(StackContext.resolve(fleet.outputs), iot_data, {recorded}, wait=0)

    assert swept.blocks_destroy
    [problem] = swept.left
    assert f"thing type {SENSORS} has bench-unit" in problem
    assert not _exists(partial(fleet.iot.describe_certificate, certificateId=recorded))
    assert [each["thingName"] for each in fleet.iot.list_things(thingTypeName=SENSORS)["things"]] == [
        "bench-unit"
    ]


def test_a_certificate_that_cannot_be_deleted_is_left_behind_with_its_id(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = fleet.iot.create_keys_and_certificate(setAsActive=False)["certificateId"]
    stack = StackContext.resolve(fleet.outputs)
    iot = stack.iot

    def denied(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DeleteCertificate")

    monkeypatch.setattr(iot, "delete_certificate", denied)
    iot_data, _ = _shadows_deleted()

    swept = sweep(stack, iot_data, {recorded}, wait=0)

    assert not swept.blocks_destroy
    assert swept.left == [
        f"certificate {recorded}: An error occurred (AccessDeniedException) when calling the "
        "DeleteCertificate operation: no"
    ]
