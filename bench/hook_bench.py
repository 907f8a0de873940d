"""Performance figures of the pre-provisioning hook, each printed with its target and PASS/FAIL.

Run from the repository root::

    .venv/bin/python bench/hook_bench.py [--strict] [--cold-runs 7] [--warm-approvals 300]

Everything runs locally against moto with fake credentials; no AWS account is used. The cold-start
figure needs moto's server (``pip install flask flask-cors``, or ``moto[server]``).

1. Cold start ratio: ``import hook.handler`` plus its first invocation (one real approval written to a
   moto server on 127.0.0.1), divided by ``import boto3`` plus creating one DynamoDB client. Each side
   runs in a fresh interpreter started in the unpacked function package, with the same environment and
   preamble, timed inside the interpreter with ``time.perf_counter()``; the runs are interleaved and
   the medians compared.
2. Warm invocation p50 and p99 against in-process moto, as ratios to a conditional ``put_item`` of an
   item of the same shape (new key each time) on the very client the hook uses. For information, also
   as ratios to the hook's own ``transact_write_items`` (the serial's item and the certificate's binding)
   sent alone, which separates what the hook adds from what moto charges for the write (moto deep-copies
   the whole table for each transaction member, so its transactions slow down as the table fills: the
   ratios to ``put_item`` measure moto there, not DynamoDB). The measurements alternate in blocks so that
   machine noise hits all.
3. DynamoDB requests per approval (botocore ``before-send`` events on the hook's client), and per
   retried approval (same serial, same certificate; informational).
4. Size of the zipped function code: the archive the program declares for a stack of default settings
   (``hook/**/*.py``, ``rules.json``, ``activation.json``), deflated as the local deployer uploads it. The
   cold start runs in this very package.

The script is informational and exits 0; with ``--strict`` it exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

try:
    from moto.server import ThreadedMotoServer
except ImportError as missing:  # moto's server needs Flask, which moto[dynamodb] does not bring
    raise SystemExit(f"{missing}: install moto's server, e.g. pip install flask flask-cors") from missing

from components.hook_package import HOOK_HANDLER  # noqa: E402
from hook import handler  # noqa: E402
from hook.contract import (  # noqa: E402
    REGISTRY_TABLE_ENV,
    RULES_FILE_ENV,
    Attr,
    DeviceStatus,
    certificate_binding_key,
)
from local.resources.compute import zip_archive  # noqa: E402
from tests.pulumi_mocks import deploy  # noqa: E402
from tests.support import (  # noqa: E402
    CLAIM_CERTIFICATE_ID,
    RULES,
    TABLE_NAME,
    TEMPLATE_ARN,
    FakeLambdaContext,
    certificate_id,
    create_registry_table,
    hook_event,
    valid_parameters,
    write_rules,
)

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
COLD_RATIO_TARGET = 1.2
WARM_RATIO_TARGET = 1.5
REQUESTS_TARGET = 1.0
ZIP_SIZE_LIMIT = 50 * 1024

# Both cold-start interpreters run this same preamble, untimed: the event arrives as JSON in argv[1],
# and the hook's logs and metrics go to /dev/null while the timing goes to the real stdout.
_PREAMBLE = """
import json, os, sys, time
event = json.loads(sys.argv[1])
class Context:
    function_name = "provisioning-hook"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:provisioning-hook"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
real_stdout = sys.stdout
sys.stdout = open(os.devnull, "w")
"""
_HOOK_COLD_START = """
start = time.perf_counter()
from hook.handler import lambda_handler
answer = lambda_handler(event, Context())
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "allow": answer.get("allowProvisioning")}), file=real_stdout)
"""
_BASELINE_COLD_START = """
start = time.perf_counter()
import boto3
boto3.client("dynamodb", region_name="us-east-1")
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed}), file=real_stdout)
"""


@dataclass(frozen=True)
class Figure:
    """One printed line: a measured value, how it was obtained, and its target (``None``: informational)."""

    name: str
    value: str
    detail: str
    target: str
    passed: bool | None

    def line(self) -> str:
        verdict = "info" if self.passed is None else ("PASS" if self.passed else "FAIL")
        return f"{self.name:<26}{self.value:>8}  {self.detail:<46} {self.target:<14} {verdict}"


# --- 1. cold start -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _moto_server() -> Iterator[str]:
    """A moto server on a free loopback port, with the registry table; yields its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on stderr
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto's state is per process, not per server: start from an empty account.
        connection = http.client.HTTPConnection(host, port, timeout=10)
        try:
            connection.request("POST", "/moto-api/reset")
            connection.getresponse().read()
        finally:
            connection.close()
        client = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
        )
        create_registry_table(client, TABLE_NAME)
        yield endpoint
    finally:
        server.stop()


def _subprocess_env(endpoint: str, rules_file: Path) -> dict[str, str]:
    """The inherited environment without any AWS setting, plus fake credentials and the hook's config.

    No bytecode is written: as on Lambda, whose code directory is read-only and whose package holds
    only ``.py`` files, the hook's modules are compiled at every cold start, while the installed
    packages (boto3, Powertools) keep the ``.pyc`` files they were installed with.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONDONTWRITEBYTECODE": "1",
            REGISTRY_TABLE_ENV: TABLE_NAME,
            RULES_FILE_ENV: str(rules_file),
        }
    )
    return env


def _run_cold(body: str, event: dict[str, Any], env: dict[str, str], task_dir: Path) -> dict[str, Any]:
    """Run the preamble and ``body`` in a fresh interpreter in ``task_dir``; return the JSON it prints."""
    completed = subprocess.run(  # noqa: S603 - our own interpreter and our own code
        [sys.executable, "-c", _PREAMBLE + body, json.dumps(event)],
        cwd=task_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"cold-start subprocess failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def measure_cold_start(runs: int, work_dir: Path, package: bytes) -> list[Figure]:
    """Median hook cold start over median ``import boto3`` + client, one untimed warm-up of each first.

    Both interpreters start in a directory holding the unpacked function package (as Lambda's code
    directory does), so ``hook`` is imported from there, with no ``__pycache__`` of the work tree.
    """
    task_dir = work_dir / "task"
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        archive.extractall(task_dir)
    rules_file = write_rules(work_dir / "rules.json", RULES)
    hook_seconds: list[float] = []
    baseline_seconds: list[float] = []
    denied: list[str] = []
    with _moto_server() as endpoint:
        env = _subprocess_env(endpoint, rules_file)
        for run in range(runs + 1):  # run 0 only warms the file cache
            serial = f"TS-{run:06d}"
            event = hook_event(valid_parameters(SerialNumber=serial), certificate=f"cold-{serial}")
            hook = _run_cold(_HOOK_COLD_START, event, env, task_dir)
            baseline = _run_cold(_BASELINE_COLD_START, event, env, task_dir)
            if hook["allow"] is not True:
                denied.append(serial)
            if run > 0:
                hook_seconds.append(hook["seconds"])
                baseline_seconds.append(baseline["seconds"])
    for serial in denied:
        print(f"error: the hook's first invocation did not approve {serial}", file=sys.stderr)
    hook_median = statistics.median(hook_seconds)
    baseline_median = statistics.median(baseline_seconds)
    ratio = hook_median / baseline_median
    return [
        Figure(
            "cold start ratio",
            f"{ratio:.2f}",
            f"(hook {hook_median:.3f} s / boto3+client {baseline_median:.3f} s)",
            f"<= {COLD_RATIO_TARGET}",
            ratio <= COLD_RATIO_TARGET and not denied,
        )
    ]


# --- 2. and 3. warm invocations in process -------------------------------------------------------------


@contextlib.contextmanager
def _environment(values: dict[str, str], remove_prefix: str) -> Iterator[None]:
    """Temporarily drop the variables starting with ``remove_prefix`` and set ``values``."""
    saved = dict(os.environ)
    for name in [name for name in os.environ if name.startswith(remove_prefix)]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _hook_on_moto(work_dir: Path) -> Iterator[Any]:
    """The hook configured against in-process moto, silenced, after a simulated cold start.

    Yields the DynamoDB client the hook uses. Powertools' logger keeps the ``sys.stdout`` it saw when
    it was created, so its handler is pointed at /dev/null too; metrics are printed, which
    ``redirect_stdout`` catches.
    """
    rules_file = write_rules(work_dir / "rules.json", RULES)
    env = {
        **FAKE_CREDENTIALS,
        REGISTRY_TABLE_ENV: TABLE_NAME,
        RULES_FILE_ENV: str(rules_file),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    log_handler: Any = handler.logger.registered_handler
    with (
        _environment(env, remove_prefix="AWS_"),
        mock_aws(),
        open(os.devnull, "w", encoding="utf-8") as devnull,
        contextlib.redirect_stdout(devnull),
    ):
        create_registry_table(boto3.client("dynamodb", region_name=REGION), TABLE_NAME)
        previous_stream = log_handler.setStream(devnull)
        handler._rules.cache_clear()
        handler._registry.cache_clear()
        try:
            yield handler._registry()._client
        finally:
            if previous_stream is not None:
                log_handler.setStream(previous_stream)
            handler._rules.cache_clear()
            handler._registry.cache_clear()


def _approve(serial: str, certificate: str) -> None:
    """Invoke the hook once and insist on an approval."""
    event = hook_event(valid_parameters(SerialNumber=serial), certificate=certificate)
    answer = handler.lambda_handler(event, FakeLambdaContext())
    if answer.get("allowProvisioning") is not True:
        raise RuntimeError(f"the hook did not approve {serial}: {answer}")


def _timed_approval(serial: str) -> float:
    """Seconds of one approving hook invocation for a new serial; the event is built untimed."""
    event = hook_event(valid_parameters(SerialNumber=serial), certificate=f"warm-{serial}")
    context = FakeLambdaContext()
    start = time.perf_counter()
    answer = handler.lambda_handler(event, context)
    elapsed = time.perf_counter() - start
    if answer.get("allowProvisioning") is not True:
        raise RuntimeError(f"the hook did not approve {serial}: {answer}")
    return elapsed


def _approval_item(serial: str) -> dict[str, dict[str, str]]:
    """An item of the shape and size the hook writes on approval."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    attributes = {
        Attr.SERIAL_NUMBER: serial,
        Attr.STATUS: DeviceStatus.PENDING,
        Attr.DEVICE_TYPE: "temperature-sensor",
        Attr.MANUFACTURER: "AcmeIoT",
        Attr.FIRMWARE_VERSION: "1.4.2",
        Attr.LOCATION: "Factory-Floor-A",
        Attr.CERTIFICATE_ID: certificate_id(f"base-{serial}"),
        Attr.CLAIM_CERTIFICATE_ID: CLAIM_CERTIFICATE_ID,
        Attr.TEMPLATE_ARN: TEMPLATE_ARN,
        Attr.CLIENT_ID: "client-1",
        Attr.CREATED_AT: now,
        Attr.UPDATED_AT: now,
        Attr.APPROVED_AT: now,
    }
    return {str(name): {"S": str(value)} for name, value in attributes.items()}


def _timed_put(client: Any, key: str) -> float:
    """Seconds of one conditional ``put_item`` of a new approval-shaped item."""
    item = _approval_item(key)
    start = time.perf_counter()
    client.put_item(TableName=TABLE_NAME, Item=item, ConditionExpression="attribute_not_exists(serialNumber)")
    return time.perf_counter() - start


def _alternating_blocks(count: int, block: int, measures: list[Callable[[int], float]]) -> list[list[float]]:
    """Call each measure on 0..count-1 in blocks, rotating which goes first from block to block."""
    samples: list[list[float]] = [[] for _ in measures]
    for number, start in enumerate(range(0, count, block)):
        indexes = range(start, min(start + block, count))
        for offset in range(len(measures)):
            which = (number + offset) % len(measures)
            samples[which].extend(measures[which](index) for index in indexes)
    return samples


def _capture_write(client: Any) -> dict[str, Any]:
    """The parameters of the ``transact_write_items`` the hook sends for one approval."""
    captured: dict[str, Any] = {}

    def capture(params: dict[str, Any], **_: Any) -> None:
        captured.update(copy.deepcopy(params))

    client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", capture)
    try:
        _approve("TS-799999", certificate="capture")
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.TransactWriteItems", capture)
    return captured


def _timed_write(client: Any, params: dict[str, Any], key: str) -> float:
    """Seconds of the hook's ``transact_write_items``, sent directly for a new serial and certificate."""
    serial_item, binding = copy.deepcopy(params["TransactItems"])
    serial_item["Update"]["Key"] = {Attr.SERIAL_NUMBER.value: {"S": key}}
    binding["Update"]["Key"] = {Attr.SERIAL_NUMBER.value: {"S": certificate_binding_key(key)}}
    binding["Update"]["ExpressionAttributeValues"] = {
        placeholder: {"S": key} if value == {"S": "TS-799999"} else value
        for placeholder, value in binding["Update"]["ExpressionAttributeValues"].items()
    }
    start = time.perf_counter()
    client.transact_write_items(TransactItems=[serial_item, binding])
    return time.perf_counter() - start


def _warm_figure(
    name: str, percent: int, hook: list[float], base: list[float], base_name: str, *, target: bool
) -> Figure:
    """Compare the ``percent`` percentiles of two samples; the ratio has a target only when ``target``."""
    hook_ms = statistics.quantiles(hook, n=100, method="inclusive")[percent - 1] * 1000
    base_ms = statistics.quantiles(base, n=100, method="inclusive")[percent - 1] * 1000
    ratio = hook_ms / base_ms
    return Figure(
        name,
        f"{ratio:.2f}",
        f"(hook {hook_ms:.2f} ms / {base_name} {base_ms:.2f} ms)",
        f"<= {WARM_RATIO_TARGET}" if target else "-",
        ratio <= WARM_RATIO_TARGET if target else None,
    )


def measure_warm(client: Any, approvals: int) -> list[Figure]:
    """Warm p50/p99 of the hook over those of a conditional put_item, after a warm-up of each.

    Also, for information, over the hook's own ``transact_write_items`` sent alone: what the hook adds to
    its write.
    """
    write = _capture_write(client)
    for index in range(20):
        _timed_approval(f"TS-9{index:05d}")
        _timed_put(client, f"WARMUP-{index:06d}")
        _timed_write(client, write, f"WARMUP-WRITE-{index:06d}")
    hook, put, alone = _alternating_blocks(
        approvals,
        block=25,
        measures=[
            lambda index: _timed_approval(f"TS-{index:06d}"),
            lambda index: _timed_put(client, f"BASE-{index:06d}"),
            lambda index: _timed_write(client, write, f"WRITE-{index:06d}"),
        ],
    )
    return [
        _warm_figure("warm p50 ratio", 50, hook, put, "put_item", target=True),
        _warm_figure("warm p99 ratio", 99, hook, put, "put_item", target=True),
        _warm_figure("warm p50 vs own write", 50, hook, alone, "transact", target=False),
        _warm_figure("warm p99 vs own write", 99, hook, alone, "transact", target=False),
    ]


def measure_requests(client: Any, approvals: int) -> list[Figure]:
    """DynamoDB requests the hook's client sends per new approval and per retried approval."""
    sent: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        sent.append(event_name)

    client.meta.events.register("before-send.dynamodb.*", count)
    try:
        serials = [f"TS-5{index:05d}" for index in range(approvals)]
        for serial in serials:
            _approve(serial, certificate=f"count-{serial}")
        per_approval = len(sent) / approvals
        sent.clear()
        for serial in serials:
            _approve(serial, certificate=f"count-{serial}")
        per_retry = len(sent) / approvals
    finally:
        client.meta.events.unregister("before-send.dynamodb.*", count)
    return [
        Figure(
            "requests per approval",
            f"{per_approval:.2f}",
            f"(DynamoDB requests over {approvals} approvals)",
            f"== {REQUESTS_TARGET}",
            per_approval == REQUESTS_TARGET,
        ),
        Figure(
            "requests per retry",
            f"{per_retry:.2f}",
            "(same serial, same certificate)",
            "-",
            None,
        ),
    ]


# --- 4. package size -----------------------------------------------------------------------------------


def function_package() -> bytes:
    """The functions' code exactly as the program declares it (``hook/**/*.py`` with the ``rules.json`` and
    ``activation.json`` of a stack of default settings, run under Pulumi's mock engine), zipped as the local
    deployer uploads it."""
    functions = deploy({"aws:region": REGION}).mocks.of_type("aws:lambda/function:Function")
    [hook] = [function for function in functions if function.inputs["handler"] == HOOK_HANDLER]
    return zip_archive(hook.inputs["code"])


def measure_zip_size(package: bytes) -> list[Figure]:
    """Bytes of the zipped function code."""
    size = len(package)
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        names = [PurePosixPath(name).name for name in archive.namelist()]
    configs = sorted(name for name in names if not name.endswith(".py"))
    return [
        Figure(
            "zipped function code",
            f"{size:,}",
            f"(bytes, {len(names) - len(configs)} .py files + {', '.join(configs)})",
            f"< {ZIP_SIZE_LIMIT:,}",
            size < ZIP_SIZE_LIMIT,
        )
    ]


# --- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--cold-runs", type=int, default=7, help="timed interpreters per side (default 7)")
    parser.add_argument("--warm-approvals", type=int, default=300, help="timed warm approvals (default 300)")
    parser.add_argument("--counted-approvals", type=int, default=50, help="approvals counted (default 50)")
    args = parser.parse_args(argv)

    package = function_package()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="hook-bench-") as work:
        work_dir = Path(work)
        figures += measure_cold_start(args.cold_runs, work_dir, package)
        with _hook_on_moto(work_dir) as client:
            warm = measure_warm(client, args.warm_approvals)
            requests = measure_requests(client, args.counted_approvals)
        figures += warm + requests
    figures += measure_zip_size(package)

    for figure in figures:
        print(figure.line())
    missed = [figure.name for figure in figures if figure.passed is False]
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
