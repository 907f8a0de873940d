"""The sample fleet against the deployed stack: what approved and rejected devices leave behind."""

from __future__ import annotations

import pytest

from hook.contract import (
    PARAMETER_ATTRIBUTES,
    DeviceStatus,
    Parameter,
    device_type_resource_name,
    thing_name,
)
from local.device import Session, get_shadow
from local.fleet import Outcome
from local.manifest import APPROVED
from local.report import outcome_result
from local.sandbox import Sandbox
from program.settings import Settings

pytestmark = pytest.mark.e2e


def test_every_device_gets_the_outcome_its_manifest_entry_expects(fleet: list[Outcome]) -> None:
    assert [(o.device.identity.serial_number, outcome_result(o)) for o in fleet] == [
        (o.device.identity.serial_number, o.device.expect) for o in fleet
    ]
    assert {o.device.identity.device_type for o in fleet if o.approved} == {
        "temperature-sensor",
        "humidity-sensor",
        "pressure-sensor",
        "gateway",
    }


def test_approved_devices_are_active_in_the_registry(box: Sandbox, approved: list[Outcome]) -> None:
    registry = box.inspector.registry(box.registry_table)
    for outcome in approved:
        assert outcome.provisioned is not None
        identity = outcome.device.identity
        item = registry[identity.serial_number]
        assert item["status"] == DeviceStatus.ACTIVE
        assert item["thingName"] == outcome.provisioned.thing_name
        assert item["certificateId"] == outcome.provisioned.certificate_id
        assert item["clientId"] == f"{box.stack.outputs['claimClientIdPrefix']}{identity.serial_number}"
        assert item["claimCertificateId"] == box.stack.outputs["claimCertificateId"]
        for parameter, value in identity.parameters().items():
            assert item[PARAMETER_ATTRIBUTES[Parameter(parameter)]] == value


def test_approved_devices_have_things_with_their_type_groups_and_attributes(
    box: Sandbox, settings: Settings, approved: list[Outcome]
) -> None:
    for outcome in approved:
        assert outcome.provisioned is not None
        identity = outcome.device.identity
        name = thing_name(settings.base_name, identity.serial_number)
        assert outcome.provisioned.thing_name == name
        thing = box.inspector.thing(name)
        assert thing is not None
        per_type = device_type_resource_name(settings.base_name, identity.device_type)
        assert thing.type_name == per_type
        assert thing.groups == [per_type]
        assert thing.attributes == {
            PARAMETER_ATTRIBUTES[Parameter(parameter)].value: value
            for parameter, value in identity.parameters().items()
        }
        certificate = box.inspector.certificate(outcome.provisioned.certificate_id)
        assert certificate is not None
        assert thing.principals == [certificate.arn]


def test_approved_certificates_are_active_with_only_their_type_policy(
    box: Sandbox, settings: Settings, approved: list[Outcome]
) -> None:
    for outcome in approved:
        assert outcome.provisioned is not None
        certificate = box.inspector.certificate(outcome.provisioned.certificate_id)
        assert certificate is not None
        assert certificate.status == "ACTIVE"
        assert certificate.policies == [
            device_type_resource_name(settings.base_name, outcome.device.identity.device_type)
        ]
        assert certificate.things == [outcome.provisioned.thing_name]


def test_approved_devices_have_their_initial_shadow(
    box: Sandbox, settings: Settings, approved: list[Outcome]
) -> None:
    initial = settings.initial_shadows()
    for outcome in approved:
        assert outcome.provisioned is not None
        shadow = box.inspector.shadow(outcome.provisioned.thing_name)
        assert shadow is not None
        assert shadow["desired"] == initial[outcome.device.identity.device_type]


def test_a_device_reads_its_own_shadow_over_mqtt(
    box: Sandbox, settings: Settings, approved: list[Outcome]
) -> None:
    device = approved[0].provisioned
    assert device is not None
    with Session(box.target.broker, device.credentials, device.thing_name) as session:
        shadow = get_shadow(session, device.thing_name)
    assert shadow["desired"] == settings.initial_shadows()[device.identity.device_type]


def test_rejected_devices_leave_no_thing_attached_certificate_or_registry_record(
    box: Sandbox, settings: Settings, rejected: list[Outcome], approved: list[Outcome]
) -> None:
    registry = box.inspector.registry(box.registry_table)
    approved_serials = {outcome.device.identity.serial_number for outcome in approved}
    for outcome in rejected:
        serial = outcome.device.identity.serial_number
        assert outcome.rejected_certificate_id is not None
        certificate = box.inspector.certificate(outcome.rejected_certificate_id)
        assert certificate is not None
        assert certificate.status == "PENDING_ACTIVATION"
        assert certificate.policies == []
        assert certificate.things == []
        thing = box.inspector.thing(thing_name(settings.base_name, serial))
        if serial in approved_serials:  # a clone of an approved device: the original is untouched
            assert thing is not None
            assert certificate.arn not in thing.principals
            assert registry[serial]["certificateId"] != outcome.rejected_certificate_id
        else:
            assert thing is None
            assert serial not in registry


def test_the_reason_the_hook_logged_is_shown_for_each_rejected_device(rejected: list[Outcome]) -> None:
    assert rejected
    for outcome in rejected:
        assert outcome.device.expect != APPROVED
        assert outcome.error_code == "AccessDenied"
        reason, detail = outcome.reason.split(": ", 1)
        assert reason == outcome.device.expect
        assert detail
