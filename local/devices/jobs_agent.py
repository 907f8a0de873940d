"""A device's side of certificate rotation by job, as firmware built on the AWS IoT Device SDK v2 does it.

The device takes its next pending job; for a ``rotate-certificate`` job it makes a new key on the device (a
device with a secure element certifies the element's key again instead), sends a CSR on
``rotation/<thing>/csr`` with its current certificate and receives the new certificate. It then connects
with the new certificate and only then reports success: the job execution ``SUCCEEDED``, then
``rotation/<thing>/result``, which makes the registry switch certificates (and the old one is retired after
that). AWS IoT applies the new certificate's activation and attachments after a delay, so a refused first
connection is retried for about a minute (:data:`~local.devices.certificate_switch.NEW_CERTIFICATE_RETRY`).
Any failure leaves the device on its old certificate: it reconnects with it, reports the job execution
``FAILED`` with the reason, and publishes the failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from awscrt import mqtt_request_response
from awsiot import iotjobs

from hook.rotation_contract import ROTATION_JOB_OPERATION, RotationKeyAlgorithm, RotationStep, rotation_topic
from local.devices.certificate_switch import NEW_CERTIFICATE_RETRY, Backoff, switch_certificate
from local.devices.key_pairs import KeyAlgorithm, new_key_and_csr
from local.devices.mqtt_session import (
    TIMEOUT_SECONDS,
    Broker,
    Credentials,
    DeviceError,
    Rejected,
    Session,
    await_result,
)
from local.devices.secure_element import SecureElement

REASON_MAX_LENGTH: Final = 256
"""Longest failure reason the device reports."""
_KEY_ALGORITHMS: Final = {
    RotationKeyAlgorithm.EC_P256: KeyAlgorithm.EC_P256,
    RotationKeyAlgorithm.RSA_2048: KeyAlgorithm.RSA_2048,
}
"""The device's key for each ``keyAlgorithm`` a rotation job may ask for."""
_CLIENT_OPTIONS: Final = mqtt_request_response.ClientOptions(
    max_request_response_subscriptions=4,
    max_streaming_subscriptions=1,
    operation_timeout_in_seconds=int(TIMEOUT_SECONDS),
)


class Fault(StrEnum):
    """A failure a test makes the device meet on purpose, at the step it names."""

    WRONG_KEY = "wrong-key"
    """The device loses the new key: connecting with the new certificate fails."""


class JobStatus(StrEnum):
    """How a device's rotation ended (``NO_JOB``: it had no pending job)."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    NO_JOB = "NO_JOB"


@dataclass(frozen=True)
class RotationOutcome:
    """What the device did with its next job, and the credentials it works with afterwards."""

    status: JobStatus
    job_id: str | None
    credentials: Credentials
    certificate_id: str
    reason: str = ""
    previous: Credentials | None = None
    """After a rotation, the credentials before it: kept until the next rotation, for when the new
    certificate is refused because its confirmation never reached the registry and ``fleetctl rotate
    resume`` retired it (:func:`~local.devices.certificate_switch.connect_first_accepted`)."""


def rotate_by_job(
    broker: Broker,
    thing_name: str,
    credentials: Credentials,
    certificate_id: str,
    *,
    element: SecureElement | None = None,
    fault: Fault | None = None,
    new_certificate_retry: Backoff = NEW_CERTIFICATE_RETRY,
) -> RotationOutcome:
    """Run the device's next pending job if it is a rotation; the device's credentials afterwards. A device
    with a secure ``element`` sends a CSR of the element's key, whatever key the job asks for: the element
    holds one key pair for life. A refused first connection with the new certificate is retried with
    ``new_certificate_retry`` before the device falls back to its old one."""
    unchanged = RotationOutcome(JobStatus.NO_JOB, None, credentials, certificate_id)
    with Session(broker, credentials, thing_name) as session:
        jobs = iotjobs.IotJobsClientV2(session.client, _CLIENT_OPTIONS)
        execution = await_result(
            "StartNextPendingJobExecution",
            jobs.start_next_pending_job_execution(
                iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing_name)
            ),
        ).execution
        if execution is None or (execution.job_document or {}).get("operation") != ROTATION_JOB_OPERATION:
            return unchanged
        job = _JobExecution(thing_name, str(execution.job_id))
        try:
            algorithm = _KEY_ALGORITHMS[RotationKeyAlgorithm(execution.job_document.get("keyAlgorithm"))]
            private_key, csr = (
                element.key_and_csr(thing_name) if element else new_key_and_csr(algorithm, thing_name)
            )
            issued = _request_certificate(session, job, csr)
        except (DeviceError, ValueError) as failure:
            return job.fail(session, str(failure), unchanged)
    if fault is Fault.WRONG_KEY:
        private_key, _ = new_key_and_csr(algorithm, thing_name)
    rotated = Credentials(issued["certificatePem"], private_key)
    not_switched = switch_certificate(
        lambda: Session(broker, rotated, thing_name),
        lambda: Session(broker, credentials, thing_name),
        lambda session: job.report(session, JobStatus.SUCCEEDED),
        lambda session, reason: job.report(session, JobStatus.FAILED, reason),
        new_certificate_retry,
    )
    if not_switched is not None:
        return RotationOutcome(JobStatus.FAILED, job.job_id, credentials, certificate_id, not_switched)
    return RotationOutcome(
        JobStatus.SUCCEEDED, job.job_id, rotated, str(issued["certificateId"]), previous=credentials
    )


@dataclass(frozen=True)
class _JobExecution:
    """The device's execution of one rotation job."""

    thing_name: str
    job_id: str

    def report(self, session: Session, status: JobStatus, reason: str = "") -> None:
        """Update the job execution to ``status``, then tell the stack on ``rotation/<thing>/result``. A
        failure is told to the stack even when AWS IoT rejects the update because the execution has ended
        (it timed out, or an earlier ``SUCCEEDED`` went through unanswered): the stack then drops the new
        certificate the device no longer uses, and the device stays on its old one."""
        details = {"reason": reason[:REASON_MAX_LENGTH]} if reason else {}
        jobs = iotjobs.IotJobsClientV2(session.client, _CLIENT_OPTIONS)  # alive until it answers
        try:
            await_result(
                "UpdateJobExecution",
                jobs.update_job_execution(
                    iotjobs.UpdateJobExecutionRequest(
                        thing_name=self.thing_name,
                        job_id=self.job_id,
                        status=status.value,
                        status_details=details,
                    )
                ),
            )
        except Rejected:
            if status is not JobStatus.FAILED:
                raise
        self._tell_stack(session, status, details)

    def _tell_stack(self, session: Session, status: JobStatus, details: dict[str, str]) -> None:
        session.publish(
            rotation_topic(self.thing_name, RotationStep.RESULT),
            {"jobId": self.job_id, "status": status.value, **details},
        )

    def fail(self, session: Session, reason: str, unchanged: RotationOutcome) -> RotationOutcome:
        """Report the rotation ``FAILED`` with ``reason`` on the old certificate's ``session``."""
        self.report(session, JobStatus.FAILED, reason)
        return RotationOutcome(
            JobStatus.FAILED, self.job_id, unchanged.credentials, unchanged.certificate_id, reason
        )


def _request_certificate(session: Session, job: _JobExecution, csr: str) -> dict[str, Any]:
    """Send the CSR and wait for the new certificate; :class:`Rejected` when the stack refuses it."""
    client = mqtt_request_response.Client(session.client, _CLIENT_OPTIONS)
    accepted = rotation_topic(job.thing_name, RotationStep.CERTIFICATE)
    rejected = rotation_topic(job.thing_name, RotationStep.REJECTED)
    response = await_result(
        "RotateCertificate",
        client.make_request(
            mqtt_request_response.RequestOptions(
                subscription_topic_filters=[accepted, rejected],
                response_paths=[
                    mqtt_request_response.ResponsePath(accepted),
                    mqtt_request_response.ResponsePath(rejected),
                ],
                publish_topic=rotation_topic(job.thing_name, RotationStep.CSR),
                payload=json.dumps({"csr": csr, "jobId": job.job_id}).encode(),
            )
        ),
    )
    answer = json.loads(response.payload or b"{}")
    if response.topic == rejected or not isinstance(answer, dict):
        reason = answer.get("reason", "unknown") if isinstance(answer, dict) else "unreadable answer"
        raise Rejected("RotateCertificate", str(reason), str(answer))
    return answer
