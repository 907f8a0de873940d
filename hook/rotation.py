"""Certificate rotation: sign a device's certificate signing request with AWS IoT, and make the new
certificate the device's own only once the device has connected with it.

A topic rule on ``rotation/+/+`` invokes :func:`lambda_handler` with the device's JSON payload plus
``callerCertificateId`` (``principal()``: the certificate the message was published with), ``thingName``
and ``step`` (the topic's second and third levels). Steps (:class:`hook.contract.RotationStep`):

- ``csr`` ``{"csr", "jobId"}``, published with the serial's current certificate: AWS IoT issues a
  certificate from the CSR (inactive), the registry records it as the serial's pending certificate
  (:meth:`DeviceRecords.begin_rotation`), the device type's policy and the thing are attached to it, it is
  activated and sent back on ``certificate``.
- ``result`` ``{"jobId", "status", "reason"}``: ``SUCCEEDED`` must be published with the pending
  certificate, which proves the device connected with it; the registry makes it current
  (:meth:`DeviceRecords.complete_rotation`), with its expiry (:mod:`hook.certificate_expiry`). ``FAILED``
  (from the current or the pending certificate) drops the pending certificate
  (:meth:`DeviceRecords.abandon_rotation`); the device keeps its old one.

Certificates leave the serial only through the registry: its stream's function
(:mod:`hook.certificate_retirement`) revokes and detaches the replaced or dropped ones.

Failure policy. The payload is device input and every field is checked; anything in doubt is refused
with a ``rejected`` message to the device (``{"reason": <RotationRejection>, "message"}``) and one
``CertificateRotationFailed`` counted plainly and once more per ``Reason``. A refusal is an answer, not an
error: the handler returns normally, so Lambda does not retry an asynchronous invocation that would be
refused again. AWS errors that a later attempt can fix (throttling, a service unavailable, a timeout),
still there after the clients' own retries, are raised instead: Lambda retries the event (twice, minutes
apart) and the device hears nothing until then; its job times out if the retries fail too. Any other
error is refused as ``InternalError``. A certificate issued for a request that then fails is never left
usable: before the registry holds it, it is revoked here; after, the rotation is abandoned in the
registry and the retirement function revokes it.

Steps ``certificate`` and ``rejected`` are this function's own messages (the rule's topic filter matches
them too); they are ignored without an answer, so no message of this function ever triggers another.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import boto3
from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from hook.activation import CLIENT_CONFIG
from hook.certificate_expiry import certificate_not_after
from hook.contract import (
    IOT_DATA_ENDPOINT_ENV,
    NAME_CHARSET,
    REASON_DIMENSION,
    SERVICE_DIMENSION,
    STACK_BASE_NAME_ENV,
    THING_NAME_MAX_LENGTH,
    Attr,
    DeviceStatus,
    Metric,
    RotationRejection,
    RotationStep,
    Service,
    device_type_resource_name,
    metrics_namespace_from_environment,
    rotation_job_id_prefix,
    rotation_topic,
    serial_number_of,
)
from hook.registry import DeviceRecords, Item, registry_from_environment

SERVICE: Final = Service.CERTIFICATE_ROTATION.value

CSR_MAX_BYTES: Final = 4096
"""Longest accepted CSR: CreateCertificateFromCsr takes a ``certificateSigningRequest`` of 1 to 4096
characters (AWS IoT API reference, and botocore's model)."""
REASON_MAX_LENGTH: Final = 256
"""A device's failure reason is kept to this many characters (a job execution's statusDetails value is
at most 1024)."""
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
_OPEN_JOB_STATES = frozenset({"QUEUED", "IN_PROGRESS"})
_OWN_STEPS = frozenset({RotationStep.CERTIFICATE.value, RotationStep.REJECTED.value})

_TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalFailureException",
        "InternalFailure",
        "InternalServerError",
        "TransactionConflictException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""AWS error codes that a later attempt may not get (AWS IoT: ThrottlingException,
ServiceUnavailableException, InternalFailureException; DynamoDB: its throttling and server errors)."""
_TRANSIENT_CANCELLATION_CODES = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
"""Reasons of a cancelled DynamoDB transaction that a later attempt may not meet (TransactWriteItems,
CancellationReasons)."""

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=metrics_namespace_from_environment(), service=SERVICE)


class RotationRefused(Exception):
    """A step refused with a reason from the fixed set; ``thing`` is where the device hears it (``None``
    when the event names no thing of this stack, or is not a device's step)."""

    def __init__(self, reason: RotationRejection, message: str, thing: str | None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.thing = thing


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


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)  # the event carries a CSR
def lambda_handler(event: Any, context: Any) -> dict[str, str]:
    """Handle one rotation message; returns ``{"outcome": ...}``. Raises only AWS errors worth a retry."""
    thing: str | None = None
    try:
        request = parse_request(event, _base_name())
        if request is None:
            return {"outcome": "ignored"}
        thing = request.thing_name
        logger.append_keys(thingName=request.thing_name, serialNumber=request.serial_number)
        return {"outcome": handle(request)}
    except RotationRefused as refusal:
        return refuse(refusal)
    except Exception as error:
        if is_transient(error):
            logger.warning("AWS error worth a retry; raised for Lambda to retry the event", exc_info=True)
            raise
        logger.exception("rotation step failed")
        return refuse(RotationRefused(RotationRejection.INTERNAL_ERROR, "the rotation step failed", thing))


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
    if step is RotationStep.CSR:
        if not job_id.startswith(rotation_job_id_prefix(base_name)):
            raise RotationRefused(
                RotationRejection.NO_ROTATION_JOB,
                f"jobId must be a rotation job of this stack ({rotation_job_id_prefix(base_name)}...)",
                thing,
            )
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
    return RotationRequest(thing, serial, step, caller, job_id, status=status, reason=_printable(reason))


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


def handle(request: RotationRequest) -> str:
    """Carry out a validated step; returns the outcome. Raises :class:`RotationRefused`."""
    item = _registry().get(request.serial_number)
    if item is None:
        raise RotationRefused(
            RotationRejection.NOT_ACTIVE, "the serial is not in the registry", request.thing_name
        )
    if request.step is RotationStep.CSR:
        return issue(request, item)
    if request.status == SUCCEEDED:
        return complete(request, item)
    return abandon(request, item)


def issue(request: RotationRequest, item: Item) -> str:
    """Issue a certificate from the CSR, record it as pending, attach it and send it to the device."""
    thing = request.thing_name
    _require_active_thing(request, item)
    if item.get(Attr.CERTIFICATE_ID) != request.caller_certificate_id:
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE,
            "a CSR must be published with the device's current certificate",
            thing,
        )
    device_type = item.get(Attr.DEVICE_TYPE)
    if not device_type:
        raise RotationRefused(RotationRejection.INTERNAL_ERROR, "the registry item has no device type", thing)
    if item.get(Attr.PENDING_CERTIFICATE_ID) and item.get(Attr.ROTATION_JOB_ID) == request.job_id:
        # One certificate per job: a repeated CSR (a redelivered event, a device retrying) gets no second
        # certificate and no answer; the first one's answer is on its way, or the job ends and is resumed.
        logger.info("a certificate was already issued for this job; repeated CSR ignored")
        return "duplicate-csr-ignored"
    _require_bound_key(request, item)
    _require_open_job(request)
    iot = _iot()
    try:
        created = iot.create_certificate_from_csr(certificateSigningRequest=request.csr, setAsActive=False)
    except ClientError as error:
        if _code(error) == "InvalidRequestException":
            raise RotationRefused(RotationRejection.INVALID_CSR, "AWS IoT refused the CSR", thing) from error
        raise
    certificate_id, arn = created["certificateId"], created["certificateArn"]
    logger.append_keys(newCertificateId=certificate_id)
    try:
        begun = _registry().begin_rotation(item, certificate_id, request.job_id)
    except Exception:
        _revoke_unrecorded(certificate_id)
        raise
    if not begun:
        _revoke_unrecorded(certificate_id)
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE,
            "the device's registry record changed while its certificate was issued",
            thing,
        )
    policy = device_type_resource_name(_base_name(), device_type)
    try:
        iot.attach_policy(policyName=policy, target=arn)
        iot.attach_thing_principal(thingName=thing, principal=arn)
        iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")
        _require_still_pending(request, certificate_id)
        publish(
            thing,
            RotationStep.CERTIFICATE,
            {"certificateId": certificate_id, "certificatePem": created["certificatePem"]},
        )
    except Exception as error:
        pending = {**item, Attr.PENDING_CERTIFICATE_ID: certificate_id}
        _abandon_quietly(pending, f"the new certificate could not be delivered: {_describe(error)}")
        raise
    logger.info("certificate issued from the device's CSR", extra={"jobId": request.job_id})
    return "certificate-issued"


def complete(request: RotationRequest, item: Item) -> str:
    """Make the pending certificate current: the device connected with it and says so with it."""
    thing = request.thing_name
    pending = item.get(Attr.PENDING_CERTIFICATE_ID)
    if pending is None and _already_rotated(request, item):
        logger.info("rotation already completed; repeated result")
        return "already-rotated"
    if pending is None or request.caller_certificate_id != pending:
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE,
            "success must be reported with the new certificate of the rotation in progress",
            thing,
        )
    _require_active_thing(request, item)
    _require_job_in_progress(request, item)
    # Its expiry, recorded with it: one DescribeCertificate per rotation, here rather than at the CSR
    # step, where a certificate may still be abandoned or replaced.
    not_after = certificate_not_after(_iot(), pending)
    if _registry().complete_rotation(item, not_after) is None:
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE, "the device's registry record changed meanwhile", thing
        )
    logger.info("certificate rotated", extra={"jobId": request.job_id})
    metrics.add_metric(name=Metric.CERTIFICATE_ROTATED, unit=MetricUnit.Count, value=1)
    return "rotated"


def abandon(request: RotationRequest, item: Item) -> str:
    """Drop the pending certificate after the device reported the rotation failed; it keeps its old one."""
    thing = request.thing_name
    pending = item.get(Attr.PENDING_CERTIFICATE_ID)
    if request.caller_certificate_id not in {item.get(Attr.CERTIFICATE_ID), pending} - {None}:
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE,
            "a failure must be reported with the device's current or new certificate",
            thing,
        )
    if pending is not None:
        _require_job_in_progress(request, item)
    reason = request.reason or "no reason given"
    if _registry().abandon_rotation(item, reason) is None:
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE, "the device's registry record changed meanwhile", thing
        )
    logger.warning(
        "the device reported the rotation failed", extra={"jobId": request.job_id, "deviceReason": reason}
    )
    count_failure(RotationRejection.DEVICE_REPORTED_FAILURE)
    return "abandoned"


def refuse(refusal: RotationRefused) -> dict[str, str]:
    """Log and count a refusal and, when the event named a thing of this stack, tell the device."""
    logger.warning("rotation step refused", extra={"reason": refusal.reason.value, "detail": refusal.message})
    count_failure(refusal.reason)
    if refusal.thing is not None:
        try:
            publish(
                refusal.thing,
                RotationStep.REJECTED,
                {"reason": refusal.reason.value, "message": refusal.message},
            )
        except Exception:
            logger.exception("the rejection could not be published")
    return {"outcome": "rejected", "reason": refusal.reason.value}


def count_failure(reason: RotationRejection) -> None:
    """One more ``CertificateRotationFailed``, plainly and under {service, ``Reason``}; a CSR of another key
    than the registered one is also a ``KeyBindingRejected``."""
    metrics.add_metric(name=Metric.CERTIFICATE_ROTATION_FAILED, unit=MetricUnit.Count, value=1)
    if reason is RotationRejection.PUBLIC_KEY_MISMATCH:
        metrics.add_metric(name=Metric.KEY_BINDING_REJECTED, unit=MetricUnit.Count, value=1)
    with single_metric(
        name=Metric.CERTIFICATE_ROTATION_FAILED,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions={SERVICE_DIMENSION: SERVICE},
    ) as counted:
        counted.add_dimension(name=REASON_DIMENSION, value=reason.value)


def publish(thing: str, step: RotationStep, body: dict[str, str]) -> None:
    """Send ``body`` to the device on its ``rotation/<thing>/<step>`` topic, at least once (QoS 1)."""
    _data().publish(topic=rotation_topic(thing, step), qos=1, payload=json.dumps(body).encode())


def is_transient(error: BaseException) -> bool:
    """Whether a later attempt may succeed: throttling, a service error, a connection or read timeout."""
    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if not isinstance(error, ClientError):
        return False
    if _code(error) == "TransactionCanceledException":
        reasons = cast(Mapping[str, Any], error.response).get("CancellationReasons")
        codes = (
            {r.get("Code") for r in reasons if isinstance(r, dict)} if isinstance(reasons, list) else set()
        )
        return bool(codes & _TRANSIENT_CANCELLATION_CODES)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return _code(error) in _TRANSIENT_ERROR_CODES or status >= 500


def _require_active_thing(request: RotationRequest, item: Item) -> None:
    if item.get(Attr.STATUS) != DeviceStatus.ACTIVE or item.get(Attr.THING_NAME) != request.thing_name:
        raise RotationRefused(
            RotationRejection.NOT_ACTIVE,
            f"the device is {item.get(Attr.STATUS)}, not ACTIVE as this thing",
            request.thing_name,
        )


def _require_bound_key(request: RotationRequest, item: Item) -> None:
    """A serial with a registered key (its secure element's) gets a certificate only for that key: the CSR
    must carry it, re-certified. Checked here, before any AWS request; only such serials load the parser."""
    bound = item.get(Attr.PUBLIC_KEY_SHA256)
    if not bound:
        return
    from hook.public_keys import PublicKeyError, csr_key_sha256  # noqa: PLC0415 (key binding only)

    try:
        key = csr_key_sha256(request.csr)
    except PublicKeyError as error:
        raise RotationRefused(RotationRejection.INVALID_CSR, f"csr: {error}", request.thing_name) from None
    if key != bound:
        raise RotationRefused(
            RotationRejection.PUBLIC_KEY_MISMATCH,
            "the CSR's key is not the device's registered key: a rotation re-certifies the same key",
            request.thing_name,
        )


def _require_job_in_progress(request: RotationRequest, item: Item) -> None:
    """The result is about the rotation in progress: the job of its CSR."""
    if item.get(Attr.ROTATION_JOB_ID, request.job_id) != request.job_id:
        raise RotationRefused(
            RotationRejection.MALFORMED_REQUEST,
            f"job {request.job_id} is not the rotation in progress",
            request.thing_name,
        )


def _require_open_job(request: RotationRequest) -> None:
    """The CSR belongs to a job execution of this thing that has not ended: an operator asked for the
    rotation, and a device cannot have certificates issued at will (DescribeJobExecution, AWS IoT API
    reference; QUEUED and IN_PROGRESS are the states before an execution ends)."""
    try:
        execution = _iot().describe_job_execution(jobId=request.job_id, thingName=request.thing_name)
        status = execution["execution"]["status"]
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        status = "none"
    if status not in _OPEN_JOB_STATES:
        raise RotationRefused(
            RotationRejection.NO_ROTATION_JOB,
            f"job {request.job_id} has no open execution for this thing (status {status})",
            request.thing_name,
        )


def _require_still_pending(request: RotationRequest, certificate_id: str) -> None:
    """After the certificate was activated, the registry must still hold it as the serial's pending one;
    otherwise (revoked, decommissioned, another CSR) it is revoked here before the device ever gets it."""
    item = _registry().get(request.serial_number) or {}
    if (
        item.get(Attr.STATUS) == DeviceStatus.ACTIVE
        and item.get(Attr.PENDING_CERTIFICATE_ID) == certificate_id
    ):
        return
    _iot().update_certificate(certificateId=certificate_id, newStatus="REVOKED")
    raise RotationRefused(
        RotationRejection.NOT_ACTIVE,
        f"the device became {item.get(Attr.STATUS)} while its new certificate was issued",
        request.thing_name,
    )


def _already_rotated(request: RotationRequest, item: Item) -> bool:
    """A repeated ``SUCCEEDED`` of the rotation that already completed: the caller is now current."""
    return (
        item.get(Attr.CERTIFICATE_ID) == request.caller_certificate_id
        and item.get(Attr.ROTATION_JOB_ID) == request.job_id
        and Attr.ROTATED_AT in item
    )


def _revoke_unrecorded(certificate_id: str) -> None:
    """Revoke a certificate issued for a request that failed before the registry held it: nothing else
    would. Best effort: it was created inactive and is attached to nothing."""
    try:
        _iot().update_certificate(certificateId=certificate_id, newStatus="REVOKED")
    except Exception:
        logger.exception("an issued certificate could not be revoked; it stays INACTIVE and unattached")
    else:
        logger.info("issued certificate revoked: the rotation did not go ahead")


def _abandon_quietly(item: Item, reason: str) -> None:
    """Drop a pending certificate that could not be delivered (the retirement function revokes it)."""
    try:
        _registry().abandon_rotation(item, reason)
    except Exception:
        logger.exception("the undelivered certificate could not be dropped; the next rotation replaces it")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe(error: Exception) -> str:
    return _code(error) if isinstance(error, ClientError) else type(error).__name__


def _printable(text: str) -> str:
    """Device text as stored and logged: at most :data:`REASON_MAX_LENGTH` characters, control
    characters replaced."""
    return "".join(each if each.isprintable() else "?" for each in text[:REASON_MAX_LENGTH])


def _base_name() -> str:
    base = os.environ.get(STACK_BASE_NAME_ENV)
    if not base:
        raise RuntimeError(f"{STACK_BASE_NAME_ENV} is not set")
    return base


@functools.cache
def _registry() -> DeviceRecords:
    return registry_from_environment(CLIENT_CONFIG)


@functools.cache
def _iot() -> Any:
    return boto3.client("iot", config=CLIENT_CONFIG)


@functools.cache
def _data() -> Any:
    return boto3.client(
        "iot-data", endpoint_url=os.environ.get(IOT_DATA_ENDPOINT_ENV) or None, config=CLIENT_CONFIG
    )
