"""The hook benchmark's in-process figures: the overhead per decision against the same stubbed DynamoDB
request sent alone, and the DynamoDB requests per approval against moto (``bench/hook_bench.py``, figures 2
and 3)."""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import boto3
from botocore import xform_name
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from moto import mock_aws

from bench.fake_aws import FAKE_CREDENTIALS, REGION, StubBody
from bench.figures import Figure, median_of_rounds
from bench.hook_cases import CASES, PLAIN, Case, plain_device
from hook import pre_provisioning, runtime
from hook.claim_breaker import BreakerState
from hook.claim_breakers import ClaimBreakers
from hook.contract import REGISTRY_TABLE_ENV, RULES_FILE_ENV
from tests.support import (
    CLAIM_CERTIFICATE_ID,
    RULES,
    TABLE_NAME,
    FakeLambdaContext,
    create_registry_table,
    write_rules,
)

OVERHEAD_RATIO_TARGET: Final = 1.5
REQUESTS_TARGET: Final = 1.0


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
    log_handler: Any = pre_provisioning.logger.registered_handler
    with (
        _environment(env, remove_prefix="AWS_"),
        open(os.devnull, "w", encoding="utf-8") as devnull,
        contextlib.redirect_stdout(devnull),
    ):
        previous_stream = log_handler.setStream(devnull)
        runtime.reset()
        try:
            yield
        finally:
            if previous_stream is not None:
                log_handler.setStream(previous_stream)
            runtime.reset()


@contextlib.contextmanager
def hook_on_moto(work_dir: Path) -> Iterator[Any]:
    """The hook against in-process moto holding the registry table; yields the DynamoDB client it uses."""
    with _configured_hook(work_dir, RULES), mock_aws():
        create_registry_table(boto3.client("dynamodb", region_name=REGION), TABLE_NAME)
        yield pre_provisioning._registry()._client


_CANNED_BODY: Final = b"{}"
"""DynamoDB's JSON answer to a ``TransactWriteItems`` (or ``UpdateItem``, ``PutItem``) that succeeded."""


def _canned_response(request: AWSPreparedRequest, **_: Any) -> Any:
    """A ``before-send`` handler: DynamoDB's success, returned instead of sending the signed request (an
    :class:`AWSResponse`; typed ``Any`` because botocore's stubs expect event handlers to return nothing)."""
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["Content-Length"] = str(len(_CANNED_BODY))
    headers["x-amz-crc32"] = str(zlib.crc32(_CANNED_BODY))
    headers["x-amzn-RequestId"] = "canned"
    return AWSResponse(request.url, 200, headers, StubBody(_CANNED_BODY))


@contextlib.contextmanager
def _hook_on_stub(work_dir: Path, rules: dict[str, Any]) -> Iterator[Any]:
    """The hook with ``rules`` and a DynamoDB client whose every request is answered at once by
    :func:`_canned_response`; yields that client. No moto, no socket: the client still validates and
    serialises the parameters, resolves the endpoint, signs the request and parses the response."""
    with _configured_hook(work_dir, rules):
        client = pre_provisioning._registry()._client
        client.meta.events.register("before-send.dynamodb.*", _canned_response)
        try:
            yield client
        finally:
            client.meta.events.unregister("before-send.dynamodb.*", _canned_response)


def _approve(event: dict[str, Any]) -> None:
    """Invoke the hook once and insist on an approval."""
    answer = pre_provisioning.lambda_handler(event, FakeLambdaContext())
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
    answer = pre_provisioning.lambda_handler(event, context)
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
    machine noise and cache effects fall on both; the cases take turns, each round starting with the next
    one, so that a change in the machine's load falls on every case. Each case runs on a hook configured with
    its own stack's rules (a new client, warmed up untimed); devices, events and parameter copies are made
    untimed.
    """
    timings = {case.name: Timings() for case in CASES}
    for block in range(rounds):
        for case in CASES[block % len(CASES) :] + CASES[: block % len(CASES)]:
            with _hook_on_stub(work_dir, case.rules) as client:
                _time_block(client, case, block, timings[case.name], decisions=decisions, warm_up=warm_up)
    figures = []
    for case in CASES:
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
        # The claim breaker open (hook/claim_breaker.py): the same one request, cancelled by its check.
        ClaimBreakers(client, TABLE_NAME).set_state(
            CLAIM_CERTIFICATE_ID, BreakerState.SUSPENDED, "bench", "x"
        )
        sent.clear()
        denials = [
            pre_provisioning.lambda_handler(
                plain_device(600_000 + index).event(certificate=f"denied-{index}"), FakeLambdaContext()
            )
            for index in range(approvals)
        ]
        per_suspended = len(sent) / approvals
        if any(answer.get("allowProvisioning") is not False for answer in denials):
            raise RuntimeError("the hook approved a request through a suspended claim certificate")
        ClaimBreakers(client, TABLE_NAME).set_state(CLAIM_CERTIFICATE_ID, BreakerState.CLOSED, "bench", "x")
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
        Figure(
            "requests per denial, claim breaker open",
            f"{per_suspended:.2f}",
            "(ClaimSuspended: the approval's own transaction, cancelled by its check)",
            f"== {REQUESTS_TARGET}",
            per_suspended == REQUESTS_TARGET,
        ),
    ]
