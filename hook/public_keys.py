"""Key binding's fingerprints of a manifest's key, a certificate's and a CSR's: the lowercase hex SHA-256 of
the key's DER SubjectPublicKeyInfo as ``cryptography`` encodes it (EC points uncompressed). The keys
accepted are exactly those ``CreateCertificateFromCsr`` takes (:data:`ACCEPTED_KEYS`), for the manifest,
the hook's key binding and the rotation function's CSR check alike. Imported only where a key is checked;
``cryptography`` comes with the Powertools layer (``components/powertools.py``). Errors never repeat the
input."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

if TYPE_CHECKING:  # cryptography 40+; at run time nothing newer than 3.1 is needed
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

RSA_MIN_BITS: Final = 2048
"""AWS IoT API Reference, CreateCertificateFromCsr: "The CSR must include a public key that is either an RSA
key with a length of at least 2048 bits or an ECC key from NIST P-256, NIST P-384, or NIST P-521 curves"
(also botocore's iot model). AWS names no largest RSA key, so none is refused here; the PEM length limits
below bound the work."""
EC_CURVES: Final[tuple[type[ec.EllipticCurve], ...]] = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
"""NIST P-256, P-384 and P-521: the curves CreateCertificateFromCsr takes (see :data:`RSA_MIN_BITS`)."""
PEM_MAX_LENGTH: Final = 65536
"""AWS IoT's certificatePem is at most 65536 characters (API reference, RegisterCertificate)."""

KEY_FORMS: Final = (
    "a PEM public key (-----BEGIN PUBLIC KEY-----), base64 DER SubjectPublicKeyInfo, "
    "or its SHA-256 fingerprint (64 hex digits, optionally prefixed sha256:)"
)
ACCEPTED_KEYS: Final = (
    f"EC on NIST P-256, P-384 or P-521 (secp256r1, secp384r1, secp521r1) or RSA of at least {RSA_MIN_BITS} "
    "bits"
)

_FINGERPRINT = re.compile(r"(?:sha256:)?([0-9a-f]{64})", re.IGNORECASE)
_PEM_PUBLIC_KEY = ("-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----")
_PEM_HEADER = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)

_Loaded = TypeVar("_Loaded")


class PublicKeyError(ValueError):
    """A key, certificate or CSR that cannot be bound; the message says what is wrong and what is expected."""


def registered_key_sha256(text: str) -> str:
    """The fingerprint of a manifest's key: a PEM public key, base64 DER SubjectPublicKeyInfo, or the
    fingerprint itself (``sha256:<64 hex>`` or 64 hex digits). Raises :class:`PublicKeyError`."""
    stripped = text.strip()
    if not stripped:
        raise PublicKeyError(f"no key given; expected {KEY_FORMS}")
    if len(stripped) > PEM_MAX_LENGTH:
        raise PublicKeyError(f"longer than {PEM_MAX_LENGTH} characters; expected {KEY_FORMS}")
    fingerprint = _FINGERPRINT.fullmatch(stripped)
    if fingerprint:
        return fingerprint.group(1).lower()
    header = _PEM_HEADER.search(stripped)
    if header:
        return key_sha256(_load_der_key(_pem_body(stripped, header.group(1))))
    try:
        der = base64.b64decode("".join(stripped.split()), validate=True)
    except (binascii.Error, ValueError):
        raise PublicKeyError(f"neither PEM, base64 nor a fingerprint; expected {KEY_FORMS}") from None
    return key_sha256(_load_der_key(der))


def certificate_key_sha256(certificate_pem: str) -> str:
    """The fingerprint of a PEM certificate's key. Raises :class:`PublicKeyError`."""
    certificate = _load(certificate_pem, "certificate", x509.load_pem_x509_certificate)
    try:
        key = certificate.public_key()
    except _PARSE_ERRORS:
        raise PublicKeyError(f"the certificate's key cannot be read; expected {ACCEPTED_KEYS}") from None
    return key_sha256(key, "the certificate's key")


def csr_key_sha256(csr_pem: str) -> str:
    """The fingerprint of a PEM CSR's key, once its signature (the proof of possession) is checked. Raises
    :class:`PublicKeyError`."""
    request = _load(csr_pem, "certificate request", x509.load_pem_x509_csr)
    try:
        key = request.public_key()
        signed = request.is_signature_valid
    except (*_PARSE_ERRORS, InvalidSignature):
        raise PublicKeyError(
            f"the certificate request's key or signature cannot be read; expected {ACCEPTED_KEYS}"
        ) from None
    if not signed:
        raise PublicKeyError("the certificate request's signature does not verify with its own key")
    return key_sha256(key, "the certificate request's key")


def _load(text: str, what: str, loader: Callable[[bytes], _Loaded]) -> _Loaded:
    if not isinstance(text, str) or not text.strip():
        raise PublicKeyError(f"no {what} given; expected one PEM {what}")
    if len(text) > PEM_MAX_LENGTH:
        raise PublicKeyError(
            f"the {what} is longer than {PEM_MAX_LENGTH} characters; expected one PEM {what}"
        )
    try:
        return loader(text.encode())
    except _PARSE_ERRORS:
        raise PublicKeyError(f"not a readable PEM {what}; expected one PEM {what}") from None


def _pem_body(text: str, label: str) -> bytes:
    """The DER inside a PEM public key. Read here rather than by ``cryptography`` so a key whose line breaks
    became spaces (a manifest cell) still loads; any other PEM is refused by its label."""
    begin, end = _PEM_PUBLIC_KEY
    if "PRIVATE" in label:
        raise PublicKeyError(
            f"a PEM {label.lower()}: a private key must never leave the device; expected {KEY_FORMS}"
        )
    if label != "PUBLIC KEY":
        raise PublicKeyError(f"a PEM {label.lower()}, not a public key; expected {KEY_FORMS}")
    if not (text.startswith(begin) and text.endswith(end)):
        raise PublicKeyError(f"one PEM public key with nothing around it expected; expected {KEY_FORMS}")
    try:
        return base64.b64decode("".join(text[len(begin) : -len(end)].split()), validate=True)
    except (binascii.Error, ValueError):
        raise PublicKeyError(f"the PEM public key's body is not base64; expected {KEY_FORMS}") from None


def _load_der_key(der: bytes) -> PublicKeyTypes:
    try:
        return serialization.load_der_public_key(der)
    except _PARSE_ERRORS:
        raise PublicKeyError(
            f"not a DER SubjectPublicKeyInfo of a public key; expected {KEY_FORMS}"
        ) from None


def key_sha256(key: PublicKeyTypes, what: str = "the key") -> str:
    """The fingerprint of an accepted key (``what`` names it in errors); :class:`PublicKeyError` naming its
    kind for any other."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, EC_CURVES):
            raise PublicKeyError(f"{what} is EC on curve {key.curve.name}; expected {ACCEPTED_KEYS}")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < RSA_MIN_BITS:
            raise PublicKeyError(f"{what} is RSA of {key.key_size} bits; expected {ACCEPTED_KEYS}")
    else:
        raise PublicKeyError(f"{what} is of type {_kind(key)}; expected {ACCEPTED_KEYS}")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _kind(key: PublicKeyTypes) -> str:
    """A key's kind: ``Ed25519PublicKey`` -> ``Ed25519``."""
    return type(key).__name__.removesuffix("PublicKey").lstrip("_")
