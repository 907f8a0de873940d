"""The activation and stale-approval functions against moto: registry transitions and initial shadows."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from fleetctl.operator_transitions import OperatorRecords
from hook import activation, runtime, stale_approvals
from hook.activation import activate
from hook.activation_config import ActivationConfig
from hook.contract import ACTIVATION_CONFIG_ENV, REGISTRY_TABLE_ENV, Attr, DeviceStatus, thing_name
from hook.registry_items import shard_attributes
from hook.registry_transitions import function_records
from tests.support import TABLE_NAME, FakeLambdaContext

BASE = "iot-provisioning-dev"
CONFIG = ActivationConfig(
    thing_name_prefix=BASE,
    initial_shadows={
        "gateway": {"uplink": "lte", "telemetryIntervalSeconds": 60},
        "meter": {"telemetryIntervalSeconds": 900},
    },
)


@pytest.fixture
def iot(dynamodb: Any) -> Any:
    """AWS IoT on moto (the same mock as the registry table)."""
    return boto3.client("iot", region_name="us-east-1")


@pytest.fixture
def shadows(dynamodb: Any) -> Any:
    return boto3.client("iot-data", region_name="us-east-1")


def put_device(
    dynamodb: Any,
    serial: str,
    status: DeviceStatus,
    device_type: str = "gateway",
    certificate: str = "c" * 64,  # unknown to AWS IoT unless a test creates it
) -> None:
    item = {
        "serialNumber": serial,
        "status": status,
        "deviceType": device_type,
        "certificateId": certificate,
        "updatedAt": "2026-11-26T10:00:00.000+00:00",
        **shard_attributes(serial, status=status, device_type=device_type),
    }
    dynamodb.put_item(TableName=TABLE_NAME, Item={name: {"S": value} for name, value in item.items()})


def stored(dynamodb: Any, serial: str) -> dict[str, str]:
    item = dynamodb.get_item(TableName=TABLE_NAME, Key={"serialNumber": {"S": serial}}, ConsistentRead=True)[
        "Item"
    ]
    return {name: value["S"] for name, value in item.items()}


def create_thing(iot: Any, serial: str) -> str:
    name = thing_name(BASE, serial)
    iot.create_thing(thingName=name)
    return name


def shadow(shadows: Any, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(shadows.get_thing_shadow(thingName=name)["payload"].read())
    return document


def test_pending_device_becomes_active_with_its_types_initial_shadow(
    dynamodb: Any, iot: Any, shadows: Any, registry: OperatorRecords
) -> None:
    put_device(dynamodb, "GW-1", DeviceStatus.PENDING, "gateway")
    put_device(dynamodb, "M-1", DeviceStatus.PENDING, "meter")
    gateway, meter = create_thing(iot, "GW-1"), create_thing(iot, "M-1")

    assert activate(gateway, CONFIG, registry, shadows) == "activated"
    assert activate(meter, CONFIG, registry, shadows) == "activated"

    item = stored(dynamodb, "GW-1")
    assert (item["status"], item["thingName"]) == ("ACTIVE", gateway)
    assert item["activatedAt"] == item["updatedAt"] > "2026-11-26T10:00:00.000+00:00"
    assert shadow(shadows, gateway)["state"]["desired"] == {"uplink": "lte", "telemetryIntervalSeconds": 60}
    assert shadow(shadows, meter)["state"]["desired"] == {"telemetryIntervalSeconds": 900}


def test_activation_reads_no_certificate_and_records_no_expiry(
    dynamodb: Any, iot: Any, shadows: Any, registry: OperatorRecords
) -> None:
    """AWS IoT issued the certificate, so it expires 2049-12-31: activation does not describe it, and no
    earlier certificate's expiry stays on the item (a re-provisioned device's, say)."""
    certificate = iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
    put_device(dynamodb, "GW-1", DeviceStatus.PENDING, certificate=certificate)
    dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"serialNumber": {"S": "GW-1"}},
        UpdateExpression="SET certificateNotAfter = :earlier",
        ExpressionAttributeValues={":earlier": {"S": "2027-01-01T00:00:00.000+00:00"}},
    )
    name = create_thing(iot, "GW-1")
    sent: list[str] = []
    for client in (dynamodb, iot, shadows):
        client.meta.events.register("before-call", lambda model, **_: sent.append(model.name))

    assert activate(name, CONFIG, registry, shadows) == "activated"

    assert sent == ["GetItem", "UpdateThingShadow", "UpdateItem"]
    assert stored(dynamodb, "GW-1")["status"] == "ACTIVE"
    assert Attr.CERTIFICATE_NOT_AFTER not in stored(dynamodb, "GW-1")


def test_redelivered_event_changes_nothing(
    dynamodb: Any, iot: Any, shadows: Any, registry: OperatorRecords
) -> None:
    put_device(dynamodb, "GW-1", DeviceStatus.PENDING)
    name = create_thing(iot, "GW-1")
    activate(name, CONFIG, registry, shadows)
    before_item, before_shadow = stored(dynamodb, "GW-1"), shadow(shadows, name)

    assert activate(name, CONFIG, registry, shadows) == "already-active"
    assert stored(dynamodb, "GW-1") == before_item
    assert shadow(shadows, name)["version"] == before_shadow["version"]


def test_redelivery_after_a_failed_registry_update_finishes_the_activation(
    dynamodb: Any, iot: Any, shadows: Any, registry: OperatorRecords, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_device(dynamodb, "GW-1", DeviceStatus.PENDING)
    name = create_thing(iot, "GW-1")

    def throttled(*_: Any) -> None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")

    with monkeypatch.context() as patch:
        patch.setattr(registry, "activate", throttled)
        with pytest.raises(ClientError):
            activate(name, CONFIG, registry, shadows)
    assert stored(dynamodb, "GW-1")["status"] == "PENDING"
    assert shadow(shadows, name)["state"]["desired"] == CONFIG.initial_shadows["gateway"]

    assert activate(name, CONFIG, registry, shadows) == "activated"
    assert stored(dynamodb, "GW-1")["status"] == "ACTIVE"


def test_thing_without_registry_item_is_counted_not_ignored(
    dynamodb: Any, iot: Any, shadows: Any, registry: OperatorRecords, capsys: pytest.CaptureFixture[str]
) -> None:
    name = create_thing(iot, "GHOST-1")
    assert activate(name, CONFIG, registry, shadows) == "no-registry-item"
    activation.metrics.flush_metrics()
    assert '"ThingWithoutRegistryItem":[1.0]' in capsys.readouterr().out.replace(" ", "")
    with pytest.raises(ClientError):
        shadows.get_thing_shadow(thingName=name)


@pytest.mark.parametrize(
    "status", [DeviceStatus.REVOKED, DeviceStatus.DECOMMISSIONED, DeviceStatus.PREREGISTERED]
)
def test_thing_for_a_serial_that_is_not_pending_is_flagged_and_left_alone(
    dynamodb: Any,
    iot: Any,
    shadows: Any,
    registry: OperatorRecords,
    capsys: pytest.CaptureFixture[str],
    status: DeviceStatus,
) -> None:
    put_device(dynamodb, "GW-1", status)
    name = create_thing(iot, "GW-1")
    before = stored(dynamodb, "GW-1")
    assert activate(name, CONFIG, registry, shadows) == "unexpected-state"
    activation.metrics.flush_metrics()
    assert '"UnexpectedActivation":[1.0]' in capsys.readouterr().out.replace(" ", "")
    assert stored(dynamodb, "GW-1") == before


def test_things_of_another_stack_are_ignored(
    dynamodb: Any, iot: Any, shadows: Any, registry: OperatorRecords
) -> None:
    put_device(dynamodb, "GW-1", DeviceStatus.PENDING)
    other = thing_name(f"{BASE}-eu", "GW-1")
    iot.create_thing(thingName=other)
    assert activate(other, CONFIG, registry, shadows) == "ignored"
    assert stored(dynamodb, "GW-1")["status"] == "PENDING"


@pytest.fixture
def configured(dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Environment and packaged configuration as the Pulumi program deploys them."""
    config_file = tmp_path / "activation.json"
    config_file.write_text(json.dumps(CONFIG.document()), encoding="utf-8")
    monkeypatch.setenv(REGISTRY_TABLE_ENV, TABLE_NAME)
    monkeypatch.setenv(ACTIVATION_CONFIG_ENV, str(config_file))
    runtime.reset()
    yield
    runtime.reset()


@pytest.mark.usefixtures("configured")
@pytest.mark.filterwarnings("ignore:No application metrics")  # an ignored event has nothing to count
def test_handler_activates_from_a_registry_event(dynamodb: Any, iot: Any, shadows: Any) -> None:
    put_device(dynamodb, "GW-7", DeviceStatus.PENDING)
    name = create_thing(iot, "GW-7")
    event = {
        "eventType": "THING_EVENT",
        "eventId": "f5ae9b94-8b8e-4d8e-8c8f-b3266dd89853",
        "timestamp": 1795716387000,
        "operation": "CREATED",
        "accountId": "123456789012",
        "thingId": "b604f69c-aa9a-4d4a-829e-c480e958a0b5",
        "thingName": name,
        "versionNumber": 1,
        "thingTypeName": None,
        "attributes": {},
    }
    assert activation.lambda_handler(event, FakeLambdaContext()) == {"outcome": "activated"}
    assert stored(dynamodb, "GW-7")["status"] == "ACTIVE"
    assert activation.lambda_handler(event | {"operation": "UPDATED"}, FakeLambdaContext()) == {
        "outcome": "ignored"
    }


@pytest.mark.usefixtures("configured")
def test_stale_approvals_counts_pending_items_older_than_an_hour(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    put_device(dynamodb, "OLD-1", DeviceStatus.PENDING)  # updated 2026-11-26T10:00Z, long before "now"
    put_device(dynamodb, "OLD-2", DeviceStatus.PENDING)
    put_device(dynamodb, "DONE-1", DeviceStatus.ACTIVE)
    recent = {"serialNumber": {"S": "NEW-1"}, "status": {"S": "PENDING"}, "deviceType": {"S": "gateway"}}
    recent["updatedAt"] = {"S": "2999-01-01T00:00:00.000+00:00"}
    recent[Attr.STATUS_SHARD] = {
        "S": shard_attributes("NEW-1", status=DeviceStatus.PENDING)[Attr.STATUS_SHARD]
    }
    dynamodb.put_item(TableName=TABLE_NAME, Item=recent)
    sent: list[str] = []
    function_records()._client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: sent.append(model.name)
    )

    with account_event_configurations(thing_events=True):
        assert stale_approvals.lambda_handler({}, FakeLambdaContext()) == {
            "stale": 2,
            "thingEventsEnabled": True,
        }
    output = capsys.readouterr().out.replace(" ", "")
    assert '"StalePendingApprovals":[2.0]' in output
    assert '"ThingEventsDisabled":[0.0]' in output
    assert set(sent) == {"Query"}


@pytest.mark.usefixtures("configured")
def test_thing_events_switched_off_in_the_account_are_reported(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Another stack owns the account settings and never switched THING events on (or someone switched
    # them off): this stack's devices can never become ACTIVE, and the metric behind the alarm says so.
    with account_event_configurations(thing_events=False):
        assert stale_approvals.lambda_handler({}, FakeLambdaContext())["thingEventsEnabled"] is False
    assert '"ThingEventsDisabled":[1.0]' in capsys.readouterr().out.replace(" ", "")
    assert any("THING registry events are off" in message for message in caplog.messages)


@contextlib.contextmanager
def account_event_configurations(*, thing_events: bool) -> Iterator[None]:
    """AWS IoT's answer to DescribeEventConfigurations (moto does not implement it), as the API returns it:
    every event type with its switch."""
    client = runtime.iot()
    with Stubber(client) as stubber:
        stubber.add_response(
            "describe_event_configurations",
            {
                "eventConfigurations": {
                    "THING": {"Enabled": thing_events},
                    "THING_GROUP": {"Enabled": False},
                    "JOB": {"Enabled": True},
                }
            },
            {},
        )
        yield
        stubber.assert_no_pending_responses()
