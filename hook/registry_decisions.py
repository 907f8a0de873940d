"""Decisions drawn from what the registry returned: a stored item, or a cancelled transaction's reasons.

Pure functions of their arguments (the time is passed in), so each rule is tested without DynamoDB. A
conditional write asks for the stored item when refused (``ReturnValuesOnConditionCheckFailure=ALL_OLD``),
and a cancelled ``TransactWriteItems`` gives one reason per member, in order, each with that member's stored
item when its condition failed (DynamoDB API reference, TransactWriteItems, ``CancellationReasons``): the
approval is decided from them without a second request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import BotoCoreError, ClientError

from hook.claim_breaker import suspension
from hook.contract import Attr, DeviceStatus, Parameter, ProvisioningDenied, RejectionReason
from hook.registry_items import Item, string_attributes

if TYPE_CHECKING:
    from hook.rules import DeviceRequest

Reason = Mapping[str, Any]
"""One member's cancellation reason: ``Code`` (``None`` when its condition held), and ``Item`` when
refused."""

DENIED_STATES: Final = {
    DeviceStatus.REVOKED: RejectionReason.DEVICE_REVOKED,
    DeviceStatus.DECOMMISSIONED: RejectionReason.DEVICE_DECOMMISSIONED,
}
PROVISIONED_STATES: Final = frozenset({DeviceStatus.PENDING, DeviceStatus.ACTIVE})
BOUND_STATES: Final = frozenset({DeviceStatus.PREREGISTERED, *PROVISIONED_STATES})
"""States in which a serial's registered key decides which certificate it may have."""

REPLACED_CERTIFICATES_KEPT: Final = 20
"""How many replaced certificates an item lists; older ones were retired long since."""
COMPLETED_ROTATION_JOBS_KEPT: Final = 20
"""How many completed rotation jobs an item lists: far more than an operator follows up."""
EXPIRY_OF_THE_REPLACED: Final = (Attr.CERTIFICATE_NOT_AFTER,)
"""What every write that makes another certificate current removes: ``certificateNotAfter`` never names
another certificate's expiry. Nothing here records the new one's: AWS IoT's certificates all expire
2049-12-31 (developer guide, "X.509 client certificates"), so the registry dates them by age."""

PASSED: Final = "None"
"""A transaction member's cancellation reason code when its own condition held."""
CONDITION_FAILED: Final = "ConditionalCheckFailed"


@dataclass(frozen=True)
class Provenance:
    """Who asked: the identifiers AWS IoT passes to the hook with every request."""

    certificate_id: str
    claim_certificate_id: str
    template_arn: str
    client_id: str
    certificate_pem: str | None = None
    """The event's ``certificatePem``: read only to check its key."""

    @property
    def region(self) -> str:
        """The region of the template's ARN: where the device's thing and certificate are made."""
        return self.template_arn.split(":")[3]


@dataclass(frozen=True)
class Attestation:
    """A device's key as its vendor attested it (:mod:`hook.vendor_chain`): its fingerprint, and the
    provenance attributes the approval records (``attestedBy``, ``uniqueId``)."""

    public_key: str
    attributes: Item


def stored_item(refusal: Mapping[str, Any]) -> Item | None:
    """The stored item a refusal carries: a cancellation reason, or a refused conditional write's
    response; ``None`` when there was none."""
    item = refusal.get("Item")
    return None if item is None else string_attributes(item)


def refused_item(refused: ClientError) -> Item | None:
    """The stored item a refused conditional write returns (botocore's error type does not declare the
    ``Item`` key)."""
    return stored_item(cast(Mapping[str, Any], refused.response))


def bound_serial(reason: Reason) -> str:
    """The serial a refused binding member's stored binding names ("" when none)."""
    return (stored_item(reason) or {}).get(Attr.DEVICE_SERIAL_NUMBER, "")


def reasons_of(cancelled: ClientError) -> object:
    """A cancelled transaction's ``CancellationReasons``, as DynamoDB sent them (unchecked)."""
    return cast(Mapping[str, Any], cancelled.response).get("CancellationReasons")


def cancellation_codes(reasons: object) -> list[object]:
    """The reason codes of a cancelled transaction's reasons, in order; a reason that is not an object is
    left out."""
    return [r.get("Code") for r in reasons if isinstance(r, dict)] if isinstance(reasons, list) else []


def cancelled_by_conditions(reasons: object) -> bool:
    """Whether a transaction was cancelled only because a member's condition did not hold."""
    codes = set(cancellation_codes(reasons))
    return CONDITION_FAILED in codes and codes <= {PASSED, CONDITION_FAILED}


def cancellation_reasons(cancelled: ClientError, members: int) -> list[Reason]:
    """The reasons of a cancelled transaction of ``members`` members, one per member in order; a
    cancellation that does not give them all is raised as it is."""
    reasons = reasons_of(cancelled)
    if not (
        isinstance(reasons, list) and len(reasons) == members and all(isinstance(r, dict) for r in reasons)
    ):
        raise cancelled
    return reasons


def approval_decision(
    reasons: object, request: DeviceRequest, provenance: Provenance, public_key: str | None, now: str
) -> Item | None:
    """Decide from a cancelled approval's reasons, one per member (the serial's item, the certificate's
    binding, the claim certificate's breaker). An open breaker denies whatever else failed
    (``ClaimSuspended``). Allow a retry by the certificate on record that is bound to this serial
    (``None``), and return the stored item when an operator's re-provisioning grant admits a new
    certificate; anything unexpected denies. ``public_key``: the certificate's key, when the device type
    binds keys."""
    if not (isinstance(reasons, list) and len(reasons) == 3 and all(isinstance(r, dict) for r in reasons)):
        raise ProvisioningDenied(
            RejectionReason.REGISTRY_UNAVAILABLE, "registry transaction cancelled without its three reasons"
        )
    codes = cancellation_codes(reasons)
    unexpected = [str(code) for code in codes if code not in (PASSED, CONDITION_FAILED)]
    if unexpected or codes == [PASSED, PASSED, PASSED]:
        raise ProvisioningDenied(
            RejectionReason.REGISTRY_UNAVAILABLE,
            f"registry transaction cancelled: {', '.join(unexpected) or 'no reason given'}",
        )
    device, binding, breaker = reasons
    if breaker["Code"] == CONDITION_FAILED:
        raise suspension(stored_item(breaker))
    granted = None
    if device["Code"] == CONDITION_FAILED:
        granted = decide_from_stored(stored_item(device), request, provenance, public_key, now)
    if binding["Code"] == CONDITION_FAILED:
        raise ProvisioningDenied(
            RejectionReason.CERTIFICATE_IN_USE,
            f"certificate is already approved for serial {bound_serial(binding) or None!r}",
        )
    return granted


def decide_from_stored(
    item: Item | None, request: DeviceRequest, provenance: Provenance, public_key: str | None, now: str
) -> Item | None:
    """Allow a retry by the certificate already on record (``None``) or, with an operator's unexpired
    re-provisioning grant, a new certificate (the stored item); deny everything else the condition
    refused. With key binding (``public_key``), a serial of the request's type and maker admits only its
    registered key."""
    if item is None:
        raise ProvisioningDenied(RejectionReason.NOT_PREREGISTERED, "serial is not pre-registered")
    status = item.get(Attr.STATUS)
    same_identity = (item.get(Attr.DEVICE_TYPE), item.get(Attr.MANUFACTURER)) == (
        request.device_type,
        request.manufacturer,
    )
    if public_key is not None and same_identity and status in BOUND_STATES:
        require_bound_key(item, public_key)
    if status in PROVISIONED_STATES:
        if item.get(Attr.CERTIFICATE_ID) != provenance.certificate_id:
            if reprovision_granted(item, request, now):
                require_no_downgrade(item, request)
                return item
            raise ProvisioningDenied(
                RejectionReason.DUPLICATE_SERIAL,
                f"serial is already {status} with another certificate (a cloned or replayed serial)",
            )
        if not same_identity:
            raise ProvisioningDenied(
                RejectionReason.DUPLICATE_SERIAL,
                f"serial is already {status} as {_identity(item)}; "
                "a retry must repeat DeviceType and Manufacturer",
            )
        return None
    if status in DENIED_STATES:
        raise ProvisioningDenied(DENIED_STATES[DeviceStatus(status)], f"serial is {status}")
    if status == DeviceStatus.PREREGISTERED:
        raise ProvisioningDenied(
            RejectionReason.PREREGISTRATION_MISMATCH,
            f"serial was pre-registered as {_identity(item)}, the request says "
            f"{request.device_type!r} by {request.manufacturer!r}",
        )
    raise ProvisioningDenied(
        RejectionReason.UNKNOWN_REGISTRY_STATE, f"registry status {status!r} is not known"
    )


def reprovision_refusal(reasons: object) -> ProvisioningDenied:
    """Why a re-provisioning's transaction (the serial's item, the certificate's binding, the breaker)
    was cancelled: the breaker opened, the certificate is another serial's, or the grant was used
    meanwhile."""
    codes = cancellation_codes(reasons)
    if codes[2:3] == [CONDITION_FAILED] and isinstance(reasons, list):
        return suspension(stored_item(reasons[2]))
    if codes[1:2] == [CONDITION_FAILED]:
        return ProvisioningDenied(
            RejectionReason.CERTIFICATE_IN_USE, "certificate is already approved for another serial"
        )
    return ProvisioningDenied(
        RejectionReason.REPROVISION_GRANT_USED,
        "the re-provisioning grant was used by another request meanwhile",
    )


def require_bound_key(item: Item, public_key: str) -> None:
    """Deny unless ``public_key`` is the serial's registered key."""
    bound = item.get(Attr.PUBLIC_KEY_SHA256)
    if not bound:
        raise ProvisioningDenied(
            RejectionReason.PUBLIC_KEY_NOT_REGISTERED,
            f"serial is {item.get(Attr.STATUS)} without a registered key; its device type binds keys "
            "(pre-register it with its public_key, or `fleetctl rebind` it)",
        )
    if bound != public_key:
        raise ProvisioningDenied(
            RejectionReason.PUBLIC_KEY_MISMATCH,
            f"the certificate's key sha256:{public_key[:16]}... is not the serial's registered key "
            f"sha256:{bound[:16]}... (another device, a clone, or a wrong manifest)",
        )


def reprovision_granted(item: Item, request: DeviceRequest, now: str) -> bool:
    """Whether an ``ACTIVE`` serial holds a grant unexpired at ``now`` for a request of its own type and
    maker."""
    return (
        item.get(Attr.STATUS) == DeviceStatus.ACTIVE
        and item.get(Attr.REPROVISION_ALLOWED_UNTIL, "") > now
        and (item.get(Attr.DEVICE_TYPE), item.get(Attr.MANUFACTURER))
        == (request.device_type, request.manufacturer)
    )


def require_no_downgrade(item: Item, request: DeviceRequest) -> None:
    """Deny a re-provisioning whose firmware is older than the serial's recorded one, unless its grant
    allows a downgrade. The grant is read with the item, and the re-provisioning's write is conditional on
    its deadline (to the millisecond), so a grant replaced meanwhile is not used."""
    recorded = item.get(Attr.FIRMWARE_VERSION, "")
    if item.get(Attr.REPROVISION_ALLOWS_DOWNGRADE) != "true" and request.firmware_older_than(recorded):
        raise ProvisioningDenied(
            RejectionReason.FIRMWARE_DOWNGRADE,
            f"FirmwareVersion {request.firmware_version} is older than {recorded}, the serial's recorded "
            "firmware; only a grant with --allow-downgrade admits it",
            Parameter.FIRMWARE_VERSION,
        )


def replaced_certificates(item: Item, certificate_id: str) -> str:
    """The replaced certificates of ``item`` with ``certificate_id`` added in front, the newest
    :data:`REPLACED_CERTIFICATES_KEPT` only (an item must stay far below DynamoDB's 400 KB)."""
    return _newest_first(item, Attr.REPLACED_CERTIFICATE_IDS, certificate_id, REPLACED_CERTIFICATES_KEPT)


def completed_rotation_jobs(item: Item) -> str:
    """The completed rotation jobs of ``item`` with its rotation in progress (``rotationJobId``) added in
    front, the newest :data:`COMPLETED_ROTATION_JOBS_KEPT` only."""
    job_id = item.get(Attr.ROTATION_JOB_ID, "")
    return _newest_first(item, Attr.COMPLETED_ROTATION_JOB_IDS, job_id, COMPLETED_ROTATION_JOBS_KEPT)


def attempted_rotation_jobs(item: Item, job_id: str, kept: int) -> str:
    """The attempted rotation jobs of ``item`` with ``job_id`` added in front, the newest ``kept`` only
    (:mod:`hook.rotation_attempts`)."""
    return _newest_first(item, Attr.ATTEMPTED_ROTATION_JOB_IDS, job_id, kept)


def rotation_completed(item: Item, job_id: str) -> bool:
    """Whether the registry shows that rotation job ``job_id`` rotated the serial's certificate: the device
    confirmed the new certificate with it. A job execution reported ``SUCCEEDED`` alone does not show it
    (the confirmation may have been lost, or the device never sent a CSR)."""
    return job_id in item.get(Attr.COMPLETED_ROTATION_JOB_IDS, "").split()


def stale_pending_rotation(item: Item, job_id: str, in_progress_timeout: timedelta, now: datetime) -> bool:
    """Whether ``item`` holds a pending certificate of job ``job_id`` requested longer than the job's
    in-progress timeout before ``now``: AWS IoT has ended that execution, so no confirmation of it is
    still to come, and the certificate is to be retired."""
    requested = item.get(Attr.ROTATION_REQUESTED_AT)
    return (
        bool(item.get(Attr.PENDING_CERTIFICATE_ID))
        and item.get(Attr.ROTATION_JOB_ID) == job_id
        and requested is not None
        and datetime.fromisoformat(requested) + in_progress_timeout < now
    )


def certificate_key(provenance: Provenance) -> str:
    """The fingerprint of the certificate being registered, else ``CertificateUnreadable``; imports
    :mod:`hook.public_keys` only when a key is checked."""
    from hook.public_keys import PublicKeyError, certificate_key_sha256  # noqa: PLC0415 (key binding only)

    if provenance.certificate_pem is None:
        raise ProvisioningDenied(
            RejectionReason.CERTIFICATE_UNREADABLE,
            "certificatePem is missing or not a string; expected one PEM certificate",
        )
    try:
        return certificate_key_sha256(provenance.certificate_pem)
    except PublicKeyError as error:
        raise ProvisioningDenied(RejectionReason.CERTIFICATE_UNREADABLE, f"certificatePem: {error}") from None


def registry_unavailable(error: ClientError | BotoCoreError) -> ProvisioningDenied:
    """The denial for a registry request that failed (throttled, unreachable, refused)."""
    code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
    return ProvisioningDenied(RejectionReason.REGISTRY_UNAVAILABLE, f"registry request failed: {code}")


def _newest_first(item: Item, attribute: str, value: str, kept: int) -> str:
    """The space-separated list ``attribute`` of ``item`` with ``value`` added in front (once), the newest
    ``kept`` only."""
    listed = [value, *(each for each in item.get(attribute, "").split() if each != value)]
    return " ".join(listed[:kept]).strip()


def _identity(item: Item) -> str:
    return f"{item.get(Attr.DEVICE_TYPE)!r} by {item.get(Attr.MANUFACTURER)!r}"
