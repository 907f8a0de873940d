"""The pre-provisioning hook: AWS IoT calls it on every RegisterThing and provisions only on approval.

It fails closed: a malformed event, an unreadable rule set, a registry error or any bug denies the
request with a logged reason, and no exception ever leaves :func:`lambda_handler`.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from hook import runtime
from hook.contract import (
    CLAIM_CERTIFICATE_DIMENSION,
    KEY_BINDING_REJECTIONS,
    REASON_DIMENSION,
    RULES_FILE_ENV,
    RULES_FILE_NAME,
    SERVICE_DIMENSION,
    VENDOR_CHAIN_PARAMETER,
    Metric,
    Parameter,
    ProvisioningDenied,
    RejectionReason,
    Service,
    metrics_namespace_from_environment,
)
from hook.registry_decisions import Attestation, Provenance
from hook.registry_transitions import DeviceRecords, registry_from_environment
from hook.rules import DeviceRequest, RulesError, RuleSet, load_rules, validate_request
from hook.vendor_rules import ZeroTouchRule

SERVICE: Final = Service.HOOK.value

_CERTIFICATE_ID = re.compile(r"[0-9a-f]{64}")
_CLIENT_ID_MAX_LENGTH: Final = 128
_ARN_MAX_LENGTH: Final = 2048
_TEMPLATE_ARN = re.compile(r"arn:[a-z-]+:iot:[a-z]{2}[a-z0-9-]*:[^:]*:.+")
"""``arn:<partition>:iot:<region>:<account>:provisioningtemplate/<name>``: the region is where the device's
thing and certificate are made, recorded as its ``provisionedRegion``."""
_LOGGED_VALUE_MAX_LENGTH: Final = 64

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=metrics_namespace_from_environment(), service=SERVICE)
_counts_by_dimension = EphemeralMetrics(
    namespace=metrics.namespace, default_dimensions={SERVICE_DIMENSION: SERVICE}
)
"""Counts under a second dimension (:func:`_count_by`), apart from the invocation's ``metrics``
(Powertools docs, Metrics, "Metrics isolation"): made once per cold start and reused, where
``single_metric`` makes a new one for every count."""


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer AWS IoT with ``{"allowProvisioning": bool, "parameterOverrides": {...}}``; never raise."""
    try:
        answer: dict[str, Any] = _decorated_handler(event, context)
        return answer
    except Exception as error:
        with contextlib.suppress(Exception):  # reporting must not turn a denial into a crash
            logger.exception("hook failed outside the decision")
            _deny(RejectionReason.INTERNAL_ERROR, f"unexpected {type(error).__name__} outside the decision")
            metrics.flush_metrics()
        return _answer(allow=False)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)  # the event carries the certificate PEM
def _decorated_handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        overrides, claim_certificate_id = _decide(event)
    except ProvisioningDenied as denial:
        return _deny(denial.reason, denial.detail)
    except Exception as error:
        logger.exception("unexpected error while deciding")
        return _deny(RejectionReason.INTERNAL_ERROR, f"unexpected {type(error).__name__}")
    logger.info("provisioning approved", extra={"decision": "APPROVED"})
    metrics.add_metric(name=Metric.PROVISIONING_APPROVED, unit=MetricUnit.Count, value=1)
    _count_approval_by_claim_certificate(claim_certificate_id)
    return _answer(allow=True, overrides=overrides)


def _count_approval_by_claim_certificate(claim_certificate_id: str) -> None:
    """One more ``ProvisioningApproved``, per claim certificate: what each claim-abuse alarm counts per hour.

    The id is the one AWS IoT puts in the event, validated as 64 hex digits by :func:`_provenance` before
    any approval: the dimension's values are certificate ids, never device input.
    """
    _count_by(Metric.PROVISIONING_APPROVED, CLAIM_CERTIFICATE_DIMENSION, claim_certificate_id)


def _count_by(metric: Metric, dimension: str, value: str) -> None:
    """One more ``metric`` under the dimension set {service, ``dimension``}, beside its service-wide count:
    an EMF document of its own, printed at once."""
    try:
        _counts_by_dimension.add_dimension(name=dimension, value=value)
        _counts_by_dimension.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        _counts_by_dimension.flush_metrics()
    finally:
        # flush_metrics clears them only once printed (not when POWERTOOLS_METRICS_DISABLED is set, nor on
        # an error): the next count starts from the service dimension alone whatever happened.
        _counts_by_dimension.clear_metrics()


def _decide(event: Any) -> tuple[dict[str, str], str]:
    """The parameter overrides of an approved request and the claim certificate it came through."""
    if not isinstance(event, dict):
        raise ProvisioningDenied(
            RejectionReason.MALFORMED_EVENT, f"event must be a JSON object, got {type(event).__name__}"
        )
    parameters = event.get("parameters")
    _log_claimed_identity(parameters)
    rules = _rules()
    if isinstance(rules, RulesError):
        raise ProvisioningDenied(RejectionReason.RULES_UNAVAILABLE, str(rules))
    request = validate_request(parameters, rules)
    logger.append_keys(serialNumber=request.serial_number, deviceType=request.device_type)
    provenance = _provenance(event)
    rule = rules.device_types[request.device_type]
    _registry().approve(
        request,
        provenance,
        require_preregistration=rules.require_preregistration,
        key_binding=rule.key_binding,
        attestation=_attestation(parameters, rule.zero_touch, request, provenance),
    )
    return request.parameters(), provenance.claim_certificate_id


def _attestation(
    parameters: Any, rule: ZeroTouchRule | None, request: DeviceRequest, provenance: Provenance
) -> Attestation | None:
    """A zero-touch type's verified vendor chain (``parameters`` were validated as an object); imports
    :mod:`hook.vendor_chain` for such types only."""
    if rule is None:
        return None
    from hook.vendor_chain import attest  # noqa: PLC0415 (zero-touch types only)

    return attest(parameters.get(VENDOR_CHAIN_PARAMETER), rule, request, provenance)


def _deny(reason: RejectionReason, detail: str) -> dict[str, Any]:
    logger.warning(
        "provisioning denied", extra={"decision": "DENIED", "reason": reason.value, "detail": detail}
    )
    metrics.add_metric(name=Metric.PROVISIONING_REJECTED, unit=MetricUnit.Count, value=1)
    _count_by(Metric.PROVISIONING_REJECTED, REASON_DIMENSION, reason.value)
    if reason in KEY_BINDING_REJECTIONS:
        metrics.add_metric(name=Metric.KEY_BINDING_REJECTED, unit=MetricUnit.Count, value=1)
    return _answer(allow=False)


def _answer(*, allow: bool, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    return {"allowProvisioning": allow, "parameterOverrides": overrides or {}}


def _provenance(event: dict[str, Any]) -> Provenance:
    certificate_id = event.get("certificateId")
    claim_certificate_id = event.get("claimCertificateId")
    template_arn = event.get("templateArn")
    client_id = event.get("clientId")
    certificate_pem = event.get("certificatePem")
    for field, value in (("certificateId", certificate_id), ("claimCertificateId", claim_certificate_id)):
        if not (isinstance(value, str) and _CERTIFICATE_ID.fullmatch(value)):
            raise ProvisioningDenied(
                RejectionReason.MALFORMED_EVENT, f"{field} must be 64 lowercase hex digits"
            )
    if not (
        isinstance(template_arn, str)
        and _TEMPLATE_ARN.fullmatch(template_arn)
        and len(template_arn) <= _ARN_MAX_LENGTH
    ):
        raise ProvisioningDenied(
            RejectionReason.MALFORMED_EVENT, "templateArn must be an AWS IoT ARN with a region"
        )
    if not (isinstance(client_id, str) and 0 < len(client_id) <= _CLIENT_ID_MAX_LENGTH):
        raise ProvisioningDenied(
            RejectionReason.MALFORMED_EVENT,
            f"clientId must be a string of 1-{_CLIENT_ID_MAX_LENGTH} characters",
        )
    return Provenance(
        certificate_id=str(certificate_id),
        claim_certificate_id=str(claim_certificate_id),
        template_arn=template_arn,
        client_id=client_id,
        certificate_pem=certificate_pem if isinstance(certificate_pem, str) else None,
    )


def _log_claimed_identity(parameters: Any) -> None:
    """Put the claimed serial and type on every log line, shortened and escaped: they are untrusted."""
    if isinstance(parameters, dict):
        logger.append_keys(
            serialNumber=_printable(parameters.get(Parameter.SERIAL_NUMBER)),
            deviceType=_printable(parameters.get(Parameter.DEVICE_TYPE)),
        )


def _printable(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value[:_LOGGED_VALUE_MAX_LENGTH].encode("ascii", "backslashreplace").decode("ascii")


@runtime.once
def _rules() -> RuleSet | RulesError:
    """The rule set, read once per cold start; an unusable file becomes a deny-everything state."""
    try:
        return load_rules(runtime.packaged_file(RULES_FILE_ENV, RULES_FILE_NAME))
    except RulesError as error:
        logger.error("rules unavailable: every request will be denied", extra={"error": str(error)})
        return error


@runtime.once
def _registry() -> DeviceRecords:
    return registry_from_environment(runtime.HOOK_CLIENT_CONFIG)
