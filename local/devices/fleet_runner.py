"""Provision a fleet (``local/devices/sample_fleet.py``) a few devices at a time; collect each device's
outcome."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from local.devices.firmware import Identity, ProvisionedDevice, Timings, provision, telemetry_topic
from local.devices.key_pairs import AwsKeys, KeySource
from local.devices.mqtt_session import Broker, Credentials, DeviceError, Rejected, Session
from local.devices.sample_fleet import FleetDevice
from program.outputs import StackOutput

HOOK_DENIED: Final = "AccessDenied"
"""The error code RegisterThing answers with when the pre-provisioning hook denied the device."""


@dataclass(frozen=True)
class FleetTarget:
    """What devices need from the stack: the broker, the claim certificate, the template."""

    broker: Broker
    claim: Credentials
    claim_client_id_prefix: str
    template_name: str
    on_certificate: Callable[[str], None] = field(default=lambda certificate_id: None, compare=False)
    """Told the id of every certificate a device gets, as soon as AWS IoT has issued it (before
    ``RegisterThing``, which may fail): whoever cleans up finds it even if the device fails later."""

    @classmethod
    def from_outputs(
        cls,
        broker: Broker,
        outputs: dict[str, Any],
        on_certificate: Callable[[str], None] = lambda certificate_id: None,
    ) -> FleetTarget:
        """The target described by the stack outputs (the claim key is the ``claimCertificatePrivateKey``)."""
        return cls(
            broker=broker,
            claim=Credentials(
                outputs[StackOutput.CLAIM_CERTIFICATE_PEM], outputs[StackOutput.CLAIM_PRIVATE_KEY]
            ),
            claim_client_id_prefix=outputs[StackOutput.CLAIM_CLIENT_ID_PREFIX],
            template_name=outputs[StackOutput.TEMPLATE_NAME],
            on_certificate=on_certificate,
        )

    def claim_session(self, serial_number: str) -> Session:
        """A connection with the claim certificate, as the device of ``serial_number`` makes it."""
        return Session(self.broker, self.claim, self._claim_client_id(serial_number))

    def provision(
        self, identity: Identity, keys: KeySource | None = None, vendor_chain: str | None = None
    ) -> ProvisionedDevice:
        """Provision the device of ``identity`` by claim (:func:`~local.devices.firmware.provision`) with
        ``keys`` (AWS IoT makes the key pair when none are given), and a zero-touch device's
        ``vendor_chain``."""
        return provision(
            self.broker,
            self.claim,
            self._claim_client_id(identity.serial_number),
            self.template_name,
            identity,
            keys=AwsKeys() if keys is None else keys,
            on_certificate=self.on_certificate,
            vendor_chain=vendor_chain,
        )

    def _claim_client_id(self, serial_number: str) -> str:
        return f"{self.claim_client_id_prefix}{serial_number}"


@dataclass(frozen=True)
class Outcome:
    """How one device fared: provisioned (with its thing), or not (with the error and the hook's reason)."""

    device: FleetDevice
    seconds: float
    timings: Timings = field(default_factory=Timings)
    provisioned: ProvisionedDevice | None = None
    error: str = ""
    """What went wrong (``RegisterThing rejected: AccessDenied: ...``), when something did."""
    error_code: str = ""
    """AWS IoT's error code when it rejected a request: ``AccessDenied`` when the hook denied the device."""
    rejected_certificate_id: str | None = None
    """The certificate a rejected device was issued before RegisterThing was rejected."""
    reason: str = ""
    """The hook's rejection reason and detail, when the hook denied it."""

    @property
    def approved(self) -> bool:
        """The device provisioned and published as its thing."""
        return self.provisioned is not None and not self.error


def run_device(target: FleetTarget, device: FleetDevice) -> Outcome:
    """Provision one device, then connect as its thing and publish its first telemetry."""
    started = time.perf_counter()
    identity = device.identity
    try:
        provisioned = target.provision(identity, device.keys, device.vendor_chain)
    except Rejected as rejection:
        return Outcome(
            device,
            time.perf_counter() - started,
            error=str(rejection),
            error_code=rejection.error_code,
            rejected_certificate_id=rejection.certificate_id,
        )
    except DeviceError as error:
        return Outcome(device, time.perf_counter() - started, error=str(error))
    timings = provisioned.timings
    step = time.perf_counter()
    try:
        with Session(target.broker, provisioned.credentials, provisioned.thing_name) as session:
            session.publish(
                telemetry_topic(identity.device_type, provisioned.thing_name),
                {"serialNumber": identity.serial_number, "temperature": 21.5, "at": time.time()},
            )
    except DeviceError as error:
        return Outcome(device, time.perf_counter() - started, timings, provisioned, error=str(error))
    timings.measure("first publish", step)
    return Outcome(device, time.perf_counter() - started, timings, provisioned)


def provision_fleet(
    target: FleetTarget,
    devices: Iterable[FleetDevice],
    *,
    concurrency: int = 8,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Provision every device, ``concurrency`` at a time; a repeated serial waits until the device that
    used it first has finished. Returns the outcomes in the fleet's order."""
    devices = list(devices)
    outcomes: dict[int, Outcome] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="device") as pool:
        for wave in _waves(devices):

            def run(index: int) -> None:
                outcomes[index] = run_device(target, devices[index])
                on_outcome(outcomes[index])

            list(pool.map(run, wave))
    return [outcomes[index] for index in range(len(devices))]


def _waves(devices: list[FleetDevice]) -> list[list[int]]:
    """Device indexes in waves: the n-th use of a serial goes in wave n."""
    waves: list[list[int]] = []
    uses: dict[str, int] = {}
    for index, device in enumerate(devices):
        wave = uses.get(device.identity.serial_number, 0)
        uses[device.identity.serial_number] = wave + 1
        if wave == len(waves):
            waves.append([])
        waves[wave].append(index)
    return waves
