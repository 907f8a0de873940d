"""fleetctl at fleet scale: figures of its bulk commands, each printed beside its target.

Run from the repository root::

    .venv/bin/python bench/fleet_bench.py [--rows 100000] [--strict]

Everything runs locally with fake credentials; no AWS account is used, and nothing measured here says how
fast AWS is (``bench/capacity.py`` gives that from AWS's quotas).

**Pre-registration** (``preregister_section``): ``fleetctl preregister --json`` of a manifest of ``--rows``
rows, run through Typer's ``CliRunner`` as an operator runs the command.

1. Rows per second, end to end (the manifest's check, its second read and the writes), against moto in
   process (``moto.mock_aws``, the registry table created as the tests create it). Informational: moto
   answers every request under the same interpreter lock as fleetctl (about 2-4 ms a ``PutItem`` on a
   shared 2-vCPU machine), so this measures moto more than fleetctl; fleetctl's 16 requests in flight are
   what gives throughput against AWS.
2. DynamoDB requests per row, in the same run: every request fleetctl's clients sent (a botocore
   ``before-send`` handler, so retries would count), divided by the rows. Target 1.0.
3. Peak memory, flatness: the ratio of the import's peak memory at ``--rows`` rows to that at a tenth of
   them; target <= 1.2 (a list of all rows would make it about 10). Each size runs in a fresh interpreter
   with ``tracemalloc`` started right before the command, so the figure is the peak of what the command
   itself allocated (clients, rows in flight, the digests that find repeated serials), not the
   interpreter's or the imports'. There DynamoDB is a stub (a ``before-send`` handler answering every
   ``PutItem`` with success) rather than moto: moto keeps the whole table in the same heap, and its growth
   with every row stored is DynamoDB's memory, not fleetctl's. The peak resident set size of each
   interpreter is printed for information (it includes ``tracemalloc``'s own bookkeeping).

**Bulk revoke** (``bulk_revoke_section``): ``fleetctl revoke --type`` of ``--devices`` devices (1,000),
each ``ACTIVE`` with a thing, a certificate attached to it and the type's policy attached to the
certificate, all in moto; run through the module function behind the command
(:class:`fleetctl.bulk.BulkRun`), unpaced, so that the figures are fleetctl's and moto's, not the pacing's.

1. Devices per second, end to end (the type index read, every device revoked). Informational: moto-bound.
2. AWS IoT requests per device; target 6, the documented steps (ListThingPrincipals, DescribeCertificate,
   UpdateCertificate, ListAttachedPolicies, DetachPolicy, DetachThingPrincipal). DynamoDB requests per
   device; target 2 (the ``REVOKED`` write and the ``certificatesRevokedAt`` record written last) plus the
   selection's 16 shard queries spread over the devices.
3. Peak memory (``tracemalloc`` from just before the run: clients, pages, devices in flight, and moto's
   own per-request allocations) at a quarter of the devices and at all of them; target: ratio <= 1.5 (the
   selection is streamed: a list of every device would make it about 4).
4. Pacing: the same revoke of 50 devices with the real pacer (:func:`fleetctl.pacing.aws_iot_pacer`),
   measured against what AWS's rates allow (:func:`fleetctl.pacing.paced_seconds`); target 0.95-1.2 (never
   faster than the rates, little slower). Then the time the rates alone set for 1,000 and 1,000,000
   devices: AWS's default quotas, not a measurement (info).

The script is informational and exits 0; with ``--strict`` it exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import boto3  # noqa: E402
from botocore.awsrequest import AWSResponse, HTTPHeaders  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from figures import Figure, print_figures  # noqa: E402
from moto import mock_aws  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from fleetctl.bulk import BulkRun  # noqa: E402
from fleetctl.cli import app  # noqa: E402
from fleetctl.context import StackContext  # noqa: E402
from fleetctl.device_removal import Revocation  # noqa: E402
from fleetctl.manifest import HEADER  # noqa: E402
from fleetctl.pacing import IOT_RATES, Pacer, aws_iot_pacer, paced_seconds  # noqa: E402
from fleetctl.selection import Selectors  # noqa: E402
from fleetctl.selection import resolve as resolve_selection  # noqa: E402
from hook.contract import REGISTRY_SHARDS, Attr, DeviceStatus, device_type_resource_name, thing_name  # noqa: E402
from hook.registry import shard_attributes, timestamp  # noqa: E402
from tests.support import RULES, TABLE_NAME, create_registry_table, one_moto_request_at_a_time  # noqa: E402

REGION: Final = "us-east-1"
FAKE_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
REQUESTS_PER_ROW_TARGET: Final = 1.0
MEMORY_RATIO_TARGET: Final = 1.2

# Run in a fresh interpreter per size: argv[1] the outputs file, argv[2] the manifest. Every PutItem is
# answered with DynamoDB's success before it is sent; AWS_ENDPOINT_URL points at a closed local port, so a
# request the stub does not answer fails locally instead of reaching AWS. The resident set's peak is Linux's
# VmHWM, which starts afresh at exec: ru_maxrss would count the forked copy of this (large) process.
_MEMORY_CHILD: Final = """
import json, resource, sys, tracemalloc
import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from typer.testing import CliRunner
from fleetctl.cli import app

class Body:
    def stream(self, **_):
        yield b"{}"

def answer(request, **_):
    return AWSResponse(request.url, 200, HTTPHeaders(), Body())

def peak_resident_kb():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

session = boto3.Session()
session.events.register("before-send.dynamodb.PutItem", answer)
boto3.DEFAULT_SESSION = session
tracemalloc.start()
result = CliRunner().invoke(app, ["--outputs", sys.argv[1], "preregister", sys.argv[2], "--json"])
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
created = json.loads(result.stdout)["created"] if result.exit_code == 0 else None
print(json.dumps({
    "exit": result.exit_code,
    "output": result.output[-2000:] if result.exit_code else "",
    "created": created,
    "peak": peak,
    "maxrss_kb": peak_resident_kb(),
}))
"""


def write_manifest(path: Path, rows: int) -> Path:
    """A manifest of ``rows`` valid rows (serials TS-000000 on), as a factory would send it."""
    with path.open("w", encoding="utf-8") as file:
        file.write(HEADER + "\n")
        for number in range(rows):
            file.write(f"TS-{number:06d},temperature-sensor,AcmeIoT,1.4.2,Line-{number % 8}\n")
    return path


def write_outputs(path: Path) -> Path:
    """The stack outputs fleetctl reads: the registry table, the region and the hook's rules."""
    outputs = {"deviceRegistryTableName": TABLE_NAME, "region": REGION, "hookRules": RULES}
    path.write_text(json.dumps(outputs), encoding="utf-8")
    return path


# --- pre-registration ----------------------------------------------------------------------------------


def preregister_section(rows: int, work_dir: Path) -> list[Figure]:
    """Rows per second and requests per row against moto; flatness of peak memory against a stub."""
    outputs = write_outputs(work_dir / "outputs.json")
    manifest = write_manifest(work_dir / f"manifest-{rows}.csv", rows)
    figures = _preregister_on_moto(outputs, manifest, rows)
    small = max(rows // 10, 1)
    peaks = {
        size: _preregister_memory(outputs, write_manifest(work_dir / f"manifest-{size}.csv", size), size)
        for size in (small, rows)
    }
    ratio = peaks[rows]["peak"] / peaks[small]["peak"]
    for size, measured in peaks.items():
        figures.append(
            Figure(
                f"peak memory, {size:,} rows",
                f"{measured['peak'] / 2**20:.1f} MB",
                f"tracemalloc peak of the command; max RSS {measured['maxrss_kb'] / 1024:.0f} MB",
                "",
                None,
            )
        )
    figures.append(
        Figure(
            "peak memory ratio",
            f"{ratio:.2f}",
            f"peak at {rows:,} rows / peak at {small:,} rows (stubbed DynamoDB)",
            f"<= {MEMORY_RATIO_TARGET}",
            ratio <= MEMORY_RATIO_TARGET,
        )
    )
    return figures


def _preregister_on_moto(outputs: Path, manifest: Path, rows: int) -> list[Figure]:
    requests: list[str] = []
    lock = threading.Lock()

    def count(event_name: str, **_: Any) -> None:
        with lock:
            requests.append(event_name.rsplit(".", 1)[-1])

    with mock_aws():
        create_registry_table(boto3.client("dynamodb", region_name=REGION))
        session = boto3.Session()
        session.events.register("before-send.dynamodb", count)
        previous, boto3.DEFAULT_SESSION = boto3.DEFAULT_SESSION, session
        try:
            started = time.perf_counter()
            result = CliRunner().invoke(
                app, ["--outputs", str(outputs), "preregister", str(manifest), "--json"]
            )
            elapsed = time.perf_counter() - started
        finally:
            boto3.DEFAULT_SESSION = previous
    if result.exit_code != 0:
        raise SystemExit(f"fleetctl preregister failed: {result.output}")
    created = json.loads(result.stdout)["created"]
    if created != rows:
        raise SystemExit(f"fleetctl preregister created {created} of {rows} rows")
    per_row = len(requests) / rows
    kinds = ", ".join(f"{name} {requests.count(name):,}" for name in sorted(set(requests)))
    return [
        Figure(
            "preregister rate (moto)",
            f"{rows / elapsed:,.0f}/s",
            f"{rows:,} rows in {elapsed:.1f} s, end to end, moto in process",
            "",
            None,
        ),
        Figure(
            "requests per row",
            f"{per_row:.3f}",
            f"{len(requests):,} DynamoDB requests ({kinds})",
            f"{REQUESTS_PER_ROW_TARGET}",
            per_row <= REQUESTS_PER_ROW_TARGET,
        ),
    ]


def _preregister_memory(outputs: Path, manifest: Path, rows: int) -> dict[str, Any]:
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("AWS_")},
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "PYTHONPATH": str(REPO_ROOT),
    }
    completed = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", _MEMORY_CHILD, str(outputs), str(manifest)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"memory run of {rows} rows failed: {completed.stderr[-2000:]}")
    measured: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    if measured["exit"] != 0 or measured["created"] != rows:
        raise SystemExit(f"memory run of {rows} rows: {measured}")
    return measured


# --- bulk revoke ---------------------------------------------------------------------------------------

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
    """Revoke ``devices`` devices answered by :class:`_StubAws` (nothing kept in the heap but fleetctl's
    own allocations, and no request costs time but the pacing's): elapsed seconds and, unless ``paced``,
    the tracemalloc peak."""
    stub = _StubAws(devices)
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


class _StubBody:
    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> Any:
        yield self._payload


class _StubAws:
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
        return AWSResponse(request.url, 200, HTTPHeaders(), _StubBody(json.dumps(body).encode()))

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


# --- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--rows", type=int, default=100_000, help="manifest rows pre-registered (default 100,000)"
    )
    parser.add_argument(
        "--devices", type=int, default=1_000, help="devices revoked by the bulk revoke (default 1,000)"
    )
    args = parser.parse_args(argv)
    if args.rows < 10:
        parser.error("--rows must be at least 10")
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(FAKE_CREDENTIALS)

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as work:
        figures += preregister_section(args.rows, Path(work))
        figures += bulk_revoke_section(args.devices, Path(work))

    return print_figures(figures, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
