"""With AUTH=true the broker enforces the IoT policies: devices act only as themselves, and the claim
certificate can only provision."""

from __future__ import annotations

import pytest

from local.devices.firmware import Provisioning, telemetry_topic
from local.devices.fleet_runner import Outcome
from local.devices.mqtt_session import ConnectRefused, PublishRefused, Session
from local.scenario.sandbox import Sandbox

pytestmark = pytest.mark.e2e


def _two_devices(approved: list[Outcome]) -> tuple[Outcome, Outcome]:
    first, second = approved[0], approved[1]
    assert first.provisioned is not None
    assert second.provisioned is not None
    return first, second


def test_a_device_cannot_connect_with_another_client_id(box: Sandbox, approved: list[Outcome]) -> None:
    mine, other = _two_devices(approved)
    assert mine.provisioned is not None
    assert other.provisioned is not None
    claim_client_id = f"{box.target.claim_client_id_prefix}{mine.device.identity.serial_number}"
    for client_id in (other.provisioned.thing_name, claim_client_id, "anything-else"):
        with (
            pytest.raises(ConnectRefused, match="NOT_AUTHORIZED"),
            Session(box.target.broker, mine.provisioned.credentials, client_id),
        ):
            pass


@pytest.mark.parametrize("topic_of", ["telemetry", "shadow"])
def test_a_device_cannot_publish_to_another_devices_topics(
    box: Sandbox, approved: list[Outcome], topic_of: str
) -> None:
    mine, other = _two_devices(approved)
    assert mine.provisioned is not None
    assert other.provisioned is not None
    other_thing = other.provisioned.thing_name
    foreign_topic = (
        telemetry_topic(other.device.identity.device_type, other_thing)
        if topic_of == "telemetry"
        else f"$aws/things/{other_thing}/shadow/update"
    )
    with Session(box.target.broker, mine.provisioned.credentials, mine.provisioned.thing_name) as session:
        session.publish(
            telemetry_topic(mine.device.identity.device_type, mine.provisioned.thing_name), {"ok": 1}
        )
        with pytest.raises(PublishRefused, match="NOT_AUTHORIZED"):
            session.publish(foreign_topic, {"state": {"reported": {"hijacked": True}}})


def test_the_claim_certificate_connects_only_with_the_claim_client_id_prefix(box: Sandbox) -> None:
    for client_id in ("iot-provisioning-local_TS-100001", "some-device"):
        with (
            pytest.raises(ConnectRefused, match="NOT_AUTHORIZED"),
            Session(box.target.broker, box.target.claim, client_id),
        ):
            pass


@pytest.mark.parametrize("kind", ["telemetry", "shadow", "other"])
def test_the_claim_certificate_can_do_nothing_but_provision(
    box: Sandbox, approved: list[Outcome], kind: str
) -> None:
    device = approved[0]
    assert device.provisioned is not None
    thing = device.provisioned.thing_name
    topic = {
        "telemetry": telemetry_topic(device.device.identity.device_type, thing),
        "shadow": f"$aws/things/{thing}/shadow/update",
        "other": "factory/anything",
    }[kind]
    client_id = f"{box.target.claim_client_id_prefix}E2E-CLAIM-{kind}"
    with Session(box.target.broker, box.target.claim, client_id) as session:
        issued = Provisioning(session).create_keys_and_certificate()  # what the claim is for still works
        assert issued.certificate_id
        with pytest.raises(PublishRefused, match="NOT_AUTHORIZED"):
            session.publish(topic, {"state": {"reported": {"from": "claim"}}})
