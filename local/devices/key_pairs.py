"""A device's key pair and the certificate signing request for it: who makes the key (:class:`KeySource`:
the device, AWS IoT, or a secure element), and the checks of a certificate against a key."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


class KeyAlgorithm(StrEnum):
    """Key pairs a device makes for ``CreateCertificateFromCsr`` (AWS IoT also takes P-521 and larger RSA
    keys)."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"


_CURVES: dict[KeyAlgorithm, ec.EllipticCurve] = {
    KeyAlgorithm.EC_P256: ec.SECP256R1(),
    KeyAlgorithm.EC_P384: ec.SECP384R1(),
}


class KeyAndCsr(NamedTuple):
    """A device's private key and a certificate signing request for it, both PEM."""

    private_key_pem: str
    csr_pem: str


class KeySource(Protocol):
    """Who makes a device's key pair, and so which request gets its certificate: :class:`DeviceKeys`,
    :class:`AwsKeys`, or a secure element (``local/devices/secure_element.py``)."""

    @property
    def label(self) -> str:
        """Who made the key, and what key (``device ec-p256``, ``aws``)."""
        ...

    def key_and_csr(self, common_name: str) -> KeyAndCsr | None:
        """The device's key and a CSR for it with subject ``CN=<common_name>``, for
        ``CreateCertificateFromCsr``; ``None`` when AWS IoT makes the key pair
        (``CreateKeysAndCertificate``)."""
        ...


@dataclass(frozen=True)
class DeviceKeys:
    """The device makes a new key pair and sends only a CSR (``CreateCertificateFromCsr``): the private key
    never leaves it."""

    algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256

    @property
    def label(self) -> str:
        """``device ec-p256``: who made the key, and what key."""
        return f"device {self.algorithm}"

    def key_and_csr(self, common_name: str) -> KeyAndCsr:
        """A new key pair of :attr:`algorithm` and its CSR (:func:`new_key_and_csr`)."""
        return new_key_and_csr(self.algorithm, common_name)


@dataclass(frozen=True)
class AwsKeys:
    """AWS IoT makes the key pair and sends the private key to the device (``CreateKeysAndCertificate``)."""

    @property
    def label(self) -> str:
        """``aws``: who made the key."""
        return "aws"

    def key_and_csr(self, common_name: str) -> None:
        """None: the device makes no key."""
        return None


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""The private keys a device may hold: EC P-256, EC P-384 or RSA 2048 (:class:`KeyAlgorithm`)."""


def new_private_key(algorithm: KeyAlgorithm) -> PrivateKey:
    """A new private key of ``algorithm``."""
    if algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[algorithm])
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_key_and_csr(algorithm: KeyAlgorithm, common_name: str) -> KeyAndCsr:
    """A new key pair of ``algorithm`` and a CSR for it with subject ``CN=<common_name>`` (1-64
    characters), signed with SHA-256: ``(private_key_pem, csr_pem)``, the key as unencrypted PKCS #8.

    Only the CSR is meant to leave the device (``CreateCertificateFromCsr``, or a certificate rotation);
    the key stays with it. AWS IoT issues the certificate for the CSR's public key whatever the subject
    says."""
    return key_and_csr(new_private_key(algorithm), common_name)


def key_and_csr(key: PrivateKey, common_name: str) -> KeyAndCsr:
    """``key`` as unencrypted PKCS #8 PEM, and a CSR for it with subject ``CN=<common_name>`` signed with
    SHA-256."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    private_key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return KeyAndCsr(private_key_pem, csr.public_bytes(serialization.Encoding.PEM).decode())


def certificate_matches_key(certificate_pem: str, private_key_pem: str) -> bool:
    """Whether the certificate is for the public key of ``private_key_pem``."""
    certificate_key = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    own_key = serialization.load_pem_private_key(private_key_pem.encode(), password=None).public_key()
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return certificate_key.public_bytes(*spki) == own_key.public_bytes(*spki)


def key_algorithm(private_key_pem: str) -> KeyAlgorithm | None:
    """The :class:`KeyAlgorithm` of a PEM private key, ``None`` for any other kind of key."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return next((each for each, curve in _CURVES.items() if curve.name == key.curve.name), None)
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048:
        return KeyAlgorithm.RSA_2048
    return None
