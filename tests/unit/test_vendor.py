"""The simulated chip vendor: its device certificates chain to its root and certify the element's key."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from local.devices.key_pairs import KeyAlgorithm
from local.devices.vendor import Vendor


def _verify(root: x509.Certificate, leaf: x509.Certificate, intermediate: x509.Certificate) -> None:
    """Each certificate is signed by the next (Trust&GO device certificates carry no subjectAltName, so
    the web PKI client verifier does not apply)."""
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)


def test_a_device_certificate_chains_to_its_vendor_root_and_names_the_unique_id() -> None:
    vendor = Vendor()
    made = vendor.make_element()

    _verify(vendor.root.certificate, made.device_certificate, vendor.device_signer.certificate)
    assert made.element.carries_key(made.device_certificate_pem())
    common_name = made.device_certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert common_name[0].value == f"sn{made.unique_id}"
    assert len(bytes.fromhex(made.unique_id)) == 9


def test_a_look_alike_vendor_with_the_same_subjects_does_not_chain_to_the_genuine_root() -> None:
    genuine, look_alike = Vendor(), Vendor()
    made = look_alike.make_element()

    assert look_alike.device_signer.certificate.subject == genuine.device_signer.certificate.subject
    with pytest.raises(InvalidSignature):
        _verify(genuine.root.certificate, made.device_certificate, look_alike.device_signer.certificate)


def test_an_element_with_an_rsa_key_gets_no_device_certificate() -> None:
    with pytest.raises(ValueError, match="needs an EC key, not rsa-2048"):
        Vendor().make_element(KeyAlgorithm.RSA_2048)
