"""End-to-end benchmark: provision devices 8 at a time against the local emulator, with the stack's hook and
with a hook that allows everything, and compare the two.

Each device connects with the claim certificate, calls CreateKeysAndCertificate (``FleetDevice``'s default:
AWS IoT makes the key) and RegisterThing (through the pre-provisioning hook), then reconnects as its thing
and publishes its first telemetry.

The burst is measured twice in the same run, on the same emulator and stack:

- **hook**: the stack's pre-provisioning hook (rules, one registry transaction, logs and metrics);
- **floor**: the emulator's own floor, a second function deployed beside the hook whose handler returns
  ``{"allowProvisioning": true, "parameterOverrides": {}}`` and does no I/O (no registry, no logs, no
  metrics, imports nothing). The provisioning template is switched to it with ``UpdateProvisioningTemplate``
  and back; everything else (MQTT, certificates, the template, the thing-created rule and its activation
  function) is the same.

The bursts alternate ``hook, floor, floor, hook, ...``: each round is a pair, one burst of each side, so
that drift in the machine's load and in the emulator's growing state falls on both sides, each burst with
new serials. Before the first, each function is invoked ``--concurrency`` times at once with an empty event
(the hook denies it as malformed before any I/O) so that the emulator starts a worker per concurrent
invocation, then an untimed burst of ``--concurrency`` devices goes through it, both repeated (up to three
times) until such a burst has no refusal: the bursts compare warm invocations (the hook's cold start is
``bench/hook_bench.py``'s figure), and the worker cold starts that happened during the timed bursts anyway
are counted from the emulator's log and printed. ``--no-warm-up`` times the cold bursts instead: on a loaded
2-core machine, 8 hook workers starting at once can miss the emulator's 6-second hook deadline, which
refuses the device (``InvocationError``).

Prints, for each side, p50/p99 seconds per device, devices per second and the share of each step; then each
round's burst ratio (the hook's seconds to provision ``--devices`` devices over the floor's, in that round)
and, beside the target, their median with their spread (lowest-highest): one noisy burst moves the median
less than it moves a sum. The ratio pooled over the rounds (summed seconds), the p50/p99 and register-step
ratios follow for information. A round in which a device failed is marked, and any failure fails the
run: its bursts are not comparable. The defaults, 4 rounds of 24 devices a side (three waves of 8), provision
as many devices as two rounds of 50 did, so that the run stays within about three minutes on a shared
2-core machine.

    flock /tmp/e2e.lock .venv/bin/python -m bench.e2e_bench \
        [--devices 24] [--concurrency 8] [--rounds 4] [--no-warm-up] [--strict]

The emulator listens on fixed ports (4566, 8883): run one at a time. Its figures say nothing about AWS;
they are there to catch regressions in the local flow and to say what the hook adds to it.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from local.devices.firmware import Identity
from local.devices.fleet_runner import HOOK_DENIED, Outcome, provision_fleet
from local.devices.sample_fleet import APPROVED, FleetDevice
from local.scenario.sandbox import Sandbox, sandbox
from program.outputs import StackOutput

STEPS = ("connect", "create certificate", "register", "first publish")
SERIALS = {
    "temperature-sensor": "TS-7{:05d}",
    "humidity-sensor": "HS-7{:05d}",
    "pressure-sensor": "PS-7{:05d}",
    "gateway": "GW-7{:07X}",
}
BURST_RATIO_TARGET: Final = 1.3
FLOOR_MODULE: Final = "allow_all"
FLOOR_SOURCE: Final = (
    '"""The emulator\'s floor: a pre-provisioning hook that allows every request and does no I/O."""\n'
    "\n"
    "\n"
    "def lambda_handler(event, context):\n"
    '    return {"allowProvisioning": True, "parameterOverrides": {}}\n'
)
WARM_UP_ATTEMPTS: Final = 3
"""Untimed warm-up bursts through a side, until one goes through without a refusal: on a loaded machine a
worker can miss the hook deadline while it starts, and the first timed burst would pay for it."""
HOOK_PAYLOAD_VERSION: Final = "2020-04-01"
"""The only payload version AWS IoT supports for a pre-provisioning hook."""


def bench_devices(count: int, start: int = 0) -> list[FleetDevice]:
    """``count`` valid devices numbered from ``start``, spread over every device type of the local stack."""
    types = list(SERIALS)
    return [
        FleetDevice(
            Identity(
                SERIALS[types[n % len(types)]].format(n), types[n % len(types)], "AcmeIoT", "2.5.0", "bench"
            ),
            APPROVED,
        )
        for n in range(start, start + count)
    ]


@dataclass(frozen=True)
class Burst:
    """One timed burst: its devices' outcomes and the seconds it took."""

    outcomes: list[Outcome]
    seconds: float

    @property
    def failed(self) -> int:
        return sum(not outcome.approved for outcome in self.outcomes)


@dataclass
class Side:
    """The bursts run through one hook function, one per round."""

    name: str
    function_arn: str
    bursts: list[Burst] = field(default_factory=list)
    cold_starts: int = 0
    """Workers the emulator started for the function during the timed bursts."""

    @property
    def outcomes(self) -> list[Outcome]:
        return [outcome for burst in self.bursts for outcome in burst.outcomes]

    @property
    def seconds(self) -> float:
        return sum(burst.seconds for burst in self.bursts)


class HookSwitch:
    """The stack's hook and the floor function beside it; :meth:`use` points the template at either."""

    def __init__(self, box: Sandbox) -> None:
        self._iot = box.inspector.client("iot")
        self._lambda = box.inspector.client("lambda")
        self._template = str(box.outputs[StackOutput.TEMPLATE_NAME])
        hook = self._lambda.get_function_configuration(
            FunctionName=str(box.outputs[StackOutput.HOOK_FUNCTION])
        )
        self.hook_arn = str(hook["FunctionArn"])
        self.floor_arn = self._deploy_floor(hook)

    def _deploy_floor(self, hook: dict[str, Any]) -> str:
        """The allow-all function, with the hook's runtime, architecture, memory and role, invocable by
        AWS IoT of this account as the hook is."""
        name = f"{hook['FunctionName']}-floor"
        created = self._lambda.create_function(
            FunctionName=name,
            Runtime=hook["Runtime"],
            Role=hook["Role"],
            Handler=f"{FLOOR_MODULE}.lambda_handler",
            Code={"ZipFile": _zip({f"{FLOOR_MODULE}.py": FLOOR_SOURCE})},
            Timeout=hook["Timeout"],
            MemorySize=hook["MemorySize"],
            Architectures=hook.get("Architectures", ["x86_64"]),
            Description="bench/e2e_bench.py: the emulator's floor, a hook that allows everything",
        )
        self._lambda.get_waiter("function_active_v2").wait(FunctionName=name)
        account = created["FunctionArn"].split(":")[4]
        self._lambda.add_permission(
            FunctionName=name,
            StatementId="iot-provisioning-hook",
            Action="lambda:InvokeFunction",
            Principal="iot.amazonaws.com",
            SourceAccount=account,
        )
        return str(created["FunctionArn"])

    def start_workers(self, function_arn: str, count: int) -> None:
        """Invoke ``function_arn`` ``count`` times at once with an empty event: the emulator starts a worker
        for each invocation that finds every other one busy."""
        with ThreadPoolExecutor(count) as pool:
            list(
                pool.map(
                    lambda _: self._lambda.invoke(FunctionName=function_arn, Payload=b"{}"), range(count)
                )
            )

    def use(self, function_arn: str) -> None:
        """Make ``function_arn`` the template's pre-provisioning hook."""
        self._iot.update_provisioning_template(
            templateName=self._template,
            preProvisioningHook={"targetArn": function_arn, "payloadVersion": HOOK_PAYLOAD_VERSION},
        )


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def run_bursts(
    box: Sandbox, devices: int, concurrency: int, rounds: int, *, warm_up: bool
) -> tuple[Side, Side]:
    """Warm both functions up, then ``rounds`` pairs of bursts in the order hook, floor, floor, hook, ..."""
    switch = HookSwitch(box)
    hook = Side("hook", switch.hook_arn)
    floor = Side("floor", switch.floor_arn)
    next_serial = 0

    def burst(side: Side, count: int, at_a_time: int) -> Burst:
        nonlocal next_serial
        switch.use(side.function_arn)
        batch = bench_devices(count, next_serial)
        next_serial += count
        started = time.perf_counter()
        outcomes = provision_fleet(box.target, batch, concurrency=at_a_time)
        return Burst(outcomes, time.perf_counter() - started)

    if warm_up:
        for side in (hook, floor):
            for attempt in range(1, WARM_UP_ATTEMPTS + 1):
                switch.start_workers(side.function_arn, concurrency)
                refused = burst(side, concurrency, concurrency).failed
                print(f"warm-up {attempt} through the {side.name}: {concurrency} devices, {refused} refused")
                if not refused:
                    break
    log = EmulatorLog(box.emulator.log_path)
    for number in range(rounds):
        for side in (hook, floor) if number % 2 == 0 else (floor, hook):
            side.bursts.append(burst(side, devices, concurrency))
    hook.cold_starts, floor.cold_starts = (log.cold_starts(side.function_arn) for side in (hook, floor))
    switch.use(switch.hook_arn)
    hook.bursts = [
        Burst([_with_denial(box, outcome) for outcome in each.outcomes], each.seconds) for each in hook.bursts
    ]
    return hook, floor


def _with_denial(box: Sandbox, outcome: Outcome) -> Outcome:
    """The outcome, with the reason the hook logged when it denied the device."""
    if outcome.error_code != HOOK_DENIED:
        return outcome
    denial = box.hook_denial(outcome.device.identity.serial_number)
    return replace(outcome, reason=f"{denial.reason}: {denial.detail}") if denial else outcome


class EmulatorLog:
    """The emulator's log from now on: how many Lambda workers it started for a function."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._start = path.stat().st_size if path.exists() else 0

    def cold_starts(self, function_arn: str) -> int:
        """Workers started for the function since this object was made (ministack logs each one)."""
        with self._path.open("rb") as log:
            log.seek(self._start)
            text = log.read().decode(errors="replace")
        name = function_arn.rsplit(":", 1)[-1]
        return text.count(f"Lambda worker spawned for {name} (")


def _cuts(seconds: list[float]) -> list[float]:
    """Percentiles 1-99, interpolated between the samples; one sample is its own percentile."""
    return statistics.quantiles(seconds, n=100, method="inclusive") if len(seconds) > 1 else seconds * 99


def report(outcomes: list[Outcome], elapsed: float) -> None:
    """Print the latency distribution, the throughput and the share of each step."""
    seconds = [outcome.seconds for outcome in outcomes]
    failed = [outcome for outcome in outcomes if not outcome.approved]
    print(f"devices: {len(outcomes)} ({len(failed)} failed) in {elapsed:.2f} s")
    cuts = _cuts(seconds)
    print(f"per device: p50 {cuts[49]:.3f} s, p99 {cuts[98]:.3f} s, mean {statistics.fmean(seconds):.3f} s")
    print(f"throughput: {len(outcomes) / elapsed:.2f} devices/s")
    totals = {step: sum(outcome.timings.steps.get(step, 0.0) for outcome in outcomes) for step in STEPS}
    overall = sum(totals.values()) or 1.0
    for step in STEPS:
        print(
            f"  {step:<14} {100 * totals[step] / overall:5.1f} %  (mean {totals[step] / len(outcomes):.3f} s)"
        )
    for outcome in failed[:5]:
        reason = f" (hook: {outcome.reason})" if outcome.reason else ""
        print(f"  failed: {outcome.device.identity.serial_number}: {outcome.error}{reason}")


def compare(hook: Side, floor: Side, concurrency: int) -> bool:
    """Print each round's burst ratio, their median beside the target with their spread, and the
    informational ratios; whether the target is met."""
    ratios: list[float] = []
    for number, (ours, theirs) in enumerate(zip(hook.bursts, floor.bursts, strict=True), start=1):
        ratios.append(ours.seconds / theirs.seconds)
        failed_in_round = ours.failed + theirs.failed
        print(
            f"round {number} ({'hook' if number % 2 else 'floor'} first): burst ratio {ratios[-1]:.2f}  "
            f"(hook {ours.seconds:.2f} s / floor {theirs.seconds:.2f} s)"
            + (f"  {failed_in_round} failed" if failed_in_round else "")
        )
    ratio = statistics.median(ratios)
    failed = sum(burst.failed for burst in hook.bursts + floor.bursts)
    passed = ratio <= BURST_RATIO_TARGET and not failed
    print(
        f"burst ratio: {ratio:.2f}  (median of {len(ratios)} rounds, "
        f"spread {min(ratios):.2f}-{max(ratios):.2f}; "
        f"{len(hook.bursts[0].outcomes)} devices a burst, {concurrency} at a time)  "
        f"target <= {BURST_RATIO_TARGET}  {'PASS' if passed else 'FAIL'}"
        + (f" ({failed} devices failed: the bursts are not comparable)" if failed else "")
    )
    print(
        f"pooled burst ratio: {hook.seconds / floor.seconds:.2f}  "
        f"(hook {hook.seconds:.2f} s / floor {floor.seconds:.2f} s over all rounds)  info"
    )
    hook_cuts = _cuts([outcome.seconds for outcome in hook.outcomes])
    floor_cuts = _cuts([outcome.seconds for outcome in floor.outcomes])
    for label, index in (("p50", 49), ("p99", 98)):
        print(
            f"per device {label} ratio: {hook_cuts[index] / floor_cuts[index]:.2f}  "
            f"(hook {hook_cuts[index]:.3f} s / floor {floor_cuts[index]:.3f} s)  info"
        )
    print(f"worker cold starts in the timed bursts: hook {hook.cold_starts}, floor {floor.cold_starts}")
    hook_register = statistics.median(_step(hook.outcomes, "register"))
    floor_register = statistics.median(_step(floor.outcomes, "register"))
    print(
        f"register p50 ratio: {hook_register / floor_register:.2f}  "
        f"(hook {hook_register:.3f} s / floor {floor_register:.3f} s)  info"
    )
    return passed


def _step(outcomes: list[Outcome], step: str) -> list[float]:
    return [outcome.timings.steps[step] for outcome in outcomes if step in outcome.timings.steps] or [0.0]


def main() -> int:
    """Run the benchmark; non-zero when a device failed, or with ``--strict`` when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=24, help="devices per burst (default 24)")
    parser.add_argument("--concurrency", type=int, default=8, help="devices at a time (default 8)")
    parser.add_argument(
        "--rounds", type=int, default=4, help="pairs of bursts, alternating which goes first (default 4)"
    )
    parser.add_argument(
        "--warm-up",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="warm both functions up untimed first (default); --no-warm-up times the cold bursts",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    arguments = parser.parse_args()
    with sandbox() as box:
        hook, floor = run_bursts(
            box, arguments.devices, arguments.concurrency, arguments.rounds, warm_up=arguments.warm_up
        )
    for side, title in (
        (hook, "hook: the stack's pre-provisioning hook"),
        (floor, "floor: a hook that allows everything and does no I/O"),
    ):
        print(f"{title}")
        report(side.outcomes, side.seconds)
        print()
    passed = compare(hook, floor, arguments.concurrency)
    failed = any(not outcome.approved for outcome in hook.outcomes + floor.outcomes)
    return 1 if failed or (arguments.strict and not passed) else 0


if __name__ == "__main__":
    sys.exit(main())
