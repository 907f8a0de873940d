"""fleet_bench's bulk revoke figures: ``fleetctl revoke --type`` of many devices against moto (devices per
second, requests per device), against a stub that answers at once (peak memory, pacing), and the time AWS's
rates set (``bench/fleet_bench.py``)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

from bench.fake_aws import REGION, StubBody
from bench.figures import Figure
from fleetctl.bulk import BulkRun
from fleetctl.context import StackContext
from fleetctl.device_removal import Revocation
from fleetctl.pacing import IOT_RATES, Pacer, aws_iot_pacer, paced_seconds
from fleetctl.selection import Selectors
from fleetctl.selection import resolve as resolve_selection
from hook.contract import REGISTRY_SHARDS, Attr, DeviceStatus, device_type_resource_name, thing_name
from hook.registry_items import shard_attributes, timestamp
from tests.support import TABLE_NAME, create_registry_table, one_moto_request_at_a_time

BULK_BASE: Final = "fleet-bench"
BULK_TYPE: Final = "temperature-sensor"
IOT_STEPS_PER_DEVICE: Final = 6
REGISTRY_WRITES_PER_DEVICE: Final = 2
BULK_MEMORY_RATIO_TARGET: Final = 1.2
STUB_PAGE_ITEMS: Final = 10
"""Items per page of the stub's shard queries: a stand-in for DynamoDB's 1 MB pages (about 2,500 items),
small enough that 250 devices already span pages."""
PACED_DEVICES: Final = 100
PACED_RATIO_RANGE: Final = (0.95, 1.2)
_ACCOUNT: Final = "123456789012"


def bulk_revoke_section(devices: int, work_dir: Path) -> list[Figure]:
    """Revoke by ``--type``: devices per second and requests per device on moto; peak memory and the
    pacing against a stub that answers at once; the time AWS's rates set for 1,000 and 1,000,000."""
    outputs = work_dir / "bulk-outputs.json"
    outputs.write_text(
        json.dumps({"deviceRegistryTableName": TABLE_NAME, "region": REGION, "baseName": BULK_BASE}),
        encoding="utf-8",
    )
    measured = _bulk_revoke_on_moto(outputs, devices)
    requests: dict[tuple[str, str], int] = measured["requests"]
    iot = {name: count for (service, name), count in requests.items() if service == "iot"}
    dynamodb = {name: count for (service, name), count in requests.items() if service == "dynamodb"}
    iot_per_device = sum(iot.values()) / devices
    dynamodb_per_device = sum(dynamodb.values()) / devices
    dynamodb_target = REGISTRY_WRITES_PER_DEVICE + REGISTRY_SHARDS / devices
    per_device = {name: count / devices for name, count in iot.items()}
    quarter = max(devices // 4, 1)
    peaks = {size: _bulk_revoke_on_stub(outputs, size, paced=False)["peak"] for size in (quarter, devices)}
    memory_ratio = peaks[devices] / peaks[quarter]
    paced = _bulk_revoke_on_stub(outputs, PACED_DEVICES, paced=True)
    predicted = paced_seconds({name: count * PACED_DEVICES for name, count in per_device.items()})
    paced_ratio = paced["elapsed"] / predicted
    slowest = max(per_device, key=lambda name: per_device[name] / IOT_RATES[name].per_second)
    low, high = PACED_RATIO_RANGE
    figures = [
        Figure(
            "bulk revoke rate (moto)",
            f"{devices / measured['elapsed']:,.0f}/s",
            f"{devices:,} devices in {measured['elapsed']:.1f} s, unpaced, moto in process",
            "",
            None,
        ),
        Figure(
            "AWS IoT requests per device",
            f"{iot_per_device:.2f}",
            _by_operation(iot),
            f"{IOT_STEPS_PER_DEVICE}",
            iot_per_device <= IOT_STEPS_PER_DEVICE,
        ),
        Figure(
            "DynamoDB requests per device",
            f"{dynamodb_per_device:.3f}",
            ", ".join(f"{name} {count:,}" for name, count in sorted(dynamodb.items())),
            f"<= {dynamodb_target:.3f}",
            dynamodb_per_device <= dynamodb_target,
        ),
    ]
    figures += [
        Figure(f"peak memory, {size:,} devices", f"{peak / 2**20:.1f} MB", "tracemalloc peak, stub", "", None)
        for size, peak in peaks.items()
    ]
    figures += [
        Figure(
            "bulk peak memory ratio",
            f"{memory_ratio:.2f}",
            f"peak at {devices:,} devices / peak at {quarter:,} (pages of {STUB_PAGE_ITEMS})",
            f"<= {BULK_MEMORY_RATIO_TARGET}",
            memory_ratio <= BULK_MEMORY_RATIO_TARGET,
        ),
        Figure(
            "paced run / AWS rates",
            f"{paced_ratio:.2f}",
            f"{PACED_DEVICES} devices paced in {paced['elapsed']:.1f} s; the rates allow {predicted:.1f} s",
            f"{low}-{high}",
            low <= paced_ratio <= high,
        ),
    ]
    for size in (1_000, 1_000_000):
        seconds = paced_seconds({name: count * size for name, count in per_device.items()})
        figures.append(
            Figure(
                f"pacing, {size:,} devices",
                f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s",
                f"AWS's default rates; slowest {slowest} at {IOT_RATES[slowest].per_second:g}/s",
                "",
                None,
            )
        )
    return figures


def _by_operation(requests: dict[str, int]) -> str:
    """``6 operations, 1,000 requests each`` when the counts are equal (the docstring names them), else
    each operation with its count."""
    counts = set(requests.values())
    if len(counts) == 1:
        return f"{len(requests)} operations, {counts.pop():,} requests each"
    return ", ".join(f"{name} {count:,}" for name, count in sorted(requests.items()))


def _revoke_by_type(outputs: Path, pacer: Pacer) -> tuple[int, BulkRun]:
    """``fleetctl revoke --type`` through the module function behind it: how many devices it changed."""
    stack = StackContext.resolve(outputs)
    run = BulkRun(stack, resolve_selection(stack, Selectors(device_type=BULK_TYPE)), Revocation("bench"))
    changed = sum(1 for row in run.execute(pacer) if row.steps is not None)
    if run.tally.error is not None:
        raise SystemExit(f"bulk revoke failed: {run.tally.error}")
    return changed, run


def _bulk_revoke_on_moto(outputs: Path, devices: int) -> dict[str, Any]:
    """Revoke ``devices`` devices of a fresh moto fleet, unpaced: elapsed seconds and requests by
    (service, operation)."""
    requests: list[tuple[str, str]] = []
    lock = threading.Lock()

    def count(event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        with lock:
            requests.append((service, operation))

    with mock_aws(), one_moto_request_at_a_time():
        _bulk_fleet(devices)
        session = boto3.Session()
        session.events.register("before-send", count)
        previous, boto3.DEFAULT_SESSION = boto3.DEFAULT_SESSION, session
        try:
            started = time.perf_counter()
            changed, _ = _revoke_by_type(outputs, Pacer({}, default=1e9))
            elapsed = time.perf_counter() - started
        finally:
            boto3.DEFAULT_SESSION = previous
    if changed != devices:
        raise SystemExit(f"bulk revoke on moto changed {changed} of {devices} devices")
    return {"elapsed": elapsed, "requests": Counter(requests)}


def _bulk_revoke_on_stub(outputs: Path, devices: int, *, paced: bool) -> dict[str, Any]:
    """Revoke ``devices`` devices answered by :class:`StubAws` (nothing kept in the heap but fleetctl's
    own allocations, and no request costs time but the pacing's): elapsed seconds and, unless ``paced``,
    the tracemalloc peak."""
    stub = StubAws(devices)
    session = boto3.Session()
    session.events.register("before-send", stub.answer)
    previous, boto3.DEFAULT_SESSION = boto3.DEFAULT_SESSION, session
    try:
        if not paced:  # tracemalloc slows every allocation: the paced run is timed without it
            tracemalloc.start()
        started = time.perf_counter()
        changed, _ = _revoke_by_type(outputs, aws_iot_pacer() if paced else Pacer({}, default=1e9))
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        boto3.DEFAULT_SESSION = previous
    if changed != devices:
        raise SystemExit(f"bulk revoke on the stub changed {changed} of {devices} devices")
    return {"elapsed": elapsed, "peak": peak}


class StubAws:
    """Answers, before they are sent, the requests of a revoke by type of ``devices`` ACTIVE devices, each
    with a thing, one certificate and one policy: the type's shards page by page (:data:`STUB_PAGE_ITEMS`
    items, ``LastEvaluatedKey`` after each but the last), and every AWS IoT step. Only the serials' shard
    lists are kept; every item and answer is made when asked for."""

    def __init__(self, devices: int) -> None:
        self._shards: dict[str, list[str]] = {}
        for number in range(devices):
            serial = f"TS-{number:06d}"
            key = shard_attributes(serial, device_type=BULK_TYPE)[Attr.TYPE_SHARD]
            self._shards.setdefault(key, []).append(serial)

    def answer(self, event_name: str, request: Any, **_: Any) -> Any:  # an AWSResponse: no request is sent
        operation = event_name.rsplit(".", 1)[-1]
        body = getattr(self, f"_{operation}")(request)
        return AWSResponse(request.url, 200, HTTPHeaders(), StubBody(json.dumps(body).encode()))

    def _Query(self, request: Any) -> dict[str, Any]:
        asked = json.loads(request.body)
        [key] = [value["S"] for value in asked["ExpressionAttributeValues"].values()]
        serials = self._shards.get(key, [])
        after = asked.get("ExclusiveStartKey", {}).get(Attr.SERIAL_NUMBER, {}).get("S")
        start = 0 if after is None else serials.index(after) + 1
        page = serials[start : start + STUB_PAGE_ITEMS]
        answer: dict[str, Any] = {"Items": [_stub_item(serial) for serial in page], "Count": len(page)}
        if start + STUB_PAGE_ITEMS < len(serials):
            answer["LastEvaluatedKey"] = {
                Attr.SERIAL_NUMBER: {"S": page[-1]},
                Attr.TYPE_SHARD: {"S": key},
            }
        return answer

    def _UpdateItem(self, _: Any) -> dict[str, Any]:
        return {}

    def _ListThingPrincipals(self, request: Any) -> dict[str, Any]:
        thing = unquote(request.url.split("/things/", 1)[1].split("/", 1)[0])
        return {"principals": [_stub_certificate_arn(thing.rsplit("_", 1)[-1])]}

    def _DescribeCertificate(self, request: Any) -> dict[str, Any]:
        certificate = request.url.rsplit("/", 1)[-1]
        arn = f"arn:aws:iot:{REGION}:{_ACCOUNT}:cert/{certificate}"
        return {
            "certificateDescription": {
                "certificateId": certificate,
                "certificateArn": arn,
                "status": "ACTIVE",
            }
        }

    def _UpdateCertificate(self, _: Any) -> dict[str, Any]:
        return {}

    def _ListAttachedPolicies(self, _: Any) -> dict[str, Any]:
        policy = device_type_resource_name(BULK_BASE, BULK_TYPE)
        return {
            "policies": [
                {"policyName": policy, "policyArn": f"arn:aws:iot:{REGION}:{_ACCOUNT}:policy/{policy}"}
            ]
        }

    def _DetachPolicy(self, _: Any) -> dict[str, Any]:
        return {}

    def _DetachThingPrincipal(self, _: Any) -> dict[str, Any]:
        return {}


def _stub_certificate_arn(serial: str) -> str:
    return f"arn:aws:iot:{REGION}:{_ACCOUNT}:cert/{hashlib.sha256(serial.encode()).hexdigest()}"


def _stub_item(serial: str) -> dict[str, Any]:
    item = {
        Attr.SERIAL_NUMBER: serial,
        Attr.STATUS: DeviceStatus.ACTIVE,
        Attr.DEVICE_TYPE: BULK_TYPE,
        Attr.CERTIFICATE_ID: hashlib.sha256(serial.encode()).hexdigest(),
        Attr.THING_NAME: thing_name(BULK_BASE, serial),
        **shard_attributes(serial, status=DeviceStatus.ACTIVE, device_type=BULK_TYPE),
    }
    return {name: {"S": value} for name, value in item.items()}


def _bulk_fleet(devices: int) -> None:
    """``devices`` ACTIVE devices in moto as provisioning leaves them: a registry item (with its index
    keys), a thing, a certificate attached to the thing, and the type's policy attached to the certificate."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    iot = boto3.client("iot", region_name=REGION)
    create_registry_table(dynamodb)
    policy = device_type_resource_name(BULK_BASE, BULK_TYPE)
    iot.create_policy(policyName=policy, policyDocument="{}")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    items: list[Any] = []
    for number in range(devices):
        serial = f"TS-{number:06d}"
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)])
        certificate = (
            x509.CertificateBuilder(
                subject, subject, key.public_key(), number + 1, now, now + timedelta(days=365)
            )
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )
        registered = iot.register_certificate_without_ca(certificatePem=certificate, status="ACTIVE")
        name = thing_name(BULK_BASE, serial)
        iot.create_thing(thingName=name)
        iot.attach_thing_principal(thingName=name, principal=registered["certificateArn"])
        iot.attach_policy(policyName=policy, target=registered["certificateArn"])
        item = {
            Attr.SERIAL_NUMBER: serial,
            Attr.STATUS: DeviceStatus.ACTIVE,
            Attr.DEVICE_TYPE: BULK_TYPE,
            Attr.CERTIFICATE_ID: registered["certificateId"],
            Attr.THING_NAME: name,
            Attr.APPROVED_AT: timestamp(now),
            Attr.UPDATED_AT: timestamp(now),
            **shard_attributes(serial, status=DeviceStatus.ACTIVE, device_type=BULK_TYPE),
        }
        items.append({"PutRequest": {"Item": {key: {"S": value} for key, value in item.items()}}})
    for start in range(0, len(items), 25):  # BatchWriteItem's maximum
        dynamodb.batch_write_item(RequestItems={TABLE_NAME: items[start : start + 25]})
