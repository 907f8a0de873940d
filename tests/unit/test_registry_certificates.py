"""The registry's certificate transitions over a device's life: a rotation begun, completed or abandoned,
and an operator's re-provisioning grant consumed by the hook's approval."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from fleetctl.operator_transitions import OperatorRecords, TransitionRefused
from hook.contract import Attr, DeviceStatus, ProvisioningDenied, RejectionReason
from hook.registry_decisions import Provenance, rotation_completed
from hook.registry_items import Item
from hook.registry_transitions import DeviceRecords
from hook.rules import DeviceRequest
from tests.support import (
    CLAIM_CERTIFICATE_ID,
    TABLE_NAME,
    TEMPLATE_ARN,
    certificate_id,
    in_hours,
    registry_contents,
)

SERIAL = "TS-000123"
THING = f"fleet-test_{SERIAL}"
REQUEST = DeviceRequest(SERIAL, "temperature-sensor", "AcmeIoT", "1.4.2", "Factory-Floor-A")
ORIGINAL = certificate_id("original")


def provenance(certificate: str) -> Provenance:
    return Provenance(certificate_id(certificate), CLAIM_CERTIFICATE_ID, TEMPLATE_ARN, SERIAL)


@pytest.fixture
def active(registry: OperatorRecords) -> Item:
    """An ACTIVE device with its original certificate, as the hook and the activation function leave it."""
    registry.approve(REQUEST, provenance("original"), require_preregistration=False)
    assert registry.activate(SERIAL, THING) is None
    return item(registry)


def item(registry: OperatorRecords) -> Item:
    found = registry.get(SERIAL)
    assert found is not None
    return found


def bindings(dynamodb: Any) -> dict[str, str]:
    return registry_contents(dynamodb)[1]


def rotate(registry: OperatorRecords, new: str, job: str = "job-1") -> Item:
    """A whole rotation to the certificate of seed ``new``; the item after it."""
    assert registry.begin_rotation(item(registry), certificate_id(new), job)
    completed = registry.complete_rotation(item(registry))
    assert completed is not None
    return completed


# --- rotation ---------------------------------------------------------------------------------------


def test_a_rotation_begins_with_a_pending_certificate_bound_to_the_serial(
    dynamodb: Any, registry: OperatorRecords, active: Item
) -> None:
    assert registry.begin_rotation(active, certificate_id("new"), "job-1") is True

    stored = item(registry)
    assert stored[Attr.CERTIFICATE_ID] == ORIGINAL
    assert stored[Attr.PENDING_CERTIFICATE_ID] == certificate_id("new")
    assert stored[Attr.ROTATION_JOB_ID] == "job-1"
    assert stored[Attr.ROTATION_REQUESTED_AT] == stored[Attr.UPDATED_AT] > active[Attr.UPDATED_AT]
    assert stored[Attr.STATUS] == DeviceStatus.ACTIVE
    assert bindings(dynamodb)[certificate_id("new")] == SERIAL


def test_a_rotation_does_not_begin_when_the_serial_changed_since_it_was_read(
    dynamodb: Any, registry: OperatorRecords, active: Item
) -> None:
    assert registry.revoke(SERIAL, "stolen") is not None

    assert registry.begin_rotation(active, certificate_id("new"), "job-1") is False
    assert Attr.PENDING_CERTIFICATE_ID not in item(registry)
    assert certificate_id("new") not in bindings(dynamodb)


def test_a_rotation_does_not_begin_for_a_certificate_that_is_not_current(
    registry: OperatorRecords, active: Item
) -> None:
    stale = {**active, Attr.CERTIFICATE_ID: certificate_id("someone-else")}
    assert registry.begin_rotation(stale, certificate_id("new"), "job-1") is False
    assert Attr.PENDING_CERTIFICATE_ID not in item(registry)


def test_a_rotation_does_not_bind_a_certificate_bound_to_another_serial(
    dynamodb: Any, registry: OperatorRecords, active: Item
) -> None:
    other = DeviceRequest("TS-000999", "temperature-sensor", "AcmeIoT", "1.4.2", "Line-2")
    registry.approve(other, provenance("theirs"), require_preregistration=False)

    assert registry.begin_rotation(active, certificate_id("theirs"), "job-1") is False
    assert Attr.PENDING_CERTIFICATE_ID not in item(registry)
    assert bindings(dynamodb)[certificate_id("theirs")] == "TS-000999"


def test_a_retried_rotation_replaces_the_pending_certificate_and_clears_the_last_failure(
    registry: OperatorRecords, active: Item
) -> None:
    registry.begin_rotation(active, certificate_id("first"), "job-1")
    assert registry.abandon_rotation(item(registry), "no connection") is not None

    assert registry.begin_rotation(item(registry), certificate_id("second"), "job-2")
    stored = item(registry)
    assert (stored[Attr.PENDING_CERTIFICATE_ID], stored[Attr.ROTATION_JOB_ID]) == (
        certificate_id("second"),
        "job-2",
    )
    assert Attr.ROTATION_FAILED_AT not in stored
    assert Attr.ROTATION_FAILURE_REASON not in stored


def test_completing_makes_the_pending_certificate_current_and_records_the_old_one(
    registry: OperatorRecords, active: Item
) -> None:
    registry.begin_rotation(active, certificate_id("new"), "job-1")

    completed = registry.complete_rotation(item(registry))

    assert completed == item(registry)
    assert completed[Attr.CERTIFICATE_ID] == certificate_id("new")
    assert completed[Attr.REPLACED_CERTIFICATE_IDS] == ORIGINAL
    assert Attr.PENDING_CERTIFICATE_ID not in completed
    assert completed[Attr.ROTATED_AT] == completed[Attr.UPDATED_AT]
    assert (completed[Attr.STATUS], completed[Attr.THING_NAME]) == (DeviceStatus.ACTIVE, THING)


def test_completing_records_which_job_rotated_the_certificate_and_abandoning_does_not(
    registry: OperatorRecords, active: Item
) -> None:
    rotate(registry, "second", job="job-1")
    registry.begin_rotation(item(registry), certificate_id("third"), "job-2")
    registry.abandon_rotation(item(registry), "the new certificate did not connect")
    rotate(registry, "fourth", job="job-3")

    stored = item(registry)
    assert stored[Attr.COMPLETED_ROTATION_JOB_IDS].split() == ["job-3", "job-1"]
    assert rotation_completed(stored, "job-1")
    assert not rotation_completed(stored, "job-2")


def test_completing_is_refused_without_a_pending_certificate_or_when_it_changed(
    registry: OperatorRecords, active: Item
) -> None:
    assert registry.complete_rotation(active) is None
    registry.begin_rotation(active, certificate_id("first"), "job-1")
    read = item(registry)
    registry.begin_rotation(read, certificate_id("second"), "job-2")

    assert registry.complete_rotation(read) is None
    assert item(registry)[Attr.CERTIFICATE_ID] == ORIGINAL


def test_abandoning_drops_the_pending_certificate_and_keeps_the_current_one(
    registry: OperatorRecords, active: Item
) -> None:
    registry.begin_rotation(active, certificate_id("new"), "job-1")

    abandoned = registry.abandon_rotation(item(registry), "the new certificate did not connect")

    assert abandoned == item(registry)
    assert abandoned[Attr.CERTIFICATE_ID] == ORIGINAL
    assert Attr.PENDING_CERTIFICATE_ID not in abandoned
    assert abandoned[Attr.ROTATION_FAILURE_REASON] == "the new certificate did not connect"
    assert abandoned[Attr.ROTATION_FAILED_AT] == abandoned[Attr.UPDATED_AT]
    assert Attr.REPLACED_CERTIFICATE_IDS not in abandoned


def test_abandoning_a_rotation_that_was_replaced_meanwhile_changes_nothing(
    registry: OperatorRecords, active: Item
) -> None:
    registry.begin_rotation(active, certificate_id("first"), "job-1")
    read = item(registry)
    registry.begin_rotation(read, certificate_id("second"), "job-2")

    assert registry.abandon_rotation(read, "late failure of the first") is None
    assert item(registry)[Attr.PENDING_CERTIFICATE_ID] == certificate_id("second")


def test_replaced_certificates_grow_newest_first(registry: OperatorRecords, active: Item) -> None:
    rotate(registry, "second")
    rotate(registry, "third", job="job-2")
    registry.grant_reprovision(SERIAL, "replaced board", "operator", in_hours(1))
    registry.approve(REQUEST, provenance("fourth"), require_preregistration=False)

    stored = item(registry)
    assert stored[Attr.CERTIFICATE_ID] == certificate_id("fourth")
    assert stored[Attr.REPLACED_CERTIFICATE_IDS].split() == [
        certificate_id("third"),
        certificate_id("second"),
        ORIGINAL,
    ]


# --- re-provisioning grants -------------------------------------------------------------------------


def test_a_grant_is_recorded_on_an_active_serial(registry: OperatorRecords, active: Item) -> None:
    until = in_hours(24)
    granted = registry.grant_reprovision(SERIAL, "main board replaced", "alice", until)

    assert granted == item(registry)
    assert granted[Attr.REPROVISION_ALLOWED_UNTIL] == until
    assert (granted[Attr.REPROVISION_GRANTED_BY], granted[Attr.REPROVISION_REASON]) == (
        "alice",
        "main board replaced",
    )
    assert granted[Attr.REPROVISION_GRANTED_AT] == granted[Attr.UPDATED_AT]
    assert granted[Attr.STATUS] == DeviceStatus.ACTIVE


@pytest.mark.parametrize("status", [DeviceStatus.PENDING, DeviceStatus.REVOKED, DeviceStatus.DECOMMISSIONED])
def test_a_grant_is_refused_unless_the_serial_is_active(
    registry: OperatorRecords, status: DeviceStatus
) -> None:
    registry.approve(REQUEST, provenance("original"), require_preregistration=False)
    if status is DeviceStatus.REVOKED:
        registry.revoke(SERIAL, "stolen")
    elif status is DeviceStatus.DECOMMISSIONED:
        registry.decommission(SERIAL)

    with pytest.raises(TransitionRefused) as refused:
        registry.grant_reprovision(SERIAL, "why", "alice", in_hours(1))

    assert refused.value.stored is not None
    assert refused.value.stored[Attr.STATUS] == status
    assert Attr.REPROVISION_ALLOWED_UNTIL not in item(registry)


def test_a_grant_for_an_unknown_serial_is_refused_without_creating_it(registry: OperatorRecords) -> None:
    with pytest.raises(TransitionRefused) as refused:
        registry.grant_reprovision(SERIAL, "why", "alice", in_hours(1))
    assert refused.value.stored is None
    assert registry.get(SERIAL) is None


def test_approval_consumes_the_grant_and_replaces_the_certificate_on_the_same_thing(
    dynamodb: Any, registry: OperatorRecords, active: Item
) -> None:
    registry.begin_rotation(active, certificate_id("pending"), "job-1")
    registry.grant_reprovision(SERIAL, "main board replaced", "alice", in_hours(1))

    registry.approve(REQUEST, provenance("new-board"), require_preregistration=False)

    stored = item(registry)
    assert stored[Attr.STATUS] == DeviceStatus.ACTIVE
    assert stored[Attr.THING_NAME] == THING
    assert stored[Attr.CERTIFICATE_ID] == certificate_id("new-board")
    assert stored[Attr.REPLACED_CERTIFICATE_IDS] == ORIGINAL
    assert stored[Attr.REPROVISIONED_AT] == stored[Attr.UPDATED_AT]
    assert Attr.REPROVISION_ALLOWED_UNTIL not in stored
    assert Attr.PENDING_CERTIFICATE_ID not in stored
    assert stored[Attr.REPROVISION_GRANTED_BY] == "alice"  # who allowed it stays on record
    assert bindings(dynamodb)[certificate_id("new-board")] == SERIAL
    assert bindings(dynamodb)[ORIGINAL] == SERIAL


def test_a_grant_admits_one_certificate_and_its_retries_only(registry: OperatorRecords, active: Item) -> None:
    registry.grant_reprovision(SERIAL, "main board replaced", "alice", in_hours(1))
    registry.approve(REQUEST, provenance("new-board"), require_preregistration=False)
    after = item(registry)

    registry.approve(REQUEST, provenance("new-board"), require_preregistration=False)  # the device retries
    assert item(registry) == after

    with pytest.raises(ProvisioningDenied) as denied:
        registry.approve(REQUEST, provenance("another-board"), require_preregistration=False)
    assert denied.value.reason == RejectionReason.DUPLICATE_SERIAL
    assert item(registry) == after


def test_an_expired_grant_admits_nothing(registry: OperatorRecords, active: Item) -> None:
    registry.grant_reprovision(SERIAL, "main board replaced", "alice", in_hours(-0.01))

    with pytest.raises(ProvisioningDenied) as denied:
        registry.approve(REQUEST, provenance("new-board"), require_preregistration=False)

    assert denied.value.reason == RejectionReason.DUPLICATE_SERIAL
    assert item(registry)[Attr.CERTIFICATE_ID] == ORIGINAL


@pytest.mark.parametrize(
    ("device_type", "manufacturer"), [("humidity-sensor", "AcmeIoT"), ("temperature-sensor", "SensorWorks")]
)
def test_a_grant_admits_only_the_serials_own_type_and_manufacturer(
    registry: OperatorRecords, active: Item, device_type: str, manufacturer: str
) -> None:
    registry.grant_reprovision(SERIAL, "main board replaced", "alice", in_hours(1))
    other = DeviceRequest(SERIAL, device_type, manufacturer, "1.4.2", "Factory-Floor-A")

    with pytest.raises(ProvisioningDenied) as denied:
        registry.approve(other, provenance("new-board"), require_preregistration=False)

    assert denied.value.reason == RejectionReason.DUPLICATE_SERIAL
    stored = item(registry)
    assert stored[Attr.CERTIFICATE_ID] == ORIGINAL
    assert Attr.REPROVISION_ALLOWED_UNTIL in stored


def test_two_certificates_racing_for_one_grant_get_one_approval(
    dynamodb: Any, registry: OperatorRecords, active: Item, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests find the grant in their approval transaction; the second one's consumption is made
    after the first's, as when two devices ask at the same moment."""
    registry.grant_reprovision(SERIAL, "main board replaced", "alice", in_hours(1))
    reprovision = DeviceRecords._reprovision
    outcomes: dict[str, str] = {}
    interleaved: list[str] = []

    def first_lets_the_other_win(self: DeviceRecords, granted: Item, *args: Any) -> None:
        if not interleaved:
            interleaved.append("board-b")
            outcomes["board-b"] = approve_as("board-b")
        reprovision(self, granted, *args)

    def approve_as(certificate: str) -> str:
        try:
            registry.approve(REQUEST, provenance(certificate), require_preregistration=False)
        except ProvisioningDenied as denial:
            return denial.reason
        return "approved"

    monkeypatch.setattr(DeviceRecords, "_reprovision", first_lets_the_other_win)
    outcomes["board-a"] = approve_as("board-a")

    assert outcomes == {"board-b": "approved", "board-a": RejectionReason.REPROVISION_GRANT_USED}
    stored = item(registry)
    assert stored[Attr.CERTIFICATE_ID] == certificate_id("board-b")
    assert stored[Attr.REPLACED_CERTIFICATE_IDS] == ORIGINAL
    assert certificate_id("board-a") not in bindings(dynamodb)


def test_a_certificate_bound_to_another_serial_cannot_use_the_grant(
    dynamodb: Any, registry: OperatorRecords, active: Item
) -> None:
    other = DeviceRequest("TS-000999", "temperature-sensor", "AcmeIoT", "1.4.2", "Line-2")
    registry.approve(other, provenance("theirs"), require_preregistration=False)
    registry.grant_reprovision(SERIAL, "main board replaced", "alice", in_hours(1))
    before = item(registry)

    with pytest.raises(ProvisioningDenied) as denied:
        registry.approve(REQUEST, provenance("theirs"), require_preregistration=False)

    assert denied.value.reason == RejectionReason.CERTIFICATE_IN_USE
    assert item(registry) == before  # the grant is still there for the right certificate
    assert bindings(dynamodb)[certificate_id("theirs")] == "TS-000999"


@pytest.mark.parametrize("code", ["TransactionConflict", "ThrottlingError"])
def test_a_rotation_cancelled_for_another_reason_than_a_condition_is_raised(code: str, active: Item) -> None:
    """A conflicting write or throttling says nothing about the serial: the caller may retry."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            http_status_code=400,
            modeled_fields={"CancellationReasons": [{"Code": "None"}, {"Code": code}]},
        )
        with pytest.raises(ClientError) as raised:
            OperatorRecords(client, TABLE_NAME).begin_rotation(active, certificate_id("new"), "job-1")
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"


# --- the current certificate's expiry -----------------------------------------------------------------


def with_expiry(registry: OperatorRecords, not_after: str) -> None:
    """The serial's item with a ``certificateNotAfter``, as an earlier release's activation wrote it."""
    boto3.client("dynamodb").update_item(
        TableName=TABLE_NAME,
        Key={Attr.SERIAL_NUMBER: {"S": SERIAL}},
        UpdateExpression="SET #n = :n",
        ExpressionAttributeNames={"#n": Attr.CERTIFICATE_NOT_AFTER},
        ExpressionAttributeValues={":n": {"S": not_after}},
    )


def test_a_recorded_expiry_never_outlives_its_certificate(registry: OperatorRecords) -> None:
    registry.approve(REQUEST, provenance("original"), require_preregistration=False)
    with_expiry(registry, "2026-01-01T00:00:00.000+00:00")
    assert registry.activate(SERIAL, THING) is None
    assert Attr.CERTIFICATE_NOT_AFTER not in item(registry)  # AWS IoT issued the new one: 2049-12-31

    with_expiry(registry, "2027-01-01T00:00:00.000+00:00")
    assert registry.begin_rotation(item(registry), certificate_id("new"), "job-1")
    assert item(registry)[Attr.CERTIFICATE_NOT_AFTER] == "2027-01-01T00:00:00.000+00:00"  # still current
    completed = registry.complete_rotation(item(registry))
    assert completed is not None
    assert Attr.CERTIFICATE_NOT_AFTER not in completed


def test_a_reprovisioning_drops_the_replaced_certificates_expiry(registry: OperatorRecords) -> None:
    registry.approve(REQUEST, provenance("original"), require_preregistration=False)
    assert registry.activate(SERIAL, THING) is None
    with_expiry(registry, "2027-01-01T00:00:00.000+00:00")
    registry.grant_reprovision(SERIAL, "main board replaced", "alice", in_hours(1))

    registry.approve(REQUEST, provenance("replacement"), require_preregistration=False)

    reprovisioned = item(registry)
    assert reprovisioned[Attr.CERTIFICATE_ID] == certificate_id("replacement")
    assert Attr.CERTIFICATE_NOT_AFTER not in reprovisioned  # AWS IoT issued the new one: 2049-12-31
