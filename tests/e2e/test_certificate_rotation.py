"""Certificate rotation by job on the emulator: ``fleetctl rotate`` creates the job, the device simulator runs
it (a new key made on the device, a CSR, the new certificate, a connection with it, then success), and the
old certificate is revoked and detached only after that success. A device that fails keeps its old
certificate, its job execution ends FAILED with the reason, and re-running the rotation resumes.

Revocation is always checked on a new connection: the emulator keeps a live session after its certificate
is revoked, which AWS does not.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from hook.contract import Attr, DeviceStatus, device_type_resource_name
from hook.rotation_contract import RotationStep, rotation_topic
from local.devices.firmware import Identity, ProvisionedDevice, telemetry_topic
from local.devices.jobs_agent import Fault, JobStatus, RotationOutcome, rotate_by_job
from local.devices.key_pairs import KeyAlgorithm, new_key_and_csr
from local.devices.mqtt_session import Session
from local.scenario.deployment import eventually
from local.scenario.revocation_checks import expect_new_connection_refused, provision_and_connect
from local.scenario.sandbox import Sandbox
from program.settings import Settings
from tests.e2e.conftest import Fleetctl

pytestmark = pytest.mark.e2e

WAIT_SECONDS = 15.0
"""How long to wait for what runs asynchronously: the rotation rule's function, the table's stream."""


def _rotate(box: Sandbox, fleetctl: Fleetctl, device: ProvisionedDevice, *selection: str) -> str:
    """Create a rotation job with fleetctl for ``selection``; its job id."""
    created = fleetctl("rotate", "start", *selection, "--yes")
    [job] = created["jobs"]
    assert job["serials"] == [device.identity.serial_number]
    return str(job["jobId"])


def _registry_item(box: Sandbox, serial: str, done: Any) -> dict[str, str]:
    return eventually(
        lambda: box.inspector.registry(box.registry_table).get(serial, {}),
        done,
        WAIT_SECONDS,
        box.patience.interval,
    )


def _wait_until_retired(box: Sandbox, certificate_id: str) -> None:
    certificate = eventually(
        lambda: box.inspector.certificate(certificate_id),
        lambda found: (
            found is not None and (found.status, found.things, found.policies) == ("REVOKED", [], [])
        ),
        WAIT_SECONDS,
        box.patience.interval,
    )
    assert certificate is not None
    assert (certificate.status, certificate.things, certificate.policies) == ("REVOKED", [], [])


def _job_execution(box: Sandbox, job_id: str, thing: str) -> dict[str, Any]:
    described = box.inspector.client("iot").describe_job_execution(jobId=job_id, thingName=thing)
    return dict(described["execution"])


def _connects_and_publishes(box: Sandbox, device: ProvisionedDevice, outcome: RotationOutcome) -> None:
    with Session(box.target.broker, outcome.credentials, device.thing_name) as session:
        session.publish(
            telemetry_topic(device.identity.device_type, device.thing_name),
            {"rotated": True, "at": time.time()},
        )


def test_a_device_rotates_its_certificate_and_the_old_one_is_retired(
    box: Sandbox, settings: Settings, fleetctl: Fleetctl
) -> None:
    identity = Identity("TS-940001", "temperature-sensor", "AcmeIoT", "1.4.2", "rotation-lab")
    device = provision_and_connect(box, identity)

    job_id = _rotate(box, fleetctl, device, identity.serial_number)
    outcome = rotate_by_job(box.target.broker, device.thing_name, device.credentials, device.certificate_id)

    assert (outcome.status, outcome.reason) == (JobStatus.SUCCEEDED, "")
    assert outcome.certificate_id != device.certificate_id
    item = _registry_item(
        box, identity.serial_number, lambda found: found.get(Attr.CERTIFICATE_ID) == outcome.certificate_id
    )
    assert item[Attr.CERTIFICATE_ID] == outcome.certificate_id
    assert item[Attr.STATUS] == DeviceStatus.ACTIVE
    assert item[Attr.REPLACED_CERTIFICATE_IDS].split() == [device.certificate_id]
    assert item[Attr.ROTATED_AT] > item[Attr.ROTATION_REQUESTED_AT]
    assert Attr.PENDING_CERTIFICATE_ID not in item
    assert _job_execution(box, job_id, device.thing_name)["status"] == "SUCCEEDED"

    _wait_until_retired(box, device.certificate_id)
    expect_new_connection_refused(box, device)
    _connects_and_publishes(box, device, outcome)
    new_certificate = box.inspector.certificate(outcome.certificate_id)
    assert new_certificate is not None
    assert new_certificate.status == "ACTIVE"
    assert new_certificate.things == [device.thing_name]
    assert new_certificate.policies == [device_type_resource_name(settings.base_name, identity.device_type)]
    _, bindings = box.inspector.registry_contents(box.registry_table)
    assert bindings[outcome.certificate_id] == identity.serial_number


def test_a_failed_rotation_keeps_the_old_certificate_and_a_rerun_resumes(
    box: Sandbox, settings: Settings, fleetctl: Fleetctl
) -> None:
    identity = Identity("HS-940002", "humidity-sensor", "AcmeIoT", "1.0.0", "rotation-lab")
    device = provision_and_connect(box, identity)
    job_id = _rotate(box, fleetctl, device, identity.serial_number)

    failed = rotate_by_job(
        box.target.broker, device.thing_name, device.credentials, device.certificate_id, fault=Fault.WRONG_KEY
    )

    assert failed.status == JobStatus.FAILED
    assert failed.credentials == device.credentials
    execution = _job_execution(box, job_id, device.thing_name)
    assert execution["status"] == "FAILED"
    assert "did not connect" in execution["statusDetails"]["detailsMap"]["reason"]
    item = _registry_item(box, identity.serial_number, lambda found: Attr.ROTATION_FAILED_AT in found)
    assert item[Attr.CERTIFICATE_ID] == device.certificate_id
    assert Attr.PENDING_CERTIFICATE_ID not in item
    assert "did not connect" in item[Attr.ROTATION_FAILURE_REASON]
    _, bindings = box.inspector.registry_contents(box.registry_table)
    [abandoned] = [
        certificate
        for certificate, serial in bindings.items()
        if serial == identity.serial_number and certificate != device.certificate_id
    ]
    _wait_until_retired(box, abandoned)
    _connects_and_publishes(box, device, RotationOutcome(JobStatus.FAILED, job_id, device.credentials, ""))

    resumed = fleetctl("rotate", "resume", job_id, "--yes")
    [job] = resumed["jobs"]
    assert job["serials"] == [identity.serial_number]
    outcome = rotate_by_job(box.target.broker, device.thing_name, device.credentials, device.certificate_id)
    assert outcome.status == JobStatus.SUCCEEDED
    item = _registry_item(
        box, identity.serial_number, lambda found: found.get(Attr.CERTIFICATE_ID) == outcome.certificate_id
    )
    assert item[Attr.REPLACED_CERTIFICATE_IDS].split() == [device.certificate_id]
    assert Attr.ROTATION_FAILED_AT not in item
    _wait_until_retired(box, device.certificate_id)
    _connects_and_publishes(box, device, outcome)


def test_one_job_issues_one_certificate_whatever_the_device_sends(
    box: Sandbox, settings: Settings, fleetctl: Fleetctl
) -> None:
    """A device (or whoever holds its certificate) publishes two CSRs of one job back to back, then reports
    the rotation failed and sends a CSR again: the rule invokes the rotation function for each, and the
    job's reservation lets one certificate through. Whether the emulator runs the first two invocations side
    by side is its own choice (moto's test holds them together: tests/unit/test_certificate_rotation.py)."""
    identity = Identity("TS-940003", "temperature-sensor", "AcmeIoT", "1.4.2", "rotation-lab")
    device = provision_and_connect(box, identity)
    job_id = _rotate(box, fleetctl, device, identity.serial_number)
    iot = box.inspector.client("iot")

    def certificates() -> set[str]:
        return {each["certificateId"] for each in iot.list_certificates(pageSize=250)["certificates"]}

    def send_csr(session: Session) -> None:
        csr = new_key_and_csr(KeyAlgorithm.EC_P256, device.thing_name).csr_pem
        session.publish(rotation_topic(device.thing_name, RotationStep.CSR), {"csr": csr, "jobId": job_id})

    before = certificates()
    with Session(box.target.broker, device.credentials, device.thing_name) as session:
        send_csr(session)
        send_csr(session)
        item = _registry_item(box, identity.serial_number, lambda found: Attr.PENDING_CERTIFICATE_ID in found)
        time.sleep(WAIT_SECONDS / 3)  # the other invocation's time to issue a certificate, had it been let in
        assert certificates() - before == {item[Attr.PENDING_CERTIFICATE_ID]}

        session.publish(
            rotation_topic(device.thing_name, RotationStep.RESULT),
            {"jobId": job_id, "status": "FAILED", "reason": "looping"},
        )
        _registry_item(box, identity.serial_number, lambda found: Attr.PENDING_CERTIFICATE_ID not in found)
        send_csr(session)
        time.sleep(WAIT_SECONDS / 3)

    assert certificates() - before == {item[Attr.PENDING_CERTIFICATE_ID]}
    final = box.inspector.registry(box.registry_table)[identity.serial_number]
    assert (final[Attr.ATTEMPTED_ROTATION_JOB_IDS], final[Attr.ROTATION_FAILURE_REASON]) == (
        job_id,
        "looping",
    )
