"""A device whose RegisterThing answer was lost retries with the same certificate and gets the same thing."""

from __future__ import annotations

import pytest

from hook.contract import Attr, DeviceStatus
from local.devices.firmware import Identity, Provisioning
from local.devices.mqtt_session import Session
from local.scenario.sandbox import Sandbox

pytestmark = pytest.mark.e2e


def test_register_thing_retried_with_the_same_certificate_succeeds_once(box: Sandbox) -> None:
    identity = Identity("HS-900001", "humidity-sensor", "AcmeIoT", "1.0.0", "retry-lab")
    with box.target.claim_session(identity.serial_number) as session:
        provisioning = Provisioning(session)
        issued = provisioning.create_keys_and_certificate()
        first = provisioning.register_thing(
            box.target.template_name, issued.ownership_token, identity.parameters()
        )
        retried = provisioning.register_thing(
            box.target.template_name, issued.ownership_token, identity.parameters()
        )
    assert retried == first

    registry = box.wait_for_status([identity.serial_number], DeviceStatus.ACTIVE)
    item = registry[identity.serial_number]
    assert item[Attr.STATUS] == DeviceStatus.ACTIVE
    assert item[Attr.CERTIFICATE_ID] == issued.certificate_id
    assert item[Attr.THING_NAME] == first
    certificate = box.inspector.certificate(issued.certificate_id)
    assert certificate is not None
    assert certificate.status == "ACTIVE"
    assert certificate.things == [first]
    thing = box.inspector.thing(first)
    assert thing is not None
    assert thing.principals == [certificate.arn]
    with Session(box.target.broker, issued.credentials, first):
        pass
