"""Performance figures of the pre-provisioning hook, each printed with its target and PASS/FAIL.

Run from the repository root::

    .venv/bin/python bench/hook_bench.py [--strict] [--cold-runs 7] [--decisions 2000]

Everything runs locally with fake credentials; no AWS account is used. The cold-start figure needs moto's
server (``pip install flask flask-cors``, or ``moto[server]``).

1. Cold start ratio: ``import hook.handler`` plus its first invocation (one real approval written to a
   moto server on 127.0.0.1), divided by ``import boto3`` plus creating one DynamoDB client. Each side
   runs in a fresh interpreter started in the unpacked function package, with the same environment and
   preamble, timed inside the interpreter with ``time.perf_counter()``; the runs are interleaved and
   the medians compared. Target <= 1.2.
2. Overhead per decision: the real handler, in process, approving new serials with a stubbed DynamoDB
   client, against the same stubbed request sent alone on the same client; p50 ratio, target <= 1.5 (p99
   and the difference in microseconds for information). The stub is a ``before-send`` handler on the
   hook's own client that answers every request with DynamoDB's success (HTTP 200, ``{}``) instead of
   sending it, so both sides go through all of botocore but the socket: parameter validation and
   serialisation, endpoint resolution, SigV4 signing, response parsing and the retry handler. (botocore's
   ``Stubber`` answers earlier, at ``before-call``, skipping signing and parsing, and checks each
   request against an expected one, a cost of its own; moto, which the previous figure used, charges for
   its own bookkeeping: its ``UpdateItem`` cost grows with the number of clauses and its transactions
   deep-copy the table, so a ratio against moto measured moto.) The baseline is what the hook's client
   sent for one approval (one ``TransactWriteItems`` of the serial's item and the certificate's binding),
   captured and replayed with the same parameters. The two are measured in turn, hook then alone, then
   alone then hook, and so on, after an untimed warm-up of both: the machine's noise falls on both.
3. DynamoDB requests per approval (botocore ``before-send`` events on the hook's client, against
   in-process moto: a retry needs the registry's real conditions), and per retried approval (same
   serial, same certificate; informational).
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
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import boto3  # noqa: E402
from botocore import xform_name  # noqa: E402
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders  # noqa: E402
from moto import mock_aws  # noqa: E402

try:
    from moto.server import ThreadedMotoServer
except ImportError as missing:  # moto's server needs Flask, which moto[dynamodb] does not bring
    raise SystemExit(f"{missing}: install moto's server, e.g. pip install flask flask-cors") from missing

from components.hook_package import HOOK_HANDLER  # noqa: E402
from hook import handler  # noqa: E402
from hook.contract import REGISTRY_TABLE_ENV, RULES_FILE_ENV  # noqa: E402
from local.resources.compute import zip_archive  # noqa: E402
from tests.pulumi_mocks import deploy  # noqa: E402
from tests.support import (  # noqa: E402
    RULES,
    TABLE_NAME,
    FakeLambdaContext,
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
OVERHEAD_RATIO_TARGET = 1.5
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


# --- 2. overhead per decision, and 3. requests per approval, in process ----------------------------------


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
def _configured_hook(work_dir: Path) -> Iterator[None]:
    """The hook configured with fake credentials, the test rules and the registry table, silenced, with its
    per-cold-start caches cleared before and after (the next call simulates a cold start).

    Powertools' logger keeps the ``sys.stdout`` it saw when it was created, so its handler is pointed at
    /dev/null too; metrics are printed, which ``redirect_stdout`` catches.
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
        open(os.devnull, "w", encoding="utf-8") as devnull,
        contextlib.redirect_stdout(devnull),
    ):
        previous_stream = log_handler.setStream(devnull)
        handler._rules.cache_clear()
        handler._registry.cache_clear()
        try:
            yield
        finally:
            if previous_stream is not None:
                log_handler.setStream(previous_stream)
            handler._rules.cache_clear()
            handler._registry.cache_clear()


@contextlib.contextmanager
def _hook_on_moto(work_dir: Path) -> Iterator[Any]:
    """The hook against in-process moto holding the registry table; yields the DynamoDB client it uses."""
    with _configured_hook(work_dir), mock_aws():
        create_registry_table(boto3.client("dynamodb", region_name=REGION), TABLE_NAME)
        yield handler._registry()._client


_CANNED_BODY: Final = b"{}"
"""DynamoDB's JSON answer to a ``TransactWriteItems`` (or ``UpdateItem``, ``PutItem``) that succeeded."""


class _CannedBody:
    """A response body as botocore reads one from urllib3 (``AWSResponse.content`` joins ``stream()``)."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield _CANNED_BODY


def _canned_response(request: AWSPreparedRequest, **_: Any) -> Any:
    """A ``before-send`` handler: DynamoDB's success, returned instead of sending the signed request (an
    :class:`AWSResponse`; typed ``Any`` because botocore's stubs expect event handlers to return nothing)."""
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["Content-Length"] = str(len(_CANNED_BODY))
    headers["x-amz-crc32"] = str(zlib.crc32(_CANNED_BODY))
    headers["x-amzn-RequestId"] = "canned"
    return AWSResponse(request.url, 200, headers, _CannedBody())


@contextlib.contextmanager
def _hook_on_stub(work_dir: Path) -> Iterator[Any]:
    """The hook with a DynamoDB client whose every request is answered at once by :func:`_canned_response`;
    yields that client. No moto, no socket: the client still validates and serialises the parameters,
    resolves the endpoint, signs the request and parses the response."""
    with _configured_hook(work_dir):
        client = handler._registry()._client
        client.meta.events.register("before-send.dynamodb.*", _canned_response)
        try:
            yield client
        finally:
            client.meta.events.unregister("before-send.dynamodb.*", _canned_response)


def _approve(serial: str, certificate: str) -> None:
    """Invoke the hook once and insist on an approval."""
    event = hook_event(valid_parameters(SerialNumber=serial), certificate=certificate)
    answer = handler.lambda_handler(event, FakeLambdaContext())
    if answer.get("allowProvisioning") is not True:
        raise RuntimeError(f"the hook did not approve {serial}: {answer}")


def _capture_calls(client: Any) -> list[tuple[str, dict[str, Any]]]:
    """The requests (operation, parameters) the hook's client makes for one approval."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, copy.deepcopy(params)))

    client.meta.events.register("before-parameter-build.dynamodb.*", capture)
    try:
        _approve("TS-799999", certificate="capture")
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.*", capture)
    return calls


def _timed_decision(event: dict[str, Any], context: FakeLambdaContext) -> float:
    """Seconds of one hook invocation, which must approve."""
    start = time.perf_counter()
    answer = handler.lambda_handler(event, context)
    elapsed = time.perf_counter() - start
    if answer.get("allowProvisioning") is not True:
        raise RuntimeError(f"the hook did not approve: {answer}")
    return elapsed


def _timed_calls(calls: list[tuple[Callable[..., Any], dict[str, Any]]]) -> float:
    """Seconds of the given client calls, made one after the other."""
    start = time.perf_counter()
    for method, params in calls:
        method(**params)
    return time.perf_counter() - start


def measure_overhead(client: Any, decisions: int, warm_up: int = 200) -> list[Figure]:
    """p50 and p99 of a hook decision over those of the same stubbed request(s) sent alone, alternating.

    The baseline is what the hook's client sent for one approval (one ``TransactWriteItems``), replayed
    with the same parameters on the same client: what is left is what the hook adds per decision (the
    event's checks, the rules, building the transaction, the decorators, the decision's log line and
    metrics). The two are measured in turn, in the order hook, alone, alone, hook, ... so that machine
    noise and cache effects fall on both; events and parameter copies are made untimed.
    """
    captured = _capture_calls(client)
    replay = [(getattr(client, xform_name(name)), params) for name, params in captured]
    hook: list[float] = []
    alone: list[float] = []
    for index in range(warm_up + decisions):
        event = hook_event(valid_parameters(SerialNumber=f"TS-{index:06d}"), certificate=f"decision-{index}")
        context = FakeLambdaContext()
        calls = [(method, copy.deepcopy(params)) for method, params in replay]
        if index % 2 == 0:
            decision, sent = _timed_decision(event, context), _timed_calls(calls)
        else:
            sent, decision = _timed_calls(calls), _timed_decision(event, context)
        if index >= warm_up:
            hook.append(decision)
            alone.append(sent)
    hook_cuts = statistics.quantiles(hook, n=100, method="inclusive")
    alone_cuts = statistics.quantiles(alone, n=100, method="inclusive")
    operations = "+".join(name for name, _ in captured)
    figures = []
    for label, index, target in (("p50", 49, True), ("p99", 98, False)):
        hook_us, alone_us = hook_cuts[index] * 1e6, alone_cuts[index] * 1e6
        ratio = hook_us / alone_us
        figures.append(
            Figure(
                f"overhead ratio {label}",
                f"{ratio:.2f}",
                f"(hook {hook_us:.0f} µs / stubbed write {alone_us:.0f} µs)",
                f"<= {OVERHEAD_RATIO_TARGET}" if target else "-",
                ratio <= OVERHEAD_RATIO_TARGET if target else None,
            )
        )
    hook_p50, alone_p50 = hook_cuts[49] * 1e6, alone_cuts[49] * 1e6
    figures.insert(
        1,
        Figure(
            "overhead per decision",
            f"{hook_p50 - alone_p50:.0f}",
            f"(µs beyond {operations} alone, p50 of {decisions})",
            "-",
            None,
        ),
    )
    return figures


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
    parser.add_argument(
        "--decisions", type=int, default=2000, help="timed decisions, as many lone requests (default 2000)"
    )
    parser.add_argument("--counted-approvals", type=int, default=50, help="approvals counted (default 50)")
    args = parser.parse_args(argv)

    package = function_package()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="hook-bench-") as work:
        work_dir = Path(work)
        figures += measure_cold_start(args.cold_runs, work_dir, package)
        with _hook_on_stub(work_dir) as client:
            figures += measure_overhead(client, args.decisions)
        with _hook_on_moto(work_dir) as client:
            figures += measure_requests(client, args.counted_approvals)
    figures += measure_zip_size(package)

    for figure in figures:
        print(figure.line())
    missed = [figure.name for figure in figures if figure.passed is False]
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
