"""``make demo``: the whole flow on one machine, without AWS.

Starts the emulator, deploys the local stack, pre-registers the sample fleet's factory manifest (devices
with secure elements, with their public keys) with fleetctl, provisions the sample fleet (valid devices of
every type, and devices the hook must deny) and zero-touch devices (a genuine vendor element, a counterfeit
chain, a copied chain with another key), prints what happened to each device, the registry and the stack
outputs, and stops the emulator. Exits non-zero when a device's outcome is not the one its entry in
the fleet file expects.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from hook.contract import Attr, DeviceStatus
from local.devices.fleet_runner import Outcome, provision_fleet
from local.devices.sample_fleet import APPROVED, SAMPLE_FLEET, load_fleet, preregistered
from local.scenario.emulator_lock import EmulatorBusy
from local.scenario.hook_logs import with_hook_reasons
from local.scenario.provisioned_fleet import preregister_fleet
from local.scenario.result_tables import outcome_result, outcomes_table, outputs_table, registry_table
from local.scenario.sandbox import sandbox
from local.scenario.signed_manifests import preregister_signed_manifests, signed_manifest_devices
from local.scenario.zero_touch import zero_touch_devices
from program.outputs import StackOutput


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--fleet", "--manifest", type=Path, default=SAMPLE_FLEET, help="devices to provision (JSON)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="devices provisioning at once")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    started = time.monotonic()
    devices = load_fleet(arguments.fleet)

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {message}", flush=True)

    step("starting the AWS emulator (ministack) on 127.0.0.1 ...")
    with sandbox(holder="make demo") as box:
        step(f"emulator ready; local stack deployed: {len(box.stack.created)} resources")
        for note in box.stack.notes:
            step(f"  note: {note}")
        zero_touch = zero_touch_devices(box)
        devices = [*devices, *zero_touch]
        step(
            f"zero-touch: {len(zero_touch)} devices of a type that trusts the simulated vendor's root, "
            "written before deploying; they send their factory certificate chain and are in no manifest"
        )
        signed = signed_manifest_devices(box)
        devices = [*devices, *signed]
        for each in preregister_signed_manifests(box, devices):
            step(
                f"fleetctl preregister --signer: the simulated vendor's signed manifest of {len(signed)} "
                "element(s), each entry's signature, signer and device certificate verified: "
                f"{each['created']} created"
            )
        manifest = preregistered(devices)
        report = preregister_fleet(box, devices)
        if report is not None:
            keys = sum(device.element is not None for device in manifest)
            step(
                f"fleetctl preregister: factory manifest of {len(manifest)} devices, {keys} with their "
                f"secure element's public key: {report['created']} created, {report['unchanged']} unchanged"
            )
        step(
            f"provisioning {len(devices)} devices from {arguments.fleet.name}, "
            f"{arguments.concurrency} at a time"
        )
        done = 0

        def progress(outcome: Outcome) -> None:
            nonlocal done
            done += 1
            verdict = (
                "provisioned" if outcome.approved else f"rejected ({outcome.error_code or outcome.error})"
            )
            step(f"  [{done}/{len(devices)}] {outcome.device.identity.serial_number}: {verdict}")

        outcomes = provision_fleet(
            box.target, devices, concurrency=arguments.concurrency, on_outcome=progress
        )
        outcomes = with_hook_reasons(
            outcomes, box.inspector.client("logs"), box.stack.outputs[StackOutput.HOOK_FUNCTION]
        )
        approved = [outcome.device.identity.serial_number for outcome in outcomes if outcome.approved]
        registry = box.wait_for_status(approved, DeviceStatus.ACTIVE)
        print(f"\nDevices\n\n{outcomes_table(outcomes)}\n")
        print(f"Registry ({box.registry_table})\n\n{registry_table(registry)}\n")
        print(f"Stack outputs\n\n{outputs_table(box.stack.outputs)}\n")
        print(box.stack.outputs[StackOutput.DEPLOYMENT_INSTRUCTIONS])
        step("stopping the emulator")
    unexpected = [outcome for outcome in outcomes if outcome_result(outcome) != outcome.device.expect]
    not_active = [
        serial for serial in approved if registry.get(serial, {}).get(Attr.STATUS) != DeviceStatus.ACTIVE
    ]
    step(
        f"done: {sum(outcome_result(o) == APPROVED for o in outcomes)} provisioned, "
        f"{sum(outcome_result(o) != APPROVED for o in outcomes)} rejected, "
        f"{len(unexpected)} unexpected outcomes, {len(not_active)} approved devices not ACTIVE"
    )
    return 1 if unexpected or not_active else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EmulatorBusy as error:
        sys.exit(f"make demo: {error}")
