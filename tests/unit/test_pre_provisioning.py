"""The Lambda handler: exact answers, fail-closed behaviour, logs and EMF metrics."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from hook import pre_provisioning, runtime
from hook.contract import METRICS_NAMESPACE, REASON_DIMENSION, RULES_FILE_ENV, Metric
from tests.support import (
    CLAIM_CERTIFICATE_ID,
    RULES,
    TABLE_NAME,
    FakeLambdaContext,
    certificate_id,
    decision_logs,
    hook_event,
    output_lines,
    registry_contents,
    valid_parameters,
)

Invoke = Callable[[Any], dict[str, Any]]
DENIED = {"allowProvisioning": False, "parameterOverrides": {}}
APPROVED_METRICS = [
    ("ProvisioningApproved", {"ClaimCertificateId": CLAIM_CERTIFICATE_ID, "service": "provisioning-hook"}),
    ("ProvisioningApproved", {"service": "provisioning-hook"}),
]
"""An approval counts once in total and once for the claim certificate it came through."""


def emf_metrics(lines: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    """(metric name, dimensions) of every EMF document among the output lines, in a stable order."""
    found: list[tuple[str, dict[str, str]]] = []
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == METRICS_NAMESPACE
            dimensions = {name: line[name] for names in directive["Dimensions"] for name in names}
            found.extend(
                (metric["Name"], dimensions)
                for metric in directive["Metrics"]
                if line[metric["Name"]] == [1.0]
            )
    return sorted(found, key=lambda metric: json.dumps(metric, sort_keys=True))


def registry_count(dynamodb: Any) -> int:
    return int(dynamodb.scan(TableName=TABLE_NAME)["Count"])


def test_approval_answers_exactly_with_normalised_overrides(invoke: Invoke) -> None:
    answer = invoke(hook_event(valid_parameters(SerialNumber=" TS-000123", FirmwareVersion="v1.4.2")))
    assert answer == {
        "allowProvisioning": True,
        "parameterOverrides": {
            "SerialNumber": "TS-000123",
            "DeviceType": "temperature-sensor",
            "Manufacturer": "AcmeIoT",
            "FirmwareVersion": "1.4.2",
            "Location": "Factory-Floor-A",
        },
    }
    assert json.loads(json.dumps(answer)) == answer


def test_the_documented_event_of_a_genuine_request_is_approved(invoke: Invoke, dynamodb: Any) -> None:
    # The input of the developer guide's "Pre-provisioning hooks": its parameters are the RegisterThing
    # request's own, AWS IoT adds none (no AWS::IoT::* key), so a device sending the five is approved.
    event = {
        "claimCertificateId": CLAIM_CERTIFICATE_ID,
        "certificateId": certificate_id("device-1"),
        "certificatePem": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
        "templateArn": "arn:aws:iot:us-east-1:1234567890:provisioningtemplate/MyTemplate",
        "clientId": "221a6d10-9c7f-42f1-9153-e52e6fc869c1",
        "parameters": valid_parameters(),
    }
    assert invoke(event)["allowProvisioning"] is True
    assert registry_count(dynamodb) == 2  # the serial's item and its certificate's binding


@pytest.mark.parametrize(
    "undeclared",
    [{"AWS::IoT::Certificate::Id": "f" * 64}, {"ThingName": "someone-else"}, {"serialNumber": "TS-9"}],
    ids=repr,
)
def test_a_parameter_the_template_does_not_declare_is_denied_and_counted(
    invoke: Invoke,
    hook_output: pytest.CaptureFixture[str],
    dynamodb: Any,
    undeclared: dict[str, str],
) -> None:
    hook_output.readouterr()
    assert invoke(hook_event(valid_parameters(**undeclared))) == DENIED
    lines = output_lines(hook_output)
    [log] = decision_logs(lines)
    assert log["reason"] == "UnknownParameter"
    assert ascii(next(iter(undeclared))) in log["detail"]
    assert ("ProvisioningRejected", {"Reason": "UnknownParameter", "service": "provisioning-hook"}) in (
        emf_metrics(lines)
    )
    assert registry_count(dynamodb) == 0


def test_approval_logs_the_decision_and_emits_the_approved_metric(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str]
) -> None:
    hook_output.readouterr()
    invoke(hook_event())
    lines = output_lines(hook_output)
    [log] = decision_logs(lines)
    assert (log["decision"], log["serialNumber"], log["deviceType"], log["level"]) == (
        "APPROVED",
        "TS-000123",
        "temperature-sensor",
        "INFO",
    )
    assert emf_metrics(lines) == APPROVED_METRICS


def test_approval_is_counted_per_claim_certificate_of_the_request(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str]
) -> None:
    other_claim = certificate_id("claim-generation-2")
    hook_output.readouterr()
    invoke(hook_event() | {"claimCertificateId": other_claim})
    assert emf_metrics(output_lines(hook_output)) == [
        ("ProvisioningApproved", {"ClaimCertificateId": other_claim, "service": "provisioning-hook"}),
        ("ProvisioningApproved", {"service": "provisioning-hook"}),
    ]


def test_denial_logs_the_reason_and_counts_the_rejection_in_total_and_by_reason(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str]
) -> None:
    hook_output.readouterr()
    assert invoke(hook_event(valid_parameters(FirmwareVersion="1.0.0"))) == DENIED
    lines = output_lines(hook_output)
    [log] = decision_logs(lines)
    assert (log["decision"], log["reason"], log["serialNumber"]) == ("DENIED", "FirmwareTooOld", "TS-000123")
    assert "older than the minimum 1.2.0" in log["detail"]
    assert emf_metrics(lines) == [
        ("ProvisioningRejected", {"Reason": "FirmwareTooOld", "service": "provisioning-hook"}),
        ("ProvisioningRejected", {"service": "provisioning-hook"}),
    ]


def test_reason_dimension_does_not_leak_into_the_next_invocation(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str]
) -> None:
    invoke(hook_event(valid_parameters(DeviceType="toaster")))
    hook_output.readouterr()
    invoke(hook_event())
    assert emf_metrics(output_lines(hook_output)) == APPROVED_METRICS


def test_an_approval_prints_the_two_emf_documents_the_alarms_and_dashboard_read(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str]
) -> None:
    hook_output.readouterr()
    invoke(hook_event())
    documents = [line for line in output_lines(hook_output) if "_aws" in line]
    assert sorted(
        (
            json.dumps(document["_aws"]["CloudWatchMetrics"]),
            {k: v for k, v in document.items() if k != "_aws"},
        )
        for document in documents
    ) == sorted(
        (
            json.dumps(
                [
                    {
                        "Namespace": METRICS_NAMESPACE,
                        "Dimensions": [dimensions],
                        "Metrics": [{"Name": "ProvisioningApproved", "Unit": "Count"}],
                    }
                ]
            ),
            {"service": "provisioning-hook", "ProvisioningApproved": [1.0]} | extra,
        )
        for dimensions, extra in (
            (["service"], {}),
            (["service", "ClaimCertificateId"], {"ClaimCertificateId": CLAIM_CERTIFICATE_ID}),
        )
    )


def test_each_approval_is_counted_for_its_own_claim_certificate_only(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str]
) -> None:
    other_claim = certificate_id("claim-generation-2")
    invoke(hook_event())
    hook_output.readouterr()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        invoke(
            hook_event(valid_parameters(SerialNumber="TS-000456"), certificate="device-2")
            | {"claimCertificateId": other_claim}
        )
    assert emf_metrics(output_lines(hook_output)) == [
        ("ProvisioningApproved", {"ClaimCertificateId": other_claim, "service": "provisioning-hook"}),
        ("ProvisioningApproved", {"service": "provisioning-hook"}),
    ]
    assert not [warning for warning in warned if "already been added" in str(warning.message)]


def test_a_count_that_failed_to_print_leaves_no_dimension_to_the_next(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unprintable(*_: Any, **__: Any) -> None:
        raise OSError("stdout is gone")

    with monkeypatch.context() as broken:
        broken.setattr(pre_provisioning._counts_by_dimension, "flush_metrics", unprintable)
        with pytest.raises(OSError, match="stdout is gone"):
            pre_provisioning._count_by(Metric.PROVISIONING_REJECTED, REASON_DIMENSION, "InternalError")
    hook_output.readouterr()
    invoke(hook_event())
    assert emf_metrics(output_lines(hook_output)) == APPROVED_METRICS


@pytest.mark.parametrize("log_events", ["false", "true"])
def test_certificate_pem_is_never_logged(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, log_events: str
) -> None:
    # POWERTOOLS_LOGGER_LOG_EVENT=true is a common debugging switch; it must not leak the PEM either.
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", log_events)
    hook_output.readouterr()
    event = hook_event()
    event["certificatePem"] = "-----BEGIN CERTIFICATE-----\nSECRET-PEM-BODY\n-----END CERTIFICATE-----"
    invoke(event)
    invoke(hook_event(valid_parameters(DeviceType="toaster")) | {"certificatePem": event["certificatePem"]})
    output = hook_output.readouterr()
    assert "SECRET-PEM-BODY" not in output.out + output.err


def test_duplicate_serial_with_new_certificate_is_denied(invoke: Invoke, dynamodb: Any) -> None:
    assert invoke(hook_event(certificate="original"))["allowProvisioning"] is True
    assert invoke(hook_event(certificate="clone")) == DENIED
    item = dynamodb.get_item(TableName=TABLE_NAME, Key={"serialNumber": {"S": "TS-000123"}})["Item"]
    assert item["certificateId"]["S"] == certificate_id("original")


def test_register_thing_retry_with_the_same_certificate_is_approved_again(
    invoke: Invoke, dynamodb: Any
) -> None:
    first = invoke(hook_event())
    assert invoke(hook_event()) == first
    assert first["allowProvisioning"] is True
    devices, bindings = registry_contents(dynamodb)
    assert list(devices) == ["TS-000123"]
    assert bindings == {certificate_id("device-1"): "TS-000123"}


def test_a_certificate_registering_a_second_serial_is_denied_as_in_use(
    invoke: Invoke, dynamodb: Any, hook_output: pytest.CaptureFixture[str]
) -> None:
    assert invoke(hook_event())["allowProvisioning"] is True
    before = registry_contents(dynamodb)
    hook_output.readouterr()
    assert invoke(hook_event(valid_parameters(SerialNumber="TS-000456"))) == DENIED
    lines = output_lines(hook_output)
    assert [log["reason"] for log in decision_logs(lines)] == ["CertificateInUse"]
    assert ("ProvisioningRejected", {"Reason": "CertificateInUse", "service": "provisioning-hook"}) in (
        emf_metrics(lines)
    )
    assert registry_contents(dynamodb) == before


def test_preregistration_requirement_comes_from_the_rules(
    invoke: Invoke, configure_hook: Callable[[dict[str, Any]], None], dynamodb: Any
) -> None:
    configure_hook(RULES | {"requirePreregistration": True})
    assert invoke(hook_event()) == DENIED
    assert registry_count(dynamodb) == 0


@pytest.mark.parametrize(
    "event",
    [
        None,
        "a string",
        ["list"],
        42,
        {},
        {"parameters": None},
        hook_event() | {"parameters": "SerialNumber=TS-000123"},
        hook_event() | {"certificateId": None},
        hook_event() | {"certificateId": "not-hex"},
        hook_event() | {"certificateId": "A" * 64},
        hook_event() | {"claimCertificateId": 7},
        hook_event() | {"templateArn": "provisioningtemplate/x"},
        hook_event() | {"templateArn": "arn:aws:iot::1234567890:provisioningtemplate/no-region"},
        {name: value for name, value in hook_event().items() if name != "templateArn"},
        hook_event() | {"templateArn": "arn:aws:lambda:us-east-1:1234567890:function:not-a-template"},
        hook_event() | {"clientId": ""},
        hook_event() | {"clientId": "c" * 129},
    ],
    ids=repr,
)
def test_malformed_events_are_denied_and_write_nothing(invoke: Invoke, dynamodb: Any, event: Any) -> None:
    assert invoke(event) == DENIED
    assert registry_count(dynamodb) == 0


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        (valid_parameters(SerialNumber=None), "MissingParameter"),
        (valid_parameters(SerialNumber={"$ne": ""}), "InvalidParameter"),
        (valid_parameters(Location="x" * 4_000_000), "InvalidParameter"),
        (valid_parameters(SerialNumber="TS-" + "0" * 3_000_000), "InvalidParameter"),
        (valid_parameters(SerialNumber="\u0422S-000123"), "InvalidParameter"),  # Cyrillic capital Te
        (valid_parameters(DeviceType="temperature\u2010sensor"), "UnknownDeviceType"),  # Unicode hyphen
        (valid_parameters(SerialNumber="TS-000123\x00"), "InvalidParameter"),
        (valid_parameters(SerialNumber="TS-" + "1" * 61 + "!"), "InvalidParameter"),
    ],
    ids=lambda value: repr(value)[:60],
)
def test_hostile_parameters_are_denied_with_a_reason(
    invoke: Invoke, hook_output: pytest.CaptureFixture[str], dynamodb: Any, parameters: Any, reason: str
) -> None:
    hook_output.readouterr()
    assert invoke(hook_event(parameters)) == DENIED
    [log] = decision_logs(output_lines(hook_output))
    assert log["reason"] == reason
    # Logged claims are cut to 64 characters, then escaped (at most 10 characters each, as in \U0001f600).
    assert len(log.get("serialNumber") or "") <= 64 * 10
    assert registry_count(dynamodb) == 0


def test_serial_built_to_slow_a_regex_is_refused_before_matching(
    invoke: Invoke, configure_hook: Callable[[dict[str, Any]], None], dynamodb: Any
) -> None:
    # Patterns that backtrack catastrophically are refused when the rules are loaded, so every request
    # is denied rather than one serial holding the function until AWS IoT gives up. Unguarded, the
    # second pattern takes seconds to reject a serial of 64 "A"s.
    for pattern in ("(TS-?[0-9]+)+", "[A-Z0-9]*-?" * 7 + "-[0-9]{4}"):
        configure_hook({"deviceTypes": {"temperature-sensor": {"serialPattern": pattern}}})
        assert invoke(hook_event(valid_parameters(SerialNumber="A" * 64))) == DENIED
    assert invoke(hook_event()) == DENIED
    assert registry_count(dynamodb) == 0


@pytest.mark.parametrize(
    "content", [None, "{broken", json.dumps({"deviceTypes": {}}), json.dumps(["gateway"])]
)
def test_missing_or_invalid_rules_deny_everything_with_a_clear_log_line(
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    hook_output: pytest.CaptureFixture[str],
    content: str | None,
) -> None:
    rules_file = tmp_path / "unusable-rules.json"
    if content is not None:
        rules_file.write_text(content, encoding="utf-8")
    monkeypatch.setenv(RULES_FILE_ENV, str(rules_file))
    runtime.reset()
    hook_output.readouterr()
    assert invoke(hook_event()) == DENIED
    assert invoke(hook_event()) == DENIED
    lines = output_lines(hook_output)
    rules_errors = [line for line in lines if line.get("message", "").startswith("rules unavailable")]
    assert len(rules_errors) == 1, "the rules file is read once per cold start"
    assert [log["reason"] for log in decision_logs(lines)] == ["RulesUnavailable", "RulesUnavailable"]


def test_missing_table_name_denies(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_TABLE_NAME")
    assert invoke(hook_event()) == DENIED


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "AccessDeniedException"])
def test_registry_failure_denies(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, hook_output: pytest.CaptureFixture[str], code: str
) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    monkeypatch.setattr(pre_provisioning._registry(), "_client", client)
    hook_output.readouterr()
    with Stubber(client) as stubber:
        stubber.add_client_error("transact_write_items", service_error_code=code)
        assert invoke(hook_event()) == DENIED
    [log] = decision_logs(output_lines(hook_output))
    assert (log["reason"], log["detail"]) == ("RegistryUnavailable", f"registry request failed: {code}")


def test_unexpected_exception_denies_as_internal_error(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, hook_output: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(pre_provisioning._registry(), "approve", broken)
    hook_output.readouterr()
    assert invoke(hook_event()) == DENIED
    [log] = decision_logs(output_lines(hook_output))
    assert log["reason"] == "InternalError"


def test_failure_outside_the_decision_still_answers_and_counts_the_rejection(
    configure_hook: Any, hook_output: pytest.CaptureFixture[str], dynamodb: Any
) -> None:
    # No Lambda context: Powertools' context injection fails before the decision is made.
    hook_output.readouterr()
    with pytest.warns(UserWarning, match="No application metrics"):
        assert pre_provisioning.lambda_handler(hook_event(), None) == DENIED
    lines = output_lines(hook_output)
    assert [log["reason"] for log in decision_logs(lines)] == ["InternalError"]
    assert emf_metrics(lines) == [
        ("ProvisioningRejected", {"Reason": "InternalError", "service": "provisioning-hook"}),
        ("ProvisioningRejected", {"service": "provisioning-hook"}),
    ]
    assert registry_count(dynamodb) == 0


def test_registry_client_is_built_once_with_a_budget_inside_five_seconds(configure_hook: Any) -> None:
    registry = pre_provisioning._registry()
    assert pre_provisioning._registry() is registry
    config: Any = registry._client.meta.config
    attempts = config.retries["total_max_attempts"]
    assert attempts == 2
    worst_case = (
        attempts * (config.connect_timeout + config.read_timeout) + 1.0
    )  # one back-off of at most 1 s
    assert worst_case < 5


def test_handler_works_with_a_lambda_context(configure_hook: Any) -> None:
    answer = pre_provisioning.lambda_handler(hook_event(), FakeLambdaContext())
    assert answer["allowProvisioning"] is True
