"""The simulated secure element, the factory manifest it exports its key into, and the sample fleet's devices
that carry one: the fingerprints are the hook's, every CSR is for the element's one key, and only the public
key reaches the manifest."""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from hook.public_keys import certificate_key_sha256, csr_key_sha256, registered_key_sha256
from local.devices.factory import HEADER, KeyForm, write_manifest
from local.devices.firmware import Identity
from local.devices.key_pairs import AwsKeys, DeviceKeys, KeyAlgorithm, key_algorithm
from local.devices.sample_fleet import FleetFileError, load_fleet, preregistered
from local.devices.secure_element import SecureElement
from local.scenario.result_tables import manifest_entry

IDENTITY = Identity("SL-000001", "smart-lock", "AcmeIoT", "1.0.0", "plant-c/door-1")


def _certificate_for(csr_pem: str) -> str:
    """A certificate for the CSR's key, issued by a throwaway CA, as AWS IoT issues one."""
    request = x509.load_pem_x509_csr(csr_pem.encode())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(issuer)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.PEM).decode()


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_every_csr_of_an_element_is_for_its_one_key_with_the_hooks_fingerprint(
    algorithm: KeyAlgorithm,
) -> None:
    element = SecureElement(algorithm)

    first, second = element.key_and_csr("SL-000001"), element.key_and_csr("SL-000001")

    fingerprint = element.public_key_sha256()
    assert csr_key_sha256(first.csr_pem) == csr_key_sha256(second.csr_pem) == fingerprint
    assert first.private_key_pem == second.private_key_pem
    assert key_algorithm(first.private_key_pem) is algorithm
    assert registered_key_sha256(element.public_key_pem()) == fingerprint
    assert registered_key_sha256(element.public_key_der_base64()) == fingerprint
    certificate = _certificate_for(first.csr_pem)
    assert certificate_key_sha256(certificate) == fingerprint
    assert element.carries_key(certificate)


def test_two_elements_hold_different_keys() -> None:
    one, other = SecureElement(), SecureElement()

    assert one.public_key_sha256() != other.public_key_sha256()
    assert not one.carries_key(_certificate_for(other.key_and_csr("SL-000001").csr_pem))


@pytest.mark.parametrize("form", list(KeyForm))
def test_the_factory_manifest_carries_each_elements_public_key_and_no_private_key(
    tmp_path: Path, form: KeyForm
) -> None:
    element = SecureElement()
    plain = Identity("TS-000002", "temperature-sensor", "AcmeIoT", "1.4.2", "plant-a/line-1")
    manifest = tmp_path / "manifest.csv"

    assert write_manifest(manifest, [(IDENTITY, element), (plain, None)], form) == 2

    text = manifest.read_text(encoding="utf-8")
    assert "PRIVATE" not in text
    header, with_key, without_key = list(csv.reader(text.splitlines(keepends=True)))
    assert tuple(header) == HEADER
    assert with_key[:5] == ["SL-000001", "smart-lock", "AcmeIoT", "1.0.0", "plant-c/door-1"]
    assert registered_key_sha256(with_key[5]) == element.public_key_sha256()
    assert ("BEGIN PUBLIC KEY" in with_key[5]) is (form is KeyForm.PEM)
    assert without_key == ["TS-000002", "temperature-sensor", "AcmeIoT", "1.4.2", "plant-a/line-1", ""]


def _fleet_file(tmp_path: Path, *devices: dict[str, object]) -> Path:
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"devices": list(devices)}), encoding="utf-8")
    return path


def _entry(serial: str, keys: str, **extra: object) -> dict[str, object]:
    return {
        "serialNumber": serial,
        "deviceType": "smart-lock",
        "manufacturer": "AcmeIoT",
        "firmwareVersion": "1.0.0",
        "location": "lab",
        "keys": keys,
        "expect": "APPROVED",
        **extra,
    }


def test_each_secure_element_entry_of_a_fleet_gets_an_element_of_its_own(tmp_path: Path) -> None:
    path = _fleet_file(
        tmp_path,
        _entry("SL-000001", "secure-element", preregister=True),
        _entry("SL-000001", "secure-element"),
        _entry("SL-000002", "secure-element-rsa", preregister=True),
        _entry("SL-000003", "device"),
        _entry("SL-000004", "aws"),
    )

    genuine, clone, rsa, device, aws = load_fleet(path)

    assert genuine.element is not None
    assert clone.element is not None
    assert rsa.element is not None
    assert genuine.element.public_key_sha256() != clone.element.public_key_sha256()
    assert (genuine.element.algorithm, rsa.element.algorithm) == (KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048)
    assert genuine.keys.label == "secure element ec-p256"
    assert (device.keys, aws.keys) == (DeviceKeys(KeyAlgorithm.EC_P256), AwsKeys())
    assert (device.element, aws.element) == (None, None)
    assert preregistered([genuine, clone, rsa, device, aws]) == [genuine, rsa]
    assert [manifest_entry(entry) for entry in (genuine, clone, device)] == ["public key", "", ""]


def test_a_fleet_entry_with_a_preregister_flag_that_is_not_a_boolean_is_refused(tmp_path: Path) -> None:
    path = _fleet_file(tmp_path, _entry("SL-000001", "secure-element", preregister="yes"))

    with pytest.raises(FleetFileError, match=r"SL-000001: preregister 'yes': expected true or false"):
        load_fleet(path)


def test_the_sample_fleet_preregisters_only_its_genuine_secure_element_devices() -> None:
    devices = load_fleet()

    listed = preregistered(devices)

    assert listed
    assert all(device.element is not None and device.expect == "APPROVED" for device in listed)
    assert len({device.identity.serial_number for device in listed}) == len(listed)
