"""One certificate, one device: a holder of the claim certificate who gets one certificate cannot register
it for a second serial."""

from __future__ import annotations

import pytest

from hook.contract import Attr, DeviceStatus, RejectionReason, thing_name
from local.devices.firmware import Identity, Provisioning
from local.devices.fleet_runner import HOOK_DENIED
from local.devices.mqtt_session import Rejected
from local.scenario.sandbox import Sandbox
from program.settings import Settings

pytestmark = pytest.mark.e2e


def test_one_certificate_registering_a_second_serial_is_denied(box: Sandbox, settings: Settings) -> None:
    first = Identity("HS-930001", "humidity-sensor", "AcmeIoT", "1.0.0", "attack-lab")
    second = Identity("HS-930002", "humidity-sensor", "AcmeIoT", "1.0.0", "attack-lab")
    with box.target.claim_session(first.serial_number) as session:
        provisioning = Provisioning(session)
        issued = provisioning.create_keys_and_certificate()

        def register(identity: Identity) -> str:
            token = issued.ownership_token  # one certificate for every request
            return provisioning.register_thing(box.target.template_name, token, identity.parameters())

        thing = register(first)
        registry_before = box.inspector.registry_contents(box.registry_table)
        with pytest.raises(Rejected) as rejected:
            register(second)
        retried = register(first)  # a RegisterThing retry for the first serial is still approved

    assert thing == thing_name(settings.base_name, first.serial_number)
    assert retried == thing
    assert (rejected.value.operation, rejected.value.error_code) == ("RegisterThing", HOOK_DENIED)
    denial = box.hook_denial(second.serial_number)
    assert denial is not None
    assert denial.reason == RejectionReason.CERTIFICATE_IN_USE
    assert first.serial_number in denial.detail

    devices, bindings = box.inspector.registry_contents(box.registry_table)
    assert second.serial_number not in devices
    assert second.serial_number not in registry_before[0]
    assert bindings[issued.certificate_id] == first.serial_number
    assert bindings == registry_before[1]
    assert box.inspector.thing(thing_name(settings.base_name, second.serial_number)) is None
    registry = box.wait_for_status([first.serial_number], DeviceStatus.ACTIVE)
    assert registry[first.serial_number][Attr.CERTIFICATE_ID] == issued.certificate_id
    certificate = box.inspector.certificate(issued.certificate_id)
    assert certificate is not None
    assert certificate.things == [thing]
