"""Re-provisioning after a factory reset or a board swap, on the emulator: an ACTIVE serial asking with a new
certificate is denied, until ``fleetctl reprovision`` grants exactly one next provisioning; then the same
thing gets the new certificate, the old one is revoked and detached, and the registry records who allowed
it and why."""

from __future__ import annotations

import pytest

from hook.contract import Attr, DeviceStatus, RejectionReason
from local.devices.firmware import Identity
from local.devices.fleet_runner import HOOK_DENIED
from local.devices.mqtt_session import Rejected, Session
from local.scenario.deployment import eventually
from local.scenario.revocation_checks import expect_new_connection_refused, provision_and_connect
from local.scenario.sandbox import Sandbox
from program.settings import Settings
from tests.e2e.conftest import Fleetctl

pytestmark = pytest.mark.e2e

WAIT_SECONDS = 15.0
REASON = "RMA-7731: main board replaced"


def _provision_again(box: Sandbox, identity: Identity) -> str:
    device = box.target.provision(identity)
    with Session(box.target.broker, device.credentials, device.thing_name):
        pass  # the new certificate connects as the same thing
    return device.certificate_id


def _denied(box: Sandbox, identity: Identity) -> RejectionReason:
    with pytest.raises(Rejected) as rejected:
        _provision_again(box, identity)
    assert rejected.value.error_code == HOOK_DENIED
    denial = box.hook_denial(identity.serial_number)
    assert denial is not None
    return RejectionReason(denial.reason)


def test_a_reprovision_grant_admits_exactly_one_new_certificate(
    box: Sandbox, settings: Settings, fleetctl: Fleetctl
) -> None:
    identity = Identity("PS-950001", "pressure-sensor", "Barotech", "3.0.0", "rma-bench")
    device = provision_and_connect(box, identity)
    assert _denied(box, identity) == RejectionReason.DUPLICATE_SERIAL

    granted = fleetctl("reprovision", identity.serial_number, "--reason", REASON)
    assert (granted["serial"], granted["reason"], granted["thingName"]) == (
        identity.serial_number,
        REASON,
        device.thing_name,
    )
    new_certificate = _provision_again(box, identity)

    item = box.inspector.registry(box.registry_table)[identity.serial_number]
    assert item[Attr.STATUS] == DeviceStatus.ACTIVE
    assert item[Attr.CERTIFICATE_ID] == new_certificate
    assert item[Attr.REPLACED_CERTIFICATE_IDS].split() == [device.certificate_id]
    assert item[Attr.REPROVISION_REASON] == REASON
    assert item[Attr.REPROVISION_GRANTED_BY]
    assert item[Attr.REPROVISIONED_AT] > item[Attr.REPROVISION_GRANTED_AT]
    assert Attr.REPROVISION_ALLOWED_UNTIL not in item
    retired = eventually(
        lambda: box.inspector.certificate(device.certificate_id),
        lambda found: (
            found is not None and (found.status, found.things, found.policies) == ("REVOKED", [], [])
        ),
        WAIT_SECONDS,
        box.patience.interval,
    )
    assert retired is not None
    assert (retired.status, retired.things, retired.policies) == ("REVOKED", [], [])
    expect_new_connection_refused(box, device)
    thing = box.inspector.thing(device.thing_name)
    assert thing is not None
    current = box.inspector.certificate(new_certificate)
    assert current is not None
    assert thing.principals == [current.arn]

    assert _denied(box, identity) == RejectionReason.DUPLICATE_SERIAL  # the grant was used once
