"""fleetctl release on moto: undoing an approval that never became a thing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleetctl.errors import ExitCode
from fleetctl.operator_transitions import OperatorRecords
from hook.contract import Attr, DeviceStatus, ProvisioningDenied, RejectionReason
from hook.registry_decisions import Provenance
from hook.registry_items import timestamp
from hook.rules import parse_rules, validate_request
from tests.support import RULES, TABLE_NAME, TEMPLATE_ARN, Fleet, rows, valid_parameters

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")


def approve(fleet: Fleet, serial: str, certificate_id: str) -> None:
    """What the hook does when ``certificate_id`` asks for ``serial``."""
    request = validate_request(
        valid_parameters(SerialNumber=serial, FirmwareVersion="2.1.0"), parse_rules(RULES)
    )
    provenance = Provenance(certificate_id, fleet.claim_certificate_id, TEMPLATE_ARN, serial)
    OperatorRecords(fleet.dynamodb, TABLE_NAME).approve(request, provenance, require_preregistration=False)


def approve_only(fleet: Fleet, serial: str, *, approved_hours_ago: float) -> str:
    """What the hook does for a device that then never finishes provisioning; returns its certificate."""
    certificate = fleet.iot.create_keys_and_certificate(setAsActive=False)
    approve(fleet, serial, certificate["certificateId"])
    approved = timestamp(datetime.now(UTC) - timedelta(hours=approved_hours_ago))
    fleet.dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"serialNumber": {"S": serial}},
        UpdateExpression="SET approvedAt = :approved, updatedAt = :approved",
        ExpressionAttributeValues={":approved": {"S": approved}},
    )
    return str(certificate["certificateId"])


def test_release_deletes_a_stale_approval_so_the_device_can_provision_again(fleet: Fleet) -> None:
    stale_certificate = approve_only(fleet, "TS-000001", approved_hours_ago=2)

    report = fleet.run_json("release", "TS-000001")

    assert report["steps"][0] == {"action": "registry-deleted", "target": "TS-000001"}
    assert fleet.registry() == ({}, {stale_certificate: "TS-000001"})  # the binding stays
    assert fleet.certificate(stale_certificate)["status"] == "REVOKED"
    new_certificate = fleet.provision("TS-000001")  # a new certificate is approved again
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.ACTIVE
    assert fleet.registry()[1] == {stale_certificate: "TS-000001", new_certificate: "TS-000001"}


def test_a_released_certificate_is_never_approved_for_another_serial(fleet: Fleet) -> None:
    stale_certificate = approve_only(fleet, "TS-000001", approved_hours_ago=2)
    fleet.run_json("release", "TS-000001")

    with pytest.raises(ProvisioningDenied) as denied:
        approve(fleet, "TS-000002", stale_certificate)

    assert denied.value.reason is RejectionReason.CERTIFICATE_IN_USE
    assert fleet.registry() == ({}, {stale_certificate: "TS-000001"})


def test_release_returns_a_preregistered_serial_to_its_manifest_state(fleet: Fleet) -> None:
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001"))))
    fleet.dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"serialNumber": {"S": "TS-000001"}},
        UpdateExpression="SET createdAt = :imported",
        ExpressionAttributeValues={":imported": {"S": timestamp(datetime.now(UTC) - timedelta(hours=3))}},
    )
    approve_only(fleet, "TS-000001", approved_hours_ago=2)

    report = fleet.run_json("release", "TS-000001")

    assert report["steps"][0] == {"action": "registry-restored", "target": "TS-000001"}
    item = fleet.item("TS-000001")
    assert item[Attr.STATUS] == DeviceStatus.PREREGISTERED
    assert not {Attr.CERTIFICATE_ID, Attr.APPROVED_AT, Attr.CLIENT_ID} & set(item)
    assert item[Attr.DEVICE_TYPE] == "temperature-sensor"


def test_release_refuses_an_approval_that_may_still_complete_or_already_did(fleet: Fleet) -> None:
    approve_only(fleet, "TS-000001", approved_hours_ago=0.5)
    before = fleet.item("TS-000001")
    recent = fleet.run("release", "TS-000001")
    assert recent.exit_code == ExitCode.USAGE
    assert "approved less than an hour ago" in recent.stderr
    assert fleet.item("TS-000001") == before

    fleet.provision("TS-000002")
    provisioned = fleet.run("release", "TS-000002")
    assert provisioned.exit_code == ExitCode.USAGE
    assert "use revoke" in provisioned.stderr
