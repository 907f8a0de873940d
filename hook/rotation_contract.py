"""The contract of certificate rotation shared by the rotation function, the device simulator, ``fleetctl
rotate``, the device policies and the tests: topics, job documents and the reasons a step is refused."""

from enum import StrEnum
from typing import Final

ROTATION_TOPIC_ROOT: Final = "rotation"
"""Certificate rotation topics are ``rotation/<thing>/<step>``: the device publishes :class:`RotationStep`
``csr`` and ``result``; the rotation function answers on ``certificate`` or ``rejected``. Each device's
policy grants it only its own thing's topics."""


class RotationStep(StrEnum):
    """The last level of a rotation topic (:func:`rotation_topic`)."""

    CSR = "csr"
    """Device to cloud: ``{"csr": "<PEM>", "jobId": "..."}``, published with the current certificate."""
    RESULT = "result"
    """Device to cloud: ``{"jobId": "...", "status": "SUCCEEDED" | "FAILED", "reason": "..."}``; SUCCEEDED
    is published with the new certificate, after the job execution was reported SUCCEEDED."""
    CERTIFICATE = "certificate"
    """Cloud to device: ``{"certificateId": "...", "certificatePem": "..."}``, the new certificate."""
    REJECTED = "rejected"
    """Cloud to device: ``{"reason": "<RotationRejection>", "message": "..."}``."""


def rotation_topic(thing: str, step: RotationStep) -> str:
    """The topic of one rotation step of one thing."""
    return f"{ROTATION_TOPIC_ROOT}/{thing}/{step.value}"


class RotationKeyAlgorithm(StrEnum):
    """The key pair the device makes for its new certificate: a rotation job document's ``keyAlgorithm``."""

    EC_P256 = "EC-P256"
    RSA_2048 = "RSA-2048"


def rotation_job_id_prefix(base_name: str) -> str:
    """Every rotation job of a stack has an id starting ``<base>-rotate-`` (``fleetctl rotate`` names them);
    the rotation function answers only CSRs of such a job."""
    return f"{base_name}-rotate-"


ROTATION_JOB_OPERATION: Final = "rotate-certificate"
"""The ``operation`` of a rotation job's document: ``{"operation": "rotate-certificate",
"keyAlgorithm": "EC-P256" | "RSA-2048"}``."""


class RotationRejection(StrEnum):
    """Why the rotation function refused a step: the ``Reason`` dimension of ``CertificateRotationFailed`` and
    ``RotationStepRefused``."""

    MALFORMED_REQUEST = "MalformedRequest"
    NOT_CURRENT_CERTIFICATE = "NotCurrentCertificate"
    """The request was not published with the serial's current (``csr``) or pending (``result``)
    certificate."""
    NOT_ACTIVE = "NotActive"
    NO_ROTATION_JOB = "NoRotationJob"
    """The CSR names no open rotation job execution of this thing: certificates are issued on request of
    an operator's job only."""
    INVALID_CSR = "InvalidCsr"
    PUBLIC_KEY_MISMATCH = "PublicKeyMismatch"
    """The serial has a registered key and the CSR another one."""
    DEVICE_REPORTED_FAILURE = "DeviceReportedFailure"
    INTERNAL_ERROR = "InternalError"
