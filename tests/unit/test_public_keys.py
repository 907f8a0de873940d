"""Key fingerprints: every form a factory exports a key in gives the same fingerprint as the certificate and
the CSR of that key; anything else is refused with what was wrong and the expected form, never the input."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from hook.public_keys import (
    PEM_MAX_LENGTH,
    PublicKeyError,
    certificate_key_sha256,
    csr_key_sha256,
    registered_key_sha256,
)
from tests.support import (
    certificate_signing_request,
    device_certificate,
    device_key,
    key_fingerprint,
    public_key_pem,
)

KEY = device_key()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def der(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("key", [KEY, RSA_KEY], ids=["EC P-256", "RSA 2048"])
def test_every_form_of_a_key_and_its_certificate_and_csr_share_one_fingerprint(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> None:
    expected = key_fingerprint(key)
    pem = public_key_pem(key)
    forms = [
        pem,
        pem.replace("\n", " "),  # a manifest cell whose line breaks became spaces
        f"  {pem}\n\n",
        base64.b64encode(der(key)).decode(),
        expected,
        expected.upper(),
        f"sha256:{expected}",
        f"SHA256:{expected.upper()}",
    ]
    assert {registered_key_sha256(form) for form in forms} == {expected}
    assert certificate_key_sha256(device_certificate(key)) == expected
    assert csr_key_sha256(certificate_signing_request(key=key)) == expected


def test_another_key_has_another_fingerprint() -> None:
    assert registered_key_sha256(public_key_pem(device_key())) != registered_key_sha256(public_key_pem(KEY))


def pem_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no key given"),
        ("   \n", "no key given"),
        ("not a key!", "neither PEM, base64 nor a fingerprint"),
        ("notakeyatall", "not a DER SubjectPublicKeyInfo"),
        ("sha256:" + "0" * 63, "neither PEM, base64 nor a fingerprint"),
        (base64.b64encode(b"just bytes").decode(), "not a DER SubjectPublicKeyInfo"),
        (pem_of(ec.generate_private_key(ec.SECP256K1())), "EC on curve secp256k1"),
        (pem_of(rsa.generate_private_key(65537, 1024)), "RSA of 1024 bits"),  # noqa: S505 (refused)
        (pem_of(ed25519.Ed25519PrivateKey.generate()), "of type Ed25519"),
        (device_certificate(KEY), "a PEM certificate, not a public key"),
        (certificate_signing_request(), "a PEM certificate request, not a public key"),
        (
            KEY.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            "a private key must never leave the device",
        ),
        ("-----BEGIN PUBLIC KEY-----\n%%%%\n-----END PUBLIC KEY-----", "body is not base64"),
        (f"comment {public_key_pem(KEY)}", "nothing around it"),
        ("A" * (PEM_MAX_LENGTH + 1), f"longer than {PEM_MAX_LENGTH} characters"),
    ],
    ids=lambda value: str(value).split("\n")[0][:40],  # a PEM's first line: the same in every process
)
def test_a_key_that_cannot_be_bound_is_refused_with_the_problem_and_the_expected_form(
    text: str, problem: str
) -> None:
    with pytest.raises(PublicKeyError) as caught:
        registered_key_sha256(text)
    message = str(caught.value)
    assert problem in message
    assert "expected" in message
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    if len(body) > 16:
        assert body[:16] not in message  # the input, maybe a private key, is never repeated


@pytest.mark.parametrize(
    ("certificate", "problem"),
    [
        ("", "no certificate given"),
        (None, "no certificate given"),
        ("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n", "not a readable PEM"),
        ("\x00\xff garbage", "not a readable PEM"),
        (public_key_pem(KEY), "not a readable PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\n" + "A" * PEM_MAX_LENGTH + "\n-----END CERTIFICATE-----", "longer"),
        (device_certificate(ec.generate_private_key(ec.SECP256K1())), "EC on curve secp256k1"),
    ],
    ids=lambda value: repr(value).split("\\n")[0][:40],  # a PEM's first line: the same in every process
)
def test_a_certificate_that_cannot_be_read_is_refused(certificate: str, problem: str) -> None:
    with pytest.raises(PublicKeyError, match=problem):
        certificate_key_sha256(certificate)


def test_a_csr_whose_signature_does_not_verify_is_refused() -> None:
    """A CSR carrying someone else's public key, signed with another key: no proof of possession."""
    victim, attacker = device_key(), device_key()
    subject = x509.Name([])
    forged = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(attacker, hashes.SHA256())
    # Put the victim's key into the attacker's request: re-encode the signed request with another key.
    genuine_der = forged.public_bytes(serialization.Encoding.DER)
    swapped = genuine_der.replace(der(attacker), der(victim))
    assert swapped != genuine_der
    pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(swapped).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
    with pytest.raises(PublicKeyError, match="signature does not verify"):
        csr_key_sha256(pem)


@pytest.mark.parametrize("csr", ["", "garbage", certificate_signing_request().replace("REQUEST", "KEY")])
def test_a_csr_that_cannot_be_read_is_refused(csr: str) -> None:
    with pytest.raises(PublicKeyError, match="certificate request"):
        csr_key_sha256(csr)
