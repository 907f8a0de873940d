"""The sample fleet provisioned for the scenario: its factory manifest pre-registered with fleetctl, every
device provisioned, the hook's reasons for the rejected ones read back, and the approved ones ``ACTIVE``."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hook.contract import DeviceStatus
from local.devices.factory import write_manifest
from local.devices.fleet_runner import HOOK_DENIED, Outcome, provision_fleet
from local.devices.sample_fleet import FleetDevice, preregistered
from local.scenario.deployment import Deployment, eventually
from local.scenario.expectations import expect
from local.scenario.hook_logs import with_hook_reasons
from local.scenario.signed_manifests import preregister_signed_manifests
from program.outputs import StackOutput

FLEET_CONCURRENCY: Final = 4
"""Devices provisioning at once. Each concurrent hook invocation may start a new Lambda worker in the
emulator (a Python process importing Powertools and boto3); 4 keeps that burst well inside the emulator's
6-second hook deadline on a 2-core runner. The benchmark measures 8 at a time."""


@dataclass(frozen=True)
class Fleet:
    """The outcomes of a provisioned fleet, with the hook's reasons for the rejected devices."""

    outcomes: list[Outcome]

    @property
    def approved(self) -> list[Outcome]:
        """The devices that provisioned."""
        return [outcome for outcome in self.outcomes if outcome.approved]

    @property
    def rejected(self) -> list[Outcome]:
        """The devices that did not."""
        return [outcome for outcome in self.outcomes if not outcome.approved]


def preregister_fleet(deployment: Deployment, devices: Iterable[FleetDevice]) -> dict[str, Any] | None:
    """Import the factory manifest of the devices marked ``preregister``, each secure element's public key
    in it, with ``fleetctl preregister``; fleetctl's report (``None`` when no device is marked). Fails
    unless every row was created or was there already, unchanged."""
    listed = preregistered(devices)
    if not listed:
        return None
    with tempfile.TemporaryDirectory() as directory:
        manifest = Path(directory) / "factory-manifest.csv"
        write_manifest(manifest, [(device.identity, device.element) for device in listed])
        report: dict[str, Any] = deployment.fleetctl("preregister", str(manifest))
    expect(
        not report["conflicts"] and not report["skipped"],
        f"fleetctl preregister left rows out of the factory manifest: {report}",
    )
    return report


def provision_devices(
    deployment: Deployment,
    devices: Iterable[FleetDevice],
    *,
    concurrency: int = FLEET_CONCURRENCY,
) -> Fleet:
    """Pre-register the devices of the factory manifest (:func:`preregister_fleet`) and of their vendors'
    signed manifests (:func:`~local.scenario.signed_manifests.preregister_signed_manifests`), provision
    ``devices``, wait for the hook's reasons to be logged and for approved devices to be ``ACTIVE`` (up to
    the deployment's patience), and return the fleet."""
    devices = list(devices)
    preregister_fleet(deployment, devices)
    preregister_signed_manifests(deployment, devices)
    outcomes = provision_fleet(deployment.target, devices, concurrency=concurrency)
    logs = deployment.inspector.client("logs")
    outcomes = eventually(
        lambda: with_hook_reasons(outcomes, logs, deployment.outputs[StackOutput.HOOK_FUNCTION]),
        lambda found: all(outcome.reason for outcome in found if outcome.error_code == HOOK_DENIED),
        deployment.patience.logs,
        deployment.patience.interval,
    )
    fleet = Fleet(outcomes)
    deployment.wait_for_status([o.device.identity.serial_number for o in fleet.approved], DeviceStatus.ACTIVE)
    return fleet
