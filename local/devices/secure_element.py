"""A simulated secure element (an ATECC608, an SE050, a TPM): the device's key pair, made inside the element
at the simulated factory; only its public key is ever exported, into the factory manifest.

The element is a :class:`~local.devices.key_pairs.KeySource`: the device provisions with a CSR signed by the
element's key (``CreateCertificateFromCsr``), so its certificate carries the key the manifest registered,
which a stack with key binding requires. A real device never sees its private key: the element signs the CSR
and the TLS handshake through PKCS#11 (the AWS IoT Device SDK's ``mqtt5_client_builder.mtls_with_pkcs11``).
The simulator's MQTT client (``mtls_from_bytes``) needs the key as PEM, so :meth:`SecureElement.key_and_csr`
hands it over with the CSR, for the device's own TLS session only; nothing else reads it, and the element
offers no other way out for it.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from local.devices.key_pairs import KeyAlgorithm, KeyAndCsr, key_and_csr, new_private_key

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class SecureElement:
    """One device's secure element, holding a key pair of ``algorithm`` made when the element is."""

    def __init__(self, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> None:
        self.algorithm = algorithm
        self.__key = new_private_key(algorithm)

    @property
    def label(self) -> str:
        """``secure element ec-p256``: who holds the key, and what key."""
        return f"secure element {self.algorithm}"

    def public_key_pem(self) -> str:
        """The public key as PEM (``-----BEGIN PUBLIC KEY-----``), for the factory manifest."""
        return (
            self.__key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def public_key_der_base64(self) -> str:
        """The public key as base64 DER SubjectPublicKeyInfo, the manifest's one-line form."""
        return base64.b64encode(self._public_key_der()).decode()

    def public_key_sha256(self) -> str:
        """The public key's fingerprint: lowercase hex SHA-256 of its DER SubjectPublicKeyInfo, as the
        registry stores it."""
        return hashlib.sha256(self._public_key_der()).hexdigest()

    def carries_key(self, certificate_pem: str) -> bool:
        """Whether a certificate is for this element's key."""
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        return certificate.public_key().public_bytes(*_SPKI) == self._public_key_der()

    def key_and_csr(self, common_name: str) -> KeyAndCsr:
        """A CSR signed by the element's key with subject ``CN=<common_name>``, and the key for the
        device's TLS session (see the module's docstring). Every call certifies the same key."""
        return key_and_csr(self.__key, common_name)

    def _public_key_der(self) -> bytes:
        return self.__key.public_key().public_bytes(*_SPKI)
