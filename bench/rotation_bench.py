"""Rotation benchmark: rotate the certificates of N provisioned devices by job, a few devices at a time,
against the local emulator.

Provisions N devices (keys made on the device), creates one rotation job for all of them with
``fleetctl rotate start --type T --yes``, then runs each device's side of the job
(``local/devices/jobs_agent.py``): take the job, make a new key and CSR, receive the new certificate, connect
with it, report success. It waits until the registry holds every new certificate and every old one is
revoked, and prints rotations per minute end to end (the device's side alone, and until the old certificate
is retired).

    .venv/bin/python -m bench.rotation_bench [--devices 24] [--concurrency 4]

The emulator's figures say nothing about AWS; they are here to catch regressions in the local flow.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from typer.testing import CliRunner

from fleetctl.cli import app
from hook.contract import Attr, DeviceStatus
from local.devices.firmware import Identity, ProvisionedDevice
from local.devices.jobs_agent import JobStatus, RotationOutcome, rotate_by_job
from local.devices.key_pairs import DeviceKeys, KeyAlgorithm
from local.emulator.launcher import ACCESS_KEY
from local.scenario.deployment import eventually
from local.scenario.sandbox import Sandbox, sandbox

DEVICE_TYPE = "humidity-sensor"
RETIREMENT_WAIT_SECONDS = 120.0


def provision_devices(box: Sandbox, count: int, concurrency: int) -> list[ProvisionedDevice]:
    """``count`` fresh devices of :data:`DEVICE_TYPE`, provisioned with keys made on the device."""
    target = box.target

    def one(number: int) -> ProvisionedDevice:
        identity = Identity(f"HS-8{number:05d}", DEVICE_TYPE, "AcmeIoT", "1.0.0", "rotation-bench")
        return target.provision(identity, DeviceKeys(KeyAlgorithm.EC_P256))

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(count)))


def create_job(box: Sandbox) -> str:
    """One rotation job for every ACTIVE device of :data:`DEVICE_TYPE`, created by fleetctl."""
    with tempfile.TemporaryDirectory() as directory:
        outputs = Path(directory) / "stack.json"
        outputs.write_text(json.dumps(box.stack.outputs), encoding="utf-8")
        os.environ.update(
            AWS_ENDPOINT_URL=box.emulator.address.endpoint_url,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=ACCESS_KEY,
        )
        result = CliRunner().invoke(
            app, ["--outputs", str(outputs), "rotate", "start", "--type", DEVICE_TYPE, "--yes", "--json"]
        )
    if result.exit_code != 0:
        raise SystemExit(f"fleetctl rotate failed: {result.output}")
    jobs = json.loads(result.stdout)["jobs"]
    return ", ".join(job["jobId"] for job in jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    with sandbox() as box:
        devices = provision_devices(box, options.devices, options.concurrency)
        serials = [device.identity.serial_number for device in devices]
        box.wait_for_status(serials, DeviceStatus.ACTIVE)
        print(f"job(s): {create_job(box)} for {len(devices)} devices")

        def rotate(device: ProvisionedDevice) -> RotationOutcome:
            return rotate_by_job(
                box.target.broker, device.thing_name, device.credentials, device.certificate_id
            )

        started = time.perf_counter()
        with ThreadPoolExecutor(options.concurrency) as pool:
            outcomes = list(pool.map(rotate, devices))
        device_side = time.perf_counter() - started
        failed = [outcome for outcome in outcomes if outcome.status != JobStatus.SUCCEEDED]
        old = {device.certificate_id for device in devices}
        retired = eventually(
            lambda: {each for each in old if _revoked(box, each)},
            lambda done: done == old,
            RETIREMENT_WAIT_SECONDS,
            0.5,
        )
        end_to_end = time.perf_counter() - started
        registry = box.inspector.registry(box.registry_table)
        switched = sum(
            registry[device.identity.serial_number].get(Attr.CERTIFICATE_ID) == outcome.certificate_id
            for device, outcome in zip(devices, outcomes, strict=True)
        )
    succeeded = len(outcomes) - len(failed)
    print(f"rotations: {succeeded} succeeded, {len(failed)} failed, concurrency {options.concurrency}")
    print(f"device side: {device_side:.1f} s, {60 * len(outcomes) / device_side:.0f} rotations/min")
    print(
        f"until the registry switched ({switched}/{len(devices)}) and the old certificates were revoked "
        f"({len(retired)}/{len(old)}): {end_to_end:.1f} s, "
        f"{60 * len(outcomes) / end_to_end:.0f} rotations/min"
    )
    if failed or switched != len(devices) or retired != old:
        raise SystemExit(1)


def _revoked(box: Sandbox, certificate_id: str) -> bool:
    certificate = box.inspector.certificate(certificate_id)
    return certificate is not None and certificate.status == "REVOKED"


if __name__ == "__main__":
    main()
