"""Keys made on the device: ``CreateCertificateFromCsr`` over MQTT, seen without the SDK's parsing.

The sample fleet's devices of both key flows are checked by the shared scenario
(``devices_of_every_key_flow_provision_with_keys_of_their_own``, in ``test_provisioning.py``). Here: what goes
over the wire for a CSR, and a CSR that is none."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from hook.contract import DeviceStatus, thing_name
from local.devices.firmware import Identity, Provisioning, telemetry_topic
from local.devices.key_pairs import KeyAlgorithm, KeyAndCsr, certificate_matches_key, new_key_and_csr
from local.devices.mqtt_session import Credentials, Rejected, Session
from local.scenario.sandbox import Sandbox
from program.settings import Settings

pytestmark = pytest.mark.e2e

CREATE_FROM_CSR = "$aws/certificates/create-from-csr/json"


def test_a_csr_device_sends_only_its_csr_and_gets_a_certificate_for_its_own_key(
    box: Sandbox, settings: Settings
) -> None:
    identity = Identity("PS-940001", "pressure-sensor", "Barotech", "3.0.0", "csr-lab")
    key = new_key_and_csr(KeyAlgorithm.EC_P256, identity.serial_number)
    request = {"certificateSigningRequest": key.csr_pem}
    with box.target.claim_session(identity.serial_number) as session:
        answer = session.request(CREATE_FROM_CSR, request)
        assert answer is not None, "CreateCertificateFromCsr was not answered"
        kind, accepted = answer
        assert kind == "accepted", accepted
        certificate_id = accepted["certificateId"]
        pending = box.inspector.certificate(certificate_id)
        thing = Provisioning(session).register_thing(
            box.target.template_name, accepted["certificateOwnershipToken"], identity.parameters()
        )

    assert "PRIVATE KEY" not in str(request)  # what the device sent: the CSR alone
    assert set(accepted) == {"certificateId", "certificatePem", "certificateOwnershipToken"}  # no privateKey
    assert certificate_matches_key(accepted["certificatePem"], key.private_key_pem)
    assert pending is not None
    assert pending.status == "PENDING_ACTIVATION"
    assert thing == thing_name(settings.base_name, identity.serial_number)
    box.wait_for_status([identity.serial_number], DeviceStatus.ACTIVE)
    certificate = box.inspector.certificate(certificate_id)
    assert certificate is not None
    assert (certificate.status, certificate.things) == ("ACTIVE", [thing])
    own = Credentials(accepted["certificatePem"], key.private_key_pem)
    with Session(box.target.broker, own, thing) as device:
        device.publish(telemetry_topic(identity.device_type, thing), {"pressure": 1.2})


def _weak_key_csr(serial_number: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505  refused, on purpose
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial_number)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


GARBAGE = "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize(
    ("serial_number", "csr"),
    [("PS-940002", GARBAGE), ("PS-940003", _weak_key_csr("PS-940003"))],
    ids=["garbage PEM", "RSA 1024"],
)
def test_a_bad_csr_is_rejected_and_leaves_nothing(box: Sandbox, serial_number: str, csr: str) -> None:
    iot = box.inspector.client("iot")
    before = _certificate_ids(iot)
    with box.target.claim_session(serial_number) as session:
        answer = session.request(CREATE_FROM_CSR, {"certificateSigningRequest": csr})
        with pytest.raises(Rejected) as rejected:  # the same through the SDK
            Provisioning(session).create_certificate_from_csr(KeyAndCsr("", csr))

    assert answer is not None, "CreateCertificateFromCsr was not answered"
    kind, document = answer
    assert kind == "rejected"
    assert set(document) == {"statusCode", "errorCode", "errorMessage"}
    assert document["statusCode"] == 400
    assert document["errorCode"]
    assert document["errorMessage"]
    assert rejected.value.operation == "CreateCertificateFromCsr"
    assert rejected.value.error_code == document["errorCode"]
    assert _certificate_ids(iot) == before


def _certificate_ids(iot: Any) -> set[str]:
    pages = iot.get_paginator("list_certificates").paginate()
    return {certificate["certificateId"] for page in pages for certificate in page["certificates"]}
