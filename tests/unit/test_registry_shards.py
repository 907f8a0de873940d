"""The sharded registry indexes on moto: rows spread evenly over the shards, every list and count answers
exactly what a full scan of the table would, certificate bindings never appear, every transition keeps an
item's index keys right, and the backfill gives old items theirs.

``components/device_registry.py`` explains the design these tests hold it to.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from fleetctl.operator_transitions import OperatorRecords
from hook.contract import (
    REGISTRY_PARTITION_KEY,
    REGISTRY_SHARDS,
    Attr,
    DeviceStatus,
    ProvisioningDenied,
    is_certificate_binding_key,
    shard_key,
    shard_keys,
    shard_of,
)
from hook.registry_decisions import Provenance
from hook.registry_items import Item, shard_attributes, timestamp
from hook.rules import DeviceRequest, parse_rules, validate_request
from tests.support import (
    RULES,
    TABLE_NAME,
    TEMPLATE_ARN,
    Fleet,
    certificate_id,
    registry_contents,
    valid_parameters,
)

TYPES = ("temperature-sensor", "humidity-sensor", "gateway")
INDEX_KEYS = (Attr.STATUS_SHARD, Attr.TYPE_SHARD)


def request_for(serial: str, device_type: str) -> DeviceRequest:
    parameters = valid_parameters(SerialNumber=serial, DeviceType=device_type, FirmwareVersion="2.1.0")
    return validate_request(parameters, parse_rules(RULES))


def serial_of(device_type: str, number: int) -> str:
    return {"temperature-sensor": f"TS-{number:06d}", "gateway": f"GW-{number:06d}"}.get(
        device_type, f"HS-{number}"
    )


def provenance(certificate: str) -> Provenance:
    return Provenance(
        certificate_id=certificate_id(certificate),
        claim_certificate_id=certificate_id("claim"),
        template_arn=TEMPLATE_ARN,
        client_id="client-1",
    )


def raw_items(dynamodb: Any) -> list[dict[str, str]]:
    """Every item of the table, devices and bindings, by a consistent scan."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAME, ConsistentRead=True)
    return [{name: value["S"] for name, value in raw.items()} for page in pages for raw in page["Items"]]


def serials(items: Iterator[Item] | list[Item]) -> list[str]:
    return [item[REGISTRY_PARTITION_KEY] for item in items]


# --- (a) even spread --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch",
    [
        [f"TS-{number:06d}" for number in range(10_000)],  # one factory batch, consecutive serials
        [f"GW-{number:X}{number % 7}" for number in range(40_000, 50_000)],
        [f"SN{hashlib.sha256(str(number).encode()).hexdigest()[:12].upper()}" for number in range(10_000)],
    ],
    ids=["consecutive", "hex", "random"],
)
def test_ten_thousand_serials_spread_evenly_over_the_shards(batch: list[str]) -> None:
    load = Counter(shard_of(serial) for serial in batch)
    mean = len(batch) / REGISTRY_SHARDS
    assert set(load) == set(range(REGISTRY_SHARDS))
    assert max(load.values()) / mean <= 1.3
    assert min(load.values()) / mean >= 0.7


def test_a_serial_keeps_its_shard_and_both_keys_name_it() -> None:
    shard = shard_of("TS-000123")
    assert shard_of("TS-000123") == shard  # a stable hash, not Python's salted hash()
    assert shard_attributes("TS-000123", status=DeviceStatus.PENDING, device_type="gateway") == {
        Attr.STATUS_SHARD: f"PENDING#{shard}",
        Attr.TYPE_SHARD: f"gateway#{shard}",
    }
    assert shard_keys(DeviceStatus.ACTIVE) == [f"ACTIVE#{n}" for n in range(REGISTRY_SHARDS)]
    assert shard_key("gateway", 3) == "gateway#3"


def test_a_factory_batch_puts_no_more_than_its_share_on_any_index_key() -> None:
    """1,000 rows of one type, as a pre-registration writes them in one second: no key value of either
    index gets more than 1.6 times an even share (63 rows); unsharded, one key value of each got all 1,000."""
    keys = [
        shard_attributes(f"TS-{n:06d}", status=DeviceStatus.PREREGISTERED, device_type="temperature-sensor")
        for n in range(500_000, 501_000)
    ]
    for key in INDEX_KEYS:
        per_key = Counter(each[key] for each in keys)
        assert len(per_key) == REGISTRY_SHARDS
        assert max(per_key.values()) <= 1.6 * 1_000 / REGISTRY_SHARDS


# --- (b) every query answers what a full scan would ------------------------------------------------------


class Workload:
    """A registry built through every transition of :class:`OperatorRecords`, in a random order."""

    def __init__(self, registry: OperatorRecords, seed: int) -> None:
        self.registry = registry
        self.random = random.Random(seed)  # noqa: S311 (a reproducible workload, not a secret)
        self.devices: dict[str, str] = {}  # serial -> type
        self.certificates = 0
        self.approvals: dict[str, Item] = {}

    def run(self, steps: int) -> None:
        operations = [
            self.preregister,
            self.approve,
            self.approve,
            self.activate,
            self.release,
            self.revoke,
            self.decommission,
            self.rotate,
            self.reprovision,
        ]
        for _ in range(steps):
            self.random.choice(operations)()

    def _known(self) -> str | None:
        return self.random.choice(sorted(self.devices)) if self.devices else None

    def _certificate(self) -> Provenance:
        self.certificates += 1
        return provenance(f"device-{self.certificates}")

    def preregister(self) -> None:
        device_type = self.random.choice(TYPES)
        serial = serial_of(device_type, self.random.randrange(60))
        self.devices.setdefault(serial, device_type)
        self.registry.preregister(request_for(serial, self.devices[serial]), timestamp())

    def approve(self) -> None:
        device_type = self.random.choice(TYPES)
        serial = self.random.choice([serial_of(device_type, self.random.randrange(60)), self._known()])
        if serial is None:
            return
        self.devices.setdefault(serial, device_type)
        try:
            self.registry.approve(
                request_for(serial, self.devices[serial]), self._certificate(), require_preregistration=False
            )
        except ProvisioningDenied:
            return

    def activate(self) -> None:
        serial = self._known()
        if serial is not None:
            self.registry.activate(serial, f"thing-{serial}")

    def release(self) -> None:
        serial = self._known()
        item = None if serial is None else self.registry.get(serial)
        if item is not None and item.get(Attr.STATUS) == DeviceStatus.PENDING:
            self.registry.release(item)

    def revoke(self) -> None:
        serial = self._known()
        if serial is not None and self.random.random() < 0.5:
            self.registry.revoke(serial, "stolen")

    def decommission(self) -> None:
        serial = self._known()
        if serial is not None and self.random.random() < 0.3:
            self.registry.decommission(serial)

    def rotate(self) -> None:
        serial = self._known()
        item = None if serial is None else self.registry.get(serial)
        if item is None or item.get(Attr.STATUS) != DeviceStatus.ACTIVE:
            return
        if not self.registry.begin_rotation(item, self._certificate().certificate_id, "job-1"):
            return
        pending = self.registry.get(item[Attr.SERIAL_NUMBER])
        assert pending is not None
        if self.random.random() < 0.7:
            self.registry.complete_rotation(pending)
        else:
            self.registry.abandon_rotation(pending, "device reported failure")

    def reprovision(self) -> None:
        serial = self._known()
        item = None if serial is None else self.registry.get(serial)
        if item is None or item.get(Attr.STATUS) != DeviceStatus.ACTIVE:
            return
        self.registry.grant_reprovision(item[Attr.SERIAL_NUMBER], "replaced board", "operator", "2999-01-01")
        try:
            self.registry.approve(
                request_for(item[Attr.SERIAL_NUMBER], self.devices[item[Attr.SERIAL_NUMBER]]),
                self._certificate(),
                require_preregistration=False,
            )
        except ProvisioningDenied:
            return


def assert_index_keys_follow_every_item(dynamodb: Any) -> None:
    """Each device item carries the keys of its status and type, in its serial's shard; bindings none."""
    for item in raw_items(dynamodb):
        serial = item[REGISTRY_PARTITION_KEY]
        if is_certificate_binding_key(serial):
            assert not set(INDEX_KEYS) & set(item), item
            continue
        expected = shard_attributes(serial, status=item[Attr.STATUS], device_type=item.get(Attr.DEVICE_TYPE))
        assert {key: item[key] for key in INDEX_KEYS if key in item} == expected, item


@pytest.mark.parametrize("seed", range(3))
def test_every_list_and_count_answers_what_a_full_scan_would(
    dynamodb: Any, registry: OperatorRecords, seed: int
) -> None:
    Workload(registry, seed).run(steps=160)
    assert_index_keys_follow_every_item(dynamodb)
    devices, bindings = registry_contents(dynamodb)
    assert bindings  # the workload approved certificates, so the table holds bindings to keep out
    everything = list(devices.values())
    assert {status for status in (item[Attr.STATUS] for item in everything)} >= {
        DeviceStatus.PREREGISTERED,
        DeviceStatus.ACTIVE,
        DeviceStatus.REVOKED,
    }

    assert sorted(serials(registry.devices())) == sorted(devices)
    assert sorted(serials(registry.scan_devices(segments=3))) == sorted(devices)
    for status in DeviceStatus:
        in_status = sorted(
            (item for item in everything if item[Attr.STATUS] == status),
            key=lambda item: (item[Attr.UPDATED_AT], item[REGISTRY_PARTITION_KEY]),
        )
        listed = list(registry.devices(status))
        assert sorted(serials(listed)) == sorted(serials(in_status)), status
        assert [item[Attr.UPDATED_AT] for item in listed] == [item[Attr.UPDATED_AT] for item in in_status]
        assert listed == [devices[serial] for serial in serials(listed)]  # whole items: projection ALL
        for device_type in TYPES:
            both = {
                s
                for s, item in devices.items()
                if (item[Attr.STATUS], item.get(Attr.DEVICE_TYPE)) == (status, device_type)
            }
            assert set(serials(registry.devices(status, device_type))) == both, (status, device_type)
    for device_type in TYPES:
        of_type = sorted(s for s, item in devices.items() if item.get(Attr.DEVICE_TYPE) == device_type)
        assert serials(registry.devices(device_type=device_type)) == of_type  # in serial order
    pending = sorted(
        item[Attr.UPDATED_AT] for item in everything if item[Attr.STATUS] == DeviceStatus.PENDING
    )
    for cutoff in ["0", *pending, "9999"]:
        assert registry.count_pending_before(cutoff) == sum(1 for at in pending if at < cutoff)


@pytest.mark.parametrize("limit", [1, 4])
def test_a_limit_returns_the_first_items_of_the_whole_list(registry: OperatorRecords, limit: int) -> None:
    Workload(registry, seed=11).run(steps=120)
    for status in (DeviceStatus.PREREGISTERED, DeviceStatus.ACTIVE):
        assert list(registry.devices(status, limit=limit)) == list(registry.devices(status))[:limit]
    for device_type in TYPES:
        whole = list(registry.devices(device_type=device_type))
        assert list(registry.devices(device_type=device_type, limit=limit)) == whole[:limit]
    assert len(list(registry.devices(limit=limit))) == limit
    assert len(list(registry.scan_devices(limit=limit, segments=4))) == limit


def test_the_stale_approval_count_queries_only_the_pending_shards(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    for number in range(40):
        registry.preregister(request_for(f"TS-{number:06d}", "temperature-sensor"), timestamp())
    registry.approve(
        request_for("TS-000001", "temperature-sensor"), provenance("a"), require_preregistration=True
    )
    sent: list[dict[str, Any]] = []
    dynamodb.meta.events.register("provide-client-params.dynamodb.*", lambda params, **_: sent.append(params))

    assert registry.count_pending_before("9999") == 1

    assert {request["Select"] for request in sent} == {"COUNT"}
    keys = sorted(value["S"] for request in sent for value in request["ExpressionAttributeValues"].values())
    assert keys == sorted([*shard_keys(DeviceStatus.PENDING), *["9999"] * REGISTRY_SHARDS])


# --- (c) certificate bindings never appear ----------------------------------------------------------------


def test_certificate_bindings_appear_in_no_list_no_count_and_no_scan(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    request = request_for("TS-000001", "temperature-sensor")
    registry.approve(request, provenance("first"), require_preregistration=False)
    registry.activate("TS-000001", "thing")
    active = registry.get("TS-000001")
    assert active is not None
    assert registry.begin_rotation(active, certificate_id("second"), None)
    _, bindings = registry_contents(dynamodb)
    assert len(bindings) == 2
    for item in raw_items(dynamodb):
        if is_certificate_binding_key(item[REGISTRY_PARTITION_KEY]):
            assert not set(INDEX_KEYS) & set(item)

    listed = [
        *registry.devices(),
        *registry.scan_devices(segments=5),
        *(item for status in DeviceStatus for item in registry.devices(status)),
        *(item for device_type in TYPES for item in registry.devices(device_type=device_type)),
    ]
    assert {item[REGISTRY_PARTITION_KEY] for item in listed} == {"TS-000001"}
    assert registry.count_pending_before("9999") == 0


# --- the parallel scan ------------------------------------------------------------------------------------


def test_the_parallel_scan_reads_each_device_once_with_more_segments_than_items(
    registry: OperatorRecords,
) -> None:
    for number in range(5):
        registry.preregister(request_for(f"TS-{number:06d}", "temperature-sensor"), timestamp())
    assert sorted(serials(registry.scan_devices(segments=12))) == [f"TS-{n:06d}" for n in range(5)]
    shown = list(registry.scan_devices(attributes=[Attr.DEVICE_TYPE], segments=2))
    assert {frozenset(item) for item in shown} == {frozenset({Attr.SERIAL_NUMBER, Attr.DEVICE_TYPE})}


def test_the_parallel_scan_stops_its_readers_when_closed_early_and_raises_their_errors(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    for number in range(30):
        registry.preregister(request_for(f"TS-{number:06d}", "temperature-sensor"), timestamp())
    scan = registry.scan_devices(segments=4, limit=None)
    next(scan)
    scan.close()  # joins the readers: a hang here would be a reader that did not stop
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        list(OperatorRecords(dynamodb, "no-such-table").scan_devices(segments=3))


# --- the backfill -----------------------------------------------------------------------------------------


def put_old_item(dynamodb: Any, serial: str, status: DeviceStatus, **attributes: str) -> None:
    """An item as the registry held it before the indexes were sharded: no index keys."""
    item = {
        "serialNumber": serial,
        "status": status,
        "updatedAt": "2026-01-01T00:00:00.000+00:00",
        **attributes,
    }
    dynamodb.put_item(TableName=TABLE_NAME, Item={name: {"S": value} for name, value in item.items()})


def test_the_backfill_gives_old_items_their_index_keys_once(dynamodb: Any, registry: OperatorRecords) -> None:
    for number in range(30):
        put_old_item(dynamodb, f"TS-{number:06d}", DeviceStatus.ACTIVE, deviceType="temperature-sensor")
    put_old_item(dynamodb, "GW-REVOKED1", DeviceStatus.REVOKED)  # revoked before it was ever seen: no type
    put_old_item(
        dynamodb, "GW-MOVED01", DeviceStatus.ACTIVE, deviceType="gateway", statusShard="PENDING#0"
    )  # moved by a version that did not write the keys: stale
    registry.approve(
        request_for("TS-100000", "temperature-sensor"), provenance("new"), require_preregistration=False
    )
    before = {item[REGISTRY_PARTITION_KEY]: item for item in raw_items(dynamodb)}
    assert list(registry.devices(DeviceStatus.ACTIVE)) == []  # invisible to the indexes until backfilled

    report = registry.backfill_shards(segments=3, concurrency=4)

    assert (report.scanned, report.updated, report.skipped) == (33, 32, 0)
    assert_index_keys_follow_every_item(dynamodb)
    after = {item[REGISTRY_PARTITION_KEY]: item for item in raw_items(dynamodb)}
    for serial, item in after.items():  # only the keys changed: no transition, no updatedAt
        assert {k: v for k, v in item.items() if k not in INDEX_KEYS} == {
            k: v for k, v in before[serial].items() if k not in INDEX_KEYS
        }
    assert len(list(registry.devices(DeviceStatus.ACTIVE))) == 31
    assert serials(registry.devices(DeviceStatus.REVOKED)) == ["GW-REVOKED1"]
    assert registry.backfill_shards().updated == 0


def test_the_backfill_leaves_an_item_a_transition_changed_meanwhile(
    dynamodb: Any, registry: OperatorRecords, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_old_item(dynamodb, "TS-000001", DeviceStatus.ACTIVE, deviceType="temperature-sensor")
    put_old_item(dynamodb, "TS-000002", DeviceStatus.ACTIVE, deviceType="temperature-sensor")
    read_before = list(registry.scan_devices(attributes=[Attr.STATUS, Attr.DEVICE_TYPE]))
    registry.revoke("TS-000001", "stolen")  # writes its own keys, REVOKED
    monkeypatch.setattr(registry, "scan_devices", lambda **_: iter(read_before))

    report = registry.backfill_shards()

    assert (report.scanned, report.updated, report.skipped) == (2, 1, 1)
    assert serials(registry.devices(DeviceStatus.REVOKED)) == ["TS-000001"]  # the revocation's own key
    monkeypatch.undo()
    assert registry.backfill_shards().updated == 1  # a re-run adds the type key the revocation did not write
    assert_index_keys_follow_every_item(dynamodb)


def test_fleetctl_registry_backfill_reports_what_it_did(fleet: Fleet) -> None:
    put_old_item(fleet.dynamodb, "TS-000001", DeviceStatus.PREREGISTERED, deviceType="temperature-sensor")
    fleet.provision("TS-000002")

    assert fleet.run_json("registry", "backfill") == {"scanned": 2, "updated": 1, "skipped": 0}
    assert fleet.run_json("registry", "backfill") == {"scanned": 2, "updated": 0, "skipped": 0}
    result = fleet.run("registry", "backfill")
    assert result.exit_code == 0
    assert "2 device item(s) read, 0 updated" in result.stdout
    assert [item["serialNumber"] for item in fleet.run_json("list", "--status", "PREREGISTERED")] == [
        "TS-000001"
    ]


def test_a_request_is_still_one_request_per_transition(dynamodb: Any, registry: OperatorRecords) -> None:
    """The index keys ride in the transition's own request: nothing is read or written besides it."""
    sent: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: sent.append(model.name))
    request = request_for("TS-000001", "temperature-sensor")
    registry.preregister(request, timestamp())
    registry.approve(request, provenance("one"), require_preregistration=True)
    registry.activate("TS-000001", "thing")
    registry.grant_reprovision("TS-000001", "board", "operator", "2999-01-01")
    registry.revoke("TS-000001", "stolen")
    registry.decommission("TS-000001")
    assert sent == ["PutItem", "TransactWriteItems", "UpdateItem", "UpdateItem", "UpdateItem", "UpdateItem"]
    other = replace(request, serial_number="TS-000002")
    registry.approve(other, provenance("two"), require_preregistration=False)
    approval = registry.get("TS-000002")
    assert approval is not None
    sent.clear()
    assert registry.release(approval) == "deleted"
    assert sent == ["DeleteItem"]
