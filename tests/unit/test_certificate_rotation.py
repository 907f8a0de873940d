"""The rotation function against moto, driven by the topic rule's events: the device's CSR signed and the
new certificate sent back, made current only by a success reported with it, and every doubtful step
refused with an answer on ``rejected`` and a counted reason. The registry stream's records then go to the
retirement function, as in a deployment."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.iotdata.models import iotdata_backends

from fleetctl.operator_transitions import OperatorRecords
from hook import certificate_retirement, certificate_rotation, runtime
from hook.contract import Attr, Service, thing_name
from hook.registry_items import timestamp
from hook.registry_transitions import DeviceRecords
from hook.rotation_contract import RotationStep, rotation_job_id_prefix
from hook.rules import parse_rules, validate_request
from tests.support import (
    BASE,
    REGION,
    RULES,
    DeviceKey,
    FakeLambdaContext,
    Fleet,
    RegistryStream,
    before_every_call,
    certificate_id,
    certificate_signing_request,
    device_certificate,
    device_key,
    fail_once,
    key_fingerprint,
    metric_counts,
    output_lines,
    valid_parameters,
)

SERIAL = "TS-000001"
THING = thing_name(BASE, SERIAL)
POLICY = f"{BASE}_temperature-sensor"
SERVICE = Service.CERTIFICATE_ROTATION.value
JOB_1 = f"{rotation_job_id_prefix(BASE)}1"
JOB_2 = f"{rotation_job_id_prefix(BASE)}2"
CSR_STEP_REQUESTS = [
    "GetItem",
    "DescribeJobExecution",
    "UpdateItem",
    "CreateCertificateFromCsr",
    "TransactWriteItems",
    "AttachPolicy",
    "AttachThingPrincipal",
    "UpdateCertificate",
    "GetItem",
    "Publish",
]
"""The AWS requests of a CSR step that issues a certificate, in order: the job is reserved (UpdateItem)
before AWS IoT is asked for a certificate."""

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics")  # ignored steps count nothing


@pytest.fixture
def original(fleet: Fleet, stream: RegistryStream) -> str:
    """An ACTIVE device's certificate; its provisioning's stream records are delivered already."""
    certificate = fleet.provision(SERIAL)
    retire(stream)
    open_rotation_jobs(fleet, JOB_1, JOB_2)
    return certificate


def open_rotation_jobs(fleet: Fleet, *job_ids: str) -> None:
    """Rotation jobs for the device, as ``fleetctl rotate`` creates them: each execution QUEUED."""
    thing_arn = fleet.iot.describe_thing(thingName=THING)["thingArn"]
    for job_id in job_ids:
        fleet.iot.create_job(
            jobId=job_id,
            targets=[thing_arn],
            document=json.dumps({"operation": "rotate-certificate", "keyAlgorithm": "EC-P256"}),
        )


def rule_event(step: str, caller: str, thing: str = THING, **payload: Any) -> dict[str, Any]:
    """What the topic rule sends: the device's payload, ``principal()``, ``topic(2)`` and ``topic(3)``."""
    return {**payload, "callerCertificateId": caller, "thingName": thing, "step": step}


def csr_event(caller: str, job_id: str = JOB_1, csr: str | None = None) -> dict[str, Any]:
    return rule_event(
        "csr", caller, csr=certificate_signing_request(THING) if csr is None else csr, jobId=job_id
    )


def result_event(caller: str, status: str, job_id: str = JOB_1, **extra: Any) -> dict[str, Any]:
    return rule_event("result", caller, jobId=job_id, status=status, **extra)


def invoke(event: Any) -> dict[str, str]:
    answer: dict[str, str] = certificate_rotation.lambda_handler(event, FakeLambdaContext())
    return answer


def retire(stream: RegistryStream) -> None:
    result = certificate_retirement.lambda_handler(stream.event(), FakeLambdaContext())
    assert result == {"batchItemFailures": []}


def published(thing: str = THING) -> list[tuple[str, dict[str, Any]]]:
    """The (step, document) of every message the function published to the thing's rotation topics."""
    prefix = f"rotation/{thing}/"
    messages = iotdata_backends[DEFAULT_ACCOUNT_ID][REGION].published_payloads
    return [
        (topic[len(prefix) :], json.loads(payload)) for topic, payload in messages if topic.startswith(prefix)
    ]


def item(registry: OperatorRecords) -> dict[str, str]:
    found = registry.get(SERIAL)
    assert found is not None
    return found


def attachments(fleet: Fleet, certificate: str) -> tuple[str, list[str], list[str]]:
    """The certificate's status, its things and its policies."""
    arn = fleet.certificate(certificate)["certificateArn"]
    things = fleet.iot.list_principal_things(principal=arn)["things"]
    return fleet.certificate(certificate)["status"], things, fleet.policies(certificate)


def certificates(fleet: Fleet) -> set[str]:
    return {each["certificateId"] for each in fleet.iot.list_certificates()["certificates"]}


def failures(capsys: Any) -> list[tuple[dict[str, str], float]]:
    return metric_counts(output_lines(capsys), "CertificateRotationFailed")


def failed_once(capsys: Any, reason: str) -> None:
    """A job's attempt failed: ``CertificateRotationFailed`` counted once plainly and once under its
    ``Reason``."""
    assert sorted(failures(capsys), key=lambda counted: len(counted[0])) == [
        ({"service": SERVICE}, 1.0),
        ({"service": SERVICE, "Reason": reason}, 1.0),
    ]


def refused_once(capsys: Any, reason: str) -> None:
    """A step that was no job's attempt refused: ``RotationStepRefused`` counted under its ``Reason``, no
    ``CertificateRotationFailed`` (a device can repeat such a step at will)."""
    lines = output_lines(capsys)
    assert metric_counts(lines, "RotationStepRefused") == [({"service": SERVICE, "Reason": reason}, 1.0)]
    assert metric_counts(lines, "CertificateRotationFailed") == []


IN_USE: tuple[str, list[str], list[str]] = ("ACTIVE", [THING], [POLICY])
RETIRED: tuple[str, list[str], list[str]] = ("REVOKED", [], [])


def test_a_rotation_from_csr_to_retirement(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str, capsys: Any
) -> None:
    assert invoke(csr_event(original)) == {"outcome": "certificate-issued"}

    [(step, answer)] = published()
    assert step == RotationStep.CERTIFICATE
    new = answer["certificateId"]
    assert answer["certificatePem"] == fleet.certificate(new)["certificatePem"]
    assert attachments(fleet, new) == IN_USE
    pending = item(registry)
    assert (pending[Attr.CERTIFICATE_ID], pending[Attr.PENDING_CERTIFICATE_ID]) == (original, new)
    assert pending[Attr.ROTATION_JOB_ID] == JOB_1
    retire(stream)
    assert attachments(fleet, original) == IN_USE  # both work until the device proves the new one

    assert invoke(result_event(new, "SUCCEEDED")) == {"outcome": "rotated"}

    rotated = item(registry)
    assert rotated[Attr.CERTIFICATE_ID] == new
    assert rotated[Attr.REPLACED_CERTIFICATE_IDS] == original
    assert Attr.PENDING_CERTIFICATE_ID not in rotated
    assert Attr.CERTIFICATE_NOT_AFTER not in rotated  # AWS IoT's: 2049-12-31, dated by rotatedAt instead
    retire(stream)
    assert attachments(fleet, original) == RETIRED
    assert attachments(fleet, new) == IN_USE
    assert metric_counts(output_lines(capsys), "CertificateRotated") == [({"service": SERVICE}, 1.0)]
    assert failures(capsys) == []
    assert len(published()) == 1  # the success is not answered


def test_a_csr_from_a_certificate_that_is_not_current_is_refused(
    fleet: Fleet, registry: OperatorRecords, original: str, capsys: Any
) -> None:
    other_device = fleet.provision("TS-000002")
    before, known = item(registry), certificates(fleet)
    capsys.readouterr()

    assert invoke(csr_event(other_device)) == {"outcome": "rejected", "reason": "NotCurrentCertificate"}

    [(step, answer)] = published()
    assert (step, answer["reason"]) == (RotationStep.REJECTED, "NotCurrentCertificate")
    assert certificates(fleet) == known  # nothing issued
    assert item(registry) == before
    refused_once(capsys, "NotCurrentCertificate")


def test_success_reported_with_the_old_certificate_completes_nothing(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str, capsys: Any
) -> None:
    invoke(csr_event(original))
    pending = item(registry)
    capsys.readouterr()

    assert invoke(result_event(original, "SUCCEEDED")) == {
        "outcome": "rejected",
        "reason": "NotCurrentCertificate",
    }

    assert item(registry) == pending
    assert published()[-1] == (
        RotationStep.REJECTED,
        {
            "reason": "NotCurrentCertificate",
            "message": "success must be reported with the new certificate of the rotation in progress",
        },
    )
    retire(stream)
    assert attachments(fleet, original) == IN_USE
    refused_once(capsys, "NotCurrentCertificate")


@pytest.mark.parametrize(
    ("csr", "reason"),
    [
        ("not a certificate request", "InvalidCsr"),
        ("-----BEGIN CERTIFICATE REQUEST-----\n%%%%\n-----END CERTIFICATE REQUEST-----\n", "InvalidCsr"),
        (certificate_signing_request().replace("REQUEST", "KEY"), "InvalidCsr"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * 4096 + "\n-----END CERTIFICATE REQUEST-----\n",
            "MalformedRequest",
        ),
    ],
)
def test_a_bad_csr_is_refused_before_anything_is_issued(
    fleet: Fleet, registry: OperatorRecords, original: str, capsys: Any, csr: str, reason: str
) -> None:
    before, known = item(registry), certificates(fleet)
    capsys.readouterr()

    assert invoke(csr_event(original, csr=csr)) == {"outcome": "rejected", "reason": reason}

    assert [step for step, _ in published()] == [RotationStep.REJECTED]
    assert certificates(fleet) == known
    assert item(registry) == before
    refused_once(capsys, reason)


def test_a_csr_aws_iot_refuses_is_an_invalid_csr(
    fleet: Fleet, registry: OperatorRecords, original: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """AWS IoT checks the key (RSA of 2048 bits or more, or a NIST curve) and the signature; moto does not,
    so its refusal is injected as AWS answers it."""
    fail_once(monkeypatch, "CreateCertificateFromCsr", "InvalidRequestException")
    runtime.reset()
    before = item(registry)
    capsys.readouterr()

    assert invoke(csr_event(original)) == {"outcome": "rejected", "reason": "InvalidCsr"}
    assert item(registry) == {**before, Attr.ATTEMPTED_ROTATION_JOB_IDS: JOB_1}  # the job had its attempt
    failed_once(capsys, "InvalidCsr")


def test_a_failure_reported_by_the_device_abandons_and_retires_the_new_certificate(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str, capsys: Any
) -> None:
    invoke(csr_event(original))
    new = item(registry)[Attr.PENDING_CERTIFICATE_ID]
    capsys.readouterr()

    reason = "the new certificate did not connect: timeout"
    assert invoke(result_event(original, "FAILED", reason=reason)) == {"outcome": "abandoned"}

    abandoned = item(registry)
    assert abandoned[Attr.CERTIFICATE_ID] == original
    assert Attr.PENDING_CERTIFICATE_ID not in abandoned
    assert abandoned[Attr.ROTATION_FAILURE_REASON] == reason
    assert [step for step, _ in published()] == [RotationStep.CERTIFICATE]  # the device knows; no answer
    failed_once(capsys, "DeviceReportedFailure")
    retire(stream)
    assert attachments(fleet, new) == RETIRED
    assert attachments(fleet, original) == IN_USE


def test_a_failure_about_another_job_leaves_the_rotation_in_progress(
    registry: OperatorRecords, original: str
) -> None:
    invoke(csr_event(original, job_id=JOB_2))
    pending = item(registry)

    refused = invoke(result_event(original, "FAILED", job_id=JOB_1, reason="old news"))

    assert refused == {"outcome": "rejected", "reason": "MalformedRequest"}
    assert item(registry) == pending


def test_a_retried_csr_replaces_the_pending_certificate_which_is_retired(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str
) -> None:
    invoke(csr_event(original, job_id=JOB_1))
    first = item(registry)[Attr.PENDING_CERTIFICATE_ID]

    assert invoke(csr_event(original, job_id=JOB_2)) == {"outcome": "certificate-issued"}

    second = item(registry)[Attr.PENDING_CERTIFICATE_ID]
    assert second != first
    assert item(registry)[Attr.ROTATION_JOB_ID] == JOB_2
    retire(stream)
    assert attachments(fleet, first) == RETIRED
    assert attachments(fleet, second) == IN_USE
    assert attachments(fleet, original) == IN_USE
    assert invoke(result_event(second, "SUCCEEDED", job_id=JOB_2)) == {"outcome": "rotated"}


def test_a_repeated_success_is_not_refused(registry: OperatorRecords, original: str, capsys: Any) -> None:
    invoke(csr_event(original))
    new = item(registry)[Attr.PENDING_CERTIFICATE_ID]
    invoke(result_event(new, "SUCCEEDED"))
    rotated = item(registry)
    capsys.readouterr()

    assert invoke(result_event(new, "SUCCEEDED")) == {"outcome": "already-rotated"}
    assert item(registry) == rotated
    assert failures(capsys) == []


def test_a_device_that_is_not_active_gets_no_certificate(
    fleet: Fleet, registry: OperatorRecords, original: str, capsys: Any
) -> None:
    registry.revoke(SERIAL, "stolen")
    known = certificates(fleet)
    capsys.readouterr()

    assert invoke(csr_event(original)) == {"outcome": "rejected", "reason": "NotActive"}
    assert certificates(fleet) == known
    refused_once(capsys, "NotActive")


def test_a_registry_change_before_the_reservation_issues_nothing(
    fleet: Fleet, registry: OperatorRecords, original: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The device is revoked between the function's read and the job's reservation: AWS IoT is never asked."""
    get = DeviceRecords.get

    def read_then_revoked(self: DeviceRecords, serial: str) -> Any:
        found = get(self, serial)
        registry.revoke(serial, "stolen")
        return found

    known = certificates(fleet)
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(DeviceRecords, "get", read_then_revoked)
        assert invoke(csr_event(original)) == {"outcome": "rejected", "reason": "NotCurrentCertificate"}

    assert certificates(fleet) == known
    refused_once(capsys, "NotCurrentCertificate")


def test_a_registry_change_while_issuing_revokes_the_issued_certificate(
    fleet: Fleet, registry: OperatorRecords, original: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The device is revoked while AWS IoT issues its certificate: the certificate is revoked, since no
    registry record will ever retire it, and the job's failed attempt is counted."""

    def revoke_meanwhile(model: Any, **_: Any) -> None:
        if model.name == "CreateCertificateFromCsr":
            registry.revoke(SERIAL, "stolen")

    before_every_call(monkeypatch, revoke_meanwhile)
    known = certificates(fleet)
    capsys.readouterr()

    assert invoke(csr_event(original)) == {"outcome": "rejected", "reason": "NotCurrentCertificate"}

    [issued] = certificates(fleet) - known
    assert attachments(fleet, issued) == RETIRED
    assert Attr.PENDING_CERTIFICATE_ID not in item(registry)
    failed_once(capsys, "NotCurrentCertificate")


def test_throttling_before_aws_iot_issues_is_raised_for_a_retry_that_may_attempt_the_job(
    fleet: Fleet, registry: OperatorRecords, original: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """AWS IoT issued nothing, so the job is given back: Lambda's retry of the event gets the certificate."""
    event = csr_event(original)
    known = certificates(fleet)
    fail_once(monkeypatch, "CreateCertificateFromCsr", "ThrottlingException", times=3)  # every attempt
    runtime.reset()
    capsys.readouterr()

    with pytest.raises(ClientError) as raised:
        invoke(event)

    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert published() == []  # the device hears nothing until Lambda retries the event
    assert failures(capsys) == []
    assert certificates(fleet) == known
    assert Attr.ATTEMPTED_ROTATION_JOB_IDS not in item(registry)

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # AWS answers again
    runtime.reset()
    assert invoke(event) == {"outcome": "certificate-issued"}  # Lambda's retry of the same event
    assert len(certificates(fleet) - known) == 1


def test_throttling_after_issuing_ends_the_jobs_attempt_and_drops_the_new_certificate(
    fleet: Fleet,
    registry: OperatorRecords,
    stream: RegistryStream,
    original: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """A certificate was issued: a retry of the event would issue a second one for the same job, so the
    job's attempt fails (counted once) and the device hears it; a new job rotates."""
    event = csr_event(original)
    known = certificates(fleet)
    fail_once(monkeypatch, "AttachThingPrincipal", "ThrottlingException", times=3)  # every attempt
    runtime.reset()
    capsys.readouterr()

    assert invoke(event) == {"outcome": "rejected", "reason": "InternalError"}

    assert published()[-1][0] == RotationStep.REJECTED
    failed_once(capsys, "InternalError")
    dropped = item(registry)
    assert Attr.PENDING_CERTIFICATE_ID not in dropped
    assert "ThrottlingException" in dropped[Attr.ROTATION_FAILURE_REASON]
    [first] = certificates(fleet) - known
    retire(stream)
    assert attachments(fleet, first) == RETIRED

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # AWS answers again
    runtime.reset()
    assert invoke(event) == {"outcome": "duplicate-csr-ignored"}  # a redelivery of the event
    assert certificates(fleet) - known == {first}
    assert invoke(csr_event(original, job_id=JOB_2)) == {"outcome": "certificate-issued"}


def test_an_aws_error_a_retry_cannot_fix_is_refused_as_internal(
    registry: OperatorRecords, original: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    fail_once(monkeypatch, "AttachPolicy", "UnauthorizedException")
    runtime.reset()
    capsys.readouterr()

    assert invoke(csr_event(original)) == {"outcome": "rejected", "reason": "InternalError"}

    assert Attr.PENDING_CERTIFICATE_ID not in item(registry)
    assert published()[-1][1]["reason"] == "InternalError"
    failed_once(capsys, "InternalError")


def test_the_functions_own_messages_are_ignored_without_an_answer(original: str, capsys: Any) -> None:
    """The rule's ``rotation/+/+`` matches the function's own ``certificate`` and ``rejected``: answering
    them would loop."""
    for step in ("certificate", "rejected"):
        event = rule_event(step, "arn:aws:sts::123456789012:assumed-role/x/y", reason="whatever")
        assert invoke(event) == {"outcome": "ignored"}
    assert published() == []
    assert failures(capsys) == []


@pytest.mark.parametrize(
    "event",
    [
        "not an object",
        rule_event("csr", certificate_id("x"), thing="other-stack_TS-000001", csr="x", jobId="j"),
        rule_event("csr", certificate_id("x"), thing="fleet-test_TS/000001", csr="x", jobId="j"),
        rule_event("telemetry", certificate_id("x"), csr="x", jobId="j"),
    ],
    ids=["not-an-object", "another-stack", "not-a-thing-name", "not-a-device-step"],
)
def test_events_for_no_device_of_this_stack_are_refused_without_an_answer(
    original: str, capsys: Any, event: Any
) -> None:
    assert invoke(event) == {"outcome": "rejected", "reason": "MalformedRequest"}
    assert iotdata_backends[DEFAULT_ACCOUNT_ID][REGION].published_payloads == []
    refused_once(capsys, "MalformedRequest")


def _without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {name: value for name, value in event.items() if name != field}


@pytest.mark.parametrize(
    "change",
    [
        lambda event: {**event, "jobId": "job/1"},
        lambda event: {**event, "jobId": "j" * 65},
        lambda event: _without(event, "jobId"),
        lambda event: {**event, "csr": ["-----BEGIN CERTIFICATE REQUEST-----"]},
        lambda event: {**event, "callerCertificateId": "AROAEXAMPLE:session"},
        lambda event: {**event, "thingName": THING, "certificateId": "a" * 64},
        lambda event: {**event, "step": "result", "status": "DONE"},
        lambda event: {**event, "step": "result", "status": "FAILED", "reason": {"why": 1}},
    ],
    ids=[
        "job-id-charset",
        "job-id-length",
        "no-job-id",
        "csr-not-a-string",
        "not-a-certificate",
        "unexpected-field",
        "unknown-status",
        "reason-not-a-string",
    ],
)
def test_malformed_device_messages_are_refused_with_an_answer(
    registry: OperatorRecords, original: str, capsys: Any, change: Any
) -> None:
    event = change(csr_event(original))
    if event["step"] == "result":
        event = _without(event, "csr")
    before = item(registry)
    capsys.readouterr()

    assert invoke(event) == {"outcome": "rejected", "reason": "MalformedRequest"}

    [(step, answer)] = published()
    assert (step, answer["reason"]) == (RotationStep.REJECTED, "MalformedRequest")
    assert item(registry) == before
    refused_once(capsys, "MalformedRequest")


def test_a_conflicting_registry_write_after_issuing_ends_the_jobs_attempt_and_revokes_the_certificate(
    fleet: Fleet, registry: OperatorRecords, original: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB cancels the rotation's transaction for a concurrent write on the item, not for a condition."""
    conflict = [
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "injected"},
            "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
        }
    ]

    def cancel_once(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name == "TransactWriteItems" and conflict:
            return AWSResponse("https://injected/", 400, HTTPHeaders(), None), conflict.pop()
        return None

    before_every_call(monkeypatch, cancel_once)
    runtime.reset()
    known = certificates(fleet)

    assert invoke(csr_event(original)) == {"outcome": "rejected", "reason": "InternalError"}

    [issued] = certificates(fleet) - known
    assert attachments(fleet, issued) == RETIRED
    # One certificate per job: a device cannot have a concurrent write of its own turn the job into many.
    assert invoke(csr_event(original)) == {"outcome": "duplicate-csr-ignored"}
    assert certificates(fleet) - known == {issued}


def test_each_rotation_step_makes_a_known_set_of_aws_requests(
    fleet: Fleet,
    stream: RegistryStream,
    original: str,
    registry: OperatorRecords,
    aws_operations: list[str],
) -> None:
    """What a rotation costs, per device: the figures the closing note and the quotas rest on."""
    aws_operations.clear()
    invoke(csr_event(original))
    assert aws_operations == CSR_STEP_REQUESTS
    pending = item(registry)[Attr.PENDING_CERTIFICATE_ID]

    aws_operations.clear()
    invoke(result_event(pending, "SUCCEEDED"))
    assert aws_operations == ["GetItem", "UpdateItem"]

    aws_operations.clear()
    retire(stream)
    retirement = ["DescribeCertificate", "UpdateCertificate", "DetachThingPrincipal", "DetachPolicy"]
    assert [each for each in aws_operations if each in retirement] == retirement


@pytest.mark.parametrize(
    "job_id", [f"{rotation_job_id_prefix(BASE)}9", "ota-update-7"], ids=["no-such-job", "not-a-rotation-job"]
)
def test_a_csr_outside_an_open_rotation_job_gets_no_certificate(
    fleet: Fleet, stream: RegistryStream, original: str, registry: OperatorRecords, job_id: str
) -> None:
    before = certificates(fleet)

    assert invoke(csr_event(original, job_id=job_id)) == {"outcome": "rejected", "reason": "NoRotationJob"}

    assert certificates(fleet) == before
    assert Attr.PENDING_CERTIFICATE_ID not in item(registry)
    assert published()[-1][0] == RotationStep.REJECTED


def test_a_csr_of_a_finished_job_gets_no_certificate(
    fleet: Fleet, stream: RegistryStream, original: str, registry: OperatorRecords
) -> None:
    fleet.iot.cancel_job_execution(jobId=JOB_1, thingName=THING, force=True)
    before = certificates(fleet)

    assert invoke(csr_event(original)) == {"outcome": "rejected", "reason": "NoRotationJob"}
    assert certificates(fleet) == before


def test_a_repeated_csr_in_one_job_gets_no_second_certificate(
    fleet: Fleet, stream: RegistryStream, original: str, registry: OperatorRecords
) -> None:
    assert invoke(csr_event(original)) == {"outcome": "certificate-issued"}
    pending = item(registry)[Attr.PENDING_CERTIFICATE_ID]
    issued = certificates(fleet)
    answers = len(published())

    assert invoke(csr_event(original)) == {"outcome": "duplicate-csr-ignored"}

    assert certificates(fleet) == issued
    assert item(registry)[Attr.PENDING_CERTIFICATE_ID] == pending
    assert len(published()) == answers  # no second answer, no rejection


def test_a_device_revoked_while_its_certificate_is_issued_never_gets_it(
    fleet: Fleet,
    stream: RegistryStream,
    original: str,
    registry: OperatorRecords,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``fleetctl revoke`` lands between the registry's pending certificate and its activation."""

    def revoke_meanwhile(model: Any, **_: Any) -> None:
        if model.name == "AttachThingPrincipal" and item(registry)[Attr.STATUS] == "ACTIVE":
            registry.revoke(SERIAL, "stolen")

    before_every_call(monkeypatch, revoke_meanwhile)

    assert invoke(csr_event(original)) == {"outcome": "rejected", "reason": "NotActive"}

    [issued] = certificates(fleet) - {original, fleet.claim_certificate_id}
    assert fleet.certificate(issued)["status"] == "REVOKED"
    assert published()[-1][0] == RotationStep.REJECTED
    retire(stream)
    assert attachments(fleet, issued) == ("REVOKED", [], [])


# --- key binding: a secure element re-certifies its own key -----------------------------------------------


@pytest.fixture
def bound_key(fleet: Fleet, registry: OperatorRecords, stream: RegistryStream) -> tuple[DeviceKey, str]:
    """An ACTIVE device whose key is registered: pre-registered with its secure element's key and
    provisioned with a certificate of it. The key and the certificate's id."""
    key = device_key()
    parameters = valid_parameters(SerialNumber=SERIAL, FirmwareVersion="2.1.0")
    request = validate_request(parameters, parse_rules(RULES))
    assert registry.preregister(request, timestamp(), key_fingerprint(key)) is None
    certificate = fleet.provision(SERIAL, certificate_pem=device_certificate(key, THING))
    retire(stream)
    open_rotation_jobs(fleet, JOB_1, JOB_2)
    return key, certificate


def test_a_bound_device_rotating_its_own_key_gets_a_certificate_at_no_extra_request(
    fleet: Fleet, registry: OperatorRecords, bound_key: tuple[DeviceKey, str], aws_operations: list[str]
) -> None:
    key, current = bound_key
    aws_operations.clear()

    answer = invoke(csr_event(current, csr=certificate_signing_request(THING, key)))

    assert answer == {"outcome": "certificate-issued"}
    # the same requests as without a bound key: the CSR is read locally
    assert aws_operations == CSR_STEP_REQUESTS
    assert item(registry)[Attr.PUBLIC_KEY_SHA256] == key_fingerprint(key)


def test_a_csr_of_a_new_key_for_a_bound_serial_is_refused_before_aws_iot_is_asked_and_counted_once(
    fleet: Fleet,
    registry: OperatorRecords,
    bound_key: tuple[DeviceKey, str],
    aws_operations: list[str],
    capsys: Any,
) -> None:
    """Whoever holds the device's certificate (copied off a device) cannot move it to a key of their own,
    and a repeated attempt in the same job is not counted again: the job had its attempt."""
    _, current = bound_key
    before, known = item(registry), certificates(fleet)
    capsys.readouterr()
    aws_operations.clear()

    answer = invoke(csr_event(current, csr=certificate_signing_request(THING, device_key())))

    assert answer == {"outcome": "rejected", "reason": "PublicKeyMismatch"}
    # the registry read, the open execution, the job's reservation, then the answer on rejected
    assert aws_operations == ["GetItem", "DescribeJobExecution", "UpdateItem", "Publish"]
    assert published()[-1] == (
        RotationStep.REJECTED,
        {
            "reason": "PublicKeyMismatch",
            "message": "the CSR's key is not the device's registered key: a rotation re-certifies the same key",
        },
    )
    assert certificates(fleet) == known
    assert item(registry) == {**before, Attr.ATTEMPTED_ROTATION_JOB_IDS: JOB_1}
    for _ in range(3):
        again = invoke(csr_event(current, csr=certificate_signing_request(THING, device_key())))
        assert again == {"outcome": "duplicate-csr-ignored"}
    lines = output_lines(capsys)
    assert metric_counts(lines, "KeyBindingRejected") == [({"service": SERVICE}, 1.0)]
    assert sorted(metric_counts(lines, "CertificateRotationFailed"), key=lambda counted: len(counted[0])) == [
        ({"service": SERVICE}, 1.0),
        ({"service": SERVICE, "Reason": "PublicKeyMismatch"}, 1.0),
    ]


def test_an_unbound_device_may_rotate_to_a_new_key_and_is_counted_as_no_key_binding_rejection(
    original: str, capsys: Any
) -> None:
    capsys.readouterr()
    assert invoke(csr_event(original, csr=certificate_signing_request(THING, device_key()))) == {
        "outcome": "certificate-issued"
    }
    assert metric_counts(output_lines(capsys), "KeyBindingRejected") == []


# --- one attempt per job: a device cannot have a job issue twice, nor pin the alarms ----------------------


def test_a_device_looping_csr_and_failure_in_one_job_gets_one_certificate(
    fleet: Fleet, registry: OperatorRecords, original: str, capsys: Any
) -> None:
    """The device reports each rotation failed with its current certificate and sends the CSR again, in the
    same open execution: only the first CSR reaches AWS IoT, and the failure is counted once."""
    known = certificates(fleet)
    capsys.readouterr()

    outcomes = []
    for attempt in range(5):
        outcomes.append(invoke(csr_event(original))["outcome"])
        invoke(result_event(original, "FAILED", reason=f"attempt {attempt}"))

    assert outcomes == ["certificate-issued", *["duplicate-csr-ignored"] * 4]
    assert len(certificates(fleet) - known) == 1
    assert item(registry)[Attr.ROTATION_FAILURE_REASON] == "attempt 0"  # later reports change nothing
    failed_once(capsys, "DeviceReportedFailure")
    # A new attempt needs a new job, as `fleetctl rotate resume` creates.
    assert invoke(csr_event(original, job_id=JOB_2)) == {"outcome": "certificate-issued"}


def hold_the_first_two_reads_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two concurrent requests each read the serial before either writes: a barrier holds each after its
    read until the other has read too."""
    both_read = threading.Barrier(2, timeout=10)
    reads: list[str] = []
    get = DeviceRecords.get

    def read_together(self: DeviceRecords, serial: str) -> Any:
        found = get(self, serial)
        reads.append(serial)
        if len(reads) <= 2:
            both_read.wait()
        return found

    monkeypatch.setattr(DeviceRecords, "get", read_together)


def test_two_csrs_sent_at_once_for_one_job_issue_one_certificate(
    fleet: Fleet, registry: OperatorRecords, original: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests read the serial before either writes (a barrier holds each after its read): the job's
    reservation lets one through, and the other never reaches AWS IoT."""
    hold_the_first_two_reads_together(monkeypatch)
    known = certificates(fleet)
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(lambda _: invoke(csr_event(original))["outcome"], range(2)))

    assert outcomes == ["certificate-issued", "duplicate-csr-ignored"]
    [issued] = certificates(fleet) - known
    assert item(registry)[Attr.PENDING_CERTIFICATE_ID] == issued
    assert [step for step, _ in published()] == [RotationStep.CERTIFICATE]


def test_a_bound_device_without_an_open_job_counts_no_key_binding_rejection(
    bound_key: tuple[DeviceKey, str], registry: OperatorRecords, capsys: Any
) -> None:
    """CSRs of another key under job ids of no execution are refused before the key is read: one device
    sending them cannot keep ``KeyBindingRejected`` (or ``CertificateRotationFailed``) counting."""
    _, current = bound_key
    before = item(registry)
    capsys.readouterr()

    for job in range(3):
        event = csr_event(
            current, job_id=f"{JOB_1}{job}", csr=certificate_signing_request(THING, device_key())
        )
        assert invoke(event) == {"outcome": "rejected", "reason": "NoRotationJob"}

    lines = output_lines(capsys)
    assert metric_counts(lines, "KeyBindingRejected") == []
    assert metric_counts(lines, "CertificateRotationFailed") == []
    assert (
        metric_counts(lines, "RotationStepRefused")
        == [({"service": SERVICE, "Reason": "NoRotationJob"}, 1.0)] * 3
    )
    assert item(registry) == before


def test_a_failure_reported_before_any_csr_is_recorded_once_and_only_for_an_open_job(
    registry: OperatorRecords, original: str, capsys: Any
) -> None:
    before = item(registry)
    capsys.readouterr()

    no_such_job = result_event(original, "FAILED", job_id=f"{JOB_1}9", reason="=HYPERLINK(...)")
    assert invoke(no_such_job) == {"outcome": "rejected", "reason": "NoRotationJob"}
    assert item(registry) == before
    refused_once(capsys, "NoRotationJob")

    assert invoke(result_event(original, "FAILED", reason="no key slot")) == {"outcome": "abandoned"}
    assert invoke(result_event(original, "FAILED", reason="overwritten?")) == {
        "outcome": "duplicate-result-ignored"
    }

    recorded = item(registry)
    assert recorded[Attr.ROTATION_FAILURE_REASON] == "no key slot"
    assert recorded[Attr.ATTEMPTED_ROTATION_JOB_IDS] == JOB_1
    failed_once(capsys, "DeviceReportedFailure")
    assert invoke(csr_event(original)) == {"outcome": "duplicate-csr-ignored"}  # the job had its attempt


def test_two_failures_sent_at_once_before_any_csr_are_recorded_and_counted_once(
    registry: OperatorRecords, original: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Both reports read the serial before either writes: the job joins the attempted ones once, so one
    device cannot count a job's failure twice by sending its report many times at once."""
    hold_the_first_two_reads_together(monkeypatch)
    capsys.readouterr()
    reasons = ["first", "second"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(
            pool.map(
                lambda reason: invoke(result_event(original, "FAILED", reason=reason))["outcome"], reasons
            )
        )

    assert outcomes == ["abandoned", "rejected"]
    assert item(registry)[Attr.ATTEMPTED_ROTATION_JOB_IDS] == JOB_1
    failed_once(capsys, "DeviceReportedFailure")
