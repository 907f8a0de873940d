"""Zero-touch's chain check (:func:`hook.vendor_chain.attest`): a genuine element's chain is attested, and each
way a chain can fail is refused with its own reason. Every vendor is made in the test (no vendor file)."""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from hook.contract import Attr, ProvisioningDenied, RejectionReason
from hook.registry_decisions import Provenance
from hook.rules import DeviceRequest, parse_rules
from hook.vendor_chain import CHAIN_MAX_LENGTH, attest
from hook.vendor_rules import ZeroTouchRule
from local.devices.vendor import Vendor, VendorElement, certificate_chain_parameter
from tests.support import (
    certificate_id,
    device_certificate,
    device_key,
    element_certificate,
    rules_entry,
)

VENDOR = Vendor()


def rule(vendor: Vendor = VENDOR, denied: frozenset[int] = frozenset()) -> ZeroTouchRule:
    return ZeroTouchRule((vendor.root.certificate_pem(),), "SL-{uniqueId}", denied)


def request(serial: str) -> DeviceRequest:
    return DeviceRequest(serial, "smart-lock", "AcmeIoT", "1.0.0", "Line-1")


def provenance(certificate_pem: Any) -> Provenance:
    return Provenance(
        certificate_id("c"), certificate_id("claim"), "arn:aws:iot:x", "client", certificate_pem
    )


def refusal(chain: Any, made: VendorElement, **overrides: Any) -> RejectionReason:
    serial = overrides.pop("serial", f"SL-{made.unique_id}")
    certificate = overrides.pop("certificate", element_certificate(made.element))
    with pytest.raises(ProvisioningDenied) as denied:
        attest(chain, overrides.pop("rule", rule()), request(serial), provenance(certificate))
    return denied.value.reason


def test_a_genuine_element_is_attested_with_its_key_signer_and_unique_id() -> None:
    made = VENDOR.make_element()
    attested = attest(
        made.chain_parameter(),
        rule(),
        request(f"SL-{made.unique_id}"),
        provenance(element_certificate(made.element)),
    )

    assert attested.public_key == made.element.public_key_sha256()
    signer_der = VENDOR.device_signer.certificate.public_bytes(serialization.Encoding.DER)
    assert attested.attributes == {
        Attr.ATTESTED_BY: hashlib.sha256(signer_der).hexdigest(),
        Attr.UNIQUE_ID: made.unique_id,
    }


def test_a_chain_that_also_carries_the_pinned_root_is_attested() -> None:
    made = VENDOR.make_element()
    chain = certificate_chain_parameter([made.device_certificate, *made.signers, VENDOR.root.certificate])
    assert attest(
        chain, rule(), request(f"SL-{made.unique_id}"), provenance(element_certificate(made.element))
    ).public_key


def test_a_self_made_chain_is_untrusted() -> None:
    made = Vendor("Attacker Labs").make_element()
    assert refusal(made.chain_parameter(), made) == RejectionReason.VENDOR_CHAIN_UNTRUSTED


def test_a_look_alike_vendor_with_the_same_names_is_untrusted_even_with_its_own_root_attached() -> None:
    look_alike = Vendor(VENDOR.name)
    made = look_alike.make_element()
    with_root = certificate_chain_parameter(
        [made.device_certificate, *made.signers, look_alike.root.certificate]
    )
    assert refusal(made.chain_parameter(), made) == RejectionReason.VENDOR_CHAIN_UNTRUSTED
    assert refusal(with_root, made) == RejectionReason.VENDOR_CHAIN_UNTRUSTED


def test_a_genuine_chain_with_a_certificate_of_another_key_is_refused() -> None:
    made = VENDOR.make_element()  # a genuine element's chain, copied; the CSR was signed by another key
    other = device_certificate(device_key())
    assert refusal(made.chain_parameter(), made, certificate=other) == RejectionReason.VENDOR_KEY_MISMATCH


@pytest.mark.parametrize("certificate", [None, "garbage"])
def test_an_unreadable_certificate_being_provisioned_is_refused(certificate: Any) -> None:
    made = VENDOR.make_element()
    reason = refusal(made.chain_parameter(), made, certificate=certificate)
    assert reason == RejectionReason.CERTIFICATE_UNREADABLE


def test_a_serial_other_than_the_one_the_vendor_certificate_names_is_refused() -> None:
    made, other = VENDOR.make_element(), VENDOR.make_element()
    reason = refusal(made.chain_parameter(), made, serial=f"SL-{other.unique_id}")
    assert reason == RejectionReason.VENDOR_SERIAL_MISMATCH


def test_a_vendor_certificate_on_the_deny_list_is_refused() -> None:
    made = VENDOR.make_element()
    denied = rule(denied=frozenset({made.device_certificate.serial_number}))
    assert refusal(made.chain_parameter(), made, rule=denied) == RejectionReason.VENDOR_CERTIFICATE_DENIED


@pytest.mark.parametrize(
    "valid_from",
    [
        datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC),  # everything expired long ago
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2),  # not valid yet
    ],
    ids=["expired", "not-yet-valid"],
)
def test_a_chain_outside_its_validity_is_refused(valid_from: datetime.datetime) -> None:
    vendor = Vendor(valid_from=valid_from)
    made = vendor.make_element()
    reason = refusal(made.chain_parameter(), made, rule=rule(vendor))
    assert reason == RejectionReason.VENDOR_CERTIFICATE_EXPIRED


def test_a_certificate_signed_by_a_vendor_certificate_that_is_no_ca_is_untrusted() -> None:
    made = VENDOR.make_element()  # the manifest signer chains to the root but may not sign certificates
    signer = VENDOR.manifest_signer
    forged = (
        x509.CertificateBuilder()
        .subject_name(made.device_certificate.subject)
        .issuer_name(signer.certificate.subject)
        .public_key(made.device_certificate.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(signer.certificate.not_valid_before_utc)
        .not_valid_after(signer.certificate.not_valid_after_utc)
        .sign(signer.key, hashes.SHA256())
    )
    chain = certificate_chain_parameter([forged, signer.certificate])
    assert refusal(chain, made) == RejectionReason.VENDOR_CHAIN_UNTRUSTED


def test_a_vendor_ca_certificate_presented_as_the_device_certificate_is_untrusted() -> None:
    made = VENDOR.make_element()
    assert (
        refusal(certificate_chain_parameter([*made.signers]), made) == RejectionReason.VENDOR_CHAIN_UNTRUSTED
    )


def _der(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


@pytest.mark.parametrize(
    "chain",
    [
        None,
        42,
        "",
        "not base64!",
        base64.b64encode(b"not a certificate").decode(),
        "A" * (CHAIN_MAX_LENGTH + 1),
        "MAKE-FOUR",
        ["MII"],
    ],
    ids=lambda chain: repr(chain)[:20],
)
def test_a_missing_malformed_or_oversized_chain_is_unreadable(chain: Any) -> None:
    made = VENDOR.make_element()
    if chain == "MAKE-FOUR":
        chain = ",".join([_der(made.device_certificate)] * 4)
    assert refusal(chain, made) == RejectionReason.VENDOR_CHAIN_UNREADABLE


def test_a_unique_id_the_serial_rule_cannot_take_is_a_serial_mismatch() -> None:
    made = VENDOR.make_element()
    long_rule = ZeroTouchRule((VENDOR.root.certificate_pem(),), "S" * 60 + "{uniqueId}", frozenset())
    assert refusal(made.chain_parameter(), made, rule=long_rule) == RejectionReason.VENDOR_SERIAL_MISMATCH


def test_a_pinned_root_trusts_every_element_its_vendor_certified_a_pinned_signer_only_its_own() -> None:
    # A vendor root certifies every buyer's parts (Trust&GO: "device and signer certificates signed by
    # Microchip CA", Trust Platform Manifest File Format 1.2): another customer's genuine element, here of a
    # second signer under the same root, passes the root; a pinned signer of one's own (custom PKI) only its own.
    other_customer = copy.copy(VENDOR)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    other_customer.device_signer = VENDOR._issue(f"{VENDOR.name} Signer 0002", start, 365, path_length=0)
    ours, theirs = VENDOR.make_element(), other_customer.make_element()
    signer_pinned = ZeroTouchRule((VENDOR.device_signer.certificate_pem(),), "SL-{uniqueId}", frozenset())

    for made in (ours, theirs):
        assert attest(
            made.chain_parameter(),
            rule(),
            request(f"SL-{made.unique_id}"),
            provenance(element_certificate(made.element)),
        ).public_key
    assert attest(
        ours.chain_parameter(),
        signer_pinned,
        request(f"SL-{ours.unique_id}"),
        provenance(element_certificate(ours.element)),
    ).public_key
    assert (
        refusal(theirs.chain_parameter(), theirs, rule=signer_pinned)
        == RejectionReason.VENDOR_CHAIN_UNTRUSTED
    )


@pytest.mark.parametrize("written", ["4f0a91", "4F:0A:91", "00:4f:0A:91", "004F0A91"])
def test_a_denied_serial_written_with_leading_zeros_colons_or_either_case_denies_its_element(
    written: str,
) -> None:
    made = VENDOR.make_element()
    signer = VENDOR.device_signer
    numbered = (  # the element's device certificate, as its vendor would number it
        x509.CertificateBuilder()
        .subject_name(made.device_certificate.subject)
        .issuer_name(signer.certificate.subject)
        .public_key(made.device_certificate.public_key())
        .serial_number(0x4F0A91)
        .not_valid_before(made.device_certificate.not_valid_before_utc)
        .not_valid_after(made.device_certificate.not_valid_after_utc)
        .sign(signer.key, hashes.SHA256())
    )
    entry = {
        "roots": [VENDOR.root.certificate_pem()],
        "serial": "SL-{uniqueId}",
        "deniedCertificates": [written],
    }
    rules = parse_rules({"deviceTypes": {"smart-lock": rules_entry(zeroTouch=entry)}})
    chain = certificate_chain_parameter([numbered, signer.certificate])

    denied = rules.device_types["smart-lock"].zero_touch
    assert refusal(chain, made, rule=denied) == RejectionReason.VENDOR_CERTIFICATE_DENIED
    assert attest(
        chain, rule(), request(f"SL-{made.unique_id}"), provenance(element_certificate(made.element))
    )
