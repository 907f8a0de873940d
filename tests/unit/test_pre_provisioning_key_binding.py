"""The hook with key binding: only the registered key provisions a serial of a binding type, every other
certificate is denied with its own reason and metric, malformed input is a denial, never a crash, and a
type without binding loads nothing more than before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetctl.operator_transitions import OperatorRecords
from hook.public_keys import PEM_MAX_LENGTH
from hook.rules import parse_rules, validate_request
from tests.support import (
    RULES,
    TABLE_NAME,
    decision_logs,
    device_certificate,
    device_key,
    hook_event,
    key_fingerprint,
    output_lines,
    valid_parameters,
)
from tests.unit.test_pre_provisioning import DENIED, emf_metrics, registry_count

Invoke = Callable[[Any], dict[str, Any]]
ROOT = Path(__file__).resolve().parents[2]
BINDING_RULES: dict[str, Any] = RULES | {
    "deviceTypes": RULES["deviceTypes"]
    | {"temperature-sensor": RULES["deviceTypes"]["temperature-sensor"] | {"keyBinding": True}}
}
"""temperature-sensor binds keys; humidity-sensor and gateway do not."""
GENUINE = device_key()
ATTACKER = device_key()
KEY_BINDING_REJECTED = ("KeyBindingRejected", {"service": "provisioning-hook"})


@pytest.fixture
def binding(configure_hook: Callable[[dict[str, Any]], None], dynamodb: Any) -> OperatorRecords:
    """The hook with :data:`BINDING_RULES`, and TS-000123 pre-registered with the genuine device's key."""
    configure_hook(BINDING_RULES)
    registry = OperatorRecords(dynamodb, TABLE_NAME)
    request = validate_request(valid_parameters(), parse_rules(BINDING_RULES))
    assert registry.preregister(request, "2026-01-01T00:00:00.000+00:00", key_fingerprint(GENUINE)) is None
    return registry


def event_with(certificate_pem: Any, **parameters: Any) -> dict[str, Any]:
    event = hook_event(valid_parameters(**parameters), certificate=str(certificate_pem)[-40:])
    event["certificatePem"] = certificate_pem
    return event


def everything(dynamodb: Any) -> list[dict[str, Any]]:
    return sorted(dynamodb.scan(TableName=TABLE_NAME, ConsistentRead=True)["Items"], key=json.dumps)


@pytest.mark.usefixtures("binding")
def test_the_genuine_device_is_approved(invoke: Invoke, hook_output: pytest.CaptureFixture[str]) -> None:
    hook_output.readouterr()
    answer = invoke(event_with(device_certificate(GENUINE)))
    assert answer["allowProvisioning"] is True
    assert KEY_BINDING_REJECTED not in emf_metrics(output_lines(hook_output))


@pytest.mark.usefixtures("binding")
def test_a_certificate_for_another_key_is_denied_with_its_reason_and_metric_and_writes_nothing(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str], dynamodb: Any
) -> None:
    before = everything(dynamodb)
    hook_output.readouterr()

    assert invoke(event_with(device_certificate(ATTACKER))) == DENIED

    lines = output_lines(hook_output)
    [log] = decision_logs(lines)
    assert (log["reason"], log["serialNumber"]) == ("PublicKeyMismatch", "TS-000123")
    assert f"sha256:{key_fingerprint(ATTACKER)[:16]}" in log["detail"]  # which key tried, for forensics
    assert emf_metrics(lines) == sorted(
        [
            KEY_BINDING_REJECTED,
            ("ProvisioningRejected", {"Reason": "PublicKeyMismatch", "service": "provisioning-hook"}),
            ("ProvisioningRejected", {"service": "provisioning-hook"}),
        ],
        key=lambda metric: json.dumps(metric, sort_keys=True),
    )
    assert everything(dynamodb) == before


@pytest.mark.usefixtures("binding")
def test_a_clone_of_a_provisioned_bound_serial_is_denied(invoke: Invoke, dynamodb: Any) -> None:
    assert invoke(event_with(device_certificate(GENUINE)))["allowProvisioning"] is True
    before = everything(dynamodb)
    assert invoke(event_with(device_certificate(ATTACKER))) == DENIED
    assert everything(dynamodb) == before


@pytest.mark.parametrize(
    "certificate_pem",
    [
        None,
        42,
        "",
        "garbage",
        "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\n" + "A" * (PEM_MAX_LENGTH * 16) + "\n-----END CERTIFICATE-----\n",
        ["-----BEGIN CERTIFICATE-----"],
    ],
    ids=lambda pem: repr(pem)[:30],
)
@pytest.mark.usefixtures("binding")
def test_a_missing_or_malformed_certificate_is_a_denial_never_a_crash(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str], dynamodb: Any, certificate_pem: Any
) -> None:
    before = everything(dynamodb)
    event = event_with(certificate_pem)
    if certificate_pem is None:
        del event["certificatePem"]
    hook_output.readouterr()

    assert invoke(event) == DENIED

    lines = output_lines(hook_output)
    [log] = decision_logs(lines)
    assert log["reason"] == "CertificateUnreadable"
    assert "expected one PEM certificate" in log["detail"]
    assert KEY_BINDING_REJECTED in emf_metrics(lines)
    assert everything(dynamodb) == before


def test_a_binding_type_denies_serials_no_manifest_registered(
    invoke: Invoke, configure_hook: Callable[[dict[str, Any]], None], dynamodb: Any
) -> None:
    configure_hook(BINDING_RULES)  # requirePreregistration stays false
    assert BINDING_RULES["requirePreregistration"] is False
    assert invoke(event_with(device_certificate(GENUINE))) == DENIED
    assert registry_count(dynamodb) == 0


@pytest.mark.usefixtures("binding")
def test_a_type_without_binding_never_reads_the_certificate(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str]
) -> None:
    """humidity-sensor does not bind keys: a certificate that cannot be parsed does not matter to it."""
    answer = invoke(event_with("not a certificate", SerialNumber="HS-1", DeviceType="humidity-sensor"))
    assert answer["allowProvisioning"] is True


@pytest.mark.usefixtures("binding")
def test_the_certificate_is_never_logged(invoke: Invoke, hook_output: pytest.CaptureFixture[str]) -> None:
    hook_output.readouterr()
    for key in (ATTACKER, GENUINE):
        invoke(event_with(device_certificate(key)))
    invoke(event_with("-----BEGIN CERTIFICATE-----\nSECRET-PEM-BODY\n-----END CERTIFICATE-----"))
    output = hook_output.readouterr()
    assert "BEGIN CERTIFICATE" not in output.out + output.err
    assert "SECRET-PEM-BODY" not in output.out + output.err


_IMPORTS_PROBE = textwrap.dedent(
    """
    import json, sys
    from botocore.stub import Stubber
    from hook import pre_provisioning

    class Context:
        function_name = "provisioning-hook"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:provisioning-hook"
        aws_request_id = "00000000-0000-0000-0000-000000000000"

    loaded = {"after import": "cryptography" in sys.modules}
    events = json.loads(sys.argv[1])
    answers = []
    with Stubber(pre_provisioning._registry()._client) as stubber:
        for name in ("without binding", "with binding"):
            stubber.add_response("transact_write_items", {})
            answers.append(pre_provisioning.lambda_handler(events[name], Context())["allowProvisioning"])
            loaded[name] = "cryptography" in sys.modules or "hook.public_keys" in sys.modules
    print("PROBE " + json.dumps({"loaded": loaded, "answers": answers}))
    """
)


def run_imports_probe(tmp_path: Path, rules: dict[str, Any], events: dict[str, Any]) -> dict[str, Any]:
    """In a fresh interpreter, as a cold start: import the hook, then approve the events ``without binding``
    and ``with binding`` in turn (the registry stubbed); their answers and whether ``cryptography`` or
    ``hook.public_keys`` was loaded after the import and after each."""
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(rules), encoding="utf-8")
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "REGISTRY_TABLE_NAME": TABLE_NAME,
        "HOOK_RULES_FILE": str(rules_file),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    done = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", _IMPORTS_PROBE, json.dumps(events)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [probe] = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    result: dict[str, Any] = json.loads(probe.removeprefix("PROBE "))
    return result


def test_a_type_without_binding_imports_no_parsing_library(tmp_path: Path) -> None:
    """Approving a device of a type that does not bind keys loads neither ``cryptography`` nor
    ``hook.public_keys``; a binding type then does."""
    events = {
        "without binding": hook_event(valid_parameters(SerialNumber="HS-1", DeviceType="humidity-sensor")),
        "with binding": event_with(device_certificate(GENUINE)),
    }
    result = run_imports_probe(tmp_path, BINDING_RULES, events)
    assert result["answers"] == [True, True]
    assert result["loaded"] == {"after import": False, "without binding": False, "with binding": True}
