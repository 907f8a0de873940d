"""Performance figures of the pre-provisioning hook, each printed with its target and PASS/FAIL, for a stack
without key binding ("plain") and for a device type that binds keys ("binding").

Run from the repository root::

    .venv/bin/python bench/hook_bench.py [--strict] [--rounds 5] [--cold-runs 3] [--decisions 400]

Everything runs locally with fake credentials; no AWS account is used. The cold-start figure needs moto's
server (``pip install flask flask-cors``, or ``moto[server]``).

Key binding (issue 12) parses the certificate being registered with ``cryptography``, imported only on that
path; the targets hold for stacks without binding, and the binding figures are printed beside them. Its
events carry a real certificate (an EC P-256 key, as a secure element makes one) of the key the serial was
pre-registered with.

Noise: each figure is measured in ``--rounds`` rounds, the measured side and its baseline interleaved within
each round; a round gives one ratio, and the figure is the median of the rounds' ratios, printed with their
spread (lowest-highest) and every round's value. Nothing is dropped.

1. Cold start ratio: ``import hook.handler`` plus its first invocation (one real approval written to a
   moto server on 127.0.0.1), divided by ``import boto3`` plus creating one DynamoDB client. Each runs in a
   fresh interpreter started in the unpacked function package, with the same environment and preamble,
   timed inside the interpreter with ``time.perf_counter()``. A round runs ``--cold-runs`` interpreters of
   each side (plain, binding, baseline), rotating which goes first; its ratio is the medians' ratio. Target
   <= 1.2 for plain; binding for information, with what the binding path adds in milliseconds. Each plain
   interpreter reports whether ``cryptography`` (or ``hook.public_keys``) was imported: it must not be.
2. Overhead per decision: the real handler, in process, approving new serials with a stubbed DynamoDB
   client, against the same stubbed request sent alone on the same client; a round's ratio is the p50 of
   its ``--decisions`` hook decisions over the p50 of as many lone requests, and the two cases take turns
   round by round. Target <= 1.5 for plain; binding for information. p99 and the difference in
   microseconds are pooled over the rounds, for information. The stub is a ``before-send`` handler on the
   hook's own client that answers every request with DynamoDB's success (HTTP 200, ``{}``) instead of
   sending it, so both sides go through all of botocore but the socket: parameter validation and
   serialisation, endpoint resolution, SigV4 signing, response parsing and the retry handler. (botocore's
   ``Stubber`` answers earlier, at ``before-call``, skipping signing and parsing, and checks each
   request against an expected one, a cost of its own; moto, which the previous figure used, charges for
   its own bookkeeping: its ``UpdateItem`` cost grows with the number of clauses and its transactions
   deep-copy the table, so a ratio against moto measured moto.) The baseline is what the hook's client
   sent for one approval (one ``TransactWriteItems`` of the serial's item and the certificate's binding,
   with the key's condition for binding), captured and replayed with the same parameters. The two are
   measured in turn, hook then alone, then alone then hook, and so on, after an untimed warm-up of both:
   the machine's noise falls on both.
3. DynamoDB requests per approval (botocore ``before-send`` events on the hook's client, against
   in-process moto: a retry needs the registry's real conditions), and per retried approval (same
   serial, same certificate; informational).
4. Size of the zipped function code: the archive the program declares (``hook/**/*.py``, ``rules.json``,
   ``activation.json``), deflated as the local deployer uploads it, for a stack of default settings and for
   the same stack with a device type that binds keys. The binding path ships nothing more in it:
   ``cryptography`` comes with the Powertools layer (``components/powertools.py``); the figure checks that
   the package holds no ``cryptography``. The cold starts run in these very packages.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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

from figures import Figure, print_figures  # noqa: E402

from components.hook_package import HOOK_HANDLER  # noqa: E402
from hook import handler  # noqa: E402
from hook.contract import REGISTRY_TABLE_ENV, RULES_FILE_ENV  # noqa: E402
from hook.registry import DeviceRecords, timestamp  # noqa: E402
from hook.rules import parse_rules, validate_request  # noqa: E402
from local.deploy.resources.compute import zip_archive  # noqa: E402
from program.device_types import DEFAULT_DEVICE_TYPES  # noqa: E402
from tests.pulumi_mocks import deploy  # noqa: E402
from tests.support import (  # noqa: E402
    RULES,
    TABLE_NAME,
    FakeLambdaContext,
    create_registry_table,
    device_certificate,
    device_key,
    hook_event,
    key_fingerprint,
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

BINDING_TYPE: Final = "secure-sensor"
"""The bench's device type that binds keys; its serials are ``SS-<n>``."""
BINDING_RULES: Final[dict[str, Any]] = {
    **RULES,
    "deviceTypes": {**RULES["deviceTypes"], BINDING_TYPE: {"keyBinding": True}},
}
BINDING_MODULES: Final = ("cryptography", "hook.public_keys")
"""What only the key-binding path imports."""

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
_HOOK_COLD_START = f"""
start = time.perf_counter()
from hook.handler import lambda_handler
answer = lambda_handler(event, Context())
elapsed = time.perf_counter() - start
binding_modules = sorted(
    name for name in sys.modules if name in {BINDING_MODULES!r} or name.startswith("cryptography.")
)
print(
    json.dumps(
        {{"seconds": elapsed, "allow": answer.get("allowProvisioning"), "binding_modules": binding_modules}}
    ),
    file=real_stdout,
)
"""
_BASELINE_COLD_START = """
start = time.perf_counter()
import boto3
boto3.client("dynamodb", region_name="us-east-1")
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed}), file=real_stdout)
"""


def median_of_rounds(
    name: str, ratios: Sequence[float], detail: str, target: float | None, unit: str = ""
) -> Figure:
    """The median of per-round ratios beside ``target`` (``None``: informational), with their spread."""
    middle = statistics.median(ratios)
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
    return Figure(
        name,
        f"{middle:.2f}{unit}",
        f"({detail}; median of {len(ratios)} rounds, spread {spread})",
        "-" if target is None else f"<= {target}",
        None if target is None else middle <= target,
        tuple(f"{ratio:.2f}" for ratio in ratios),
    )


# --- the two cases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A device that may provision through the hook: its parameters and, for key binding, its certificate
    (issued for its own key) and that key's fingerprint as the factory registered it."""

    parameters: dict[str, Any]
    certificate_pem: str | None = None
    key_sha256: str | None = None

    def event(self, certificate: str) -> dict[str, Any]:
        """The hook event of this device registering the certificate ``certificate`` names."""
        event = hook_event(self.parameters, certificate=certificate)
        if self.certificate_pem is not None:
            event["certificatePem"] = self.certificate_pem
        return event


def plain_device(number: int) -> Device:
    """A temperature sensor: a type without key binding."""
    return Device(valid_parameters(SerialNumber=f"TS-{number:06d}"))


def binding_device(number: int) -> Device:
    """A device of :data:`BINDING_TYPE` with a new P-256 key and a certificate of it."""
    key = device_key()
    serial = f"SS-{number:06d}"
    return Device(
        valid_parameters(SerialNumber=serial, DeviceType=BINDING_TYPE),
        device_certificate(key, common_name=serial),
        key_fingerprint(key),
    )


def preregister(records: DeviceRecords, device: Device) -> None:
    """Pre-register ``device`` with its key, as ``fleetctl preregister`` does from a factory manifest."""
    request = validate_request(device.parameters, parse_rules(BINDING_RULES))
    if records.preregister(request, timestamp(), public_key_sha256=device.key_sha256) is not None:
        raise RuntimeError(f"{request.serial_number} was already in the registry")


@dataclass(frozen=True)
class Case:
    """One way of provisioning: the rules the hook is deployed with and the devices that provision."""

    name: str
    rules: dict[str, Any]
    device: Callable[[int], Device]


PLAIN: Final = Case("plain", RULES, plain_device)
BINDING: Final = Case("binding", BINDING_RULES, binding_device)


# --- 1. cold start -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _moto_server() -> Iterator[tuple[str, DeviceRecords]]:
    """A moto server on a free loopback port, with the registry table; yields its endpoint URL and the
    registry's records through a client of this process."""
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
        yield endpoint, DeviceRecords(client, TABLE_NAME)
    finally:
        server.stop()


def _subprocess_env(endpoint: str, rules_file: Path) -> dict[str, str]:
    """The inherited environment without any AWS setting, plus fake credentials and the hook's config.

    No bytecode is written: as on Lambda, whose code directory is read-only and whose package holds
    only ``.py`` files, the hook's modules are compiled at every cold start, while the installed
    packages (boto3, Powertools, cryptography) keep the ``.pyc`` files they were installed with.
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


class ColdStarts:
    """Interpreters of each side of the cold-start comparison against one moto server: the hook of each
    case in its own stack's unpacked package, and the baseline. Each hook run approves a new serial (a
    binding one pre-registered with its key first, untimed); what each run reported is kept."""

    SIDES: Final = (PLAIN.name, BINDING.name, "baseline")

    def __init__(self, work_dir: Path, packages: dict[str, bytes], endpoint: str, records: DeviceRecords):
        self._records = records
        self._task_dirs: dict[str, Path] = {}
        self._envs: dict[str, dict[str, str]] = {}
        for case in (PLAIN, BINDING):
            self._task_dirs[case.name] = work_dir / f"task-{case.name}"
            with zipfile.ZipFile(io.BytesIO(packages[case.name])) as archive:
                archive.extractall(self._task_dirs[case.name])
            rules_file = write_rules(work_dir / f"rules-{case.name}.json", case.rules)
            self._envs[case.name] = _subprocess_env(endpoint, rules_file)
        self._runs = 0
        self.denied: list[str] = []
        self.binding_modules: dict[str, list[list[str]]] = {PLAIN.name: [], BINDING.name: []}
        """Per case, the binding modules each of its cold starts had loaded."""

    def run(self, side: str) -> float:
        """Seconds of one cold start of ``side``."""
        self._runs += 1
        if side not in self._envs:  # the baseline, in the plain package and environment
            event = plain_device(self._runs).event("cold")
            baseline = _run_cold(
                _BASELINE_COLD_START, event, self._envs[PLAIN.name], self._task_dirs[PLAIN.name]
            )
            return float(baseline["seconds"])
        case = PLAIN if side == PLAIN.name else BINDING
        device = case.device(900_000 + self._runs)
        if device.key_sha256 is not None:
            preregister(self._records, device)
        result = _run_cold(
            _HOOK_COLD_START, device.event(f"cold-{self._runs}"), self._envs[side], self._task_dirs[side]
        )
        if result["allow"] is not True:
            self.denied.append(str(device.parameters["SerialNumber"]))
        self.binding_modules[side].append(result["binding_modules"])
        return float(result["seconds"])


def measure_cold_start(rounds: int, runs: int, work_dir: Path, packages: dict[str, bytes]) -> list[Figure]:
    """Per round, the median cold start of each case over the median ``import boto3`` + client, ``runs``
    interpreters of each side rotating which goes first; the figures are the medians of the rounds' ratios.

    Every interpreter starts in a directory holding the unpacked function package (as Lambda's code
    directory does), so ``hook`` is imported from there, with no ``__pycache__`` of the work tree.
    """
    sides = ColdStarts.SIDES
    seconds: dict[str, list[list[float]]] = {side: [] for side in sides}
    with _moto_server() as (endpoint, records):
        cold = ColdStarts(work_dir, packages, endpoint, records)
        for side in sides:  # untimed: warms the file cache
            cold.run(side)
        for _ in range(rounds):
            for side in sides:
                seconds[side].append([])
            for run in range(runs):
                for side in sides[run % len(sides) :] + sides[: run % len(sides)]:
                    seconds[side][-1].append(cold.run(side))
    for serial in cold.denied:
        print(f"error: the hook's first invocation did not approve {serial}", file=sys.stderr)
    medians = {side: [statistics.median(times) for times in seconds[side]] for side in sides}
    pooled = {side: statistics.median(t for times in seconds[side] for t in times) for side in sides}

    def ratios(case: str) -> list[float]:
        return [hook / alone for hook, alone in zip(medians[case], medians["baseline"], strict=True)]

    plain = median_of_rounds(
        f"cold start ratio, {PLAIN.name}",
        ratios(PLAIN.name),
        f"hook {pooled[PLAIN.name]:.3f} s / boto3+client {pooled['baseline']:.3f} s, {runs} of each a round",
        COLD_RATIO_TARGET,
    )
    loaded = {case: sorted(set().union(*each)) for case, each in cold.binding_modules.items()}
    with_cryptography = sum("cryptography" in names for names in cold.binding_modules[BINDING.name])
    return [
        replace_passed(plain, bool(plain.passed) and not cold.denied),
        median_of_rounds(
            f"cold start ratio, {BINDING.name}",
            ratios(BINDING.name),
            f"hook {pooled[BINDING.name]:.3f} s, "
            f"{1000 * (pooled[BINDING.name] - pooled[PLAIN.name]):+.0f} ms on {PLAIN.name}",
            None,
        ),
        Figure(
            f"{PLAIN.name} cold start imports binding",
            f"{len(loaded[PLAIN.name])}",
            f"(of {', '.join(BINDING_MODULES)}: loaded by any of {len(cold.binding_modules[PLAIN.name])} "
            f"cold starts{': ' + ', '.join(loaded[PLAIN.name][:3]) if loaded[PLAIN.name] else ''})",
            "== 0",
            not loaded[PLAIN.name],
        ),
        Figure(
            f"{BINDING.name} cold start imports it",
            f"{with_cryptography}/{len(cold.binding_modules[BINDING.name])}",
            "(cold starts that loaded cryptography: the path that needs it)",
            "-",
            None,
        ),
    ]


def replace_passed(figure: Figure, passed: bool) -> Figure:
    """``figure`` with its verdict overridden (a target met by a side that failed is not met)."""
    return Figure(figure.name, figure.value, figure.detail, figure.target, passed, figure.rounds)


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
def _configured_hook(work_dir: Path, rules: dict[str, Any]) -> Iterator[None]:
    """The hook configured with fake credentials, ``rules`` and the registry table, silenced, with its
    per-cold-start caches cleared before and after (the next call simulates a cold start).

    Powertools' logger keeps the ``sys.stdout`` it saw when it was created, so its handler is pointed at
    /dev/null too; metrics are printed, which ``redirect_stdout`` catches.
    """
    rules_file = write_rules(work_dir / "rules.json", rules)
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
    with _configured_hook(work_dir, RULES), mock_aws():
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
def _hook_on_stub(work_dir: Path, rules: dict[str, Any]) -> Iterator[Any]:
    """The hook with ``rules`` and a DynamoDB client whose every request is answered at once by
    :func:`_canned_response`; yields that client. No moto, no socket: the client still validates and
    serialises the parameters, resolves the endpoint, signs the request and parses the response."""
    with _configured_hook(work_dir, rules):
        client = handler._registry()._client
        client.meta.events.register("before-send.dynamodb.*", _canned_response)
        try:
            yield client
        finally:
            client.meta.events.unregister("before-send.dynamodb.*", _canned_response)


def _approve(event: dict[str, Any]) -> None:
    """Invoke the hook once and insist on an approval."""
    answer = handler.lambda_handler(event, FakeLambdaContext())
    if answer.get("allowProvisioning") is not True:
        raise RuntimeError(f"the hook did not approve {event['parameters']['SerialNumber']}: {answer}")


def _capture_calls(client: Any, event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The requests (operation, parameters) the hook's client makes for one approval."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, copy.deepcopy(params)))

    client.meta.events.register("before-parameter-build.dynamodb.*", capture)
    try:
        _approve(event)
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


def _p(samples: list[float], percentile: int) -> float:
    """A percentile (1-99) of ``samples``, interpolated."""
    return statistics.quantiles(samples, n=100, method="inclusive")[percentile - 1]


@dataclass
class Timings:
    """One case's timed hook decisions and lone requests, a list of each per round."""

    hook: list[list[float]] = field(default_factory=list)
    alone: list[list[float]] = field(default_factory=list)
    operations: str = ""
    """The request(s) the hook sent for one approval, as replayed alone."""


def _time_block(
    client: Any, case: Case, block: int, timings: Timings, *, decisions: int, warm_up: int
) -> None:
    """One round of ``case``: ``decisions`` hook decisions and as many lone requests, alternating, after
    ``warm_up`` untimed ones of each. The lone requests replay what the hook's client sent for one
    approval, with the same parameters, on the same client."""
    captured = _capture_calls(client, case.device(799_999).event(certificate=f"capture-{case.name}-{block}"))
    replay = [(getattr(client, xform_name(name)), params) for name, params in captured]
    timings.operations = "+".join(name for name, _ in captured)
    hook: list[float] = []
    alone: list[float] = []
    for index in range(warm_up + decisions):
        number = block * (warm_up + decisions) + index
        event = case.device(number).event(certificate=f"decision-{case.name}-{number}")
        context = FakeLambdaContext()
        calls = [(method, copy.deepcopy(params)) for method, params in replay]
        if index % 2 == 0:
            decision, sent = _timed_decision(event, context), _timed_calls(calls)
        else:
            sent, decision = _timed_calls(calls), _timed_decision(event, context)
        if index >= warm_up:
            hook.append(decision)
            alone.append(sent)
    timings.hook.append(hook)
    timings.alone.append(alone)


def measure_overhead(work_dir: Path, rounds: int, decisions: int, warm_up: int = 100) -> list[Figure]:
    """Per round and case, the p50 of ``decisions`` hook decisions over the p50 of the same stubbed
    request(s) sent alone as often; each figure is the median of its case's rounds.

    What is left is what the hook adds per decision: the event's checks, the rules, reading the
    certificate's key (binding), building the transaction, the decorators, the decision's log line and
    metrics. Within a round, hook and lone request alternate (hook, alone, alone, hook, ...) so that
    machine noise and cache effects fall on both; the cases take turns, each round starting with the other,
    so that a change in the machine's load falls on both cases. Each case runs on a hook configured with
    its own stack's rules (a new client, warmed up untimed); devices, events and parameter copies are made
    untimed.
    """
    timings = {case.name: Timings() for case in (PLAIN, BINDING)}
    for block in range(rounds):
        for case in (PLAIN, BINDING) if block % 2 == 0 else (BINDING, PLAIN):
            with _hook_on_stub(work_dir, case.rules) as client:
                _time_block(client, case, block, timings[case.name], decisions=decisions, warm_up=warm_up)
    figures = []
    for case in (PLAIN, BINDING):
        timed = timings[case.name]
        all_hook = [seconds for samples in timed.hook for seconds in samples]
        all_alone = [seconds for samples in timed.alone for seconds in samples]
        figures += [
            median_of_rounds(
                f"overhead ratio p50, {case.name}",
                [
                    statistics.median(h) / statistics.median(a)
                    for h, a in zip(timed.hook, timed.alone, strict=True)
                ],
                f"hook {_p(all_hook, 50) * 1e6:.0f} µs / stubbed write {_p(all_alone, 50) * 1e6:.0f} µs, "
                f"{decisions} a round",
                OVERHEAD_RATIO_TARGET if case is PLAIN else None,
            ),
            Figure(
                f"overhead per decision, {case.name}",
                f"{(_p(all_hook, 50) - _p(all_alone, 50)) * 1e6:.0f}",
                f"(µs beyond {timed.operations} alone, p50 of {len(all_hook)})",
                "-",
                None,
            ),
            Figure(
                f"overhead ratio p99, {case.name}",
                f"{_p(all_hook, 99) / _p(all_alone, 99):.2f}",
                f"(hook {_p(all_hook, 99) * 1e6:.0f} µs / stubbed write {_p(all_alone, 99) * 1e6:.0f} µs)",
                "-",
                None,
            ),
        ]
    return figures


def measure_requests(client: Any, approvals: int) -> list[Figure]:
    """DynamoDB requests the hook's client sends per new approval and per retried approval."""
    sent: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        sent.append(event_name)

    client.meta.events.register("before-send.dynamodb.*", count)
    try:
        events = [
            plain_device(500_000 + index).event(certificate=f"count-{index}") for index in range(approvals)
        ]
        for event in events:
            _approve(event)
        per_approval = len(sent) / approvals
        sent.clear()
        for event in events:
            _approve(event)
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

STACKS: Final[dict[str, dict[str, Any]]] = {
    PLAIN.name: {"aws:region": REGION},
    BINDING.name: {
        "aws:region": REGION,
        "deviceTypes": [*DEFAULT_DEVICE_TYPES, {"name": BINDING_TYPE, "keyBinding": True}],
    },
}
"""Stack config of each case: default settings, and the same with a device type that binds keys."""


def function_package(config: dict[str, Any]) -> bytes:
    """The hook's code exactly as the program declares it for a stack of ``config`` (``hook/**/*.py`` with
    the stack's ``rules.json`` and ``activation.json``, under Pulumi's mock engine), zipped as the local
    deployer uploads it."""
    functions = deploy(config).mocks.of_type("aws:lambda/function:Function")
    [hook] = [function for function in functions if function.inputs["handler"] == HOOK_HANDLER]
    return zip_archive(hook.inputs["code"])


def measure_zip_size(packages: dict[str, bytes]) -> list[Figure]:
    """Bytes of each case's zipped function code; neither may carry ``cryptography``."""
    figures = []
    for case, package in packages.items():
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            paths = [PurePosixPath(name) for name in archive.namelist()]
        configs = sorted(path.name for path in paths if path.suffix != ".py")
        bundled = [path for path in paths if "cryptography" in path.parts]
        figures.append(
            Figure(
                f"zipped function code, {case}",
                f"{len(package):,}",
                f"(bytes, {len(paths) - len(configs)} .py files + {', '.join(configs)}; "
                f"{len(bundled)} files of cryptography)",
                f"< {ZIP_SIZE_LIMIT:,}",
                len(package) < ZIP_SIZE_LIMIT and not bundled,
            )
        )
    return figures


# --- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of each comparison, figures their median (default 5)",
    )
    parser.add_argument(
        "--cold-runs", type=int, default=3, help="interpreters per side and round (default 3)"
    )
    parser.add_argument(
        "--decisions", type=int, default=400, help="timed decisions per case and round (default 400)"
    )
    parser.add_argument("--counted-approvals", type=int, default=50, help="approvals counted (default 50)")
    args = parser.parse_args(argv)

    packages = {case: function_package(config) for case, config in STACKS.items()}
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="hook-bench-") as work:
        work_dir = Path(work)
        figures += measure_cold_start(args.rounds, args.cold_runs, work_dir, packages)
        figures += measure_overhead(work_dir, args.rounds, args.decisions)
        with _hook_on_moto(work_dir) as client:
            figures += measure_requests(client, args.counted_approvals)
    figures += measure_zip_size(packages)

    return print_figures(figures, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
