"""Certificate retirement: revoke and detach every certificate the registry stopped holding for a device.

The registry table's stream (``NEW_AND_OLD_IMAGES``) invokes :func:`lambda_handler` with batches of
changes. For each change of a device's item, the certificates that were the serial's current or pending
one before (``OldImage``: ``certificateId``, ``pendingCertificateId``) and are neither after
(``NewImage``; absent when the item was removed) are retired:

1. ``UpdateCertificate`` to ``REVOKED``: AWS IoT refuses it for new connections and disconnects whoever
   still uses it "within a few minutes" (botocore's IoT model, UpdateCertificate); skipped when it
   already is.
2. ``DetachThingPrincipal`` from the device's thing (``thingName``, else ``<base>_<serial>``).
3. ``DetachPolicy`` of the device type's policy (``<base>_<type>``).

That covers a completed rotation (the old current certificate), an abandoned or replaced one (the
pending certificate), a re-provisioning (the certificate the grant replaced) and a released approval.

An item that is ``REVOKED`` or ``DECOMMISSIONED`` holds no certificate, whatever its attributes still name:
its revocation retires both its current and its pending certificate (a rotation's certificate issued while
``fleetctl revoke`` ran would otherwise stay active and attached), and later changes of such an item retire
nothing more. Certificate binding items (``certificate#<id>``) are never retired from: a binding outlives
its certificate.

A current certificate replaced by another (a completed rotation, a re-provisioning) and not yet revoked is
retired only once its replacement is attached to the thing (``ListThingPrincipals``): the hook records a
re-provisioning's certificate before ``RegisterThing`` has run its template, which may still fail; AWS IoT
publishes no event for an attachment (its registry events cover things, thing types and groups); and it
applies one after a delay (``DetachThingPrincipal`` "might take several seconds" to propagate, botocore's
IoT model; terraform-provider-aws #48563 shows attachments missing right after an attach). The function
looks again after :data:`ATTACHMENT_RECHECK_DELAYS`; a replacement still not attached keeps the old
certificate (a device is never left without a working one): the record fails, counted as
``CertificateRetirementDeferred`` rather than as a failure, and Lambda retries it; when the retries run out
it lands in the on-failure queue (its alarm). A confirmed replacement also retires the newest certificates
of ``replacedCertificateIds`` still not revoked, so a certificate kept that way is retired by the serial's
next rotation or re-provisioning at the latest, or by its revocation or decommissioning, which retires every
certificate still attached to the thing (one more ``ListThingPrincipals``).

Each step is idempotent, and ``ResourceNotFoundException`` (no such certificate, thing or policy, or no
such attachment) counts as done. Any other error fails that record only: Powertools' batch processor
reports it in ``batchItemFailures`` (the event source mapping needs ``ReportBatchItemFailures``) and
Lambda retries from it. Every failed record is counted (``CertificateRetirementFailed``, alarmed on) and
logged with its error; a record that still fails when the mapping's retries run out is sent to its
on-failure queue (``components/certificate_lifecycle.py``).

The certificate's ARN is read with ``DescribeCertificate`` rather than built from the function's own
ARN: AWS says what the ARN is (partition, region, account and format are not assumed, also on an
emulator), and a certificate already deleted is known before any change. It costs one read per retired
certificate; a replacement adds one ``ListThingPrincipals`` (more when it must look again) and one read
per recently replaced certificate, once per rotation or re-provisioning; a revocation adds one
``ListThingPrincipals``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.base import FailureResponse
from aws_lambda_powertools.utilities.batch.exceptions import ExceptionInfo
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from botocore.exceptions import ClientError

from hook import runtime
from hook.contract import (
    REGISTRY_PARTITION_KEY,
    STACK_BASE_NAME_ENV,
    Attr,
    DeviceStatus,
    Metric,
    Service,
    device_type_resource_name,
    is_binding_key,
    metrics_namespace_from_environment,
    thing_name,
)

SERVICE: Final = Service.CERTIFICATE_RETIREMENT.value
HELD: Final = (Attr.CERTIFICATE_ID, Attr.PENDING_CERTIFICATE_ID)
"""The attributes of a device's item that hold its certificates."""
HOLDS_NONE: Final = frozenset({DeviceStatus.REVOKED.value, DeviceStatus.DECOMMISSIONED.value})
"""Statuses whose item holds no certificate, whatever :data:`HELD` attributes it keeps."""
_CERTIFICATE_ARN_PART: Final = ":cert/"
ATTACHMENT_RECHECK_DELAYS: Final = (0.5, 1.0)
"""Seconds waited before each new look for a replacement's attachment: at most 1.5 s per record, so a
batch of 25 such records stays inside the function's 60-second timeout."""


class ReplacementNotAttached(Exception):
    """The serial's new current certificate is not attached to its thing (yet): the one it replaced is
    kept, and the record is retried."""


logger = Logger(service=SERVICE)
metrics = Metrics(namespace=metrics_namespace_from_environment(), service=SERVICE)


class CountingBatchProcessor(BatchProcessor):
    """Powertools' batch processor that also counts and logs every record whose handling raised.

    ``failure_handler`` is the processor's documented extension point for failed records (Powertools for
    AWS Lambda (Python), Batch Processing, "Extending BatchProcessor")."""

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        if isinstance(exception[1], ReplacementNotAttached):
            metrics.add_metric(name=Metric.CERTIFICATE_RETIREMENT_DEFERRED, unit=MetricUnit.Count, value=1)
            logger.warning(
                "replacement not attached to the thing; the old certificate is kept and Lambda retries",
                extra={"serialNumber": _serial_of(record), "detail": str(exception[1])},
            )
        else:
            metrics.add_metric(name=Metric.CERTIFICATE_RETIREMENT_FAILED, unit=MetricUnit.Count, value=1)
            logger.error(
                "certificate retirement failed; Lambda retries the record",
                extra={"serialNumber": _serial_of(record)},
                exc_info=exception[1],
            )
        return super().failure_handler(record, exception)


def _serial_of(record: Any) -> object:
    """The registry key of a stream record, for the log; ``None`` when the record does not say."""
    try:
        return record.dynamodb.keys.get(REGISTRY_PARTITION_KEY)
    except Exception:  # a malformed record is logged without its key; logging it must not fail too
        return None


processor = CountingBatchProcessor(event_type=EventType.DynamoDBStreams)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Retire the certificates of every record of the batch; report the records that failed."""
    return process_partial_response(
        event=event, record_handler=retire_record, processor=processor, context=context
    )


def retire_record(record: DynamoDBRecord) -> list[str]:
    """Retire the certificates one registry change dropped; returns their ids. Raises on an AWS error."""
    change = record.dynamodb
    if change is None:
        return []
    key = change.keys.get(REGISTRY_PARTITION_KEY)
    if not isinstance(key, str) or is_binding_key(key):
        return []
    old, new = change.old_image, change.new_image
    dropped = dropped_certificates(old, new)
    if not dropped:
        return []
    base_name = runtime.required_env(STACK_BASE_NAME_ENV)
    thing = _text(old, Attr.THING_NAME) or thing_name(base_name, key)
    device_type = _text(old, Attr.DEVICE_TYPE)
    policy = device_type_resource_name(base_name, device_type) if device_type else None
    logger.append_keys(serialNumber=key, thingName=thing)
    # A global fleet's registry region retires every region's certificates, each in its device's region.
    iot = runtime.iot(_text(old, Attr.REGION) or None)
    retired, kept = _after_replacement(iot, thing, old, new, dropped)
    for certificate_id in retired:
        retire(iot, certificate_id, thing, policy)
    if kept:
        raise ReplacementNotAttached(f"{kept} is kept: its replacement is not attached to {thing}")
    return retired


def _after_replacement(
    iot: Any, thing: str, old: Mapping[str, Any], new: Mapping[str, Any], dropped: list[str]
) -> tuple[list[str], str | None]:
    """What to retire, and the certificate kept, if any. A change that replaced the current certificate
    retires the old one only when the replacement is attached (or the old one is revoked or gone already);
    else the old one is kept. A confirmed replacement and a change to ``REVOKED`` or ``DECOMMISSIONED`` also
    retire every other certificate still attached to the thing that the item no longer holds: one a failed
    replacement kept stays attached until then (read from the same ``ListThingPrincipals``; fleetctl revoke
    does the same)."""
    replacement = replacing_certificate(old, new)
    if not replacement and _text(new, Attr.STATUS) not in HOLDS_NONE:
        return dropped, None
    attached = attached_certificates(iot, thing)
    if replacement and replacement not in attached:
        current = _text(old, Attr.CERTIFICATE_ID)
        if not unrevoked(iot, [current]):
            return dropped, None
        attached = attached_after_waiting(iot, thing, replacement)
        if not attached:
            return [certificate_id for certificate_id in dropped if certificate_id != current], current
    held = held_certificates(new)
    return sorted({*dropped, *(each for each in attached if each not in held)}), None


def replacing_certificate(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The new current certificate when the change replaced the current one of a serial that holds
    certificates (a completed rotation, a re-provisioning); ``""`` for any other change."""
    before, after = _text(old, Attr.CERTIFICATE_ID), _text(new, Attr.CERTIFICATE_ID)
    if not (before and after and before != after) or not held_certificates(new):
        return ""
    return after


def attached_after_waiting(iot: Any, thing: str, certificate_id: str) -> list[str]:
    """The certificates attached to ``thing`` once ``certificate_id`` is among them, looked for after each
    of :data:`ATTACHMENT_RECHECK_DELAYS`; ``[]`` if it never is."""
    for delay in ATTACHMENT_RECHECK_DELAYS:
        time.sleep(delay)
        attached = attached_certificates(iot, thing)
        if certificate_id in attached:
            return attached
    return []


def attached_certificates(iot: Any, thing: str) -> list[str]:
    """The certificates ``ListThingPrincipals`` names for ``thing`` (principals are ARNs, a certificate's
    ending in ``cert/<id>``); a thing that does not exist has none."""
    try:
        return [
            principal.rsplit(_CERTIFICATE_ARN_PART, 1)[1]
            for principal in _thing_principals(iot, thing)
            if _CERTIFICATE_ARN_PART in principal
        ]
    except ClientError as error:
        if _not_found(error):
            return []
        raise


def _thing_principals(iot: Any, thing: str) -> Iterator[str]:
    for page in iot.get_paginator("list_thing_principals").paginate(thingName=thing):
        yield from page.get("principals", [])


def unrevoked(iot: Any, certificate_ids: list[str]) -> list[str]:
    """Those of the certificates that still exist and are not revoked."""
    found = []
    for certificate_id in certificate_ids:
        description = _description(iot, certificate_id)
        if description is not None and description.get("status") != "REVOKED":
            found.append(certificate_id)
    return found


def dropped_certificates(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The certificates ``old`` held (current or pending) that ``new`` holds in neither role, sorted. An
    image whose status is ``REVOKED`` or ``DECOMMISSIONED`` (:data:`HOLDS_NONE`) holds none."""
    return sorted(held_certificates(old) - held_certificates(new))


def held_certificates(image: Mapping[str, Any]) -> set[str]:
    """The certificates an item image holds: its current and pending one, none once it is revoked or
    decommissioned."""
    if _text(image, Attr.STATUS) in HOLDS_NONE:
        return set()
    return {_text(image, attribute) for attribute in HELD} - {""}


def retire(iot: Any, certificate_id: str, thing: str, policy: str | None) -> None:
    """Revoke the certificate, detach it from ``thing`` and from ``policy``; anything already gone is done."""
    description = _description(iot, certificate_id)
    if description is None:
        logger.info("certificate already deleted", extra={"certificateId": certificate_id})
        return
    arn = description["certificateArn"]
    if description.get("status") != "REVOKED":
        _done_if_absent(iot.update_certificate, certificateId=certificate_id, newStatus="REVOKED")
    _done_if_absent(iot.detach_thing_principal, thingName=thing, principal=arn)
    if policy is None:
        logger.warning("no device type on record: the certificate's policy is left attached")
    else:
        _done_if_absent(iot.detach_policy, policyName=policy, target=arn)
    logger.info("certificate retired", extra={"certificateId": certificate_id, "policy": policy})
    metrics.add_metric(name=Metric.CERTIFICATE_RETIRED, unit=MetricUnit.Count, value=1)


def _description(iot: Any, certificate_id: str) -> dict[str, Any] | None:
    """``DescribeCertificate``'s description; ``None`` when the certificate no longer exists."""
    try:
        description: dict[str, Any] = iot.describe_certificate(certificateId=certificate_id)[
            "certificateDescription"
        ]
    except ClientError as error:
        if _not_found(error):
            return None
        raise
    return description


def _done_if_absent(call: Callable[..., Any], **arguments: str) -> None:
    """Make the call; a missing certificate, thing, policy or attachment means there is nothing to do."""
    try:
        call(**arguments)
    except ClientError as error:
        if not _not_found(error):
            raise


def _not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def _text(image: Mapping[str, Any], attribute: str) -> str:
    value = image.get(attribute)
    return value if isinstance(value, str) else ""
