"""fleet_bench's pre-registration figures: ``fleetctl preregister`` of a large manifest against moto (rows per
second, requests per row), and the flatness of its peak memory against a stub (``bench/fleet_bench.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

import boto3
from moto import mock_aws
from typer.testing import CliRunner

from bench.fake_aws import FAKE_CREDENTIALS, REGION
from bench.figures import Figure
from fleetctl.cli import app
from fleetctl.manifest import HEADER
from program.config import PROJECT_DIR
from tests.support import RULES, TABLE_NAME, create_registry_table

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
    }
    completed = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", _MEMORY_CHILD, str(outputs), str(manifest)],
        cwd=PROJECT_DIR,  # python -c puts it first on sys.path: fleetctl is imported from it
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
