"""A chip vendor's signed manifest verified for ``fleetctl preregister --signer``: every refusal, built from
synthetic vendors made here (no vendor file is shipped)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from fleetctl.errors import UsageProblem
from fleetctl.signed_manifest import (
    EntryProblem,
    ManifestSigner,
    Refusal,
    SignedManifest,
    VendorTrust,
    b64url,
    signer_ids,
    verified_manifest,
)
from hook.contract import Attr, Parameter
from hook.public_keys import key_sha256
from hook.rules import parse_rules
from local.devices.vendor import Vendor, VendorElement
from local.devices.vendor_manifest import element_record, signed_entry, signed_manifest, write_signed_manifest

DEVICE_TYPE = "smart-valve"
RULE = "SV-{uniqueId}"
PARAMETERS = {
    Parameter.DEVICE_TYPE: DEVICE_TYPE,
    Parameter.MANUFACTURER: "AcmeIoT",
    Parameter.FIRMWARE_VERSION: "1.0.0",
    Parameter.LOCATION: "plant-a",
}
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def vendor() -> Vendor:
    return Vendor()


def _verify(
    tmp_path: Path, vendor: Vendor, entries: list[dict[str, Any]], pattern: str = "SV-[0-9a-f]{18}"
) -> SignedManifest:
    manifest = tmp_path / "manifest.json"
    write_signed_manifest(manifest, entries)
    rules = {DEVICE_TYPE: {"serialPattern": pattern, "keyBinding": True}}
    return _verify_file(tmp_path, vendor, manifest, rules)


def _verify_file(tmp_path: Path, vendor: Vendor, manifest: Path, rules: dict[str, Any]) -> SignedManifest:
    trust = VendorTrust((vendor.root.certificate,), RULE)
    return verified_manifest(
        manifest,
        signer=_signer(tmp_path, vendor, trust),
        trust=trust,
        parameters=PARAMETERS,
        rules=parse_rules({"deviceTypes": rules}),
        now=NOW,
    )


def _signer(tmp_path: Path, signing: Vendor, trust: VendorTrust) -> ManifestSigner:
    path = tmp_path / "signer.pem"
    path.write_text(signing.manifest_signer.certificate_pem(), encoding="utf-8")
    return ManifestSigner.read(path, trust, NOW)


def _refusals(checked: SignedManifest) -> list[tuple[int, Refusal]]:
    return [(problem.line, problem.column) for problem in checked.problems()]


def _key(made: VendorElement) -> str:
    return key_sha256(made.device_certificate.public_key())


def test_a_genuine_manifest_gives_each_element_its_serial_key_and_provenance(
    tmp_path: Path, vendor: Vendor
) -> None:
    elements = [vendor.make_element() for _ in range(3)]

    checked = _verify(tmp_path, vendor, signed_manifest(vendor, elements))

    assert list(checked.problems()) == []
    rows = list(checked.rows())
    assert [row.request.serial_number for row in rows] == [f"SV-{made.unique_id}" for made in elements]
    assert [row.public_key_sha256 for row in rows] == [_key(made) for made in elements]
    signer_der = vendor.manifest_signer.certificate.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256((tmp_path / "manifest.json").read_bytes()).hexdigest()
    assert rows[0].provenance == {
        Attr.ATTESTED_BY: hashlib.sha256(signer_der).hexdigest(),
        Attr.MANIFEST_DIGEST: digest,
        Attr.PART_NUMBER: "ATECC608B-TNGTLS",
        Attr.UNIQUE_ID: elements[0].unique_id,
    }
    assert rows[0].request.manufacturer == "AcmeIoT"


def test_an_entry_signed_as_microchip_signs_verifies(tmp_path: Path, vendor: Vendor) -> None:
    """The signature made as Microchip's manifest code makes it (ECDSA over ``protected.payload``, DER turned
    into raw r || s), not by joserfc: the format, not only the library talking to itself."""
    made = vendor.make_element()
    header = {"typ": "JWT", "alg": "ES256", **signer_ids(vendor.manifest_signer.certificate)}
    protected = b64url(json.dumps(header).encode())
    payload = b64url(json.dumps(element_record(made)).encode())
    der = vendor.manifest_signer.key.sign(f"{protected}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    signature = b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    entry = {
        "header": {"uniqueId": made.unique_id},
        "protected": protected,
        "payload": payload,
        "signature": signature,
    }

    checked = _verify(tmp_path, vendor, [entry])

    assert [row.request.serial_number for row in checked.rows()] == [f"SV-{made.unique_id}"]


def test_a_payload_changed_after_signing_is_refused(tmp_path: Path, vendor: Vendor) -> None:
    genuine, other = vendor.make_element(), vendor.make_element()
    entry = signed_entry(vendor.manifest_signer, element_record(genuine))
    forged = element_record(genuine)
    forged["publicKeySet"] = element_record(other)["publicKeySet"]
    entry["payload"] = b64url(json.dumps(forged).encode())

    checked = _verify(tmp_path, vendor, [entry])

    assert _refusals(checked) == [(1, Refusal.BAD_SIGNATURE)]
    assert checked.valid_rows == 0


def test_a_look_alike_signer_with_the_same_subject_is_refused_whatever_its_header_says(
    tmp_path: Path, vendor: Vendor
) -> None:
    look_alike = Vendor(vendor.name)
    assert look_alike.manifest_signer.certificate.subject == vendor.manifest_signer.certificate.subject
    record = element_record(vendor.make_element())
    own_ids = signed_entry(look_alike.manifest_signer, record)
    genuine_ids = signed_entry(
        look_alike.manifest_signer, record, protected=signer_ids(vendor.manifest_signer.certificate)
    )

    checked = _verify(tmp_path, vendor, [own_ids, genuine_ids])

    assert _refusals(checked) == [(1, Refusal.SIGNER_MISMATCH), (2, Refusal.BAD_SIGNATURE)]


def test_a_look_alike_or_unknown_signer_certificate_is_refused_before_any_entry(
    tmp_path: Path, vendor: Vendor
) -> None:
    trust = VendorTrust((vendor.root.certificate,), RULE)

    with pytest.raises(UsageProblem, match="VendorChainUntrusted"):
        _signer(tmp_path, Vendor(vendor.name), trust)


def test_an_expired_signer_is_refused(tmp_path: Path) -> None:
    old = Vendor(valid_from=NOW - datetime.timedelta(days=400), manifest_signer_days=30)
    trust = VendorTrust((old.root.certificate,), RULE)

    with pytest.raises(UsageProblem, match="VendorCertificateExpired"):
        _signer(tmp_path, old, trust)


@pytest.mark.parametrize("member", ["kid", "x5t#S256"])
def test_a_kid_or_thumbprint_of_another_certificate_is_refused(
    tmp_path: Path, vendor: Vendor, member: str
) -> None:
    other = signer_ids(vendor.device_signer.certificate)[member]
    entry = signed_entry(
        vendor.manifest_signer, element_record(vendor.make_element()), protected={member: other}
    )

    assert _refusals(_verify(tmp_path, vendor, [entry])) == [(1, Refusal.SIGNER_MISMATCH)]


def test_a_jwk_that_is_not_the_device_certificates_key_is_refused(tmp_path: Path, vendor: Vendor) -> None:
    made, other = vendor.make_element(), vendor.make_element()
    record = element_record(made)
    other_key = element_record(other)["publicKeySet"]["keys"][0]
    record["publicKeySet"]["keys"][0].update(x=other_key["x"], y=other_key["y"])

    entry = signed_entry(vendor.manifest_signer, record)

    assert _refusals(_verify(tmp_path, vendor, [entry])) == [(1, Refusal.KEY_MISMATCH)]


def test_a_device_certificate_of_another_vendor_is_refused(tmp_path: Path, vendor: Vendor) -> None:
    """The genuine signer signed it, yet ``x5c`` does not chain to the type's pinned root."""
    record = element_record(Vendor(vendor.name).make_element())

    entry = signed_entry(vendor.manifest_signer, record)

    assert _refusals(_verify(tmp_path, vendor, [entry])) == [(1, Refusal.DEVICE_CHAIN)]


def test_a_duplicate_unique_id_is_refused_and_names_the_first_entry(tmp_path: Path, vendor: Vendor) -> None:
    made = vendor.make_element()

    checked = _verify(tmp_path, vendor, signed_manifest(vendor, [made, vendor.make_element(), made]))

    assert list(checked.problems()) == [
        EntryProblem(3, Refusal.DUPLICATE, f"uniqueId {made.unique_id} is also in entry 1")
    ]


def test_a_serial_the_rule_makes_outside_the_types_pattern_is_refused(tmp_path: Path, vendor: Vendor) -> None:
    checked = _verify(tmp_path, vendor, signed_manifest(vendor, [vendor.make_element()]), "SV-[0-9a-f]{4}")

    assert _refusals(checked) == [(1, Refusal.SERIAL_RULE)]
    assert "serialPattern" in next(checked.problems()).message


def test_an_unprotected_unique_id_other_than_the_signed_one_is_refused(
    tmp_path: Path, vendor: Vendor
) -> None:
    entry = signed_entry(vendor.manifest_signer, element_record(vendor.make_element()))
    entry["header"] = {"uniqueId": vendor.make_element().unique_id}

    assert _refusals(_verify(tmp_path, vendor, [entry])) == [(1, Refusal.UNIQUE_ID_MISMATCH)]


@pytest.mark.parametrize(
    "entry",
    [
        "a string",
        {"protected": "e30", "payload": "e30", "signature": "AA"},
        {"protected": "!!", "header": {"uniqueId": "01"}, "payload": "e30", "signature": "AA"},
    ],
)
def test_an_entry_that_is_no_jws_of_the_format_is_refused_as_unreadable(
    tmp_path: Path, vendor: Vendor, entry: Any
) -> None:
    assert _refusals(_verify(tmp_path, vendor, [entry])) == [(1, Refusal.UNREADABLE)]


@pytest.mark.parametrize(
    ("text", "problem"), [("{}", "non-empty JSON array"), ("[]", "non-empty"), ("x", "not JSON")]
)
def test_a_file_that_is_no_manifest_is_a_usage_problem(
    tmp_path: Path, vendor: Vendor, text: str, problem: str
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(text, encoding="utf-8")

    with pytest.raises(UsageProblem, match=problem):
        _verify_file(tmp_path, vendor, manifest, {DEVICE_TYPE: {}})


def test_the_signers_ids_are_base64url_of_its_key_identifier_and_thumbprint(vendor: Vendor) -> None:
    certificate = vendor.manifest_signer.certificate
    identifier = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    ids = signer_ids(certificate)

    assert base64.urlsafe_b64decode(ids["kid"] + "=" * (-len(ids["kid"]) % 4)) == identifier
    assert ids["x5t#S256"] == b64url(
        hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()
    )


def test_a_value_the_types_rules_refuse_names_its_option(tmp_path: Path, vendor: Vendor) -> None:
    manifest = tmp_path / "manifest.json"
    write_signed_manifest(manifest, signed_manifest(vendor, [vendor.make_element()]))

    with pytest.raises(UsageProblem, match=r"^--manufacturer: .*AcmeIoT"):
        _verify_file(tmp_path, vendor, manifest, {DEVICE_TYPE: {"manufacturers": ["SensorWorks"]}})


def test_an_entry_whose_device_certificate_names_another_unique_id_is_refused(
    tmp_path: Path, vendor: Vendor
) -> None:
    made = vendor.make_element()
    record = element_record(made)
    record["uniqueId"] = vendor.make_element().unique_id

    entry = signed_entry(vendor.manifest_signer, record)

    assert _refusals(_verify(tmp_path, vendor, [entry])) == [(1, Refusal.UNIQUE_ID_MISMATCH)]
