"""fleetctl against the deployed stack: a revoked device can no longer connect with its certificate, and a
decommissioned serial can never provision again.

Each test provisions a device of its own, so the shared sample fleet is left as the other tests expect it.
"""

from __future__ import annotations

import time

import pytest

from hook.contract import Attr, DeviceStatus, RejectionReason, device_type_resource_name, thing_name
from local.devices.firmware import Identity, ProvisionedDevice
from local.devices.fleet_runner import HOOK_DENIED
from local.devices.mqtt_session import ConnectRefused, Rejected
from local.scenario.hook_logs import Denial
from local.scenario.revocation_checks import (
    a_revoked_device_cannot_connect,
    expect_new_connection_refused,
    provision_and_connect,
)
from local.scenario.sandbox import Sandbox
from program.settings import Settings
from tests.e2e.conftest import Fleetctl

pytestmark = pytest.mark.e2e

WAIT_SECONDS = 10.0
"""How long to wait for what the emulator writes asynchronously: its own log, the hook's log group."""


def _assert_refused_for_certificate_status(
    box: Sandbox, device: ProvisionedDevice, refused: ConnectRefused
) -> None:
    """The device's new MQTT connection was refused (``refused``, the scenario's check), and the broker
    says why: its certificate is REVOKED.

    With ``AUTH=true`` the emulator, as AWS IoT, closes the connection without a CONNACK for a certificate
    that is not ACTIVE, so the reason is read from the emulator's log. That tells the certificate check
    apart from a refusal by policy (CONNACK ``NOT_AUTHORIZED``), which revoking alone would also cause
    since it detaches the policy."""
    # The broker hung up without a CONNACK: refused before any policy is evaluated.
    assert "AWS_ERROR_MQTT_UNEXPECTED_HANGUP" in str(refused)
    expected = f"refusing client certificate {device.certificate_id} (status 'REVOKED')"
    deadline = time.monotonic() + WAIT_SECONDS
    while expected not in box.emulator.log_path.read_text(encoding="utf-8", errors="replace"):
        assert time.monotonic() < deadline, f"the emulator's log has no {expected!r}"
        time.sleep(0.1)


def _hook_denial(box: Sandbox, serial: str) -> Denial:
    """The last denial the hook logged for ``serial``, waiting for its log group to have it."""
    denial = box.hook_denial(serial)
    assert denial is not None, f"the hook logged no denial for {serial}"
    return denial


def _revocation_steps(serial: str, device: ProvisionedDevice, policy: str) -> list[dict[str, str]]:
    """What fleetctl reports when it revokes a provisioned device, in order, when it is alone to act."""
    return [
        {"action": "registry-revoked", "target": serial},
        {"action": "revoke-certificate", "target": device.certificate_id},
        {"action": "detach-policy", "target": policy},
        {"action": "detach-thing-principal", "target": device.thing_name},
    ]


def _assert_steps(
    steps: list[dict[str, str]], alone: list[dict[str, str]], fleetctl_only: list[dict[str, str]]
) -> None:
    """fleetctl's steps are those it takes when alone (``alone``, in order), less any the retirement
    function took first: it revokes and detaches the certificates of an item that became ``REVOKED`` while
    fleetctl goes on, and fleetctl checks each step before acting. The registry writes and what only
    fleetctl does (``fleetctl_only``) are always there."""
    assert steps[0] == alone[0]  # the registry first: from then on the hook denies the serial
    assert [step for step in alone if step in steps] == steps
    assert all(step in steps for step in fleetctl_only)


def _assert_retired(box: Sandbox, device: ProvisionedDevice) -> None:
    """Whoever took each step, the certificate ends revoked and detached from its policy and its thing."""
    certificate = box.inspector.certificate(device.certificate_id)
    assert certificate is not None
    assert (certificate.status, certificate.policies, certificate.things) == ("REVOKED", [], [])


def test_a_revoked_device_can_no_longer_connect(box: Sandbox, settings: Settings, fleetctl: Fleetctl) -> None:
    revocation = a_revoked_device_cannot_connect(
        box, lambda serial, reason: fleetctl("revoke", serial, "--reason", reason)
    )

    device = revocation.device
    identity = device.identity
    policy = device_type_resource_name(settings.base_name, identity.device_type)
    assert revocation.result["serial"] == identity.serial_number
    _assert_steps(revocation.result["steps"], _revocation_steps(identity.serial_number, device, policy), [])
    _assert_retired(box, device)
    _assert_refused_for_certificate_status(box, device, revocation.refusal)


def test_a_decommissioned_serial_cannot_provision_again(
    box: Sandbox, settings: Settings, fleetctl: Fleetctl
) -> None:
    identity = Identity("PS-910002", "pressure-sensor", "AcmeIoT", "1.0.0", "ops-lab/decommission")
    device = provision_and_connect(box, identity)
    assert device.thing_name == thing_name(settings.base_name, identity.serial_number)
    policy = device_type_resource_name(settings.base_name, identity.device_type)

    result = fleetctl("decommission", identity.serial_number)

    assert result["serial"] == identity.serial_number
    decommissioning = [
        {"action": "delete-thing", "target": device.thing_name},
        {"action": "registry-decommissioned", "target": identity.serial_number},
    ]
    _assert_steps(
        result["steps"],
        [*_revocation_steps(identity.serial_number, device, policy), *decommissioning],
        decommissioning,
    )
    item = box.inspector.registry(box.registry_table)[identity.serial_number]
    assert item[Attr.STATUS] == DeviceStatus.DECOMMISSIONED
    assert item[Attr.REVOCATION_REASON] == "decommissioned"
    assert item[Attr.CERTIFICATE_ID] == device.certificate_id
    assert box.inspector.thing(device.thing_name) is None
    certificate = box.inspector.certificate(device.certificate_id)  # kept, revoked, for the record
    assert certificate is not None
    assert certificate.status == "REVOKED"
    assert certificate.policies == []
    _assert_refused_for_certificate_status(box, device, expect_new_connection_refused(box, device))

    # The same serial comes back: a new device with the claim certificate and new keys.
    with pytest.raises(Rejected) as rejected:
        box.target.provision(identity)
    assert rejected.value.operation == "RegisterThing"
    assert rejected.value.error_code == HOOK_DENIED
    assert _hook_denial(box, identity.serial_number).reason == RejectionReason.DEVICE_DECOMMISSIONED

    new_certificate_id = rejected.value.certificate_id
    assert new_certificate_id is not None
    assert new_certificate_id != device.certificate_id
    new_certificate = box.inspector.certificate(new_certificate_id)
    assert new_certificate is not None
    assert new_certificate.status == "PENDING_ACTIVATION"
    assert new_certificate.policies == []
    assert new_certificate.things == []
    assert box.inspector.thing(device.thing_name) is None
    item = box.inspector.registry(box.registry_table)[identity.serial_number]
    assert item[Attr.STATUS] == DeviceStatus.DECOMMISSIONED
    assert item[Attr.CERTIFICATE_ID] == device.certificate_id
