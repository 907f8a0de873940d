"""The acceptance run's plan and its refusals before anything is created: the throwaway stack's config, the
stack name, THING registry events, Amazon Root CA 1."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

from local.acceptance.run_plan import (
    AMAZON_ROOT_CA_URL,
    MARKER_KEY,
    MAX_STACK_NAME,
    Plan,
    Refused,
    account_event_types,
    amazon_root_ca,
    make_plan,
    refuse_existing_deployment,
)
from local.deploy.mock_engine import local_config
from local.scenario.deployment import stack_settings
from tests.support import create_registry_table

PLAN = Plan("acc1", "eu-west-1", own_account_settings=False, run_id="run-1")
BASE = "iot-provisioning-acc1"


def test_the_throwaway_stack_config() -> None:
    device_types = local_config()["iot-fleet-provisioning:deviceTypes"]
    assert PLAN.config() == {
        "aws:region": "eu-west-1",
        "iot-fleet-provisioning:environment": "acc1",
        "iot-fleet-provisioning:protectData": "false",
        "iot-fleet-provisioning:logRetentionDays": "1",
        "iot-fleet-provisioning:enableMonitoring": "false",
        "iot-fleet-provisioning:accountSettings": "false",
        "iot-fleet-provisioning:enableAuditLogging": "false",
        "iot-fleet-provisioning:deviceTypes": device_types,
        MARKER_KEY: "run-1",
    }
    settings = stack_settings(PLAN.config(), PLAN.stack)  # what the program makes of it
    assert (settings.environment, settings.base_name) == ("acc1", "iot-provisioning-acc1")
    assert (settings.protect_data, settings.log_retention_days) == (False, 1)
    assert (settings.enable_monitoring, settings.enable_audit_logging, settings.account_settings) == (
        False,
        False,
        False,
    )
    assert settings.device_types == stack_settings(local_config(), "local").device_types
    owner = Plan("acc1", "eu-west-1", own_account_settings=True)
    assert owner.config()["iot-fleet-provisioning:accountSettings"] == "true"
    assert owner.run_id != Plan("acc1", "eu-west-1", own_account_settings=True).run_id


class FakeIot:
    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer
        self.calls = 0

    def describe_event_configurations(self) -> dict[str, Any]:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_thing_events_must_be_on_unless_the_stack_owns_the_account_settings() -> None:
    on = FakeIot({"eventConfigurations": {"THING": {"Enabled": True}, "JOB": {"Enabled": False}}})
    assert account_event_types(on, own_account_settings=False) == ("THING",)
    assert on.calls == 1

    off = FakeIot({"eventConfigurations": {"THING": {"Enabled": False}, "JOB": {"Enabled": True}}})
    with pytest.raises(Refused, match=r"THING registry events are off.*--own-account-settings"):
        account_event_types(off, own_account_settings=False)

    # An owner sets every switch, and AWS keeps them after destroy: it keeps on what other workloads use.
    assert account_event_types(off, own_account_settings=True) == ("JOB", "THING")
    owner = dataclasses.replace(
        Plan("acc1", "eu-west-1", own_account_settings=True), account_event_types=("JOB", "THING")
    )
    assert owner.config()["iot-fleet-provisioning:accountEventTypes"] == '["JOB", "THING"]'
    assert stack_settings(owner.config(), "acc1").account_event_types == ("JOB", "THING")

    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeEventConfigurations"
    )
    with pytest.raises(Refused, match="cannot read the account's AWS IoT event configurations"):
        account_event_types(FakeIot(denied), own_account_settings=False)


def _self_signed(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_amazon_root_ca_comes_from_the_file_else_from_amazontrust(tmp_path: Path) -> None:
    pem = _self_signed("Amazon Root CA 1")
    ca_file = tmp_path / "AmazonRootCA1.pem"
    ca_file.write_bytes(pem)
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return pem

    assert amazon_root_ca(ca_file, fetch) == pem.decode()
    assert fetched == []
    assert amazon_root_ca(None, fetch) == pem.decode()
    assert fetched == [AMAZON_ROOT_CA_URL]

    ca_file.write_bytes(_self_signed("Some Other CA"))
    with pytest.raises(Refused, match="is not Amazon Root CA 1"):
        amazon_root_ca(ca_file, fetch)
    ca_file.write_text("not a certificate", encoding="utf-8")
    with pytest.raises(Refused, match="Amazon Root CA 1 from"):
        amazon_root_ca(ca_file, fetch)


def test_the_stack_name_must_be_usable_as_the_environment() -> None:
    assert make_plan("a" * MAX_STACK_NAME, "eu-west-1", False).stack == "a" * MAX_STACK_NAME
    for name in ("a" * (MAX_STACK_NAME + 1), "Acc1", "acc_1", "-acc", ""):
        with pytest.raises(Refused, match="it is also the stack's environment"):
            make_plan(name, "eu-west-1", False)
    with pytest.raises(Refused, match="no AWS region"):
        make_plan("acc1", "", False)


def _answer(iot: Any, operation: str, answer: Callable[[str], tuple[int, dict[str, Any]]]) -> None:
    """Answer ``operation`` with ``answer(<the request's URL path>)`` = (HTTP status, parsed body), through
    botocore's ``before-call`` hook (the one its Stubber uses); every other call still goes to moto."""

    def respond(params: dict[str, Any], **_: Any) -> Any:
        status, body = answer(params["url_path"])
        return SimpleNamespace(status_code=status), body

    iot.meta.events.register(f"before-call.iot.{operation}", respond)


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


def _provisioning_templates(iot: Any, existing: set[str]) -> None:
    """DescribeProvisioningTemplate, which moto lacks, answered from ``existing`` as AWS IoT does."""

    def describe(path: str) -> tuple[int, dict[str, Any]]:
        name = path.rsplit("/", 1)[-1]
        if name in existing:
            return 200, {"templateName": name, "enabled": True}
        return _error(404, "ResourceNotFoundException", f"{name} not found")

    _answer(iot, "DescribeProvisioningTemplate", describe)


@pytest.mark.parametrize(
    ("existing", "named"),
    [
        ("table", f"DynamoDB table {BASE}-device-registry"),
        ("template", f"provisioning template {BASE}-fleet"),
        ("group", f"thing group {BASE}-fleet"),
    ],
)
def test_refuses_a_deployment_of_the_same_name_already_in_the_account(existing: str, named: str) -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        iot = boto3.client("iot", region_name="eu-west-1")
        _provisioning_templates(iot, {f"{BASE}-fleet"} if existing == "template" else set())
        if existing == "table":
            create_registry_table(dynamodb, f"{BASE}-device-registry")
        if existing == "group":
            iot.create_thing_group(thingGroupName=f"{BASE}-fleet")
        iot.create_thing_group(thingGroupName="iot-provisioning-acc2-fleet")  # another stack's: no matter

        with pytest.raises(Refused, match=f"^{named} already exist\\(s\\) in eu-west-1: another deployment"):
            refuse_existing_deployment(PLAN, dynamodb, iot)


def test_a_stack_name_unused_in_the_account_is_not_refused() -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        iot = boto3.client("iot", region_name="eu-west-1")
        _provisioning_templates(iot, {"iot-provisioning-acc2-fleet"})
        create_registry_table(dynamodb, "iot-provisioning-acc2-device-registry")
        iot.create_thing_group(thingGroupName="iot-provisioning-acc2-fleet")

        refuse_existing_deployment(PLAN, dynamodb, iot)  # acc1's names are free


def test_a_deployment_that_cannot_be_looked_for_refuses_the_run() -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        iot = boto3.client("iot", region_name="eu-west-1")

        _answer(iot, "DescribeThingGroup", lambda path: _error(403, "AccessDeniedException", "not allowed"))
        _provisioning_templates(iot, set())

        with pytest.raises(
            Refused, match=f"cannot tell whether thing group {BASE}-fleet exists: .*not allowed"
        ):
            refuse_existing_deployment(PLAN, dynamodb, iot)
