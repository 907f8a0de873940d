"""The hook benchmark's cold start: ``import hook.pre_provisioning`` plus its first invocation against a moto
server, over ``import boto3`` plus one DynamoDB client, each in a fresh interpreter started in the unpacked
function package (``bench/hook_bench.py``, figure 1)."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import boto3

try:
    from moto.server import ThreadedMotoServer
except ImportError as missing:  # moto's server needs Flask, which moto[dynamodb] does not bring
    raise SystemExit(f"{missing}: install moto's server, e.g. pip install flask flask-cors") from missing

from bench.fake_aws import FAKE_CREDENTIALS, REGION
from bench.figures import Figure, median_of_rounds, replace_passed
from bench.hook_cases import BINDING, CASES, PLAIN, plain_device, preregister
from fleetctl.operator_transitions import OperatorRecords
from hook.contract import REGISTRY_TABLE_ENV, RULES_FILE_ENV
from tests.support import (
    TABLE_NAME,
    create_registry_table,
    write_rules,
)

COLD_RATIO_TARGET: Final = 1.2
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
from hook.pre_provisioning import lambda_handler
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


@contextlib.contextmanager
def _moto_server() -> Iterator[tuple[str, OperatorRecords]]:
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
        yield endpoint, OperatorRecords(client, TABLE_NAME)
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

    SIDES: Final = (*(case.name for case in CASES), "baseline")

    def __init__(self, work_dir: Path, packages: dict[str, bytes], endpoint: str, records: OperatorRecords):
        self._records = records
        self._task_dirs: dict[str, Path] = {}
        self._envs: dict[str, dict[str, str]] = {}
        for case in CASES:
            self._task_dirs[case.name] = work_dir / f"task-{case.name}"
            with zipfile.ZipFile(io.BytesIO(packages[case.name])) as archive:
                archive.extractall(self._task_dirs[case.name])
            rules_file = write_rules(work_dir / f"rules-{case.name}.json", case.rules)
            self._envs[case.name] = _subprocess_env(endpoint, rules_file)
        self._runs = 0
        self.denied: list[str] = []
        self.binding_modules: dict[str, list[list[str]]] = {case.name: [] for case in CASES}
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
        [case] = [case for case in CASES if case.name == side]
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
        *(
            median_of_rounds(
                f"cold start ratio, {case.name}",
                ratios(case.name),
                f"hook {pooled[case.name]:.3f} s, "
                f"{1000 * (pooled[case.name] - pooled[PLAIN.name]):+.0f} ms on {PLAIN.name}",
                None,
            )
            for case in CASES[1:]
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
