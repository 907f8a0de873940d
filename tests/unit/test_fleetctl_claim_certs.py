"""fleetctl claim and certs on moto: claim certificate status and deactivation, expiring device
certificates found through the registry (never by listing the account's certificates), and the backfill of
their expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetctl.errors import ExitCode
from hook.contract import Attr, ProvisioningDenied, RejectionReason, thing_name
from tests.support import BASE, CLAIM_POLICY, REGION, Fleet

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
    assert again == [
        {
            "certificateId": fleet.claim_certificate_id,
            "region": REGION,
            "status": "INACTIVE",
            "changed": False,
        }
    ]


def test_claim_deactivate_yes_skips_the_question(fleet: Fleet) -> None:
    report = fleet.run_json("claim", "deactivate", fleet.claim_certificate_id, "--yes")

    assert report == [
        {"certificateId": fleet.claim_certificate_id, "region": REGION, "status": "INACTIVE", "changed": True}
    ]


def test_claim_deactivate_refuses_a_device_certificate_and_an_unknown_id(fleet: Fleet) -> None:
    device_certificate = fleet.provision("TS-000001")

    refused = fleet.run("claim", "deactivate", device_certificate, "--yes")
    unknown = fleet.run("claim", "deactivate", "0" * 64, "--yes")

    assert refused.exit_code == ExitCode.USAGE
    assert "not a claim certificate" in refused.stderr
    assert fleet.certificate(device_certificate)["status"] == "ACTIVE"
    assert unknown.exit_code == ExitCode.NOT_FOUND


def certificate_pem(valid_for: timedelta, issued_ago: timedelta = timedelta(days=1)) -> str:
    """A self-signed certificate that expires ``valid_for`` from now (in the past when negative)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - issued_ago)
        .not_valid_after(now + valid_for)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """Each AWS operation fleetctl calls, with the certificate it names (if any): botocore's
    ``before-parameter-build`` event carries the call's own parameters, once per call."""
    recorded: list[tuple[str, str | None]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        recorded.append((model.name, params.get("certificateId")))

    session = boto3.Session()  # fleetctl makes its clients from boto3's default session
    session.events.register("before-parameter-build", record)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return recorded


def described(calls: list[tuple[str, str | None]]) -> list[str | None]:
    return sorted((certificate for name, certificate in calls if name == "DescribeCertificate"), key=str)


def test_claim_status_describes_only_the_claim_certificates_it_reports(
    fleet: Fleet, calls: list[tuple[str, str | None]]
) -> None:
    for serial in ("TS-000001", "TS-000002"):
        fleet.provision(serial)
    replacement = fleet.iot.create_keys_and_certificate(setAsActive=True)
    fleet.iot.attach_policy(policyName=CLAIM_POLICY, target=replacement["certificateArn"])
    calls.clear()

    fleet.run_json("claim", "status")
    assert described(calls) == [fleet.claim_certificate_id]
    calls.clear()
    fleet.run_json("claim", "status", "--all")

    assert described(calls) == sorted([fleet.claim_certificate_id, replacement["certificateId"]])
    # Each certificate's breaker: its shards' items in one BatchGetItem and the hour's count (GetItem).
    assert {name for name, _ in calls} == {
        "ListTargetsForPolicy",
        "DescribeCertificate",
        "Scan",
        "BatchGetItem",
        "GetItem",
    }
    assert [name for name, _ in calls].count("BatchGetItem") == 2


def test_certs_expiring_describes_only_the_certificates_the_registry_says_expire(
    fleet: Fleet, calls: list[tuple[str, str | None]]
) -> None:
    year_long = fleet.provision("TS-000001", certificate_pem=certificate_pem(timedelta(days=365)))
    aws_issued = fleet.provision("TS-000005")  # moto's, as AWS IoT's: no expiry recorded, never described
    soon = fleet.provision("TS-000002", certificate_pem=certificate_pem(timedelta(days=10)))
    expired = fleet.provision(
        "TS-000003", certificate_pem=certificate_pem(timedelta(days=-2), issued_ago=timedelta(days=30))
    )
    revoked = fleet.provision("TS-000004", certificate_pem=certificate_pem(timedelta(days=5)))
    fleet.run_json("revoke", "TS-000004", "--reason", "stolen")  # not ACTIVE: never read again
    fleet.iot.register_certificate_without_ca(
        certificatePem=certificate_pem(timedelta(days=5)), status="ACTIVE"
    )  # no device of this stack holds it
    other_stacks_thing = thing_name(f"{BASE}-eu", "TS-000001")  # another stack in the same account
    fleet.iot.create_thing(thingName=other_stacks_thing)
    theirs = fleet.iot.register_certificate_without_ca(
        certificatePem=certificate_pem(timedelta(days=3)), status="ACTIVE"
    )
    fleet.iot.attach_thing_principal(thingName=other_stacks_thing, principal=theirs["certificateArn"])
    calls.clear()

    within_30 = fleet.run_json("certs", "expiring", "--days", "30")

    assert [
        (each["certificateId"], each["serial"], each["thingName"]) for each in within_30["certificates"]
    ] == [
        (expired, "TS-000003", thing_name(BASE, "TS-000003")),
        (soon, "TS-000002", thing_name(BASE, "TS-000002")),
    ]
    assert within_30["withoutRecordedExpiry"] == 1
    assert [each["daysLeft"] for each in within_30["certificates"]] == [-3, 9]  # whole days, rounded down
    assert described(calls) == sorted([expired, soon])
    assert {name for name, _ in calls} == {"Scan", "DescribeCertificate"}  # never ListCertificates
    assert revoked not in described(calls)
    calls.clear()

    within_400 = fleet.run_json("certs", "expiring", "--days", "400")

    assert [each["certificateId"] for each in within_400["certificates"]] == [expired, soon, year_long]
    assert described(calls) == sorted([expired, soon, year_long])
    assert aws_issued not in described(calls)


def test_certs_expiring_leaves_out_a_certificate_aws_iot_no_longer_has_active(fleet: Fleet) -> None:
    soon = fleet.provision("TS-000001", certificate_pem=certificate_pem(timedelta(days=10)))
    fleet.iot.update_certificate(certificateId=soon, newStatus="INACTIVE")  # behind the registry's back

    assert fleet.run_json("certs", "expiring")["certificates"] == []


def test_certs_expiring_counts_aws_iot_certificates_without_describing_them_and_points_to_their_age(
    fleet: Fleet, calls: list[tuple[str, str | None]]
) -> None:
    """AWS IoT's certificates all expire 2049-12-31: activation records no expiry for them, the report
    describes none of them, and the registry backfill no longer describes them to record one."""
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")
    assert Attr.CERTIFICATE_NOT_AFTER not in fleet.item("TS-000001")
    calls.clear()

    report = fleet.run_json("certs", "expiring")
    text = fleet.run("certs", "expiring")
    backfilled = fleet.run_json("registry", "backfill")

    assert report == {"certificates": [], "withoutRecordedExpiry": 2}
    assert text.stdout == (
        "Certificates expiring within 30 days: none\n"
        "2 ACTIVE device(s) hold certificates AWS IoT issued, which all expire at 2049-12-31T23:59:59Z: "
        "rotate those by age (`fleetctl rotate start --older-than DAYS --dry-run` lists them)\n"
    )
    assert "certificateExpiry" not in backfilled
    assert described(calls) == []
    assert Attr.CERTIFICATE_NOT_AFTER not in fleet.item("TS-000001")


def test_certs_expiring_says_when_none_expire(fleet: Fleet) -> None:
    result = fleet.run("certs", "expiring")

    assert result.exit_code == ExitCode.OK
    assert result.stdout == "Certificates expiring within 30 days: none\n"


def test_claim_suspend_stops_that_generation_only_and_records_who_when_and_why(fleet: Fleet) -> None:
    fleet.provision("TS-000001")

    suspended = fleet.run_json("claim", "suspend", fleet.claim_certificate_id, "--reason", "found on a forum")

    assert (suspended["breaker"], suspended["breakerReason"]) == ("SUSPENDED", "found on a forum")
    assert suspended["breakerChangedBy"].startswith("arn:aws:")
    with pytest.raises(ProvisioningDenied) as denied:
        fleet.provision("TS-000002")
    assert denied.value.reason is RejectionReason.CLAIM_SUSPENDED
    assert fleet.find_item("TS-000002") is None
    fleet.provision("TS-000003", claim="another-claim-certificate")
    assert fleet.certificate(fleet.claim_certificate_id)["status"] == "ACTIVE"
    [claim] = fleet.run_json("claim", "status")
    assert (claim["breaker"], claim["breakerReason"], claim["devices"]) == (
        "SUSPENDED",
        "found on a forum",
        1,
    )


def test_claim_resume_lets_the_generation_provision_again(fleet: Fleet) -> None:
    fleet.run_json("claim", "suspend", fleet.claim_certificate_id, "--reason", "checking a burst")

    resumed = fleet.run_json(
        "claim", "resume", fleet.claim_certificate_id, "--reason", "the factory's own burst"
    )

    assert (resumed["breaker"], resumed["breakerReason"]) == ("CLOSED", "the factory's own burst")
    fleet.provision("TS-000004")
    [claim] = fleet.run_json("claim", "status")
    assert (claim["breaker"], claim["devices"]) == ("CLOSED", 1)


def test_claim_suspend_refuses_a_blank_reason_and_what_is_not_a_claim_certificate(fleet: Fleet) -> None:
    device_certificate = fleet.provision("TS-000005")

    blank = fleet.run("claim", "suspend", fleet.claim_certificate_id, "--reason", "  ")
    refused = fleet.run("claim", "suspend", device_certificate, "--reason", "x")
    unknown = fleet.run("claim", "resume", "0" * 64, "--reason", "x")

    assert blank.exit_code == ExitCode.USAGE and "must not be blank" in blank.stderr
    assert refused.exit_code == ExitCode.USAGE and "not a claim certificate" in refused.stderr
    assert unknown.exit_code == ExitCode.NOT_FOUND
    [claim] = fleet.run_json("claim", "status")
    assert claim["breaker"] == "CLOSED"
