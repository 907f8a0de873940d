"""Fixtures: fake AWS credentials, a moto registry table, a configured hook and a stack for fleetctl; and
the set-up every moto test shares, paid once per session."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.session
import moto.iot.models
import pytest
from moto import mock_aws

from fleetctl import pacing
from fleetctl.operator_transitions import OperatorRecords
from hook import pre_provisioning, runtime
from hook.contract import REGISTRY_TABLE_ENV, RULES_FILE_ENV
from local.deploy.mock_engine import local_config
from local.deploy.vendor_roots import ensure_vendor_roots
from tests.support import (
    BASE,
    CLAIM_POLICY,
    REGION,
    RULES,
    TABLE_NAME,
    TEMPLATE_ARN,
    FakeLambdaContext,
    Fleet,
    KeysForMoto,
    RegistryStream,
    before_every_call,
    configure_certificate_functions,
    create_registry_table,
    one_moto_request_at_a_time,
    write_rules,
)


@pytest.fixture(autouse=True, scope="session")
def one_botocore_loader() -> Iterator[None]:
    """Every botocore session shares one loader of the service models and endpoints. moto starts each test
    with no default session, and a new session's loader parses the JSON models again (about 0.25 s for the
    endpoints, 0.05 s per client); the models are data, the same for every test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", functools.cache(botocore.session.create_loader))
        yield


@pytest.fixture(autouse=True, scope="session")
def local_vendor_root() -> None:
    """The local stack's zero-touch type pins a root file that only a deployment writes
    (``local/deploy/vendor_roots.py``): tests that read the local config need one to exist."""
    ensure_vendor_roots(local_config())


@pytest.fixture(scope="session")
def _keys_for_moto() -> Iterator[KeysForMoto]:
    keys = KeysForMoto()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(moto.iot.models, "rsa", SimpleNamespace(generate_private_key=keys.generate_private_key))
        yield keys


@pytest.fixture(autouse=True)
def keys_for_moto(_keys_for_moto: KeysForMoto) -> KeysForMoto:
    """moto's IoT certificates get the session's keys (:class:`KeysForMoto`), from the first; a test that
    starts over on a new moto (a property test's example) resets them there."""
    _keys_for_moto.reset()
    return _keys_for_moto


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, so nothing can reach a real AWS account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    """A DynamoDB client on moto with the registry table created from the hook contract."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_registry_table(client)
        yield client


@pytest.fixture
def configure_hook(
    dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook_output: Any
) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Point the hook at the moto table and at a rules file; call it again to change the rules.

    Each call starts a new cold start: the hook's cached rules and client are dropped.
    """

    def configure(rules: dict[str, Any] = RULES) -> None:
        monkeypatch.setenv(REGISTRY_TABLE_ENV, TABLE_NAME)
        monkeypatch.setenv(RULES_FILE_ENV, str(write_rules(tmp_path / "rules.json", rules)))
        runtime.reset()

    configure()
    yield configure
    runtime.reset()


@pytest.fixture
def invoke(configure_hook: Any) -> Callable[[Any], dict[str, Any]]:
    """Invoke the configured hook as Lambda would."""
    return lambda event: pre_provisioning.lambda_handler(event, FakeLambdaContext())


@pytest.fixture
def hook_output(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """Capture the hook's stdout: its JSON log lines and EMF metric documents.

    Powertools' logger keeps the stream it was created with, so it is pointed at whatever ``sys.stdout``
    is when it writes (pytest swaps in the capture only while the test runs).
    """
    [log_handler] = logging.getLogger(pre_provisioning.SERVICE).handlers
    assert isinstance(log_handler, logging.StreamHandler)
    previous = log_handler.stream
    log_handler.stream = _CurrentStdout()
    yield capsys
    log_handler.stream = previous


class _CurrentStdout:
    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def no_outputs_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """fleetctl reads no stack outputs from the environment: each test names them, or not."""
    monkeypatch.delenv("FLEETCTL_OUTPUTS", raising=False)


@pytest.fixture
def registry(dynamodb: Any) -> OperatorRecords:
    """The device registry in the ``dynamodb`` fixture's table."""
    return OperatorRecords(dynamodb, TABLE_NAME)


@pytest.fixture
def stream(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryStream]:
    """The registry table's stream of the ``fleet``, delivered by hand, with the rotation and retirement
    functions configured for its stack (a cold start of both)."""
    configure_certificate_functions(monkeypatch)
    yield RegistryStream(fleet.dynamodb)
    runtime.reset()


@pytest.fixture
def fleet(dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    """The stack on moto, in the registry table of the ``dynamodb`` fixture (which the hook fixtures use).
    fleetctl's worker threads send requests in parallel; moto answers them one at a time (its
    ``TransactWriteItems`` copies every table while a concurrent ``PutItem`` changes one)."""
    iot = boto3.client("iot", region_name=REGION)
    claim = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_policy(policyName=CLAIM_POLICY, policyDocument="{}")
    iot.attach_policy(policyName=CLAIM_POLICY, target=claim["certificateArn"])
    outputs = tmp_path / "outputs.json"
    stack_outputs = {
        "deviceRegistryTableName": TABLE_NAME,
        "provisioningTemplateName": f"{BASE}-fleet",
        "provisioningTemplateArn": TEMPLATE_ARN,
        "claimCertificateId": claim["certificateId"],
        "region": REGION,
        "hookRules": RULES,
    }
    outputs.write_text(json.dumps(stack_outputs), encoding="utf-8")
    with one_moto_request_at_a_time():
        yield Fleet(dynamodb, iot, claim["certificateId"], outputs, tmp_path)


@pytest.fixture
def paced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The AWS IoT operations fleetctl's pacer gave a token to, in order."""
    operations: list[str] = []
    take = pacing.Pacer.take

    def recording(self: pacing.Pacer, operation: str) -> float:
        operations.append(operation)
        return take(self, operation)

    monkeypatch.setattr(pacing.Pacer, "take", recording)
    return operations


@pytest.fixture
def aws_operations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the AWS operations fleetctl calls."""
    operations: list[str] = []
    before_every_call(monkeypatch, lambda model, **_: operations.append(model.name))
    return operations
