"""Certificate rotation: sign a device's certificate signing request with AWS IoT, and make the new
certificate the device's own only once the device has connected with it.

A topic rule on ``rotation/+/+`` invokes :func:`lambda_handler` with the device's JSON payload plus
``callerCertificateId`` (``principal()``: the certificate the message was published with), ``thingName``
and ``step`` (the topic's second and third levels). Steps (:class:`hook.rotation_contract.RotationStep`):

- ``csr`` ``{"csr", "jobId"}``, published with the serial's current certificate, for an open execution
  of a rotation job: the job's one attempt is reserved in the registry (:mod:`hook.rotation_attempts`; a
  later CSR of the job is ignored), AWS IoT issues a certificate from the CSR (inactive), the registry
  records it as the serial's pending certificate (:meth:`DeviceRecords.begin_rotation`), the device
  type's policy and the thing are attached to it, it is activated and sent back on ``certificate``.
  A passing AWS error before AWS IoT issued the certificate releases the job for Lambda's retry of the
  event; one after it ends the job's attempt (a retry would issue a second certificate).
- ``result`` ``{"jobId", "status", "reason"}``: ``SUCCEEDED`` must be published with the pending
  certificate, which proves the device connected with it; the registry makes it current
  (:meth:`DeviceRecords.complete_rotation`). ``FAILED``
  (from the current or the pending certificate) drops the pending certificate
  (:meth:`DeviceRecords.abandon_rotation`); the device keeps its old one. A failure before any CSR must be
  of an open execution, and spends the job's attempt.

Certificates leave the serial only through the registry: its stream's function
(:mod:`hook.certificate_retirement`) revokes and detaches the replaced or dropped ones.

Failure policy. The payload is device input and every field is checked; anything in doubt is refused
with a ``rejected`` message to the device (``{"reason": <RotationRejection>, "message"}``). Only a job's
attempt that fails (refused after its reservation, or reported failed) and an internal error count one
``CertificateRotationFailed`` plainly and once more per ``Reason`` (alarmed): once per serial and job, so
one device cannot keep the alarms firing. Refusals before that (malformed, no open execution, not the
current certificate) count ``RotationStepRefused`` per ``Reason`` only. A refusal is an answer, not an
error: the handler returns normally, so Lambda does not retry an asynchronous invocation that would be
refused again. AWS errors that a later attempt can fix (throttling, a service unavailable, a timeout),
still there after the clients' own retries, are raised instead: Lambda retries the event (twice, minutes
apart) and the device hears nothing until then; its job times out if the retries fail too. Once AWS IoT
has issued a job's certificate, such an error is the job's failed attempt instead (``InternalError``):
the job issues no second certificate. Any other
error is refused as ``InternalError``. A certificate issued for a request that then fails is never left
usable: before the registry holds it, it is revoked here; after, the rotation is abandoned in the
registry and the retirement function revokes it.

Steps ``certificate`` and ``rejected`` are this function's own messages (the rule's topic filter matches
them too); they are ignored without an answer, so no message of this function ever triggers another.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from hook import runtime
from hook.contract import (
    REASON_DIMENSION,
    SERVICE_DIMENSION,
    STACK_BASE_NAME_ENV,
    Attr,
    DeviceStatus,
    Metric,
    Service,
    device_type_resource_name,
    metrics_namespace_from_environment,
)
from hook.registry_decisions import cancellation_codes, reasons_of
from hook.registry_items import Item
from hook.registry_transitions import function_records
from hook.rotation_attempts import function_attempts, rotation_attempted
from hook.rotation_contract import RotationRejection, RotationStep, rotation_topic
from hook.rotation_preconditions import (
    already_rotated,
    require_active_thing,
    require_bound_key,
    require_job_in_progress,
    require_open_job,
)
from hook.rotation_requests import SUCCEEDED, RotationRefused, RotationRequest, parse_request

if TYPE_CHECKING:
    from mypy_boto3_iot.type_defs import CreateCertificateFromCsrResponseTypeDef

SERVICE: Final = Service.CERTIFICATE_ROTATION.value

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


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)  # the event carries a CSR
def lambda_handler(event: Any, context: Any) -> dict[str, str]:
    """Handle one rotation message; returns ``{"outcome": ...}``. Raises only AWS errors worth a retry."""
    thing: str | None = None
    try:
        request = parse_request(event, runtime.required_env(STACK_BASE_NAME_ENV))
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


def handle(request: RotationRequest) -> str:
    """Carry out a validated step; returns the outcome. Raises :class:`RotationRefused`."""
    item = function_records().get(request.serial_number)
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
    """Reserve the job's one attempt, then issue a certificate from the CSR, record it as pending, attach it
    and send it to the device. Refusals after the reservation are the job's attempt: counted once."""
    thing = request.thing_name
    require_active_thing(request, item)
    if item.get(Attr.CERTIFICATE_ID) != request.caller_certificate_id:
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE,
            "a CSR must be published with the device's current certificate",
            thing,
        )
    device_type = item.get(Attr.DEVICE_TYPE)
    if not device_type:
        raise RotationRefused(RotationRejection.INTERNAL_ERROR, "the registry item has no device type", thing)
    if rotation_attempted(item, request.job_id):
        return _repeated_csr()
    require_open_job(request)
    reserved = function_attempts().reserve(item, request.job_id)
    if reserved is None:
        if rotation_attempted(function_records().get(request.serial_number) or {}, request.job_id):
            return _repeated_csr()  # a CSR sent at the same moment reserved the job
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE, "the device's registry record changed meanwhile", thing
        )
    try:
        return _issue_reserved(request, reserved, device_type)
    except RotationRefused as refusal:
        raise RotationRefused(refusal.reason, refusal.message, refusal.thing, attempt=True) from refusal


def _repeated_csr() -> str:
    """One certificate per job: a repeated CSR (a redelivered event, a device retrying or looping, one sent
    at the same moment) gets no certificate and no answer, which the first CSR's answer would race."""
    logger.info("this job had its attempt already; repeated CSR ignored")
    return "duplicate-csr-ignored"


def _issue_reserved(request: RotationRequest, reserved: Item, device_type: str) -> str:
    """Issue the certificate of a reserved job, then deliver it. A passing AWS error gives the job back
    while AWS IoT has issued nothing, for Lambda's retry of the event; once it has, a retry would issue a
    second certificate for the job, so the error ends the job's attempt instead."""
    try:
        created = _certificate_from_csr(request, reserved)
    except Exception as error:
        if is_transient(error) and not function_attempts().release(reserved, request.job_id):
            logger.error("the job could not be released for a retry; it needs a new job")
        raise
    try:
        return _deliver(request, reserved, device_type, created)
    except Exception as error:
        if not is_transient(error):
            raise
        logger.warning("AWS error after the certificate was issued; the job needs a new one", exc_info=True)
        raise RotationRefused(
            RotationRejection.INTERNAL_ERROR,
            f"the new certificate could not be delivered ({_describe(error)}); the job needs a new one",
            request.thing_name,
        ) from error


def _certificate_from_csr(
    request: RotationRequest, reserved: Item
) -> CreateCertificateFromCsrResponseTypeDef:
    """AWS IoT's certificate (inactive) from the CSR of a reserved job, of the serial's registered key."""
    require_bound_key(request, reserved)
    try:
        created: CreateCertificateFromCsrResponseTypeDef = runtime.iot().create_certificate_from_csr(
            certificateSigningRequest=request.csr, setAsActive=False
        )
    except ClientError as error:
        if _code(error) == "InvalidRequestException":
            raise RotationRefused(
                RotationRejection.INVALID_CSR, "AWS IoT refused the CSR", request.thing_name
            ) from error
        raise
    return created


def _deliver(
    request: RotationRequest,
    reserved: Item,
    device_type: str,
    created: CreateCertificateFromCsrResponseTypeDef,
) -> str:
    """Record the issued certificate of a reserved job as pending, attach, activate and deliver it."""
    thing = request.thing_name
    iot = runtime.iot()
    certificate_id, arn = created["certificateId"], created["certificateArn"]
    logger.append_keys(newCertificateId=certificate_id)
    try:
        begun = function_records().begin_rotation(reserved, certificate_id, request.job_id)
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
    policy = device_type_resource_name(runtime.required_env(STACK_BASE_NAME_ENV), device_type)
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
        pending = {**reserved, Attr.PENDING_CERTIFICATE_ID: certificate_id}
        _abandon_quietly(pending, f"the new certificate could not be delivered: {_describe(error)}")
        raise
    logger.info("certificate issued from the device's CSR", extra={"jobId": request.job_id})
    return "certificate-issued"


def complete(request: RotationRequest, item: Item) -> str:
    """Make the pending certificate current: the device connected with it and says so with it."""
    thing = request.thing_name
    pending = item.get(Attr.PENDING_CERTIFICATE_ID)
    if pending is None and already_rotated(request, item):
        logger.info("rotation already completed; repeated result")
        return "already-rotated"
    if pending is None or request.caller_certificate_id != pending:
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE,
            "success must be reported with the new certificate of the rotation in progress",
            thing,
        )
    require_active_thing(request, item)
    require_job_in_progress(request, item)
    if function_records().complete_rotation(item) is None:
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
    job_id = None
    if pending is not None:
        require_job_in_progress(request, item)
    elif rotation_attempted(item, request.job_id):
        logger.info("this job's attempt has ended already; repeated failure ignored")
        return "duplicate-result-ignored"
    else:  # a failure before any CSR: the job's attempt, recorded once
        require_open_job(request)
        job_id = request.job_id
    reason = request.reason or "no reason given"
    if function_records().abandon_rotation(item, reason, job_id) is None:
        raise RotationRefused(
            RotationRejection.NOT_CURRENT_CERTIFICATE, "the device's registry record changed meanwhile", thing
        )
    logger.warning(
        "the device reported the rotation failed", extra={"jobId": request.job_id, "deviceReason": reason}
    )
    count_failure(RotationRejection.DEVICE_REPORTED_FAILURE)
    return "abandoned"


def refuse(refusal: RotationRefused) -> dict[str, str]:
    """Log and count a refusal and, when the event named a thing of this stack, tell the device. A job's
    attempt, or an internal error, counts as a failure (alarmed); any other refusal a device can repeat at
    will, so it counts as ``RotationStepRefused`` only."""
    logger.warning("rotation step refused", extra={"reason": refusal.reason.value, "detail": refusal.message})
    if refusal.attempt or refusal.reason is RotationRejection.INTERNAL_ERROR:
        count_failure(refusal.reason)
    else:
        _count_by_reason(Metric.ROTATION_STEP_REFUSED, refusal.reason)
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
    _count_by_reason(Metric.CERTIFICATE_ROTATION_FAILED, reason)


def _count_by_reason(metric: Metric, reason: RotationRejection) -> None:
    """One more ``metric`` under {service, ``Reason``}."""
    with single_metric(
        name=metric,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions={SERVICE_DIMENSION: SERVICE},
    ) as counted:
        counted.add_dimension(name=REASON_DIMENSION, value=reason.value)


def publish(thing: str, step: RotationStep, body: dict[str, str]) -> None:
    """Send ``body`` to the device on its ``rotation/<thing>/<step>`` topic, at least once (QoS 1)."""
    runtime.iot_data().publish(topic=rotation_topic(thing, step), qos=1, payload=json.dumps(body).encode())


def is_transient(error: BaseException) -> bool:
    """Whether a later attempt may succeed: throttling, a service error, a connection or read timeout."""
    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if not isinstance(error, ClientError):
        return False
    if _code(error) == "TransactionCanceledException":
        return bool(set(cancellation_codes(reasons_of(error))) & _TRANSIENT_CANCELLATION_CODES)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return _code(error) in _TRANSIENT_ERROR_CODES or status >= 500


def _require_still_pending(request: RotationRequest, certificate_id: str) -> None:
    """After the certificate was activated, the registry must still hold it as the serial's pending one;
    otherwise (revoked, decommissioned, another CSR) it is revoked here before the device ever gets it."""
    item = function_records().get(request.serial_number) or {}
    if (
        item.get(Attr.STATUS) == DeviceStatus.ACTIVE
        and item.get(Attr.PENDING_CERTIFICATE_ID) == certificate_id
    ):
        return
    runtime.iot().update_certificate(certificateId=certificate_id, newStatus="REVOKED")
    raise RotationRefused(
        RotationRejection.NOT_ACTIVE,
        f"the device became {item.get(Attr.STATUS)} while its new certificate was issued",
        request.thing_name,
    )


def _revoke_unrecorded(certificate_id: str) -> None:
    """Revoke a certificate issued for a request that failed before the registry held it: nothing else
    would. Best effort: it was created inactive and is attached to nothing."""
    try:
        runtime.iot().update_certificate(certificateId=certificate_id, newStatus="REVOKED")
    except Exception:
        logger.exception("an issued certificate could not be revoked; it stays INACTIVE and unattached")
    else:
        logger.info("issued certificate revoked: the rotation did not go ahead")


def _abandon_quietly(item: Item, reason: str) -> None:
    """Drop a pending certificate that could not be delivered (the retirement function revokes it)."""
    try:
        function_records().abandon_rotation(item, reason)
    except Exception:
        logger.exception("the undelivered certificate could not be dropped; the next rotation replaces it")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe(error: Exception) -> str:
    return _code(error) if isinstance(error, ClientError) else type(error).__name__
