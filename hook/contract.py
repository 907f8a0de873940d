"""The contract shared by the provisioning template, the device registry table, the hook and the tests.

Every name that more than one of them must agree on is defined here, once.
"""

import hashlib
import os
from enum import StrEnum
from typing import Final


class Parameter(StrEnum):
    """Provisioning parameters a device sends in its RegisterThing request."""

    SERIAL_NUMBER = "SerialNumber"
    DEVICE_TYPE = "DeviceType"
    MANUFACTURER = "Manufacturer"
    FIRMWARE_VERSION = "FirmwareVersion"
    LOCATION = "Location"


class DeviceStatus(StrEnum):
    """Lifecycle state of a device in the registry."""

    PREREGISTERED = "PREREGISTERED"
    """Imported from a factory manifest, not seen yet."""
    PENDING = "PENDING"
    """Approved by the hook; AWS IoT has not created the thing yet."""
    ACTIVE = "ACTIVE"
    """The thing exists and its certificate is active."""
    REVOKED = "REVOKED"
    """Its certificate was revoked by an operator."""
    DECOMMISSIONED = "DECOMMISSIONED"
    """Retired for good; the serial can never provision again."""


class Attr(StrEnum):
    """Attribute names of a registry item."""

    SERIAL_NUMBER = "serialNumber"
    STATUS = "status"
    DEVICE_TYPE = "deviceType"
    MANUFACTURER = "manufacturer"
    FIRMWARE_VERSION = "firmwareVersion"
    LOCATION = "location"
    CERTIFICATE_ID = "certificateId"
    CERTIFICATE_NOT_AFTER = "certificateNotAfter"
    """When the current certificate (``certificateId``) expires, a registry timestamp (ISO 8601, UTC):
    written with the certificate by activation and a completed rotation, removed when the certificate
    changes without it (re-provisioning). Never another certificate's."""
    CLAIM_CERTIFICATE_ID = "claimCertificateId"
    TEMPLATE_ARN = "templateArn"
    CLIENT_ID = "clientId"
    THING_NAME = "thingName"
    CREATED_AT = "createdAt"
    UPDATED_AT = "updatedAt"
    APPROVED_AT = "approvedAt"
    ACTIVATED_AT = "activatedAt"
    REVOKED_AT = "revokedAt"
    REVOCATION_REASON = "revocationReason"
    CERTIFICATES_REVOKED_AT = "certificatesRevokedAt"
    """When ``fleetctl`` finished revoking and detaching every certificate of a ``REVOKED`` or
    ``DECOMMISSIONED`` serial: written last, so a bulk re-run skips the serials that have it."""
    DECOMMISSIONED_AT = "decommissionedAt"
    REGION = "provisionedRegion"
    """The AWS region whose hook approved the serial (its thing and certificates live there); absent, the
    registry's own region (a one-region fleet, or a serial only pre-registered)."""
    DEVICE_SERIAL_NUMBER = "deviceSerialNumber"
    """On a certificate binding item (:func:`certificate_binding_key`): the serial the certificate is for."""
    PENDING_CERTIFICATE_ID = "pendingCertificateId"
    """A rotation in progress: the new certificate, issued and attached, not yet confirmed by the device."""
    ROTATION_JOB_ID = "rotationJobId"
    """The rotation job of the latest CSR: of the pending certificate while there is one."""
    COMPLETED_ROTATION_JOB_IDS = "completedRotationJobIds"
    """The rotation jobs whose rotation completed (the device confirmed its new certificate), newest first,
    separated by spaces: what ``fleetctl rotate status`` counts as rotated."""
    ATTEMPTED_ROTATION_JOB_IDS = "attemptedRotationJobIds"
    """The rotation jobs that had their one attempt at this serial (a CSR reserved the job before its
    certificate was asked for, or a failure was reported before any CSR), newest first, separated by
    spaces: a job issues at most one certificate (:mod:`hook.rotation_attempts`)."""
    ROTATION_REQUESTED_AT = "rotationRequestedAt"
    ROTATED_AT = "rotatedAt"
    ROTATION_FAILED_AT = "rotationFailedAt"
    ROTATION_FAILURE_REASON = "rotationFailureReason"
    REPLACED_CERTIFICATE_IDS = "replacedCertificateIds"
    """The certificates this serial had before its current one, newest first, separated by spaces."""
    REPROVISION_ALLOWED_UNTIL = "reprovisionAllowedUntil"
    """An operator's grant: one next provisioning with a new certificate is allowed until then."""
    REPROVISION_GRANTED_BY = "reprovisionGrantedBy"
    REPROVISION_GRANTED_AT = "reprovisionGrantedAt"
    REPROVISION_REASON = "reprovisionReason"
    REPROVISION_ALLOWS_DOWNGRADE = "reprovisionAllowsDowngrade"
    """``"true"`` on a grant that admits a firmware older than the serial's recorded one (``fleetctl
    reprovision --allow-downgrade``); absent otherwise, and removed with the grant when it is used."""
    REPROVISIONED_AT = "reprovisionedAt"
    STATUS_SHARD = "statusShard"
    """``<status>#<shard>`` (:func:`shard_key`): the partition key of :data:`STATUS_INDEX`. Only on device
    items, rewritten by every transition of the status."""
    TYPE_SHARD = "typeShard"
    """``<deviceType>#<shard>``: the partition key of :data:`DEVICE_TYPE_INDEX`. Only on device items that
    have a type."""
    PUBLIC_KEY_SHA256 = "publicKeySha256"
    """The device's key, from the factory manifest: its fingerprint (:mod:`hook.public_keys`). On a device
    item and on its key binding (:func:`public_key_binding_key`)."""
    PREVIOUS_PUBLIC_KEY_SHA256 = "previousPublicKeySha256"
    """The key ``fleetctl rebind`` replaced, if any."""
    KEY_REBOUND_AT = "keyReboundAt"
    KEY_REBOUND_BY = "keyReboundBy"
    KEY_REBOUND_REASON = "keyReboundReason"
    ATTESTED_BY = "attestedBy"
    """An attested item: the SHA-256 thumbprint (hex) of the vendor certificate that vouched for the key."""
    UNIQUE_ID = "uniqueId"
    """An attested item: the vendor's unique id of the secure element (lowercase hex)."""
    MANIFEST_DIGEST = "manifestDigest"
    """An item pre-registered from a vendor's signed manifest: the SHA-256 (hex) of the manifest file."""
    PART_NUMBER = "partNumber"
    """An item pre-registered from a vendor's signed manifest: the element's part number, as signed."""


REGISTRY_PARTITION_KEY: Final = Attr.SERIAL_NUMBER
"""The registry table's only key: one item per device serial number, and one per approved certificate
(:func:`certificate_binding_key`)."""

CERTIFICATE_BINDING_PREFIX: Final = "certificate#"
"""Starts the key of a certificate binding item. ``#`` is not in :data:`NAME_CHARSET`, so such a key is
never a serial number."""


def certificate_binding_key(certificate_id: str) -> str:
    """The registry key of the item binding a certificate to the one serial it was approved for.

    The item holds ``certificateId``, ``deviceSerialNumber`` and ``createdAt``, and no ``statusShard`` or
    ``typeShard`` (nor ``status`` or ``deviceType``): the registry's indexes are sparse, so lists and counts
    never see it, and the whole-registry scan leaves it out.
    """
    return f"{CERTIFICATE_BINDING_PREFIX}{certificate_id}"


def is_certificate_binding_key(key: str) -> bool:
    """Whether a registry key is a certificate binding's rather than a device's."""
    return key.startswith(CERTIFICATE_BINDING_PREFIX)


PUBLIC_KEY_BINDING_PREFIX: Final = "publicKey#"
"""Starts the key of a key binding item (never a serial number: ``#``)."""


def public_key_binding_key(public_key_sha256: str) -> str:
    """The registry key of the item binding a device key to its one serial; like a certificate binding it
    holds ``deviceSerialNumber``, ``publicKeySha256`` and ``createdAt``, no index key."""
    return f"{PUBLIC_KEY_BINDING_PREFIX}{public_key_sha256}"


BINDING_PREFIXES: Final = (CERTIFICATE_BINDING_PREFIX, PUBLIC_KEY_BINDING_PREFIX)


def is_binding_key(key: str) -> bool:
    """Whether a registry key is a binding's (a certificate's or a key's) rather than a device's."""
    return key.startswith(BINDING_PREFIXES)


REGISTRY_SHARDS: Final = 16
"""How many partition key values each index spreads one status or one device type over. Writers put a
device in shard :func:`shard_of` its serial; readers query every shard and merge. Part of the data: it may
grow (readers then also query the new shards, and ``fleetctl registry backfill`` moves items to them),
never shrink without a backfill first. Why 16: ``components/device_registry.py``."""

SHARD_SEPARATOR: Final = "#"
"""Joins a status or a type to a shard number. Not in :data:`NAME_CHARSET`, so never part of a type."""


def shard_of(serial_number: str) -> int:
    """The shard of a serial: a hash of it (stable across processes and versions, unlike ``hash()``)
    modulo :data:`REGISTRY_SHARDS`, so consecutive factory serials spread evenly."""
    digest = hashlib.blake2b(serial_number.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % REGISTRY_SHARDS


def shard_key(value: str, shard: int) -> str:
    """An index partition key value: ``<status or type>#<shard>``."""
    return f"{value}{SHARD_SEPARATOR}{shard}"


def shard_keys(value: str) -> list[str]:
    """Every partition key value of one status or one type, shard 0 first."""
    return [shard_key(value, shard) for shard in range(REGISTRY_SHARDS)]


STATUS_INDEX: Final = "byStatusShard"
"""Global secondary index of devices by lifecycle state: partition key ``statusShard``, sort key
``updatedAt``."""

DEVICE_TYPE_INDEX: Final = "byTypeShard"
"""Global secondary index of devices by type: partition key ``typeShard``, sort key ``serialNumber``."""

REGISTRY_INDEXES: Final[dict[str, tuple[Attr, Attr]]] = {
    STATUS_INDEX: (Attr.STATUS_SHARD, Attr.UPDATED_AT),
    DEVICE_TYPE_INDEX: (Attr.TYPE_SHARD, Attr.SERIAL_NUMBER),
}
"""Each global secondary index of the registry: (hash key, range key), all string attributes, every
attribute projected."""

PARAMETER_ATTRIBUTES: Final[dict[Parameter, Attr]] = {
    Parameter.SERIAL_NUMBER: Attr.SERIAL_NUMBER,
    Parameter.DEVICE_TYPE: Attr.DEVICE_TYPE,
    Parameter.MANUFACTURER: Attr.MANUFACTURER,
    Parameter.FIRMWARE_VERSION: Attr.FIRMWARE_VERSION,
    Parameter.LOCATION: Attr.LOCATION,
}
"""Where each provisioning parameter is stored in a registry item."""

THING_NAME_MAX_LENGTH: Final = 128
"""AWS IoT's limit on a thing name."""

SERIAL_NUMBER_MAX_LENGTH: Final = 64
"""Longest accepted serial number: with a thing-name prefix it must fit in a thing name."""

NAME_CHARSET: Final = r"[A-Za-z0-9:_-]"
"""Characters allowed in thing, thing type and thing group names (one regex character class)."""

METRICS_NAMESPACE: Final = "IoTFleetProvisioning"
"""Root of the CloudWatch namespaces of the functions' EMF metrics (:class:`Metric`)."""

METRICS_NAMESPACE_ENV: Final = "POWERTOOLS_METRICS_NAMESPACE"
"""Environment variable with the stack's metrics namespace (the one Powertools reads)."""


def metrics_namespace(base_name: str) -> str:
    """A stack's CloudWatch namespace, ``IoTFleetProvisioning/<base>``: stacks that share an account and
    region never count each other's approvals, rejections or activations."""
    return f"{METRICS_NAMESPACE}/{base_name}"


def metrics_namespace_from_environment() -> str:
    """The namespace a function was deployed with; the root namespace outside a deployment."""
    return os.environ.get(METRICS_NAMESPACE_ENV) or METRICS_NAMESPACE


SERVICE_DIMENSION: Final = "service"
"""Dimension Powertools adds to every metric: the function's service name."""

REASON_DIMENSION: Final = "Reason"
"""Dimension of ``ProvisioningRejected`` when counted per :class:`RejectionReason`."""

CLAIM_CERTIFICATE_DIMENSION: Final = "ClaimCertificateId"
"""Dimension of ``ProvisioningApproved`` when counted per claim certificate (the claim-abuse alarms)."""

STALE_APPROVAL_AFTER_SECONDS: Final = 3600
"""A ``PENDING`` approval older than this will not become a thing: the device's certificate ownership
token expired."""

ACTIVATION_CONFIG_ENV: Final = "ACTIVATION_CONFIG_FILE"
"""Environment variable with the path of the activation function's JSON configuration."""

ACTIVATION_CONFIG_FILE_NAME: Final = "activation.json"
"""Default activation configuration, packaged beside the handlers."""

IOT_DATA_ENDPOINT_ENV: Final = "IOT_DATA_ENDPOINT"
"""Environment variable with the account's ``https://`` data endpoint, for device shadows."""

STACK_BASE_NAME_ENV: Final = "STACK_BASE_NAME"
"""Environment variable with the stack's base name (``<resourcePrefix>-<environment>``): things are
``<base>_<serial>`` and device policies ``<base>_<type>``."""

REGISTRY_TABLE_ENV: Final = "REGISTRY_TABLE_NAME"
"""Environment variable naming the registry table in the deployed functions."""

REGISTRY_REGION_ENV: Final = "REGISTRY_REGION"
"""Environment variable with the region of the registry table (a global fleet's registry region)."""

RULES_FILE_ENV: Final = "HOOK_RULES_FILE"
"""Environment variable with the path of the hook's rules JSON file."""

RULES_FILE_NAME: Final = "rules.json"
"""Default rules file, packaged beside the handler."""

VENDOR_CHAIN_PARAMETER: Final = "VendorCertificateChain"
"""Zero-touch types: the element's factory certificate chain, device certificate first, each certificate as
base64 DER, joined by commas (JWS ``x5c`` order, RFC 7515 4.1.6). Declared by the template, never stored."""


class RejectionReason(StrEnum):
    """Why the hook denied a request: a small, fixed set, used as the ``Reason`` metric dimension."""

    MALFORMED_EVENT = "MalformedEvent"
    MISSING_PARAMETER = "MissingParameter"
    UNKNOWN_PARAMETER = "UnknownParameter"
    """A parameter the template does not declare (:class:`Parameter`): whether AWS IoT would let it shadow a
    pseudo-parameter such as ``AWS::IoT::Certificate::Id`` is undocumented, so the hook refuses it."""
    INVALID_PARAMETER = "InvalidParameter"
    UNKNOWN_DEVICE_TYPE = "UnknownDeviceType"
    DEVICE_TYPE_RETIRED = "DeviceTypeRetired"
    SERIAL_PATTERN_MISMATCH = "SerialPatternMismatch"
    MANUFACTURER_NOT_ALLOWED = "ManufacturerNotAllowed"
    FIRMWARE_TOO_OLD = "FirmwareTooOld"
    FIRMWARE_DOWNGRADE = "FirmwareDowngrade"
    """A re-provisioning with a firmware older than the serial's recorded one, which its grant does not
    allow."""
    NOT_PREREGISTERED = "NotPreregistered"
    PREREGISTRATION_MISMATCH = "PreregistrationMismatch"
    DUPLICATE_SERIAL = "DuplicateSerial"
    CERTIFICATE_IN_USE = "CertificateInUse"
    """The certificate was already approved for another serial: one certificate, one device."""
    DEVICE_REVOKED = "DeviceRevoked"
    DEVICE_DECOMMISSIONED = "DeviceDecommissioned"
    REPROVISION_GRANT_USED = "ReprovisionGrantUsed"
    """Two requests raced for one re-provisioning grant: only the first gets it."""
    PUBLIC_KEY_MISMATCH = "PublicKeyMismatch"
    """Key binding: the certificate's key is not the serial's registered one."""
    PUBLIC_KEY_NOT_REGISTERED = "PublicKeyNotRegistered"
    """Key binding: the serial was registered without a key."""
    CERTIFICATE_UNREADABLE = "CertificateUnreadable"
    """Key binding: the event's certificatePem is missing or not a certificate of an accepted key."""
    VENDOR_CHAIN_UNREADABLE = "VendorChainUnreadable"
    """Zero-touch: the vendor certificate chain parameter is missing, oversized or not certificates."""
    VENDOR_CHAIN_UNTRUSTED = "VendorChainUntrusted"
    VENDOR_CERTIFICATE_EXPIRED = "VendorCertificateExpired"
    VENDOR_CERTIFICATE_DENIED = "VendorCertificateDenied"
    VENDOR_KEY_MISMATCH = "VendorKeyMismatch"
    VENDOR_SERIAL_MISMATCH = "VendorSerialMismatch"
    CLAIM_SUSPENDED = "ClaimSuspended"
    """The claim certificate's breaker is open (tripped, or suspended): :mod:`hook.claim_breaker`."""
    UNKNOWN_REGISTRY_STATE = "UnknownRegistryState"
    REGISTRY_UNAVAILABLE = "RegistryUnavailable"
    RULES_UNAVAILABLE = "RulesUnavailable"
    INTERNAL_ERROR = "InternalError"


KEY_BINDING_REJECTIONS: Final = frozenset(
    {
        RejectionReason.PUBLIC_KEY_MISMATCH,
        RejectionReason.PUBLIC_KEY_NOT_REGISTERED,
        RejectionReason.CERTIFICATE_UNREADABLE,
        RejectionReason.VENDOR_CHAIN_UNREADABLE,
        RejectionReason.VENDOR_CHAIN_UNTRUSTED,
        RejectionReason.VENDOR_CERTIFICATE_EXPIRED,
        RejectionReason.VENDOR_CERTIFICATE_DENIED,
        RejectionReason.VENDOR_KEY_MISMATCH,
        RejectionReason.VENDOR_SERIAL_MISMATCH,
    }
)
"""The denials that also count ``KeyBindingRejected``."""


class Service(StrEnum):
    """Service names of the functions: the ``service`` dimension of their metrics."""

    HOOK = "provisioning-hook"
    ACTIVATION = "device-activation"
    STALE_APPROVALS = "stale-approvals"
    CERTIFICATE_ROTATION = "certificate-rotation"
    CERTIFICATE_RETIREMENT = "certificate-retirement"
    CLAIM_BREAKER = "claim-breaker"


class Metric(StrEnum):
    """The functions' custom metrics, in :data:`METRICS_NAMESPACE`."""

    PROVISIONING_APPROVED = "ProvisioningApproved"
    PROVISIONING_REJECTED = "ProvisioningRejected"
    """Counted once with only the service dimension, and once more with :data:`REASON_DIMENSION`."""
    DEVICE_ACTIVATED = "DeviceActivated"
    THING_WITHOUT_REGISTRY_ITEM = "ThingWithoutRegistryItem"
    """A thing of this stack was created for a serial the registry does not know."""
    UNEXPECTED_ACTIVATION = "UnexpectedActivation"
    """A thing was created for a serial that is not ``PENDING`` (revoked, decommissioned, ...)."""
    STALE_PENDING_APPROVALS = "StalePendingApprovals"
    THING_EVENTS_DISABLED = "ThingEventsDisabled"
    """1 when the account's THING registry events are off in this region: no device can become ``ACTIVE``."""
    CERTIFICATE_ROTATED = "CertificateRotated"
    CERTIFICATE_ROTATION_FAILED = "CertificateRotationFailed"
    """A rotation job's attempt that failed (refused after the job was reserved, or reported failed by the
    device), counted once per serial and job; also counted per :data:`REASON_DIMENSION` (alarmed)."""
    ROTATION_STEP_REFUSED = "RotationStepRefused"
    """A rotation step refused before it was a job's attempt (malformed, no open execution, not the
    current certificate...): a device can send these at will, so they are counted per
    :data:`REASON_DIMENSION` for the dashboard and never alarmed."""
    CERTIFICATE_RETIRED = "CertificateRetired"
    """A certificate the registry no longer holds was revoked and detached."""
    KEY_BINDING_REJECTED = "KeyBindingRejected"
    """A hook denial of :data:`KEY_BINDING_REJECTIONS`, or a rotation CSR of another key (once per serial and
    job); each function's count has its own alarm."""
    CERTIFICATE_RETIREMENT_FAILED = "CertificateRetirementFailed"
    """A registry change whose certificates could not be retired (the record is retried, then sent to the
    retirement function's on-failure queue)."""
    CERTIFICATE_RETIREMENT_DEFERRED = "CertificateRetirementDeferred"
    """A replaced current certificate kept because its replacement is not attached to the thing (yet): the
    record is retried, then sent to the on-failure queue."""
    CLAIM_BREAKER_TRIPPED = "ClaimBreakerTripped"
    """A claim certificate's breaker tripped: approvals through it passed its budget (alarmed)."""


class ProvisioningDenied(Exception):
    """A request the hook must deny, with a reason from the fixed set, a human-readable detail and, when
    one parameter is at fault, which."""

    def __init__(self, reason: RejectionReason, detail: str, parameter: Parameter | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.parameter = parameter


STACK_NAME_SEPARATOR: Final = "_"
"""Joins a stack's base name (``<resourcePrefix>-<environment>``, only ``a-z 0-9 -``) to a serial number
or a device type. Base names never contain it, so no name of one stack falls under another stack's
``<base>_*`` permissions, even when one environment's name starts with another's (``prod``, ``prod-eu``)."""


def thing_name(base_name: str, serial_number: str) -> str:
    """The thing name the provisioning template gives a device: ``<base>_<serial>``."""
    return f"{base_name}{STACK_NAME_SEPARATOR}{serial_number}"


def device_type_resource_name(base_name: str, device_type: str) -> str:
    """Name of a device type's IoT policy, thing type and thing group: ``<base>_<type>``."""
    return f"{base_name}{STACK_NAME_SEPARATOR}{device_type}"


TEMPLATE_NAME_SUFFIX: Final = "-fleet"
"""The provisioning template of a stack is ``<base><suffix>``."""


def template_name(base_name: str) -> str:
    """The provisioning template of a stack."""
    return f"{base_name}{TEMPLATE_NAME_SUFFIX}"


def claim_policy_name(base_name: str) -> str:
    """The IoT policy of a stack's claim certificates."""
    return f"{base_name}-claim"


def serial_number_of(base_name: str, name: str) -> str | None:
    """The serial number in a thing name made by :func:`thing_name`, or ``None`` for another stack's thing."""
    head = f"{base_name}{STACK_NAME_SEPARATOR}"
    return name[len(head) :] if name.startswith(head) and len(name) > len(head) else None
