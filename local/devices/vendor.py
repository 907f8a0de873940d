"""A simulated chip vendor, in the shape of Microchip's Trust&GO secure elements: a vendor root, a device
signer under it that certifies every element's key at the vendor's line, and a manifest signer under it that
signs the batch's manifest.

Each element leaves the line with a unique id (9 bytes, as lowercase hex) and a device certificate
``O=<vendor>, CN=sn<unique id>`` for the key that never leaves it. Only tests and the local sandbox use this:
no vendor file is shipped, and the root is made anew for each :class:`Vendor`.
"""

from __future__ import annotations

import base64
import datetime
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from local.devices.key_pairs import KeyAlgorithm
from local.devices.secure_element import SecureElement

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Authority:
    """A certificate and the key that signs with it."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> str:
        """The certificate as PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class VendorElement:
    """A secure element as it leaves the vendor's line: the element, its unique id and its device
    certificate."""

    element: SecureElement
    unique_id: str
    device_certificate: x509.Certificate
    signers: tuple[x509.Certificate, ...] = ()
    """The vendor certificates between the device certificate and the root (Trust&GO: the device signer)."""

    def device_certificate_pem(self) -> str:
        """The device certificate as PEM."""
        return self.device_certificate.public_bytes(serialization.Encoding.PEM).decode()

    def chain_parameter(self) -> str:
        """What a zero-touch device sends as ``VendorCertificateChain``: its certificate and signers."""
        return certificate_chain_parameter([self.device_certificate, *self.signers])


def certificate_chain_parameter(certificates: list[x509.Certificate]) -> str:
    """A ``VendorCertificateChain`` value: each certificate as base64 DER, device certificate first, joined by
    commas (:data:`hook.contract.VENDOR_CHAIN_PARAMETER`)."""
    return ",".join(
        base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
        for certificate in certificates
    )


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: Authority | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    valid_from: datetime.datetime,
    valid_days: int,
    path_length: int | None,
) -> x509.Certificate:
    """A certificate of ``public_key`` signed by ``issuer`` (self-signed with ``issuer_key`` when ``None``);
    a CA when ``path_length`` is not ``None``."""
    is_ca = path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_from + valid_days * _DAY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if not is_ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


class Vendor:
    """A chip vendor: root, device signer and manifest signer, all EC P-256 like Trust&GO's.

    ``valid_from`` and ``manifest_signer_days`` let a test make a signer that is not yet or no longer
    valid; two vendors with the same ``name`` have the same subjects and different keys (a look-alike).
    """

    def __init__(
        self,
        name: str = "Simulated Silicon Inc",
        *,
        valid_from: datetime.datetime | None = None,
        manifest_signer_days: int = 3 * 365,
    ) -> None:
        self.name = name
        start = valid_from or datetime.datetime.now(datetime.UTC) - _DAY
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_certificate = _certificate(
            _name(name, f"{name} Root CA"),
            root_key.public_key(),
            None,
            root_key,
            valid_from=start,
            valid_days=25 * 365,
            path_length=1,
        )
        self.root = Authority(root_certificate, root_key)
        self.device_signer = self._issue(f"{name} Signer 0001", start, 20 * 365, path_length=0)
        self.manifest_signer = self._issue(
            f"{name} Manifest Signer", start, manifest_signer_days, path_length=None
        )

    def _issue(
        self, common_name: str, start: datetime.datetime, days: int, *, path_length: int | None
    ) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate(
            _name(self.name, common_name),
            key.public_key(),
            self.root,
            self.root.key,
            valid_from=start,
            valid_days=days,
            path_length=path_length,
        )
        return Authority(certificate, key)

    def make_element(self, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> VendorElement:
        """A new secure element, its unique id and the device certificate the vendor's line gives it."""
        element = SecureElement(algorithm)
        unique_id = "01" + secrets.token_hex(8)
        certificate = self.device_certificate(element, unique_id)
        return VendorElement(element, unique_id, certificate, (self.device_signer.certificate,))

    def device_certificate(self, element: SecureElement, unique_id: str) -> x509.Certificate:
        """The device certificate ``O=<vendor>, CN=sn<unique_id>`` for ``element``'s key, signed by the
        device signer."""
        public_key = serialization.load_pem_public_key(element.public_key_pem().encode())
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ValueError(f"a {self.name} device certificate needs an EC key, not {element.algorithm}")
        return _certificate(
            _name(self.name, f"sn{unique_id}"),
            public_key,
            self.device_signer,
            self.device_signer.key,
            valid_from=self.device_signer.certificate.not_valid_before_utc,
            valid_days=20 * 365,
            path_length=None,
        )
