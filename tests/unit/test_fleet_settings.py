"""The ``fleet`` setting: which regions form one fleet, and where its registry is; each bad value is refused
naming the field and the expected form."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_settings import parse, problem

FLEET: dict[str, Any] = {
    "name": "acme-global",
    "regions": ["eu-west-1", "us-east-1", "ap-southeast-1"],
    "registryRegion": "eu-west-1",
}


def test_without_a_fleet_the_stack_is_its_own_fleet_with_the_registry_in_its_region() -> None:
    settings = parse()
    assert (settings.fleet_name, settings.fleet_regions) == ("iot-provisioning-dev", ("us-east-1",))
    assert (settings.registry_region, settings.holds_registry) == ("us-east-1", True)


CLAIM_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
REGISTERED = [{"name": "1", "certificatePem": CLAIM_PEM}]


def test_a_region_of_a_fleet_knows_the_registry_region_and_whether_it_holds_the_registry() -> None:
    other = parse(fleet=FLEET, claimCertificates=REGISTERED)
    assert (other.fleet_name, other.fleet_regions) == ("acme-global", tuple(FLEET["regions"]))
    assert (other.registry_region, other.holds_registry) == ("eu-west-1", False)
    registry = parse(fleet=FLEET, **{"aws:region": "eu-west-1"})
    assert (registry.registry_region, registry.holds_registry) == ("eu-west-1", True)


def test_a_stack_whose_region_is_not_in_the_fleet_is_refused_naming_both_fields() -> None:
    message = problem(fleet=FLEET | {"regions": ["eu-west-1", "ap-southeast-1"]})
    assert "iot-fleet-provisioning:fleet = " in message
    assert "aws:region us-east-1 is not one of regions (eu-west-1, ap-southeast-1)" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"registryRegion": "eu-central-1"}, "registryRegion eu-central-1 is not one of regions"),
        ({"regions": []}, "fleet.regions = "),
        ({"regions": ["us-east-1", "us-east-1"]}, "us-east-1 listed twice"),
        ({"regions": ["us-east-1", "Europe"]}, "expected an AWS region such as us-east-1"),
        ({"name": "Acme Global"}, "fleet.name"),
        ({"registryRegion": None}, "fleet.registryRegion"),
        ({"colour": "blue"}, "fleet.colour"),
    ],
)
def test_a_bad_fleet_is_refused_naming_the_field_and_the_expected_form(
    change: dict[str, Any], expected: str
) -> None:
    assert expected in problem(fleet=FLEET | change)


def test_a_fleet_missing_its_registry_region_is_refused() -> None:
    fleet = {key: value for key, value in FLEET.items() if key != "registryRegion"}
    assert "iot-fleet-provisioning:fleet.registryRegion" in problem(fleet=fleet)


def test_a_region_other_than_the_registrys_must_register_the_fleets_claim_certificates() -> None:
    message = problem(fleet=FLEET)
    assert "claimCertificates[0] (1).certificatePem is not set" in message
    assert "registry region eu-west-1" in message
    assert parse(fleet=FLEET, claimCertificates=REGISTERED).claim_certificates[0].certificate_pem == CLAIM_PEM


def test_the_registry_regions_stack_makes_the_claim_certificates_and_takes_no_pem() -> None:
    message = problem(fleet=FLEET, claimCertificates=REGISTERED, **{"aws:region": "eu-west-1"})
    assert "claimCertificates[0] (1).certificatePem: the registry region's stack makes" in message


def test_a_claim_certificate_pem_that_is_no_certificate_is_refused() -> None:
    bad = [{"name": "1", "certificatePem": "-----BEGIN PRIVATE KEY-----"}]
    assert "claimCertificates.0.certificatePem" in problem(fleet=FLEET, claimCertificates=bad)


DOMAIN = {
    "name": "devices.example.com",
    "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f",
}


def test_a_device_domain_is_read_with_its_certificate_in_the_stacks_region() -> None:
    domain = parse(deviceDomain=DOMAIN).device_domain
    assert domain is not None and (domain.name, domain.certificate_region) == (
        "devices.example.com",
        "us-east-1",
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"certificateArn": DOMAIN["certificateArn"].replace("us-east-1", "eu-west-1")},
            "certificateArn is in eu-west-1: expected an ACM certificate in this stack's region us-east-1",
        ),
        ({"name": "Devices.Example.com"}, "deviceDomain.name"),
        ({"hostedZoneId": "zone"}, "expected a Route 53 hosted zone id"),
        ({"certificateArn": "arn:aws:iam::123456789012:server-certificate/x"}, "expected the ARN of an ACM"),
    ],
)
def test_a_bad_device_domain_is_refused_naming_the_field(change: dict[str, Any], expected: str) -> None:
    assert expected in problem(deviceDomain=DOMAIN | change)
