"""End-to-end benchmark: provision 50 devices, 8 at a time, against the local emulator.

Each device connects with the claim certificate, calls CreateKeysAndCertificate (``FleetDevice``'s default:
AWS IoT makes the key) and RegisterThing (through the pre-provisioning hook), then reconnects as its thing
and publishes its first telemetry.
Prints p50/p99 seconds per device, devices per second, and the share of each step.

    .venv/bin/python bench/e2e_bench.py [--devices 50] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local.device import Identity
from local.fleet import Outcome, provision_fleet
from local.sample_fleet import APPROVED, FleetDevice
from local.sandbox import sandbox

STEPS = ("connect", "create certificate", "register", "first publish")
SERIALS = {
    "temperature-sensor": "TS-7{:05d}",
    "humidity-sensor": "HS-7{:05d}",
    "pressure-sensor": "PS-7{:05d}",
    "gateway": "GW-7{:07X}",
}


def bench_devices(count: int) -> list[FleetDevice]:
    """``count`` valid devices, spread over every device type of the local stack."""
    types = list(SERIALS)
    return [
        FleetDevice(
            Identity(
                SERIALS[types[n % len(types)]].format(n), types[n % len(types)], "AcmeIoT", "2.5.0", "bench"
            ),
            APPROVED,
        )
        for n in range(count)
    ]


def report(outcomes: list[Outcome], elapsed: float) -> None:
    """Print the latency distribution, the throughput and the share of each step."""
    seconds = [outcome.seconds for outcome in outcomes]
    failed = [outcome for outcome in outcomes if not outcome.approved]
    print(f"devices: {len(outcomes)} ({len(failed)} failed) in {elapsed:.2f} s")
    # Percentiles interpolated between the samples; quantiles() needs two, one device is its own percentile.
    cuts = statistics.quantiles(seconds, n=100, method="inclusive") if len(seconds) > 1 else seconds * 99
    print(f"per device: p50 {cuts[49]:.3f} s, p99 {cuts[98]:.3f} s, mean {statistics.fmean(seconds):.3f} s")
    print(f"throughput: {len(outcomes) / elapsed:.2f} devices/s")
    totals = {step: sum(outcome.timings.steps.get(step, 0.0) for outcome in outcomes) for step in STEPS}
    overall = sum(totals.values()) or 1.0
    for step in STEPS:
        print(
            f"  {step:<14} {100 * totals[step] / overall:5.1f} %  (mean {totals[step] / len(outcomes):.3f} s)"
        )
    for outcome in failed[:5]:
        print(f"  failed: {outcome.device.identity.serial_number}: {outcome.error}")


def main() -> int:
    """Run the benchmark; non-zero when a device failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    arguments = parser.parse_args()
    devices = bench_devices(arguments.devices)
    with sandbox() as box:
        started = time.perf_counter()
        outcomes = provision_fleet(box.target, devices, concurrency=arguments.concurrency)
        elapsed = time.perf_counter() - started
    report(outcomes, elapsed)
    return 1 if any(not outcome.approved for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
