"""Capacity from AWS's published default quotas: how long provisioning N devices and pre-registering N rows
take, which quota limits each, and the increases to ask for to meet a target.

Pure arithmetic on constants: no AWS call, no account, nothing measured. Each quota (``bench/aws_quotas.py``)
names the page it comes from; the defaults are account- and Region-wide and may differ in your account or
Region (new accounts get lower Lambda quotas, for one): read your own in the Service Quotas console before
asking for an increase.

    .venv/bin/python -m bench.capacity [--devices 1000000] [--hours 24] [--keys aws|device]
        [--preregister-hours H] [--index-shards 16] [--hook-seconds 0.25] [--activation-seconds 0.25]
        [--item-kb 1] [--key-binding] [--regions 1 2 3 5] [--round-trip-seconds 0.25]

**What one device costs** (provisioning by claim, as ``local/devices/firmware.py`` does it): two MQTT
connections (the claim certificate's, then the thing's), one ``CreateKeysAndCertificate`` (``--keys aws``: AWS
IoT makes the key) or one ``CreateCertificateFromCsr`` (``--keys device``), one ``RegisterThing`` and the
calls it makes for the template (``CreateThing`` with its type and group, ``AttachPolicy``,
``AttachThingPrincipal``, the certificate's activation), one hook invocation and one activation invocation
(Lambda concurrency is invocations per second times their duration; the activation reads no certificate:
AWS IoT's all expire 2049-12-31, ``hook/activation.py``), and these registry writes: the hook's transaction
of two items (two write units per item: DynamoDB writes every item of a transaction twice, to prepare and to
commit it, :data:`~bench.aws_quotas.TRANSACTIONS_PAGE`) and the activation's ``UpdateItem`` on the table; on
the busiest index partition key, the status index's ``PENDING`` value gets the approval and loses it at
activation (two writes).

**What one pre-registered row costs**: one ``PutItem`` on the table (one request per row, as
``fleetctl preregister`` writes), and one write on the status index's ``PREREGISTERED`` value. With
``--key-binding`` (manifest rows carry the device's public key) the request is a ``TransactWriteItems`` of the
device's item and its key binding item (under 1 KB), two write units each: ``2 * units + 2`` a row, still one
request. Key binding implies keys made by the device (a binding type provisions only with a CSR).

An index whose partition key has few values (a status, a device type) puts every such write on one key,
and one key lives on one partition: 1,000 write units a second at most, and DynamoDB throttles writes to
the table when an index cannot keep up. ``--index-shards S`` spreads those writes over S key values (a
sharded index key), dividing that load by S. The per-partition limit cannot be raised: the "increase" for
it is the number of shards.

The rate a workload can sustain is the smallest, over the quotas it uses, of quota / use per unit; that
quota is the limiting one. To meet a target (N in H hours) every quota must allow N / H / 3600 units a
second: each one below that gets an increase to ask for (rounded up).

**A global fleet of N regions** (``docs/global-fleet.md``, ``--regions``): AWS IoT's and Lambda's quotas are
per account *and Region* ("AWS IoT Core endpoints and quotas" lists them per Region; Lambda's concurrency is
"per Region"), so devices spread evenly over N regions use 1/N of each region's. The registry is one table in
one region: its table and partition write quotas carry every device of every region. A hook outside the
registry region waits a cross-region round trip more (``--round-trip-seconds``, an assumption to replace
with a measurement), which it holds as Lambda concurrency: counted for every region, the worst case.
:func:`registry_ceiling` is the rate at which the registry alone would stop the fleet.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from bench.aws_quotas import (
    ADD_THING_TO_THING_GROUP,
    ATTACH_POLICY,
    ATTACH_THING_PRINCIPAL,
    CONNECTS_PER_ACCOUNT,
    CREATE_CERTIFICATE_FROM_CSR,
    CREATE_KEYS_AND_CERTIFICATE,
    CREATE_THING,
    DYNAMODB_NEW_TABLE_WRITES,
    DYNAMODB_PARTITION_WRITES,
    DYNAMODB_TABLE_WRITES,
    LAMBDA_CONCURRENCY,
    LAMBDA_SCALING_RATE,
    QUOTAS,
    REGISTER_THING,
    UPDATE_CERTIFICATE,
    Quota,
)
from hook.contract import REGISTRY_SHARDS

SIZES: Final = (10_000, 100_000, 1_000_000)
REGISTRY_QUOTAS: Final = frozenset(
    {DYNAMODB_TABLE_WRITES, DYNAMODB_PARTITION_WRITES, DYNAMODB_NEW_TABLE_WRITES}
)
"""The quotas of the one registry table: shared by every region of a global fleet."""


@dataclass(frozen=True)
class Assumptions:
    """What a device and a row use, beyond the quotas themselves."""

    keys: str = "aws"
    """``aws``: CreateKeysAndCertificate; ``device``: CreateCertificateFromCsr."""
    index_shards: int = REGISTRY_SHARDS
    """Key values the busiest index partition key's writes are spread over: the registry's shards (1 for a
    registry from before the indexes were sharded: one status value)."""
    hook_seconds: float = 0.25
    """Duration of one hook invocation on AWS (one DynamoDB transaction; the alarm is at 4 s)."""
    activation_seconds: float = 0.25
    """Duration of one activation invocation (one registry update, one shadow update)."""
    item_kb: float = 1.0
    """Size of a registry item; a write unit covers up to 1 KB."""
    key_binding: bool = False
    """Manifest rows carry the device's public key: each row is a transaction with its key binding item."""

    @property
    def write_units(self) -> int:
        """Write units of one write of one item."""
        return max(1, math.ceil(self.item_kb))


@dataclass(frozen=True)
class Use:
    """How much of a quota one unit of work (a device, a row) uses."""

    quota: Quota
    per_unit: float

    def max_rate(self) -> float:
        """Units per second the quota allows on its own."""
        return self.quota.limit / self.per_unit

    def needed(self, rate: float) -> float:
        """The quota's value that ``rate`` units a second need."""
        return rate * self.per_unit


def provisioning_uses(assumptions: Assumptions) -> list[Use]:
    """The rate quotas (and Lambda concurrency) one provisioned device uses."""
    certificate = CREATE_KEYS_AND_CERTIFICATE if assumptions.keys == "aws" else CREATE_CERTIFICATE_FROM_CSR
    units = assumptions.write_units
    return [
        Use(REGISTER_THING, 1),
        Use(certificate, 1),
        *(
            Use(quota, 1)
            for quota in (CREATE_THING, ATTACH_POLICY, ATTACH_THING_PRINCIPAL, ADD_THING_TO_THING_GROUP)
        ),
        Use(UPDATE_CERTIFICATE, 1),
        Use(CONNECTS_PER_ACCOUNT, 2),
        Use(LAMBDA_CONCURRENCY, assumptions.hook_seconds + assumptions.activation_seconds),
        Use(DYNAMODB_TABLE_WRITES, 2 * 2 * units + units),
        Use(DYNAMODB_PARTITION_WRITES, 2 * units / assumptions.index_shards),
    ]


def preregistration_uses(assumptions: Assumptions) -> list[Use]:
    """The rate quotas one pre-registered row uses: one PutItem, or with key binding one transaction of the
    device's item and its key binding item (of one write unit), each written twice."""
    units = assumptions.write_units
    table_units = 2 * units + 2 * 1 if assumptions.key_binding else units
    return [
        Use(DYNAMODB_NEW_TABLE_WRITES, table_units),
        Use(DYNAMODB_TABLE_WRITES, table_units),
        Use(DYNAMODB_PARTITION_WRITES, units / assumptions.index_shards),
    ]


def fleet_provisioning_uses(assumptions: Assumptions, regions: int, round_trip_seconds: float) -> list[Use]:
    """What one device of a fleet spread evenly over ``regions`` regions uses of each quota: 1/N of a
    region's, all of the registry's; with more than one region, hooks hold their concurrency a round trip
    longer."""
    if regions < 1:
        raise ValueError("a fleet has one region at least")
    extra = round_trip_seconds if regions > 1 else 0.0
    slower = replace(assumptions, hook_seconds=assumptions.hook_seconds + extra)
    return [
        use if use.quota in REGISTRY_QUOTAS else Use(use.quota, use.per_unit / regions)
        for use in provisioning_uses(slower)
    ]


@dataclass(frozen=True)
class Capacity:
    """The sustainable rate of a workload and the quota that sets it."""

    rate: float
    limiting: Quota

    def seconds(self, count: int) -> float:
        """Seconds to process ``count`` units at that rate."""
        return count / self.rate


def capacity(uses: Sequence[Use]) -> Capacity:
    """The smallest rate any quota allows, and that quota (the first listed on a tie)."""
    limiting = min(uses, key=lambda use: use.max_rate())
    return Capacity(limiting.max_rate(), limiting.quota)


def registry_ceiling(uses: Sequence[Use]) -> Capacity:
    """The rate at which the registry table's quotas alone would limit provisioning."""
    return capacity([use for use in uses if use.quota in REGISTRY_QUOTAS])


@dataclass(frozen=True)
class Increase:
    """A quota that must be raised for a target rate: to ``value``, or, when it cannot be raised, the key
    shards that spread the load under it."""

    quota: Quota
    value: float
    shards: int | None = None


def increases(uses: Sequence[Use], rate: float) -> list[Increase]:
    """What to ask for so that every quota allows ``rate`` units a second."""
    wanted: list[Increase] = []
    for use in uses:
        needed = use.needed(rate)
        if needed <= use.quota.limit:
            continue
        if use.quota.adjustable:
            wanted.append(Increase(use.quota, math.ceil(needed)))
        else:
            wanted.append(Increase(use.quota, needed, shards=math.ceil(needed / use.quota.limit)))
    return wanted


def duration(seconds: float) -> str:
    """``seconds`` as a short human duration."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def ramp_seconds(assumptions: Assumptions, rate: float) -> float:
    """Seconds Lambda needs to scale the hook from nothing to the concurrency ``rate`` approvals a second
    need (at the per-function scaling rate)."""
    return rate * assumptions.hook_seconds / LAMBDA_SCALING_RATE.limit


def report(assumptions: Assumptions, devices: int, hours: float, preregister_hours: float) -> None:
    """Print the quotas with their sources, the figures for :data:`SIZES`, and what a target needs."""
    print("Quotas (AWS defaults per account and Region; check yours in Service Quotas):")
    for quota in QUOTAS:
        adjustable = "adjustable" if quota.adjustable else "fixed"
        print(f"  {quota.name:<38} {quota.limit:>9,.0f} {quota.unit:<15} {adjustable}")
        print(f"      {quota.source}")
        if quota.note:
            print(f"      note: {quota.note}")
    print()
    provisioning = provisioning_uses(assumptions)
    preregistration = preregistration_uses(assumptions)
    provision = capacity(provisioning)
    preregister = capacity(preregistration)
    print(
        f"Assumptions: keys made by {'AWS IoT' if assumptions.keys == 'aws' else 'the device'}, "
        f"index key spread over {assumptions.index_shards} value(s), hook {assumptions.hook_seconds} s, "
        f"activation {assumptions.activation_seconds} s, items of {assumptions.item_kb} KB, "
        f"manifest rows {'with' if assumptions.key_binding else 'without'} public keys"
    )
    print(f"Provisioning: {provision.rate:,.1f} devices/s, limited by {provision.limiting.name}")
    print(f"Pre-registration: {preregister.rate:,.1f} rows/s, limited by {preregister.limiting.name}")
    print()
    print(f"{'N':>11}  {'provision':>10}  {'limited by':<28} {'pre-register':>12}  limited by")
    for size in SIZES:
        print(
            f"{size:>11,}  {duration(provision.seconds(size)):>10}  {provision.limiting.name:<28} "
            f"{duration(preregister.seconds(size)):>12}  {preregister.limiting.name}"
        )
    print()
    for label, uses, target_hours in (
        ("provision", provisioning, hours),
        ("pre-register", preregistration, preregister_hours),
    ):
        rate = devices / (target_hours * 3600)
        print(f"Target: {label} {devices:,} in {target_hours:g} h = {rate:,.2f} a second")
        wanted = increases(uses, rate)
        if not wanted:
            print("  the default quotas suffice")
        for increase in wanted:
            if increase.shards is not None:
                print(
                    f"  {increase.quota.name} needs {increase.value:,.0f} {increase.quota.unit} on the "
                    f"busiest key (limit {increase.quota.limit:,.0f}, fixed): spread it over "
                    f"{increase.shards} key values (--index-shards {increase.shards})"
                )
            else:
                print(
                    f"  {increase.quota.name} >= {increase.value:,.0f} {increase.quota.unit} "
                    f"(default {increase.quota.limit:,.0f}), by {increase.quota.raised_by}"
                )
        if uses is provisioning:
            ramp = ramp_seconds(assumptions, rate)
            print(f"  Lambda scales the hook to that concurrency in {ramp:.1f} s (per-function scaling rate)")


def fleet_report(assumptions: Assumptions, region_counts: Sequence[int], round_trip_seconds: float) -> None:
    """Print, for each fleet size in regions, the rate, its limiting quota and the time for :data:`SIZES`."""
    print(
        f"Global fleet: devices spread evenly; a hook outside the registry region waits "
        f"{round_trip_seconds} s more"
    )
    header = "".join(f"{size:>12,}" for size in SIZES)
    print(f"{'regions':>7}  {'devices/s':>10}  {'limited by':<28}{header}  registry ceiling")
    for regions in region_counts:
        uses = fleet_provisioning_uses(assumptions, regions, round_trip_seconds)
        fleet = capacity(uses)
        ceiling = registry_ceiling(uses)
        times = "".join(f"{duration(fleet.seconds(size)):>12}" for size in SIZES)
        print(
            f"{regions:>7}  {fleet.rate:>10,.1f}  {fleet.limiting.name:<28}{times}  "
            f"{ceiling.rate:,.0f}/s ({ceiling.limiting.name})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=1_000_000, help="target devices (default 1,000,000)")
    parser.add_argument("--hours", type=float, default=24.0, help="target hours to provision (default 24)")
    parser.add_argument(
        "--preregister-hours", type=float, default=None, help="target hours to pre-register (default --hours)"
    )
    parser.add_argument(
        "--keys", choices=("aws", "device"), default=None, help="who makes the key pair (default aws)"
    )
    parser.add_argument(
        "--key-binding",
        action="store_true",
        help="manifest rows carry public keys, bound to their serials (implies --keys device)",
    )
    parser.add_argument(
        "--index-shards", type=int, default=REGISTRY_SHARDS, help="values of the busiest index key"
    )
    parser.add_argument("--hook-seconds", type=float, default=Assumptions.hook_seconds)
    parser.add_argument("--activation-seconds", type=float, default=Assumptions.activation_seconds)
    parser.add_argument("--item-kb", type=float, default=Assumptions.item_kb)
    parser.add_argument("--regions", type=int, nargs="+", default=None, help="a global fleet's region counts")
    parser.add_argument(
        "--round-trip-seconds", type=float, default=0.25, help="hook's extra wait per request"
    )
    args = parser.parse_args(argv)
    if args.devices <= 0 or args.hours <= 0 or args.index_shards <= 0:
        parser.error("--devices, --hours and --index-shards must be positive")
    if args.regions is not None and (min(args.regions) < 1 or args.round_trip_seconds < 0):
        parser.error("--regions must be positive and --round-trip-seconds not negative")
    if args.key_binding and args.keys == "aws":
        parser.error("--key-binding needs --keys device: a type that binds keys provisions only with a CSR")
    assumptions = Assumptions(
        keys=args.keys or ("device" if args.key_binding else "aws"),
        key_binding=args.key_binding,
        index_shards=args.index_shards,
        hook_seconds=args.hook_seconds,
        activation_seconds=args.activation_seconds,
        item_kb=args.item_kb,
    )
    preregister_hours = args.hours if args.preregister_hours is None else args.preregister_hours
    if preregister_hours <= 0:
        parser.error("--preregister-hours must be positive")
    report(assumptions, args.devices, args.hours, preregister_hours)
    if args.regions is not None:
        print()
        fleet_report(assumptions, args.regions, args.round_trip_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
