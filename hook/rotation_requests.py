"""The rotation function's input: a device's message on ``rotation/<thing>/<step>``, plus the rule's
``callerCertificateId`` (``principal()``), ``thingName`` and ``step``, validated field by field into a
:class:`RotationRequest`, or refused with a :class:`RotationRefused` naming the reason the device hears.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Final

from hook.contract import NAME_CHARSET, THING_NAME_MAX_LENGTH, serial_number_of
from hook.rotation_contract import RotationRejection, RotationStep, rotation_job_id_prefix

CSR_MAX_BYTES: Final = 4096
"""Longest accepted CSR: CreateCertificateFromCsr takes a ``certificateSigningRequest`` of 1 to 4096
characters (AWS IoT API reference, and botocore's model)."""
REASON_MAX_LENGTH: Final = 256
"""A device's failure reason is kept to this many characters (a job execution's statusDetails value is
at most 1024)."""
REASON_CHARACTERS: Final = "A-Z a-z 0-9, space and . , : _ - / ( )"
"""What a device's failure reason is stored with; any other character becomes ``?``. Enough for an error
message (``TLS handshake failed: timeout (30 s)``), nothing a spreadsheet, a shell or a log reader treats
specially (no ``= + @ " ' & ; < >``, no control characters)."""
_OUTSIDE_REASON_CHARACTERS = re.compile(r"[^A-Za-z0-9 .,:_/()-]")
SUCCEEDED: Final = "SUCCEEDED"
FAILED: Final = "FAILED"

_CERTIFICATE_ID = re.compile(r"[0-9a-f]{64}")
_JOB_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""AWS IoT job ids: 1 to 64 of ``[a-zA-Z0-9_-]`` (API reference, CreateJob ``jobId``)."""
_THING_NAME = re.compile(f"{NAME_CHARSET}{{1,{THING_NAME_MAX_LENGTH}}}")
_CSR_HEADERS = (
    ("-----BEGIN CERTIFICATE REQUEST-----", "-----END CERTIFICATE REQUEST-----"),
    ("-----BEGIN NEW CERTIFICATE REQUEST-----", "-----END NEW CERTIFICATE REQUEST-----"),
)
_DER_SEQUENCE: Final = 0x30
_RULE_FIELDS = frozenset({"callerCertificateId", "thingName", "step"})
_STEP_FIELDS = {
    RotationStep.CSR: frozenset({"csr", "jobId"}),
    RotationStep.RESULT: frozenset({"jobId", "status", "reason"}),
}
_OWN_STEPS = frozenset({RotationStep.CERTIFICATE.value, RotationStep.REJECTED.value})


class RotationRefused(Exception):
    """A step refused with a reason from the fixed set; ``thing`` is where the device hears it (``None``
    when the event names no thing of this stack, or is not a device's step); ``attempt`` when the refusal
    ends a rotation job's one attempt (:mod:`hook.rotation_attempts`), which happens once per serial and
    job."""

    def __init__(
        self, reason: RotationRejection, message: str, thing: str | None, *, attempt: bool = False
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.thing = thing
        self.attempt = attempt


@dataclass(frozen=True)
class RotationRequest:
    """A validated ``csr`` or ``result`` step."""

    thing_name: str
    serial_number: str
    step: RotationStep
    caller_certificate_id: str
    job_id: str
    csr: str = ""
    status: str = ""
    reason: str = ""


def parse_request(event: Any, base_name: str) -> RotationRequest | None:
    """The validated request of a rule event; ``None`` for this function's own messages. Raises
    :class:`RotationRefused`."""
    addressed = _addressee(event, base_name)
    if addressed is None:
        return None
    thing, serial, step = addressed

    def malformed(message: str) -> RotationRefused:
        return RotationRefused(RotationRejection.MALFORMED_REQUEST, message, thing)

    unknown = set(event) - _RULE_FIELDS - _STEP_FIELDS[step]
    if unknown:
        raise malformed(f"{len(unknown)} unexpected field(s); a {step} step has {sorted(_STEP_FIELDS[step])}")
    caller = event.get("callerCertificateId")
    if not (isinstance(caller, str) and _CERTIFICATE_ID.fullmatch(caller)):
        raise malformed("the message was not published with a certificate")
    job_id = event.get("jobId")
    if not (isinstance(job_id, str) and _JOB_ID.fullmatch(job_id)):
        raise malformed("jobId must be 1-64 characters of a-z, A-Z, 0-9, _ and -")
    if not job_id.startswith(rotation_job_id_prefix(base_name)):
        raise RotationRefused(
            RotationRejection.NO_ROTATION_JOB,
            f"jobId must be a rotation job of this stack ({rotation_job_id_prefix(base_name)}...)",
            thing,
        )
    if step is RotationStep.CSR:
        csr = event.get("csr")
        if not (isinstance(csr, str) and len(csr.encode()) <= CSR_MAX_BYTES):
            raise malformed(f"csr must be a string of at most {CSR_MAX_BYTES} bytes")
        if not is_csr_pem(csr):
            raise RotationRefused(
                RotationRejection.INVALID_CSR, "csr is not a PEM certificate request", thing
            )
        return RotationRequest(thing, serial, step, caller, job_id, csr=csr)
    status = event.get("status")
    if status not in (SUCCEEDED, FAILED):
        raise malformed(f"status must be {SUCCEEDED} or {FAILED}")
    reason = event.get("reason", "")
    if not isinstance(reason, str):
        raise malformed("reason must be a string")
    return RotationRequest(thing, serial, step, caller, job_id, status=status, reason=_narrowed(reason))


def _addressee(event: Any, base_name: str) -> tuple[str, str, RotationStep] | None:
    """The thing of this stack, its serial and the device's step that the event is for; ``None`` for this
    function's own messages. Refusals here name no thing: there is no device of this stack to answer."""
    if not isinstance(event, dict):
        raise RotationRefused(RotationRejection.MALFORMED_REQUEST, "the event is not a JSON object", None)
    step = event.get("step")
    if isinstance(step, str) and step in _OWN_STEPS:
        return None
    thing = event.get("thingName")
    if not (isinstance(thing, str) and _THING_NAME.fullmatch(thing)):
        raise RotationRefused(RotationRejection.MALFORMED_REQUEST, "thingName is not a thing name", None)
    serial = serial_number_of(base_name, thing)
    if serial is None:
        raise RotationRefused(RotationRejection.MALFORMED_REQUEST, "a thing of another stack", None)
    if not (isinstance(step, str) and step in _STEP_FIELDS):
        raise RotationRefused(RotationRejection.MALFORMED_REQUEST, "not a device's rotation step", None)
    return thing, serial, RotationStep(step)


def is_csr_pem(text: str) -> bool:
    """Whether ``text`` is one PEM-armoured certificate request whose body is base64 of a DER sequence.
    AWS IoT checks the rest (key type and size, signature) and refuses with InvalidRequestException."""
    stripped = text.strip()
    for header, footer in _CSR_HEADERS:
        if stripped.startswith(header) and stripped.endswith(footer):
            body = "".join(stripped[len(header) : -len(footer)].split())
            try:
                der = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                return False
            return len(der) > 0 and der[0] == _DER_SEQUENCE
    return False


def _narrowed(text: str) -> str:
    """A device's reason as stored and logged: its first :data:`REASON_MAX_LENGTH` characters, each outside
    :data:`REASON_CHARACTERS` replaced by ``?``. Replaced rather than refused: the failure is worth
    recording whatever the device's text, which a device cannot usefully correct."""
    return _OUTSIDE_REASON_CHARACTERS.sub("?", text[:REASON_MAX_LENGTH])
