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


def test_a_region_of_a_fleet_knows_the_registry_region_and_whether_it_holds_the_registry() -> None:
    other = parse(fleet=FLEET)
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
