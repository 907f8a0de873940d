"""Key binding on the emulator: serials of the local stack's ``smart-lock`` type (``keyBinding: true``) are
pre-registered with the public key of each device's simulated secure element, through ``fleetctl preregister``
and a factory manifest.

- the genuine device, whose element signs its CSR, provisions, and its certificate carries the element's key;
- the claim certificate with any other key (a CSR of another key, ``CreateKeysAndCertificate``) is denied as
  ``PublicKeyMismatch`` and leaves the registry untouched: the serial's item as it was, no certificate
  binding, no thing;
- a clone of a bound serial (its own element) is denied, and the genuine device keeps working;
- a bound device rotates by re-certifying its element's key, and a rotation CSR with another key is refused;
- re-provisioning a bound serial under a grant needs the bound key.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fleetctl.operator_transitions import OperatorRecords
from hook.contract import (
    Attr,
    DeviceStatus,
    RejectionReason,
    certificate_binding_key,
    public_key_binding_key,
    thing_name,
)
from hook.public_keys import certificate_key_sha256
from hook.registry_items import timestamp
from hook.rotation_contract import RotationRejection
from local.devices.factory import KeyForm, write_manifest
from local.devices.firmware import Identity, ProvisionedDevice, telemetry_topic
from local.devices.fleet_runner import HOOK_DENIED
from local.devices.jobs_agent import JobStatus, rotate_by_job
from local.devices.key_pairs import AwsKeys, DeviceKeys, KeyAlgorithm, KeySource, key_algorithm
from local.devices.mqtt_session import Rejected, Session
from local.devices.secure_element import SecureElement
from local.scenario.deployment import eventually
from local.scenario.fleetctl_runner import FleetctlFailed
from local.scenario.sandbox import Sandbox
from program.settings import Settings
from tests.e2e.conftest import Fleetctl

pytestmark = pytest.mark.e2e

DEVICE_TYPE = "smart-lock"
WAIT_SECONDS = 15.0
"""How long to wait for what runs asynchronously: the rotation rule's function, the table's stream."""


def _identity(serial: str) -> Identity:
    return Identity(serial, DEVICE_TYPE, "AcmeIoT", "1.0.0", "binding-lab")


def _preregister(
    fleetctl: Fleetctl,
    tmp_path: Path,
    identity: Identity,
    element: SecureElement | None,
    form: KeyForm = KeyForm.DER_BASE64,
) -> None:
    """The factory's manifest of one device, imported by the operator with ``fleetctl preregister``."""
    manifest = tmp_path / f"{identity.serial_number}.csv"
    write_manifest(manifest, [(identity, element)], form)
    report = fleetctl("preregister", str(manifest))
    assert report == {"created": 1, "unchanged": 0, "conflicts": [], "skipped": []}


def _provision(box: Sandbox, identity: Identity, keys: KeySource) -> ProvisionedDevice:
    return box.target.provision(identity, keys)


def _denied(box: Sandbox, identity: Identity, keys: KeySource) -> tuple[RejectionReason, str]:
    """Provision with ``keys``, expecting the hook to deny it; the reason it logged and the certificate the
    device was issued."""
    with pytest.raises(Rejected) as rejected:
        _provision(box, identity, keys)
    assert (rejected.value.operation, rejected.value.error_code) == ("RegisterThing", HOOK_DENIED)
    certificate_id = rejected.value.certificate_id
    assert certificate_id is not None
    denial = box.hook_denial(identity.serial_number)
    assert denial is not None
    assert denial.detail
    return RejectionReason(denial.reason), certificate_id


def _raw_item(box: Sandbox, key: str) -> dict[str, Any] | None:
    """A registry item exactly as DynamoDB stores it (a consistent read), ``None`` when there is none."""
    answer = box.inspector.client("dynamodb").get_item(
        TableName=box.registry_table, Key={"serialNumber": {"S": key}}, ConsistentRead=True
    )
    item: dict[str, Any] | None = answer.get("Item")
    return item


def _items_naming(box: Sandbox, certificate_id: str) -> list[str]:
    """The keys of every registry item that holds ``certificate_id`` in any attribute."""
    pages = (
        box.inspector.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=box.registry_table, ConsistentRead=True)
    )
    return [
        item["serialNumber"]["S"]
        for page in pages
        for item in page["Items"]
        if any(certificate_id in str(value) for value in item.values())
    ]


def _works_as_its_thing(box: Sandbox, device: ProvisionedDevice) -> None:
    """The device connects with its certificate as its thing and publishes its telemetry."""
    with Session(box.target.broker, device.credentials, device.thing_name) as session:
        session.publish(
            telemetry_topic(device.identity.device_type, device.thing_name),
            {"serialNumber": device.identity.serial_number, "locked": True, "at": time.time()},
        )


def _provisioned_and_active(box: Sandbox, identity: Identity, element: SecureElement) -> ProvisionedDevice:
    device = _provision(box, identity, element)
    registry = box.wait_for_status([identity.serial_number], DeviceStatus.ACTIVE)
    assert registry[identity.serial_number][Attr.STATUS] == DeviceStatus.ACTIVE
    return device


def _bound_device(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path, serial: str
) -> tuple[Identity, SecureElement, ProvisionedDevice]:
    """A device with its own element, pre-registered with the element's key, provisioned and ACTIVE."""
    identity = _identity(serial)
    element = SecureElement()
    _preregister(fleetctl, tmp_path, identity, element)
    return identity, element, _provisioned_and_active(box, identity, element)


# --- the genuine device ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", list(KeyForm))
def test_the_genuine_device_provisions_and_its_certificate_carries_its_elements_key(
    box: Sandbox, settings: Settings, fleetctl: Fleetctl, tmp_path: Path, form: KeyForm
) -> None:
    serial = {KeyForm.PEM: "SL-960001", KeyForm.DER_BASE64: "SL-960002"}[form]
    identity = _identity(serial)
    element = SecureElement()
    _preregister(fleetctl, tmp_path, identity, element, form)
    registered = box.inspector.registry(box.registry_table)[serial]
    assert registered[Attr.STATUS] == DeviceStatus.PREREGISTERED
    assert registered[Attr.PUBLIC_KEY_SHA256] == element.public_key_sha256()
    binding = _raw_item(box, public_key_binding_key(element.public_key_sha256()))
    assert binding is not None
    assert binding[Attr.DEVICE_SERIAL_NUMBER] == {"S": serial}

    device = _provisioned_and_active(box, identity, element)

    assert device.thing_name == thing_name(settings.base_name, serial)
    assert element.carries_key(device.credentials.certificate_pem)
    assert certificate_key_sha256(device.credentials.certificate_pem) == element.public_key_sha256()
    item = box.inspector.registry(box.registry_table)[serial]
    assert item[Attr.CERTIFICATE_ID] == device.certificate_id
    assert item[Attr.PUBLIC_KEY_SHA256] == element.public_key_sha256()
    certificate = box.inspector.certificate(device.certificate_id)
    assert certificate is not None
    assert (certificate.status, certificate.things) == ("ACTIVE", [device.thing_name])
    _works_as_its_thing(box, device)


def test_a_device_whose_element_holds_a_p384_key_provisions_with_it(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path
) -> None:
    """CreateCertificateFromCsr takes EC P-384 (AWS IoT API reference); so do fleetctl and the hook."""
    identity = _identity("SL-960003")
    element = SecureElement(KeyAlgorithm.EC_P384)
    _preregister(fleetctl, tmp_path, identity, element)

    device = _provisioned_and_active(box, identity, element)

    assert element.carries_key(device.credentials.certificate_pem)
    assert key_algorithm(device.credentials.private_key) is KeyAlgorithm.EC_P384
    item = box.inspector.registry(box.registry_table)[identity.serial_number]
    assert item[Attr.PUBLIC_KEY_SHA256] == element.public_key_sha256()
    _works_as_its_thing(box, device)


# --- the claim certificate with any other key -----------------------------------------------------------

OTHER_KEYS: dict[str, tuple[str, KeySource]] = {
    "a CSR of a key made on the device": ("SL-961001", DeviceKeys(KeyAlgorithm.EC_P256)),
    "a CSR of an RSA key made on the device": ("SL-961002", DeviceKeys(KeyAlgorithm.RSA_2048)),
    "a CSR of another secure element's key": ("SL-961003", SecureElement()),
    "CreateKeysAndCertificate": ("SL-961004", AwsKeys()),
}


@pytest.mark.parametrize("case", list(OTHER_KEYS))
def test_the_claim_certificate_with_any_other_key_is_denied_and_leaves_the_registry_untouched(
    box: Sandbox, settings: Settings, fleetctl: Fleetctl, tmp_path: Path, case: str
) -> None:
    serial, other_keys = OTHER_KEYS[case]
    identity = _identity(serial)
    element = SecureElement()
    _preregister(fleetctl, tmp_path, identity, element)
    item_before = _raw_item(box, serial)
    key_binding_before = _raw_item(box, public_key_binding_key(element.public_key_sha256()))

    reason, certificate_id = _denied(box, identity, other_keys)

    assert reason == RejectionReason.PUBLIC_KEY_MISMATCH
    assert _raw_item(box, serial) == item_before
    assert _raw_item(box, public_key_binding_key(element.public_key_sha256())) == key_binding_before
    assert _raw_item(box, certificate_binding_key(certificate_id)) is None
    assert _items_naming(box, certificate_id) == []
    assert box.inspector.thing(thing_name(settings.base_name, serial)) is None
    certificate = box.inspector.certificate(certificate_id)
    assert certificate is not None
    assert (certificate.status, certificate.policies, certificate.things) == ("PENDING_ACTIVATION", [], [])

    device = _provisioned_and_active(box, identity, element)  # the genuine device, arriving after
    assert element.carries_key(device.credentials.certificate_pem)


def test_a_serial_no_manifest_listed_is_denied_for_a_type_that_binds_keys(
    box: Sandbox, settings: Settings
) -> None:
    identity = _identity("SL-962001")

    reason, certificate_id = _denied(box, identity, SecureElement())

    assert reason == RejectionReason.NOT_PREREGISTERED
    assert _raw_item(box, identity.serial_number) is None
    assert _items_naming(box, certificate_id) == []
    assert box.inspector.thing(thing_name(settings.base_name, identity.serial_number)) is None


def test_a_serial_preregistered_without_a_key_is_denied_for_a_type_that_binds_keys(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path
) -> None:
    identity = _identity("SL-962002")
    with pytest.raises(FleetctlFailed, match=r"row 2, column public_key: device type 'smart-lock' binds"):
        _preregister(fleetctl, tmp_path, identity, None)  # fleetctl refuses such a row
    assert _raw_item(box, identity.serial_number) is None
    # A serial pre-registered before its type bound keys: in the registry without one.
    records = OperatorRecords(box.inspector.client("dynamodb"), box.registry_table)
    assert records.preregister(identity, timestamp()) is None
    item_before = _raw_item(box, identity.serial_number)

    reason, certificate_id = _denied(box, identity, SecureElement())

    assert reason == RejectionReason.PUBLIC_KEY_NOT_REGISTERED
    assert _raw_item(box, identity.serial_number) == item_before
    assert _items_naming(box, certificate_id) == []


# --- a clone of a bound serial --------------------------------------------------------------------------


def test_a_clone_of_a_bound_serial_is_denied_and_the_genuine_device_keeps_working(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path
) -> None:
    identity, _, genuine = _bound_device(box, fleetctl, tmp_path, "SL-963001")
    item_before = _raw_item(box, identity.serial_number)

    reason, certificate_id = _denied(box, identity, SecureElement())  # the same serial, its own element

    assert reason == RejectionReason.PUBLIC_KEY_MISMATCH
    assert _raw_item(box, identity.serial_number) == item_before
    assert _items_naming(box, certificate_id) == []
    clone_certificate = box.inspector.certificate(certificate_id)
    assert clone_certificate is not None
    assert (clone_certificate.status, clone_certificate.things) == ("PENDING_ACTIVATION", [])
    thing = box.inspector.thing(genuine.thing_name)
    certificate = box.inspector.certificate(genuine.certificate_id)
    assert thing is not None
    assert certificate is not None
    assert thing.principals == [certificate.arn]
    assert certificate.status == "ACTIVE"
    _works_as_its_thing(box, genuine)


# --- the rest of the lifecycle --------------------------------------------------------------------------


def _rotation_job(fleetctl: Fleetctl, serial: str) -> str:
    [job] = fleetctl("rotate", "start", serial, "--yes")["jobs"]
    assert job["serials"] == [serial]
    return str(job["jobId"])


def _current_certificate(box: Sandbox, serial: str, certificate_id: str) -> dict[str, str]:
    return eventually(
        lambda: box.inspector.registry(box.registry_table).get(serial, {}),
        lambda found: found.get(Attr.CERTIFICATE_ID) == certificate_id,
        WAIT_SECONDS,
        box.patience.interval,
    )


def test_a_bound_device_rotates_with_its_elements_key_and_a_csr_of_another_key_is_refused(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path
) -> None:
    identity, element, device = _bound_device(box, fleetctl, tmp_path, "SL-964001")

    job_id = _rotation_job(fleetctl, identity.serial_number)
    refused = rotate_by_job(box.target.broker, device.thing_name, device.credentials, device.certificate_id)

    assert refused.status == JobStatus.FAILED
    assert RotationRejection.PUBLIC_KEY_MISMATCH in refused.reason
    assert refused.credentials == device.credentials
    execution = box.inspector.client("iot").describe_job_execution(jobId=job_id, thingName=device.thing_name)
    assert execution["execution"]["status"] == "FAILED"
    item = box.inspector.registry(box.registry_table)[identity.serial_number]
    assert item[Attr.CERTIFICATE_ID] == device.certificate_id
    assert Attr.PENDING_CERTIFICATE_ID not in item
    _works_as_its_thing(box, device)

    resumed = fleetctl("rotate", "resume", job_id, "--yes")
    assert [job["serials"] for job in resumed["jobs"]] == [[identity.serial_number]]
    rotated = rotate_by_job(
        box.target.broker, device.thing_name, device.credentials, device.certificate_id, element=element
    )

    assert rotated.status == JobStatus.SUCCEEDED
    assert rotated.certificate_id != device.certificate_id
    assert element.carries_key(rotated.credentials.certificate_pem)
    item = _current_certificate(box, identity.serial_number, rotated.certificate_id)
    assert item[Attr.CERTIFICATE_ID] == rotated.certificate_id
    assert item[Attr.PUBLIC_KEY_SHA256] == element.public_key_sha256()
    with Session(box.target.broker, rotated.credentials, device.thing_name):
        pass  # the re-certified element key connects as the same thing


def test_reprovisioning_a_bound_serial_under_a_grant_needs_the_bound_key(
    box: Sandbox, fleetctl: Fleetctl, tmp_path: Path
) -> None:
    identity, element, device = _bound_device(box, fleetctl, tmp_path, "SL-965001")
    fleetctl("reprovision", identity.serial_number, "--reason", "RMA-7731: factory reset")

    reason, certificate_id = _denied(box, identity, DeviceKeys(KeyAlgorithm.EC_P256))
    assert reason == RejectionReason.PUBLIC_KEY_MISMATCH
    assert _items_naming(box, certificate_id) == []

    again = _provision(box, identity, element)  # the same element after the reset

    assert again.thing_name == device.thing_name
    assert again.certificate_id != device.certificate_id
    assert element.carries_key(again.credentials.certificate_pem)
    item = _current_certificate(box, identity.serial_number, again.certificate_id)
    assert item[Attr.REPLACED_CERTIFICATE_IDS].split() == [device.certificate_id]
    assert Attr.REPROVISION_ALLOWED_UNTIL not in item
    _works_as_its_thing(box, again)
