"""How the Pulumi program scales with the number of device types, under Pulumi's mock engine.

Run from the repository root::

    .venv/bin/python -m bench.program_bench [--repeat 3] [--strict]

For 4, 50 and 200 device types it prints the time to build the program (median of ``--repeat`` runs),
the number of resources, resources per device type and the provisioning template body size. Targets:
time for 200 types at most 5 x the time for 50 (linear growth), the same number of resources for each
added device type, and a template body under AWS's 10 KB limit at 200 types.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time

from tests.pulumi_mocks import Deployment, deploy

SIZES = (4, 50, 200)
GROWTH_TARGET = 5.0
BODY_LIMIT = 10 * 1024


def build(device_types: int) -> tuple[float, Deployment]:
    """Seconds to run the program with ``device_types`` types, and what it declared."""
    config = {"aws:region": "us-east-1", "deviceTypes": [f"type-{n:03d}" for n in range(device_types)]}
    start = time.perf_counter()
    deployment = deploy(config)
    return time.perf_counter() - start, deployment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median is used (default 3)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    build(4)  # warm-up: imports and the first mock engine
    seconds: dict[int, float] = {}
    resources: dict[int, int] = {}
    body_bytes: dict[int, int] = {}
    for size in SIZES:
        runs = [build(size) for _ in range(args.repeat)]
        seconds[size] = statistics.median(elapsed for elapsed, _ in runs)
        deployment = runs[0][1]
        resources[size] = len(deployment.mocks.resources)
        template = deployment.mocks.one("aws:iot/provisioningTemplate:ProvisioningTemplate")
        body_bytes[size] = len(template.inputs["templateBody"].encode())

    print(f"{'device types':>12} {'seconds':>9} {'resources':>10} {'per type':>9} {'body bytes':>11}")
    for size in SIZES:
        per_type = resources[size] / size
        print(
            f"{size:>12} {seconds[size]:>9.3f} {resources[size]:>10} {per_type:>9.2f} {body_bytes[size]:>11,}"
        )

    growth = seconds[200] / seconds[50]
    marginal = [(resources[b] - resources[a]) / (b - a) for a, b in itertools.pairwise(SIZES)]
    results = [
        (
            "time 200 / time 50",
            f"{growth:.2f}",
            f"<= {GROWTH_TARGET} (linear is 4.0)",
            growth <= GROWTH_TARGET,
        ),
        (
            "resources per added type",
            " / ".join(f"{value:.2f}" for value in marginal),
            "constant",
            len(set(marginal)) == 1,
        ),
        ("body at 200 types", f"{body_bytes[200]:,} B", f"< {BODY_LIMIT:,} B", body_bytes[200] < BODY_LIMIT),
    ]
    print()
    for name, value, target, passed in results:
        print(f"{name:<26}{value:>14}  target {target:<28} {'PASS' if passed else 'FAIL'}")
    missed = [name for name, _, _, passed in results if not passed]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
