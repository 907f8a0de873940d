"""The registry's decisions as pure functions: what a refused approval's stored items and cancellation
reasons mean, without DynamoDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest
from boto3.dynamodb.types import TypeSerializer

from hook.contract import Attr, DeviceStatus, Parameter, ProvisioningDenied, RejectionReason
from hook.registry_decisions import (
    COMPLETED_ROTATION_JOBS_KEPT,
    CONDITION_FAILED,
    PASSED,
    REPLACED_CERTIFICATES_KEPT,
    Provenance,
    approval_decision,
    cancelled_by_conditions,
    completed_rotation_jobs,
    decide_from_stored,
    replaced_certificates,
    reprovision_granted,
    reprovision_refusal,
    rotation_completed,
    stale_pending_rotation,
)
from hook.registry_items import Item, timestamp
from hook.rules import DeviceRequest
from tests.support import certificate_id

NOW = "2026-12-06T10:00:00.000+00:00"
REQUEST = DeviceRequest("TS-000123", "temperature-sensor", "AcmeIoT", "1.4.2", "Line-1")
PROVENANCE = Provenance(certificate_id("new"), certificate_id("claim"), "arn:aws:iot:template", "TS-000123")


def stored(status: DeviceStatus, **attributes: str) -> Item:
    return {
        Attr.SERIAL_NUMBER: REQUEST.serial_number,
        Attr.STATUS: status,
        Attr.DEVICE_TYPE: REQUEST.device_type,
        Attr.MANUFACTURER: REQUEST.manufacturer,
        **attributes,
    }


def refused(item: Item | None) -> dict[str, Any]:
    """A member's cancellation reason for a failed condition, with the stored item as DynamoDB sends it."""
    serializer = TypeSerializer()
    reason: dict[str, Any] = {"Code": CONDITION_FAILED}
    if item is not None:
        reason["Item"] = {name: serializer.serialize(value) for name, value in item.items()}
    return reason


CLOSED: Final = {"Code": PASSED}
"""The breaker member's reason when the claim certificate's breaker is closed."""


def denial(reasons: object, public_key: str | None = None) -> RejectionReason:
    with pytest.raises(ProvisioningDenied) as denied:
        approval_decision(reasons, REQUEST, PROVENANCE, public_key, NOW)
    return denied.value.reason


def test_a_retry_by_the_certificate_on_record_is_allowed_again() -> None:
    pending = stored(DeviceStatus.PENDING, **{Attr.CERTIFICATE_ID: PROVENANCE.certificate_id})

    assert (
        approval_decision([refused(pending), {"Code": PASSED}, CLOSED], REQUEST, PROVENANCE, None, NOW)
        is None
    )


@pytest.mark.parametrize("status", [DeviceStatus.PENDING, DeviceStatus.ACTIVE])
def test_a_second_certificate_for_a_provisioned_serial_is_a_clone(status: DeviceStatus) -> None:
    other = stored(status, **{Attr.CERTIFICATE_ID: certificate_id("original")})

    assert denial([refused(other), {"Code": PASSED}, CLOSED]) == RejectionReason.DUPLICATE_SERIAL


def test_an_unexpired_grant_of_the_same_type_and_maker_admits_a_new_certificate() -> None:
    granted = stored(
        DeviceStatus.ACTIVE,
        **{
            Attr.CERTIFICATE_ID: certificate_id("original"),
            Attr.REPROVISION_ALLOWED_UNTIL: "2026-12-06T11:00",
        },
    )

    assert (
        approval_decision([refused(granted), {"Code": PASSED}, CLOSED], REQUEST, PROVENANCE, None, NOW)
        == granted
    )
    assert reprovision_granted(granted, REQUEST, NOW)
    assert not reprovision_granted(granted, REQUEST, "2026-12-06T11:00:00.001+00:00")  # expired
    assert denial([refused({**granted, Attr.MANUFACTURER: "Other"}), {"Code": PASSED}, CLOSED]) == (
        RejectionReason.DUPLICATE_SERIAL
    )


@pytest.mark.parametrize(
    ("recorded", "allows_downgrade", "approved"),
    [
        ("1.4.2", False, True),  # the request's own version
        ("1.4.1", False, True),
        ("1.3.10", False, True),  # numbers, not text: 1.4.2 is newer than 1.3.10
        ("1.4.3", False, False),
        ("1.10.0", False, False),
        ("1.10.0", True, True),
        ("not-a-version", False, True),  # nothing to compare with
    ],
)
def test_a_grant_admits_an_older_firmware_than_the_recorded_one_only_when_it_says_so(
    recorded: str, allows_downgrade: bool, approved: bool
) -> None:
    granted = stored(
        DeviceStatus.ACTIVE,
        **{
            Attr.CERTIFICATE_ID: certificate_id("original"),
            Attr.FIRMWARE_VERSION: recorded,
            Attr.REPROVISION_ALLOWED_UNTIL: "2026-12-06T11:00",
            **({Attr.REPROVISION_ALLOWS_DOWNGRADE: "true"} if allows_downgrade else {}),
        },
    )
    reasons = [refused(granted), {"Code": PASSED}, CLOSED]

    if approved:
        assert approval_decision(reasons, REQUEST, PROVENANCE, None, NOW) == granted
        return
    with pytest.raises(ProvisioningDenied) as denied:
        approval_decision(reasons, REQUEST, PROVENANCE, None, NOW)
    assert (denied.value.reason, denied.value.parameter) == (
        RejectionReason.FIRMWARE_DOWNGRADE,
        Parameter.FIRMWARE_VERSION,
    )
    assert f"1.4.2 is older than {recorded}" in denied.value.detail
    assert "--allow-downgrade" in denied.value.detail


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (None, RejectionReason.NOT_PREREGISTERED),
        (stored(DeviceStatus.REVOKED), RejectionReason.DEVICE_REVOKED),
        (stored(DeviceStatus.DECOMMISSIONED), RejectionReason.DEVICE_DECOMMISSIONED),
        (
            stored(DeviceStatus.PREREGISTERED, **{Attr.DEVICE_TYPE: "gateway"}),
            RejectionReason.PREREGISTRATION_MISMATCH,
        ),
        ({**stored(DeviceStatus.ACTIVE), Attr.STATUS: "LOST"}, RejectionReason.UNKNOWN_REGISTRY_STATE),
    ],
)
def test_a_refused_serial_is_denied_with_the_reason_its_stored_item_gives(
    item: Item | None, reason: RejectionReason
) -> None:
    assert denial([refused(item), {"Code": PASSED}, CLOSED]) == reason


def test_a_certificate_bound_to_another_serial_is_denied_naming_that_serial() -> None:
    binding: Item = {Attr.CERTIFICATE_ID: PROVENANCE.certificate_id, Attr.DEVICE_SERIAL_NUMBER: "TS-999999"}

    with pytest.raises(ProvisioningDenied, match="'TS-999999'") as denied:
        approval_decision([{"Code": PASSED}, refused(binding), CLOSED], REQUEST, PROVENANCE, None, NOW)
    assert denied.value.reason == RejectionReason.CERTIFICATE_IN_USE


@pytest.mark.parametrize(
    "reasons",
    [
        None,
        [{"Code": CONDITION_FAILED}],
        [{"Code": CONDITION_FAILED}, {"Code": PASSED}],
        [{"Code": PASSED}, {"Code": PASSED}, CLOSED],
        [{"Code": "ThrottlingError"}, {"Code": PASSED}, CLOSED],
        [{"Code": "TransactionConflict"}, {"Code": CONDITION_FAILED}, CLOSED],
        [{"Code": PASSED}, {"Code": PASSED}, {"Code": "TransactionConflict"}],
        ["not a reason", {"Code": PASSED}, CLOSED],
    ],
)
def test_a_cancellation_that_says_nothing_about_the_serial_fails_closed(reasons: object) -> None:
    assert denial(reasons) == RejectionReason.REGISTRY_UNAVAILABLE


@pytest.mark.parametrize(
    ("bound", "reason"),
    [(None, RejectionReason.PUBLIC_KEY_NOT_REGISTERED), ("b" * 64, RejectionReason.PUBLIC_KEY_MISMATCH)],
)
def test_a_serial_that_binds_keys_admits_only_its_registered_key(
    bound: str | None, reason: RejectionReason
) -> None:
    key = {Attr.PUBLIC_KEY_SHA256: bound} if bound else {}
    preregistered = stored(DeviceStatus.PREREGISTERED, **key)

    with pytest.raises(ProvisioningDenied) as denied:
        decide_from_stored(preregistered, REQUEST, PROVENANCE, "a" * 64, NOW)
    assert denied.value.reason == reason


def test_a_refused_reprovisioning_says_whether_the_certificate_or_the_grant_was_taken() -> None:
    taken = reprovision_refusal([{"Code": PASSED}, {"Code": CONDITION_FAILED}])
    used = reprovision_refusal([{"Code": CONDITION_FAILED}, {"Code": PASSED}])

    assert taken.reason == RejectionReason.CERTIFICATE_IN_USE
    assert used.reason == RejectionReason.REPROVISION_GRANT_USED
    assert reprovision_refusal(None).reason == RejectionReason.REPROVISION_GRANT_USED


@pytest.mark.parametrize(
    ("reasons", "by_conditions"),
    [
        ([{"Code": CONDITION_FAILED}, {"Code": PASSED}], True),
        ([{"Code": CONDITION_FAILED}, {"Code": "TransactionConflict"}], False),
        ([{"Code": PASSED}, {"Code": PASSED}], False),
        (None, False),
    ],
)
def test_only_a_failed_condition_is_an_answer_about_the_serial(reasons: object, by_conditions: bool) -> None:
    assert cancelled_by_conditions(reasons) is by_conditions


def test_replaced_certificates_are_kept_newest_first_and_bounded() -> None:
    item: Item = {}
    for number in range(REPLACED_CERTIFICATES_KEPT + 5):
        item[Attr.REPLACED_CERTIFICATE_IDS] = replaced_certificates(item, f"c{number}")

    kept = item[Attr.REPLACED_CERTIFICATE_IDS].split()
    assert len(kept) == REPLACED_CERTIFICATES_KEPT
    assert kept[:2] == [f"c{REPLACED_CERTIFICATES_KEPT + 4}", f"c{REPLACED_CERTIFICATES_KEPT + 3}"]


def test_completed_rotation_jobs_are_kept_newest_first_once_and_bounded() -> None:
    item: Item = {}
    for number in range(COMPLETED_ROTATION_JOBS_KEPT + 5):
        item[Attr.ROTATION_JOB_ID] = f"job-{number}"
        item[Attr.COMPLETED_ROTATION_JOB_IDS] = completed_rotation_jobs(item)
    item[Attr.COMPLETED_ROTATION_JOB_IDS] = completed_rotation_jobs(item)  # a repeated completion

    kept = item[Attr.COMPLETED_ROTATION_JOB_IDS].split()
    assert len(kept) == COMPLETED_ROTATION_JOBS_KEPT
    assert kept[:2] == [f"job-{COMPLETED_ROTATION_JOBS_KEPT + 4}", f"job-{COMPLETED_ROTATION_JOBS_KEPT + 3}"]
    assert rotation_completed(item, f"job-{COMPLETED_ROTATION_JOBS_KEPT + 4}")
    assert not rotation_completed(item, "job-0")  # dropped from the list
    assert not rotation_completed({Attr.ROTATION_JOB_ID: "job-9", Attr.ROTATED_AT: "2026-01-01"}, "job-9")


AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=30)


@pytest.mark.parametrize(
    ("requested_minutes_ago", "job", "pending", "stale"),
    [
        (31, "job-1", certificate_id("new"), True),
        (29, "job-1", certificate_id("new"), False),  # the device may still confirm it
        (31, "job-2", certificate_id("new"), False),  # another job's certificate
        (31, "job-1", None, False),  # nothing pending
    ],
)
def test_a_pending_certificate_is_stale_only_past_its_own_jobs_in_progress_timeout(
    requested_minutes_ago: int, job: str, pending: str | None, stale: bool
) -> None:
    item: Item = {
        Attr.ROTATION_JOB_ID: job,
        Attr.ROTATION_REQUESTED_AT: timestamp(AT - timedelta(minutes=requested_minutes_ago)),
        **({Attr.PENDING_CERTIFICATE_ID: pending} if pending else {}),
    }

    assert stale_pending_rotation(item, "job-1", TIMEOUT, AT) is stale


def test_an_open_claim_breaker_denies_before_anything_the_registry_would_allow() -> None:
    tripped = refused(
        {"breakerState": "TRIPPED", "breakerChangedBy": "claim-breaker", "breakerReason": "130 > 100"}
    )
    retry = stored(DeviceStatus.PENDING, **{Attr.CERTIFICATE_ID: PROVENANCE.certificate_id})

    with pytest.raises(ProvisioningDenied, match=r"TRIPPED since .* by claim-breaker: 130 > 100") as denied:
        approval_decision([refused(retry), {"Code": PASSED}, tripped], REQUEST, PROVENANCE, None, NOW)
    assert denied.value.reason == RejectionReason.CLAIM_SUSPENDED
    assert reprovision_refusal([{"Code": PASSED}, {"Code": PASSED}, tripped]).reason == (
        RejectionReason.CLAIM_SUSPENDED
    )
