"""The scenario's revocation: a device provisioned and connected, revoked by the operator, then refused a
new connection, with the registry, its certificate and its thing revoked."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final, Generic, TypeVar

from hook.contract import Attr, DeviceStatus
from local.devices.firmware import Identity, ProvisionedDevice, telemetry_topic
from local.devices.mqtt_session import ConnectRefused, Session
from local.scenario.deployment import Deployment, eventually
from local.scenario.expectations import ScenarioFailure, expect, expect_equal, present

R = TypeVar("R")

REVOKED_DEVICE: Final = Identity("TS-910001", "temperature-sensor", "AcmeIoT", "1.4.2", "ops-lab/revoke")
REVOCATION_REASON: Final = "key extracted in the field"


def provision_and_connect(deployment: Deployment, identity: Identity) -> ProvisionedDevice:
    """Provision a fresh device by claim, wait until the registry has it ``ACTIVE``, and show that it
    connects as its thing and publishes its telemetry (the connection is closed on return)."""
    target = deployment.target
    device = target.provision(identity)
    registry = deployment.wait_for_status([identity.serial_number], DeviceStatus.ACTIVE)
    item = present(registry.get(identity.serial_number), f"registry item {identity.serial_number}")
    expect_equal(item[Attr.STATUS], DeviceStatus.ACTIVE, f"{identity.serial_number} status")
    with Session(target.broker, device.credentials, device.thing_name) as session:
        session.publish(
            telemetry_topic(identity.device_type, device.thing_name),
            {"serialNumber": identity.serial_number, "temperature": 20.0, "at": time.time()},
        )
    return device


def expect_new_connection_refused(deployment: Deployment, device: ProvisionedDevice) -> ConnectRefused:
    """A new MQTT connection with the device's certificate is refused; returns the refusal.

    Every attempt is a new connection, never a session opened before. Attempts repeat for the
    deployment's ``patience.revocation`` (AWS IoT may accept a revoked certificate for a moment)."""
    deadline = time.monotonic() + deployment.patience.revocation
    while True:
        try:
            with Session(deployment.target.broker, device.credentials, device.thing_name):
                pass
        except ConnectRefused as refused:
            return refused
        if time.monotonic() >= deadline:
            raise ScenarioFailure(
                f"{device.thing_name} still connects with certificate {device.certificate_id}"
            )
        time.sleep(deployment.patience.interval)


def expect_revoked(deployment: Deployment, device: ProvisionedDevice, reason: str) -> None:
    """The registry has the device ``REVOKED`` with ``reason``; its certificate is ``REVOKED`` without
    policy or thing; its thing is kept, without a certificate.

    AWS IoT applies a revocation and its detachments asynchronously (API Reference, DetachThingPrincipal:
    "might take several seconds"), so what AWS IoT reports is read again for the deployment's
    ``patience.revocation`` until it holds; the last difference is the failure."""
    serial = device.identity.serial_number
    item = present(
        deployment.inspector.registry(deployment.registry_table).get(serial), f"registry item {serial}"
    )
    expect_equal(item[Attr.STATUS], DeviceStatus.REVOKED, f"{serial} status")
    expect_equal(item.get(Attr.REVOCATION_REASON), reason, f"{serial} revocationReason")
    expect(item.get(Attr.REVOKED_AT), f"{serial}: no revokedAt")
    expect_equal(item[Attr.CERTIFICATE_ID], device.certificate_id, f"{serial} certificateId")
    failure = eventually(
        partial(_iot_difference, deployment, device),
        lambda difference: difference is None,
        deployment.patience.revocation,
        deployment.patience.interval,
    )
    if failure is not None:
        raise failure


def _iot_difference(deployment: Deployment, device: ProvisionedDevice) -> ScenarioFailure | None:
    """How the revoked device's certificate and thing in AWS IoT differ from revoked and detached, if
    they do."""
    serial, inspector = device.identity.serial_number, deployment.inspector
    try:
        certificate = present(
            inspector.certificate(device.certificate_id), f"certificate {device.certificate_id}"
        )
        expect_equal(certificate.status, "REVOKED", f"{serial}: certificate status")
        expect_equal(certificate.policies, [], f"{serial}: certificate policies")
        expect_equal(certificate.things, [], f"{serial}: certificate things")
        thing = present(inspector.thing(device.thing_name), f"thing {device.thing_name}")
        expect_equal(thing.principals, [], f"{device.thing_name} principals")
    except ScenarioFailure as failure:
        return failure
    return None


@dataclass(frozen=True)
class Revocation(Generic[R]):
    """A device revoked by the scenario: the device, what ``revoke`` returned, and the refusal."""

    device: ProvisionedDevice
    result: R
    refusal: ConnectRefused


def a_revoked_device_cannot_connect(deployment: Deployment, revoke: Callable[[str, str], R]) -> Revocation[R]:
    """Provision and connect :data:`REVOKED_DEVICE`, revoke it with ``revoke(serial, reason)`` (fleetctl),
    then expect a new connection to be refused and the registry, certificate and thing revoked."""
    device = provision_and_connect(deployment, REVOKED_DEVICE)
    result = revoke(REVOKED_DEVICE.serial_number, REVOCATION_REASON)
    refusal = expect_new_connection_refused(deployment, device)
    expect_revoked(deployment, device, REVOCATION_REASON)
    return Revocation(device, result, refusal)
