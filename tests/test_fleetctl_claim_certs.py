"""fleetctl claim and certs on moto: claim certificate status and deactivation, expiring device
certificates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetctl.errors import ExitCode
from hook.contract import thing_name
from tests.support import BASE, CLAIM_POLICY, Fleet

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")


def test_claim_status_counts_the_devices_approved_through_it(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")
    fleet.run_json("revoke", "TS-000002", "--reason", "test")
    fleet.provision("TS-000003", claim="another-claim-certificate")

    [claim] = fleet.run_json("claim", "status")

    assert claim["certificateId"] == fleet.claim_certificate_id
    assert (claim["status"], claim["current"], claim["devices"]) == ("ACTIVE", True, 2)
    assert claim["ageDays"] == 0
    assert 360 <= claim["daysLeft"] <= 365  # moto signs certificates for 365 days


def test_claim_status_all_lists_every_certificate_with_the_claim_policy(fleet: Fleet) -> None:
    replacement = fleet.iot.create_keys_and_certificate(setAsActive=True)
    fleet.iot.attach_policy(policyName=CLAIM_POLICY, target=replacement["certificateArn"])

    claims = fleet.run_json("claim", "status", "--all")

    assert {claim["certificateId"]: claim["current"] for claim in claims} == {
        fleet.claim_certificate_id: True,
        replacement["certificateId"]: False,
    }


def test_claim_deactivate_asks_first_and_then_sets_it_inactive_once(fleet: Fleet) -> None:
    refused = fleet.run("claim", "deactivate", fleet.claim_certificate_id, input="n\n")
    assert refused.exit_code == ExitCode.ABORTED
    assert "stack outputs name" in refused.stderr
    assert fleet.certificate(fleet.claim_certificate_id)["status"] == "ACTIVE"

    confirmed = fleet.run("claim", "deactivate", fleet.claim_certificate_id, input="y\n")
    assert confirmed.exit_code == ExitCode.OK, confirmed.output
    assert fleet.certificate(fleet.claim_certificate_id)["status"] == "INACTIVE"
    assert "claimCertificates entry with active: false" in confirmed.stderr

    again = fleet.run_json("claim", "deactivate", fleet.claim_certificate_id)
    assert again == {"certificateId": fleet.claim_certificate_id, "status": "INACTIVE", "changed": False}


def test_claim_deactivate_yes_skips_the_question(fleet: Fleet) -> None:
    report = fleet.run_json("claim", "deactivate", fleet.claim_certificate_id, "--yes")

    assert report == {"certificateId": fleet.claim_certificate_id, "status": "INACTIVE", "changed": True}


def test_claim_deactivate_refuses_a_device_certificate_and_an_unknown_id(fleet: Fleet) -> None:
    device_certificate = fleet.provision("TS-000001")

    refused = fleet.run("claim", "deactivate", device_certificate, "--yes")
    unknown = fleet.run("claim", "deactivate", "0" * 64, "--yes")

    assert refused.exit_code == ExitCode.USAGE
    assert "not a claim certificate" in refused.stderr
    assert fleet.certificate(device_certificate)["status"] == "ACTIVE"
    assert unknown.exit_code == ExitCode.NOT_FOUND


def certificate_pem(valid_for: timedelta) -> str:
    """A self-signed certificate that expires ``valid_for`` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + valid_for)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def test_certs_expiring_lists_active_device_certificates_in_the_window(fleet: Fleet) -> None:
    year_long = fleet.provision("TS-000001")  # moto: 365 days
    soon = fleet.iot.register_certificate_without_ca(
        certificatePem=certificate_pem(timedelta(days=10)), status="ACTIVE"
    )
    fleet.iot.attach_thing_principal(
        thingName=thing_name(BASE, "TS-000001"), principal=soon["certificateArn"]
    )
    fleet.iot.register_certificate_without_ca(
        certificatePem=certificate_pem(timedelta(days=5)), status="INACTIVE"
    )
    other_stacks_thing = thing_name(f"{BASE}-eu", "TS-000001")  # another stack in the same account
    fleet.iot.create_thing(thingName=other_stacks_thing)
    theirs = fleet.iot.register_certificate_without_ca(
        certificatePem=certificate_pem(timedelta(days=3)), status="ACTIVE"
    )
    fleet.iot.attach_thing_principal(thingName=other_stacks_thing, principal=theirs["certificateArn"])

    within_30 = fleet.run_json("certs", "expiring", "--days", "30")
    within_400 = fleet.run_json("certs", "expiring", "--days", "400")

    assert [(each["certificateId"], each["things"]) for each in within_30] == [
        (soon["certificateId"], [thing_name(BASE, "TS-000001")])
    ]
    assert 9 <= within_30[0]["daysLeft"] <= 10
    assert [each["certificateId"] for each in within_400] == [soon["certificateId"], year_long]


def test_certs_expiring_says_when_none_expire(fleet: Fleet) -> None:
    result = fleet.run("certs", "expiring")

    assert result.exit_code == ExitCode.OK
    assert result.stdout == "Certificates expiring within 30 days: none\n"
