"""A device type's chip vendor in stack config: the pinned vendor roots, how the vendor's unique id becomes
the type's serial, zero-touch provisioning, and the vendor certificates refused."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from hook.vendor_rules import certificate_serial, certificate_serial_hex, check_serial_rule

PROJECT_DIR: Final = Path(__file__).resolve().parent.parent
"""Root files are read relative to the project (where ``Pulumi.yaml`` is), unless absolute."""
ROOTS_MAX: Final = 8
"""Pinned roots per type: each is tried on every zero-touch request's chain."""
ROOT_FORM: Final = "a PEM file of vendor root CA certificates (BEGIN CERTIFICATE), relative to the project"


def load_roots(paths: Any) -> tuple[x509.Certificate, ...]:
    """The CA certificates in the PEM files ``paths``; ``ValueError`` naming the file and the problem."""
    if not isinstance(paths, list | tuple) or not 1 <= len(paths) <= ROOTS_MAX:
        raise ValueError(f"expected a list of 1-{ROOTS_MAX} paths, each {ROOT_FORM}")
    return tuple(certificate for path in paths for certificate in _read_root_file(path))


def _read_root_file(path: Any) -> list[x509.Certificate]:
    if not isinstance(path, str) or not path:
        raise ValueError(f"{path!r}: expected {ROOT_FORM}")
    try:
        text = (PROJECT_DIR / path).read_bytes()
    except OSError as error:
        raise ValueError(
            f"{path}: cannot read it ({error.strerror or error}); expected {ROOT_FORM}"
        ) from None
    try:
        certificates = x509.load_pem_x509_certificates(text)
    except ValueError:
        raise ValueError(f"{path}: holds no readable PEM certificate; expected {ROOT_FORM}") from None
    now = datetime.datetime.now(datetime.UTC)
    for certificate in certificates:
        subject = certificate.subject.rfc4514_string()
        if not _is_ca(certificate):
            raise ValueError(f"{path}: {subject} is not a CA certificate (basicConstraints CA:TRUE)")
        if certificate.not_valid_after_utc < now:
            raise ValueError(f"{path}: {subject} expired on {certificate.not_valid_after_utc:%Y-%m-%d}")
    return certificates


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _serial_rule(value: str) -> str:
    return check_serial_rule(value)


def _denied(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(certificate_serial_hex(certificate_serial(value)) for value in values)


class VendorSettings(BaseModel):
    """The chip vendor a device type trusts (``vendor:`` of a device type)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, arbitrary_types_allowed=True
    )

    roots: Annotated[tuple[x509.Certificate, ...], BeforeValidator(load_roots)]
    """The pinned vendor root certificates, read from the PEM files the config lists."""
    serial: Annotated[str, AfterValidator(_serial_rule)]
    """How an element's unique id (lowercase hex) becomes this type's serial: ``SL-{uniqueId}``."""
    zero_touch: bool = Field(default=False, alias="zeroTouch")
    """No pre-registration: the hook approves a device whose factory certificate chain verifies to a root."""
    denied_certificates: Annotated[tuple[str, ...], AfterValidator(_denied)] = Field(
        default=(), alias="deniedCertificates"
    )
    """Serial numbers (lowercase hex) of vendor device certificates refused, as known compromised."""

    def trust(self) -> dict[str, Any]:
        """What an import of this vendor's signed manifests checks against (the ``vendorTrust`` stack
        output, read by ``fleetctl preregister``): the roots as PEM and the serial rule."""
        return {
            "roots": [root.public_bytes(serialization.Encoding.PEM).decode() for root in self.roots],
            "serial": self.serial,
        }

    def zero_touch_rule(self) -> dict[str, Any] | None:
        """The hook's ``zeroTouch`` entry for this type: the roots as PEM, the serial rule and the deny
        list; ``None`` unless ``zeroTouch``."""
        if not self.zero_touch:
            return None
        return {**self.trust(), "deniedCertificates": list(self.denied_certificates)}
