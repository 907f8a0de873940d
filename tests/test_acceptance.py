"""The acceptance runner's orchestration, with a fake Automation API stack and a fake scenario: the order of
the steps, teardown after failures and interrupts, refusals, the report; its checks before deploying; and
the removal of the scenario's devices, on moto."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pulumi.automation as auto
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

from fleetctl.context import StackContext
from local import acceptance
from local.acceptance import (
    AMAZON_ROOT_CA_URL,
    MARKER_KEY,
    MAX_STACK_NAME,
    AwsInspector,
    Exit,
    Plan,
    Refused,
    Removal,
    Report,
    amazon_root_ca,
    make_plan,
    remove_devices,
    require_thing_events,
)
from local.deployer import local_config
from local.device import Credentials, Identity, ProvisionedDevice, Timings
from local.fleet import Outcome
from local.manifest import ManifestDevice
from local.scenario import CheckResult, ScenarioResult, stack_settings
from tests.support import create_registry_table

PLAN = Plan("acc1", "eu-west-1", own_account_settings=False, run_id="run-1")
OUTPUTS = {"iotEndpoint": auto.OutputValue("abc-ats.iot.eu-west-1.amazonaws.com", False)}
PASSED = ScenarioResult([], [CheckResult("every device gets the outcome", passed=True)])


def _command_error(message: str) -> auto.CommandError:
    return auto.CommandError(auto.CommandResult(stdout="", stderr=message, code=255))


def _raises(error: BaseException) -> Callable[[], None]:
    def raise_it() -> None:
        raise error

    return raise_it


class FakeStack:
    """An Automation API stack that records each call in ``events``."""

    def __init__(self, events: list[str], *, keeps_config: bool = True) -> None:
        self.events = events
        self.keeps_config = keeps_config
        self.config: dict[str, auto.ConfigValue] = {}
        self.workspace = self
        self.on_up: Callable[[], None] = lambda: None
        self.destroy_failures: list[Callable[[], None]] = []

    def set_all_config(self, config: dict[str, auto.ConfigValue]) -> None:
        self.events.append("set config")
        if self.keeps_config:
            self.config.update(config)

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        return dict(self.config)

    def up(self, *, on_output: Callable[[str], Any]) -> Any:
        self.events.append("up")
        on_output("+ 60 created")
        self.on_up()
        return SimpleNamespace(outputs=OUTPUTS)

    def destroy(self, *, on_output: Callable[[str], Any]) -> None:
        self.events.append("destroy")
        if self.destroy_failures:
            self.destroy_failures.pop(0)()

    def remove_stack(self, stack_name: str) -> None:
        self.events.append(f"remove {stack_name}")


class FakeScenario:
    """Records ``scenario`` and ``clean up``; ``run`` returns ``result`` or raises ``error``."""

    def __init__(
        self, events: list[str], result: ScenarioResult = PASSED, error: BaseException | None = None
    ):
        self.events = events
        self.result = result
        self.error = error
        self.outputs: Mapping[str, Any] = {}

    def run(self, outputs: Mapping[str, Any]) -> ScenarioResult:
        self.events.append("scenario")
        self.outputs = outputs
        if self.error is not None:
            raise self.error
        return self.result

    def clean_up(self, outputs: Mapping[str, Any]) -> str:
        self.events.append("clean up")
        return "2 devices decommissioned, 3 certificates deleted"


def _run(stack: FakeStack, scenario: FakeScenario, tmp_path: Path, log: list[str] | None = None) -> Report:
    def create(name: str) -> FakeStack:
        stack.events.append(f"create {name}")
        return stack

    return acceptance.run(PLAN, create, scenario, (log if log is not None else []).append, root=tmp_path)


TEARDOWN = ["clean up", "destroy", "remove acc1"]


def test_the_happy_path_deploys_runs_the_scenario_then_destroys_and_removes_the_stack(tmp_path: Path) -> None:
    events: list[str] = []
    stack, scenario = FakeStack(events), FakeScenario(events)

    report = _run(stack, scenario, tmp_path)

    assert events == ["create acc1", "set config", "up", "scenario", *TEARDOWN]
    assert scenario.outputs == {"iotEndpoint": "abc-ats.iot.eu-west-1.amazonaws.com"}
    assert {key: value.value for key, value in stack.config.items()} == PLAN.config()
    assert not any(value.secret for value in stack.config.values())
    assert (report.destroyed, report.removed, report.exit_code) == (True, True, Exit.PASSED)


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


def test_a_failed_check_still_destroys_and_fails_the_run(tmp_path: Path) -> None:
    events: list[str] = []
    failed = ScenarioResult([], [CheckResult("a revoked device cannot connect", False, "still connects")])

    report = _run(FakeStack(events), FakeScenario(events, result=failed), tmp_path)

    assert events[-3:] == TEARDOWN
    assert report.exit_code == Exit.FAILED


def test_a_scenario_error_still_destroys_and_is_reported(tmp_path: Path) -> None:
    events: list[str] = []

    report = _run(FakeStack(events), FakeScenario(events, error=RuntimeError("broker unreachable")), tmp_path)

    assert events == ["create acc1", "set config", "up", "scenario", *TEARDOWN]
    assert report.error == "RuntimeError: broker unreachable"
    assert report.exit_code == Exit.FAILED


def test_a_failed_up_destroys_what_was_created_without_running_the_scenario(tmp_path: Path) -> None:
    events: list[str] = []
    stack = FakeStack(events)

    stack.on_up = _raises(_command_error("error: update failed"))

    report = _run(stack, FakeScenario(events), tmp_path)

    assert events == ["create acc1", "set config", "up", "destroy", "remove acc1"]
    assert "update failed" in report.error
    assert report.exit_code == Exit.FAILED


def test_keyboard_interrupt_in_the_scenario_still_cleans_up_and_destroys(tmp_path: Path) -> None:
    events: list[str] = []

    report = _run(FakeStack(events), FakeScenario(events, error=KeyboardInterrupt()), tmp_path)

    assert events == ["create acc1", "set config", "up", "scenario", *TEARDOWN]
    assert report.interrupted
    assert report.exit_code == Exit.INTERRUPTED


def test_sigterm_during_up_interrupts_it_and_the_stack_is_destroyed(tmp_path: Path) -> None:
    events: list[str] = []
    stack = FakeStack(events)
    before = signal.getsignal(signal.SIGTERM)

    def terminated() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted by the handler long before

    stack.on_up = terminated
    started = time.monotonic()

    report = _run(stack, FakeScenario(events), tmp_path)

    assert time.monotonic() - started < 4
    assert events == ["create acc1", "set config", "up", "destroy", "remove acc1"]
    assert report.exit_code == Exit.INTERRUPTED
    assert signal.getsignal(signal.SIGTERM) is before


def test_ctrl_c_during_teardown_does_not_stop_it_and_a_cancelled_destroy_is_run_again(tmp_path: Path) -> None:
    events: list[str] = []
    log: list[str] = []
    stack = FakeStack(events)
    before = signal.getsignal(signal.SIGINT)

    def cancelled() -> None:  # the terminal's Ctrl-C reaches `pulumi destroy` too, which cancels
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        raise _command_error("error: destroy canceled")

    stack.destroy_failures = [cancelled]

    report = _run(stack, FakeScenario(events), tmp_path, log)

    assert events[-4:] == ["clean up", "destroy", "destroy", "remove acc1"]
    assert any(line.startswith("SIGINT: still tearing down") for line in log)
    assert report.exit_code == Exit.PASSED
    assert report.destroy_errors[0].startswith("attempt 1 failed: CommandError")
    assert signal.getsignal(signal.SIGINT) is before


def test_the_teardown_waits_for_an_interrupted_up_that_still_holds_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(acceptance, "LOCK_POLL_SECONDS", 0.0)
    events: list[str] = []
    stack = FakeStack(events)

    locked = auto.ConcurrentUpdateError(auto.CommandResult("", "error: the stack is currently locked", 255))
    stack.destroy_failures = [_raises(locked)] * (acceptance.DESTROY_ATTEMPTS + 1)

    report = _run(stack, FakeScenario(events, error=KeyboardInterrupt()), tmp_path)

    assert events[events.index("clean up") :] == [
        "clean up",
        *["destroy"] * (acceptance.DESTROY_ATTEMPTS + 2),  # more than the attempts a failure may take
        "remove acc1",
    ]
    assert report.destroy_errors == []
    assert report.exit_code == Exit.INTERRUPTED


def test_a_stack_that_cannot_be_destroyed_is_kept_in_the_workspace_and_reported(tmp_path: Path) -> None:
    events: list[str] = []
    stack = FakeStack(events)

    failure = _command_error("error: deleting thing type: still deprecated")
    stack.destroy_failures = [_raises(failure)] * acceptance.DESTROY_ATTEMPTS

    report = _run(stack, FakeScenario(events), tmp_path)

    assert events[-4:] == ["clean up", *["destroy"] * acceptance.DESTROY_ATTEMPTS]
    assert not report.removed
    assert report.exit_code == Exit.LEFT_BEHIND
    assert "RESOURCES MAY REMAIN: run `pulumi destroy --stack acc1" in report.render()


def test_refuses_a_stack_that_already_exists_in_the_backend(tmp_path: Path) -> None:
    events: list[str] = []

    def create(name: str) -> FakeStack:
        events.append(f"create {name}")
        raise auto.StackAlreadyExistsError(auto.CommandResult("", "error: stack 'acc1' already exists", 255))

    with pytest.raises(Refused, match="already exists in the Pulumi backend"):
        acceptance.run(PLAN, create, FakeScenario(events), print, root=tmp_path)
    assert events == ["create acc1"]


def test_refuses_a_stack_that_has_a_config_file_in_the_project(tmp_path: Path) -> None:
    events: list[str] = []
    (tmp_path / "Pulumi.acc1.yaml").write_text("config: {}\n", encoding="utf-8")

    with pytest.raises(Refused, match=r"Pulumi\.acc1\.yaml exists"):
        _run(FakeStack(events), FakeScenario(events), tmp_path)
    assert events == []


def test_a_stack_without_this_runs_marker_is_neither_deployed_nor_destroyed(tmp_path: Path) -> None:
    events: list[str] = []

    report = _run(FakeStack(events, keeps_config=False), FakeScenario(events), tmp_path)

    assert events == ["create acc1", "set config"]
    assert report.exit_code == Exit.LEFT_BEHIND
    assert f"lacks this run's {MARKER_KEY}" in report.render()


def _outcomes() -> list[Outcome]:
    approved = Identity("TS-100001", "temperature-sensor", "AcmeIoT", "1.4.2", "plant-a")
    old = Identity("GW-0000CAFE", "gateway", "AcmeIoT", "1.9.9", "plant-b")
    return [
        Outcome(
            ManifestDevice(approved, "APPROVED"),
            1.5,
            provisioned=ProvisionedDevice(
                approved, "iot-provisioning-acc1_TS-100001", "c1", Credentials("", ""), Timings()
            ),
        ),
        Outcome(
            ManifestDevice(old, "FirmwareTooOld"),
            0.8,
            error="RegisterThing rejected: AccessDenied: denied",
            error_code="AccessDenied",
            reason="FirmwareTooOld: 1.9.9 is older than 2.0.0",
        ),
    ]


def test_the_report_shows_each_check_each_device_the_teardown_and_the_verdict() -> None:
    checks = [
        CheckResult("approved devices are active in the registry", passed=True),
        CheckResult("a revoked device cannot connect", False, "thing still connects\nwith certificate c9"),
    ]
    report = Report(
        PLAN,
        scenario=ScenarioResult(_outcomes(), checks),
        clean_up="1 devices decommissioned, 2 certificates deleted",
        destroyed=True,
        removed=True,
        seconds={"deploy": 181.0, "scenario": 42.4, "destroy": 390.2},
    )

    text = report.render()

    assert text.splitlines()[0] == "Acceptance run on AWS: stack acc1, region eu-west-1, run run-1"
    assert "  PASS  approved devices are active in the registry\n" in text
    assert (
        "  FAIL  a revoked device cannot connect\n"
        "          thing still connects\n"
        "          with certificate c9\n"
    ) in text
    assert "iot-provisioning-acc1_TS-100001" in text
    assert "1.9.9 is older than 2.0.0" in text
    assert "  devices: 1 devices decommissioned, 2 certificates deleted\n" in text
    assert "  stack destroyed: yes\n  stack removed from the workspace: yes\n" in text
    assert "Time: deploy 181 s, scenario 42 s, destroy 390 s\n" in text
    assert text.endswith("Result: FAILED (1 of 2 checks failed); the stack was destroyed and removed.")
    assert report.exit_code == Exit.FAILED


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
    require_thing_events(on, own_account_settings=False)
    assert on.calls == 1

    off = FakeIot({"eventConfigurations": {"THING": {"Enabled": False}}})
    with pytest.raises(Refused, match=r"THING registry events are off.*--own-account-settings"):
        require_thing_events(off, own_account_settings=False)

    require_thing_events(off, own_account_settings=True)
    assert off.calls == 1  # not asked: the stack turns them on

    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeEventConfigurations"
    )
    with pytest.raises(Refused, match="cannot read the account's AWS IoT event configurations"):
        require_thing_events(FakeIot(denied), own_account_settings=False)


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


def test_main_refuses_without_the_pulumi_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    assert acceptance.main(["--stack", "acc1", "--region", "eu-west-1"]) == Exit.REFUSED
    assert "refused: the Pulumi CLI is not on PATH" in capsys.readouterr().err


# --- removing the scenario's devices (moto) ------------------------------------------------------------

ENDPOINT = "data-ats.iot.us-east-1.amazonaws.com"  # an address moto serves the shadow API on
BASE = "iot-provisioning-acc1"


def _device(iot: Any, thing: str, policy: str) -> str:
    """A thing with an ACTIVE certificate that has ``policy``; returns the certificate id."""
    iot.create_thing(thingName=thing)
    certificate = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName=policy, target=certificate["certificateArn"])
    iot.attach_thing_principal(thingName=thing, principal=certificate["certificateArn"])
    return str(certificate["certificateId"])


def _exists(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return False
    return True


class ShadowRecordingInspector(AwsInspector):
    """Records the shadows it deletes: moto drops a shadow with its thing, so reading it back proves nothing."""

    def __init__(self) -> None:
        super().__init__("us-east-1", ENDPOINT)
        self.deleted_shadows: list[str] = []

    def client(self, service: str) -> Any:
        client = super().client(service)
        if service != "iot-data":
            return client

        def delete_thing_shadow(thingName: str) -> Any:
            self.deleted_shadows.append(thingName)
            return client.delete_thing_shadow(thingName=thingName)

        return SimpleNamespace(delete_thing_shadow=delete_thing_shadow)


def test_remove_devices_leaves_nothing_the_stack_does_not_own() -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_registry_table(dynamodb, f"{BASE}-device-registry")
        iot = boto3.client("iot", region_name="us-east-1")
        iot_data = boto3.client("iot-data", region_name="us-east-1", endpoint_url=f"https://{ENDPOINT}")
        iot.create_policy(
            policyName=f"{BASE}_temperature-sensor", policyDocument=json.dumps({"Statement": []})
        )
        thing = f"{BASE}_TS-100001"
        approved = _device(iot, thing, f"{BASE}_temperature-sensor")
        iot_data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"t": 300}}}))
        dynamodb.put_item(
            TableName=f"{BASE}-device-registry",
            Item={
                "serialNumber": {"S": "TS-100001"},
                "status": {"S": "ACTIVE"},
                "deviceType": {"S": "temperature-sensor"},
                "thingName": {"S": thing},
                "certificateId": {"S": approved},
            },
        )
        rejected = iot.create_keys_and_certificate(setAsActive=False)["certificateId"]  # a denied device's
        other = _device(iot, "someone-else_TS-1", f"{BASE}_temperature-sensor")
        outputs = {
            "deviceRegistryTableName": f"{BASE}-device-registry",
            "region": "us-east-1",
            "baseName": BASE,
        }

        inspector = ShadowRecordingInspector()

        removal = remove_devices(StackContext(outputs), inspector, [rejected])

        assert removal == Removal(devices=1, certificates=2, problems=[])
        assert inspector.deleted_shadows == [thing]
        assert not _exists(lambda: iot.describe_thing(thingName=thing))
        for certificate_id in (approved, rejected):
            assert not _exists(partial(iot.describe_certificate, certificateId=certificate_id))
        assert _exists(lambda: iot.describe_thing(thingName="someone-else_TS-1"))
        assert iot.describe_certificate(certificateId=other)["certificateDescription"]["status"] == "ACTIVE"
