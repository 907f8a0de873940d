"""Zero-touch provisioning: a device of a zero-touch type is approved by its secure element's factory
certificate chain, with no pre-registration. Imported only when such a type's request is decided.

The chain (:data:`~hook.contract.VENDOR_CHAIN_PARAMETER`) must verify to one of the type's pinned vendor
roots, the certificate being provisioned must carry the vendor device certificate's key (so its CSR was
signed inside the element), the request's serial must be the one the type's rule makes of the unique id the
vendor certificate names (``CN=sn<unique id>``, as Microchip Trust&GO device certificates do), and that
certificate must not be on the type's deny list.

Each link is checked explicitly: ``verify_directly_issued_by`` (cryptography 40+: the issuer's name and its
signature), both ends' validity, and the issuer's basicConstraints (CA, path length) and keyUsage. Not
cryptography's ``PolicyBuilder`` client verifier: it applies the web PKI profile, which requires a
subjectAltName that Trust&GO device certificates do not carry, and only cryptography 45+ lets a caller relax
that (``ExtensionPolicy``). The Powertools layer (``components/powertools.py``) brings whichever cryptography
pip chose when it was built: its ``[all]`` extra asks for ``aws-encryption-sdk>=3.1.1,<5`` (Powertools 3.24
``setup.py``), which bounds cryptography from below only. Nothing here is newer than cryptography 42
(``not_valid_after_utc``), the project's floor.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
import re
from typing import TYPE_CHECKING, Final, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from hook.contract import VENDOR_CHAIN_PARAMETER, Attr, ProvisioningDenied, RejectionReason
from hook.public_keys import PublicKeyError, key_sha256
from hook.registry_decisions import Attestation, Provenance, certificate_key
from hook.vendor_rules import certificate_serial_hex, serial_for

if TYPE_CHECKING:
    from hook.rules import DeviceRequest
    from hook.vendor_rules import ZeroTouchRule

CHAIN_MAX_LENGTH: Final = 4096
"""This project's bound, about three times a Trust&GO device certificate and signer as base64 DER (1400).
The MQTT ``RegisterThing`` a device sends documents no length for a parameter value, only the 128 KB of an
MQTT message (developer guide, "Device provisioning MQTT API"; AWS IoT Core quotas, message broker); 4096 is
what the control-plane ``RegisterThing`` allows one (API reference, ``parameters``), so a chain fits both."""
CHAIN_MAX_CERTIFICATES: Final = 3
"""The device certificate and at most two vendor signers under the pinned root."""
CHAIN_FORM: Final = (
    f"{VENDOR_CHAIN_PARAMETER}: expected the device certificate then its signers, each base64 DER, "
    f"joined by commas: 1-{CHAIN_MAX_CERTIFICATES} certificates, at most {CHAIN_MAX_LENGTH} characters"
)
_UNIQUE_ID_COMMON_NAME = re.compile(r"sn([0-9A-Fa-f]{2,64})")
_READ_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)
_Extension = TypeVar("_Extension", bound=x509.ExtensionType)


def attest(
    chain_text: object, rule: ZeroTouchRule, request: DeviceRequest, provenance: Provenance
) -> Attestation:
    """What the registry records of a verified element, or :class:`ProvisioningDenied` with the vendor
    reason that failed first."""
    chain = _read_chain(chain_text)
    now = datetime.datetime.now(datetime.UTC)
    signer = verify_to_a_pinned_root(chain, pinned_roots(rule.roots_pem), now)
    device = chain[0]
    if device.serial_number in rule.denied_certificates:
        raise ProvisioningDenied(
            RejectionReason.VENDOR_CERTIFICATE_DENIED,
            f"vendor certificate {certificate_serial_hex(device.serial_number)} is on the type's deny list",
        )
    public_key = device_key(device)
    if certificate_key(provenance) != public_key:
        raise ProvisioningDenied(
            RejectionReason.VENDOR_KEY_MISMATCH,
            "the certificate being provisioned does not carry the vendor certificate's key (its CSR was "
            "not signed by this element)",
        )
    unique_id = unique_id_of(device)
    try:
        expected = serial_for(rule.serial_rule, unique_id, None)
    except ValueError as error:
        raise ProvisioningDenied(RejectionReason.VENDOR_SERIAL_MISMATCH, str(error)) from None
    if request.serial_number != expected:
        raise ProvisioningDenied(
            RejectionReason.VENDOR_SERIAL_MISMATCH,
            f"the vendor certificate names unique id {unique_id}, which is serial {expected}, not the "
            "request's SerialNumber",
        )
    return Attestation(public_key, {Attr.ATTESTED_BY: thumbprint(signer), Attr.UNIQUE_ID: unique_id})


def _read_chain(text: object) -> list[x509.Certificate]:
    if not isinstance(text, str) or not text:
        raise _unreadable("missing or not a string")
    if len(text) > CHAIN_MAX_LENGTH:
        raise _unreadable(f"{len(text)} characters")
    parts = text.split(",")
    if len(parts) > CHAIN_MAX_CERTIFICATES:
        raise _unreadable(f"{len(parts)} certificates")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(part, validate=True)) for part in parts]
    except (binascii.Error, *_READ_ERRORS):
        raise _unreadable("not base64 DER certificates") from None


def _unreadable(problem: str) -> ProvisioningDenied:
    return ProvisioningDenied(RejectionReason.VENDOR_CHAIN_UNREADABLE, f"{problem}; {CHAIN_FORM}")


@functools.cache
def pinned_roots(roots_pem: tuple[str, ...]) -> tuple[x509.Certificate, ...]:
    """The type's pinned roots, read once per cold start."""
    return tuple(x509.load_pem_x509_certificate(pem.encode()) for pem in roots_pem)


def verify_to_a_pinned_root(
    chain: list[x509.Certificate], roots: tuple[x509.Certificate, ...], now: datetime.datetime
) -> x509.Certificate:
    """The certificate that signed the device certificate, once every link up to a pinned root verifies;
    a chain that ends with the pinned root itself is accepted, any other self-signed end is not."""
    if chain[-1] in roots and len(chain) > 1:
        chain = chain[:-1]
    for below, certificate in enumerate(chain):
        _require_valid(certificate, now)
        if below == 0:
            _require_end_entity(certificate)
        else:
            _require_issuer(certificate, below - 1)
        if below + 1 < len(chain):
            _require_signed(certificate, chain[below + 1])
    top = chain[-1]
    for root in roots:
        if root.subject == top.issuer and _signed_by(top, root):
            _require_valid(root, now)
            _require_issuer(root, len(chain) - 1)
            return chain[1] if len(chain) > 1 else root
    raise ProvisioningDenied(
        RejectionReason.VENDOR_CHAIN_UNTRUSTED,
        f"{_name(top)} is not signed by a pinned root of this type (a self-made or look-alike chain)",
    )


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, *_READ_ERRORS):
        return False
    return True


def _require_signed(certificate: x509.Certificate, issuer: x509.Certificate) -> None:
    if not _signed_by(certificate, issuer):
        raise ProvisioningDenied(
            RejectionReason.VENDOR_CHAIN_UNTRUSTED, f"{_name(certificate)} is not signed by the next one"
        )


def _require_valid(certificate: x509.Certificate, now: datetime.datetime) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise ProvisioningDenied(
            RejectionReason.VENDOR_CERTIFICATE_EXPIRED,
            f"{_name(certificate)} is valid from {certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d} only",
        )


def _require_end_entity(certificate: x509.Certificate) -> None:
    """The device certificate: no CA, and a key for signatures (TLS client authentication)."""
    constraints = _extension(certificate, x509.BasicConstraints)
    usage = _extension(certificate, x509.KeyUsage)
    if (constraints is not None and constraints.ca) or (usage is not None and not usage.digital_signature):
        raise ProvisioningDenied(
            RejectionReason.VENDOR_CHAIN_UNTRUSTED,
            f"{_name(certificate)} is not a device certificate (a CA, or a key not for signatures)",
        )


def _require_issuer(certificate: x509.Certificate, signers_below: int) -> None:
    """A signer: a CA (RFC 5280 4.2.1.9) whose path length admits the signers below it, allowed to sign
    certificates (4.2.1.3)."""
    constraints = _extension(certificate, x509.BasicConstraints)
    usage = _extension(certificate, x509.KeyUsage)
    if (
        constraints is None
        or not constraints.ca
        or (constraints.path_length is not None and signers_below > constraints.path_length)
        or (usage is not None and not usage.key_cert_sign)
    ):
        raise ProvisioningDenied(
            RejectionReason.VENDOR_CHAIN_UNTRUSTED, f"{_name(certificate)} may not sign certificates"
        )


def _extension(certificate: x509.Certificate, kind: type[_Extension]) -> _Extension | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except _READ_ERRORS:
        raise ProvisioningDenied(
            RejectionReason.VENDOR_CHAIN_UNREADABLE, f"{_name(certificate)} has unreadable extensions"
        ) from None


def device_key(device: x509.Certificate) -> str:
    try:
        return key_sha256(device.public_key(), "the vendor certificate's key")
    except (PublicKeyError, *_READ_ERRORS) as error:
        raise ProvisioningDenied(RejectionReason.VENDOR_CHAIN_UNREADABLE, str(error)) from None


def unique_id_of(device: x509.Certificate) -> str:
    """The element's unique id from its device certificate's ``CN=sn<hex>``, as lowercase hex."""
    names = device.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    found = _UNIQUE_ID_COMMON_NAME.fullmatch(str(names[0].value)) if len(names) == 1 else None
    if found is None:
        raise ProvisioningDenied(
            RejectionReason.VENDOR_SERIAL_MISMATCH,
            "the vendor certificate names no unique id (expected one subject CN=sn<hex>)",
        )
    return found.group(1).lower()


def thumbprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _name(certificate: x509.Certificate) -> str:
    """The subject, shortened: it is device input."""
    return ascii(certificate.subject.rfc4514_string()[:96])
