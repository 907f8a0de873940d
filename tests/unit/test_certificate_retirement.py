"""The retirement function on the registry table's stream (moto's own records): every certificate a device's
item stops holding is revoked and detached from the thing and the policy, and nothing else is touched."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from fleetctl.operator_transitions import OperatorRecords
from hook import certificate_retirement, runtime
from hook.contract import Attr, Service, certificate_binding_key, thing_name
from hook.registry_decisions import Provenance
from hook.registry_items import timestamp
from hook.rules import DeviceRequest
from tests.support import (
    BASE,
    CLAIM_CERTIFICATE_ID,
    TABLE_NAME,
    TEMPLATE_ARN,
    FakeLambdaContext,
    Fleet,
    RegistryStream,
    before_every_call,
    fail_once,
    hook_event,
    metric_counts,
    output_lines,
    valid_parameters,
)

SERIAL = "TS-000001"
THING = thing_name(BASE, SERIAL)
POLICY = f"{BASE}_temperature-sensor"

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics")  # batches that retire nothing


@pytest.fixture
def original(fleet: Fleet, stream: RegistryStream) -> str:
    """An ACTIVE device's certificate; the stream's records of its provisioning are delivered already."""
    certificate = fleet.provision(SERIAL)
    assert retire(stream) == {"batchItemFailures": []}
    assert attachments(fleet, certificate) == ("ACTIVE", [THING], [POLICY])
    return certificate


def retire(stream: RegistryStream) -> dict[str, Any]:
    """Deliver the stream's new records to the retirement function, as Lambda does."""
    return dict(certificate_retirement.lambda_handler(stream.event(), FakeLambdaContext()))


def attachments(fleet: Fleet, certificate_id: str) -> tuple[str, list[str], list[str]]:
    """The certificate's status, the things it is attached to and its policies."""
    arn = fleet.certificate(certificate_id)["certificateArn"]
    things = fleet.iot.list_principal_things(principal=arn)["things"]
    return fleet.certificate(certificate_id)["status"], things, fleet.policies(certificate_id)


def issue(fleet: Fleet, serial: str = SERIAL) -> str:
    """A certificate attached to the device's thing and policy, as the rotation function issues one."""
    created = fleet.iot.create_keys_and_certificate(setAsActive=True)
    fleet.iot.attach_policy(policyName=POLICY, target=created["certificateArn"])
    fleet.iot.attach_thing_principal(thingName=thing_name(BASE, serial), principal=created["certificateArn"])
    return str(created["certificateId"])


def item(registry: OperatorRecords, serial: str = SERIAL) -> dict[str, str]:
    found = registry.get(serial)
    assert found is not None
    return found


def rotate(fleet: Fleet, registry: OperatorRecords, serial: str = SERIAL) -> str:
    """A whole rotation in the registry to a new certificate; returns it."""
    new = issue(fleet, serial)
    assert registry.begin_rotation(item(registry, serial), new, "job-1")
    assert registry.complete_rotation(item(registry, serial)) is not None
    return new


RETIRED: tuple[str, list[str], list[str]] = ("REVOKED", [], [])


def test_a_completed_rotation_retires_the_old_certificate_only(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str, capsys: Any
) -> None:
    new = issue(fleet)
    assert registry.begin_rotation(item(registry), new, "job-1")
    assert retire(stream) == {"batchItemFailures": []}
    assert attachments(fleet, original) == ("ACTIVE", [THING], [POLICY])  # pending: nothing retired yet
    capsys.readouterr()

    registry.complete_rotation(item(registry))
    assert retire(stream) == {"batchItemFailures": []}

    assert attachments(fleet, original) == RETIRED
    assert attachments(fleet, new) == ("ACTIVE", [THING], [POLICY])
    [(dimensions, total)] = metric_counts(output_lines(capsys), "CertificateRetired")
    assert (dimensions, total) == ({"service": Service.CERTIFICATE_RETIREMENT.value}, 1.0)


def test_an_abandoned_rotation_retires_the_pending_certificate(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str
) -> None:
    pending = issue(fleet)
    registry.begin_rotation(item(registry), pending, "job-1")
    registry.abandon_rotation(item(registry), "the new certificate did not connect")

    assert retire(stream) == {"batchItemFailures": []}

    assert attachments(fleet, pending) == RETIRED
    assert attachments(fleet, original) == ("ACTIVE", [THING], [POLICY])


def test_a_retried_rotation_retires_the_pending_certificate_it_replaces(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str
) -> None:
    first, second = issue(fleet), issue(fleet)
    registry.begin_rotation(item(registry), first, "job-1")
    registry.begin_rotation(item(registry), second, "job-2")

    assert retire(stream) == {"batchItemFailures": []}

    assert attachments(fleet, first) == RETIRED
    assert attachments(fleet, second) == ("ACTIVE", [THING], [POLICY])
    assert attachments(fleet, original) == ("ACTIVE", [THING], [POLICY])


def test_a_reprovisioning_grant_used_by_the_hook_retires_the_replaced_certificate(
    fleet: Fleet,
    registry: OperatorRecords,
    stream: RegistryStream,
    original: str,
    invoke: Any,
) -> None:
    replacement = reprovision(fleet, registry, invoke, attached=True)
    assert retire(stream) == {"batchItemFailures": []}

    assert item(registry)[Attr.CERTIFICATE_ID] == replacement["certificateId"]
    assert attachments(fleet, original) == RETIRED
    assert attachments(fleet, replacement["certificateId"]) == ("ACTIVE", [THING], [POLICY])


def reprovision(fleet: Fleet, registry: OperatorRecords, invoke: Any, *, attached: bool) -> dict[str, Any]:
    """An operator's grant, then the hook approving a new certificate; with ``attached``, the template
    attaches it to the thing and the type's policy (RegisterThing succeeded), else it never does."""
    until = timestamp(datetime.now(UTC) + timedelta(hours=1))
    registry.grant_reprovision(SERIAL, "main board replaced", "alice", until)
    replacement = fleet.iot.create_keys_and_certificate(setAsActive=False)
    event = hook_event(valid_parameters(SerialNumber=SERIAL, FirmwareVersion="2.1.0"))
    event["certificateId"] = replacement["certificateId"]
    assert invoke(event)["allowProvisioning"] is True
    if attached:
        attach_as_the_template_does(fleet, replacement)
    return dict(replacement)


def attach_as_the_template_does(fleet: Fleet, certificate: dict[str, Any]) -> None:
    fleet.iot.attach_thing_principal(thingName=THING, principal=certificate["certificateArn"])
    fleet.iot.attach_policy(policyName=POLICY, target=certificate["certificateArn"])
    fleet.iot.update_certificate(certificateId=certificate["certificateId"], newStatus="ACTIVE")


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retirement function's waits for an attachment, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


def test_a_reprovisioning_whose_register_thing_failed_keeps_the_old_certificate(
    fleet: Fleet,
    registry: OperatorRecords,
    stream: RegistryStream,
    original: str,
    invoke: Any,
    waits: list[float],
    capsys: Any,
) -> None:
    """The hook approved, the template then failed: the new certificate is never attached, and the device
    must keep the only certificate that works."""
    replacement = reprovision(fleet, registry, invoke, attached=False)
    capsys.readouterr()

    result = retire(stream)

    assert len(result["batchItemFailures"]) == 1  # Lambda retries it, then queues it
    assert attachments(fleet, original) == ("ACTIVE", [THING], [POLICY])
    assert attachments(fleet, replacement["certificateId"]) == ("INACTIVE", [], [])
    assert waits == list(certificate_retirement.ATTACHMENT_RECHECK_DELAYS)  # looked at again after each
    lines = output_lines(capsys)
    service = {"service": Service.CERTIFICATE_RETIREMENT.value}
    assert metric_counts(lines, "CertificateRetirementDeferred") == [(service, 1.0)]
    assert metric_counts(lines, "CertificateRetirementFailed") == []


def test_an_attachment_that_propagates_late_retires_the_old_certificate_on_a_later_look(
    fleet: Fleet,
    registry: OperatorRecords,
    stream: RegistryStream,
    original: str,
    invoke: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stream can run before RegisterThing has attached the certificate, or before the attachment is
    visible: the function looks again after a wait, and retires once it sees it."""
    replacement = reprovision(fleet, registry, invoke, attached=False)
    monkeypatch.setattr(time, "sleep", lambda _: attach_as_the_template_does(fleet, replacement))

    assert retire(stream) == {"batchItemFailures": []}

    assert attachments(fleet, original) == RETIRED
    assert attachments(fleet, replacement["certificateId"]) == ("ACTIVE", [THING], [POLICY])


def test_a_retried_record_retires_the_old_certificate_once_the_replacement_is_attached(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str, invoke: Any, waits: Any
) -> None:
    replacement = reprovision(fleet, registry, invoke, attached=False)
    event = stream.event()
    assert certificate_retirement.lambda_handler(event, FakeLambdaContext())["batchItemFailures"]
    attach_as_the_template_does(fleet, replacement)  # the device's RegisterThing retry succeeds

    assert certificate_retirement.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert attachments(fleet, original) == RETIRED


def test_the_next_confirmed_replacement_retires_a_certificate_kept_by_a_failed_one(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str, invoke: Any, waits: Any
) -> None:
    never_attached = reprovision(fleet, registry, invoke, attached=False)
    assert retire(stream)["batchItemFailures"]  # retries run out: the record goes to the failures queue
    assert attachments(fleet, original) == ("ACTIVE", [THING], [POLICY])

    replacement = reprovision(fleet, registry, invoke, attached=True)  # an operator grants again
    assert retire(stream) == {"batchItemFailures": []}

    assert attachments(fleet, original) == RETIRED
    assert attachments(fleet, never_attached["certificateId"]) == ("REVOKED", [], [])
    assert attachments(fleet, replacement["certificateId"]) == ("ACTIVE", [THING], [POLICY])


def test_revoking_a_device_retires_a_certificate_kept_by_a_failed_replacement(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str, invoke: Any, waits: Any
) -> None:
    """The old certificate a never-attached replacement kept is still active and attached: the device's
    revocation (a stolen device) must not leave it working."""
    never_attached = reprovision(fleet, registry, invoke, attached=False)
    assert retire(stream)["batchItemFailures"]
    assert attachments(fleet, original) == ("ACTIVE", [THING], [POLICY])

    assert registry.revoke(SERIAL, "stolen") is not None
    assert retire(stream) == {"batchItemFailures": []}

    assert attachments(fleet, original) == RETIRED
    assert attachments(fleet, never_attached["certificateId"]) == ("REVOKED", [], [])


def test_a_released_approval_retires_its_certificate_without_a_thing(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream
) -> None:
    """A ``PENDING`` approval never became a thing; releasing it deletes its item (a REMOVE record)."""
    created = fleet.iot.create_keys_and_certificate(setAsActive=True)
    request = DeviceRequest("TS-000777", "temperature-sensor", "AcmeIoT", "2.1.0", "Line-1")
    provenance = Provenance(created["certificateId"], CLAIM_CERTIFICATE_ID, TEMPLATE_ARN, "TS-000777")
    registry.approve(request, provenance, require_preregistration=False)
    approval = registry.get("TS-000777")
    assert approval is not None
    assert registry.release(approval) == "deleted"

    assert retire(stream) == {"batchItemFailures": []}

    assert attachments(fleet, created["certificateId"]) == RETIRED


def test_certificate_bindings_are_never_retired_from(
    fleet: Fleet, stream: RegistryStream, original: str
) -> None:
    """A binding item holds a certificate id too; removing one (an operator's clean-up) retires nothing."""
    fleet.dynamodb.delete_item(
        TableName=TABLE_NAME, Key={"serialNumber": {"S": certificate_binding_key(original)}}
    )
    event = stream.event()
    [removed] = [record for record in event["Records"] if record["eventName"] == "REMOVE"]
    assert removed["dynamodb"]["OldImage"]["certificateId"] == {"S": original}

    result = certificate_retirement.lambda_handler(event, FakeLambdaContext())

    assert result == {"batchItemFailures": []}
    assert attachments(fleet, original) == ("ACTIVE", [THING], [POLICY])


def test_a_redelivered_batch_is_retired_again_without_failing(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str
) -> None:
    rotate(fleet, registry)
    event = stream.event()

    for _ in range(2):
        assert certificate_retirement.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert attachments(fleet, original) == RETIRED


def test_a_certificate_already_deleted_counts_as_retired(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str
) -> None:
    rotate(fleet, registry)
    arn = fleet.certificate(original)["certificateArn"]
    fleet.iot.detach_thing_principal(thingName=THING, principal=arn)
    fleet.iot.detach_policy(policyName=POLICY, target=arn)
    fleet.iot.update_certificate(certificateId=original, newStatus="INACTIVE")
    fleet.iot.delete_certificate(certificateId=original)

    assert retire(stream) == {"batchItemFailures": []}


def test_a_failed_record_is_reported_counted_and_logged_and_the_others_are_retired(
    fleet: Fleet,
    registry: OperatorRecords,
    stream: RegistryStream,
    original: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other_original = fleet.provision("TS-000002")
    retire(stream)
    for serial in (SERIAL, "TS-000002"):
        rotate(fleet, registry, serial)
    event = stream.event()
    capsys.readouterr()
    fail_once(monkeypatch, "UpdateCertificate", "UnauthorizedException")  # not retried by the client
    runtime.reset()  # the function's next client is made with the failure injected

    result = certificate_retirement.lambda_handler(event, FakeLambdaContext())

    [failure] = result["batchItemFailures"]
    sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
    failed = event["Records"][sequence_numbers.index(failure["itemIdentifier"])]
    assert failed["dynamodb"]["Keys"]["serialNumber"] == {"S": SERIAL}
    assert attachments(fleet, original) == ("ACTIVE", [THING], [POLICY])
    assert attachments(fleet, other_original) == RETIRED
    # The failure does not vanish: it is counted for the retirement-failed alarm and logged with its serial.
    lines = output_lines(capsys)
    service = {"service": Service.CERTIFICATE_RETIREMENT.value}
    assert metric_counts(lines, "CertificateRetirementFailed") == [(service, 1.0)]
    [logged] = [record for record in caplog.records if record.levelname == "ERROR"]
    assert logged.__dict__["serialNumber"] == SERIAL
    assert "UnauthorizedException" in repr(logged.exc_info)

    # Lambda delivers the batch again from the failed record
    retried = {"Records": event["Records"][event["Records"].index(failed) :]}
    assert certificate_retirement.lambda_handler(retried, FakeLambdaContext()) == {"batchItemFailures": []}
    assert attachments(fleet, original) == RETIRED
    assert attachments(fleet, other_original) == RETIRED


def test_a_batch_whose_every_record_fails_is_still_counted(
    fleet: Fleet,
    registry: OperatorRecords,
    stream: RegistryStream,
    original: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """Powertools raises when no record of the batch succeeded (Lambda then retries the whole batch); the
    failure count is published all the same."""
    assert registry.begin_rotation(item(registry), issue(fleet), "job-1")
    retire(stream)
    assert registry.complete_rotation(item(registry)) is not None
    event = stream.event()
    assert len(event["Records"]) == 1
    fail_once(monkeypatch, "UpdateCertificate", "UnauthorizedException")
    runtime.reset()
    capsys.readouterr()

    with pytest.raises(BatchProcessingError):
        certificate_retirement.lambda_handler(event, FakeLambdaContext())

    service = {"service": Service.CERTIFICATE_RETIREMENT.value}
    assert metric_counts(output_lines(capsys), "CertificateRetirementFailed") == [(service, 1.0)]
    assert attachments(fleet, original) == ("ACTIVE", [THING], [POLICY])


# --- revocation and decommissioning --------------------------------------------------------------------


def test_revoking_a_rotating_device_retires_its_current_and_its_pending_certificate(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str, capsys: Any
) -> None:
    """The rotation function issued and attached the pending certificate while ``fleetctl revoke`` ran: the
    registry says REVOKED, and neither certificate may stay active or attached."""
    pending = issue(fleet)
    assert registry.begin_rotation(item(registry), pending, "job-1")
    assert registry.revoke(SERIAL, "stolen") is not None
    assert item(registry)[Attr.PENDING_CERTIFICATE_ID] == pending  # the item still names both
    capsys.readouterr()

    assert retire(stream) == {"batchItemFailures": []}

    assert attachments(fleet, original) == RETIRED
    assert attachments(fleet, pending) == RETIRED
    service = {"service": Service.CERTIFICATE_RETIREMENT.value}
    assert metric_counts(output_lines(capsys), "CertificateRetired") == [(service, 2.0)]


def test_decommissioning_a_device_retires_its_certificate(
    fleet: Fleet, registry: OperatorRecords, stream: RegistryStream, original: str
) -> None:
    assert registry.decommission(SERIAL) is not None

    assert retire(stream) == {"batchItemFailures": []}

    assert attachments(fleet, original) == RETIRED


def test_a_revoked_device_changing_again_retires_nothing(
    fleet: Fleet,
    registry: OperatorRecords,
    stream: RegistryStream,
    original: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    assert registry.revoke(SERIAL, "stolen") is not None
    assert retire(stream) == {"batchItemFailures": []}
    assert attachments(fleet, original) == RETIRED
    operations: list[str] = []
    before_every_call(monkeypatch, lambda model, **_: operations.append(model.name))
    runtime.reset()  # the function's next client records its calls
    capsys.readouterr()

    assert registry.decommission(SERIAL) is not None  # REVOKED -> DECOMMISSIONED, certificateId kept
    event = stream.event()
    assert [record["eventName"] for record in event["Records"]] == ["MODIFY"]
    assert certificate_retirement.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}

    assert operations == []  # not even a look at the certificate
    assert metric_counts(output_lines(capsys), "CertificateRetired") == []
