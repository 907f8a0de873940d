"""bench/capacity.py's global-fleet arithmetic: regions multiply the regional quotas, never the registry's."""

from __future__ import annotations

import pytest

from bench.aws_quotas import DYNAMODB_TABLE_WRITES, LAMBDA_CONCURRENCY, REGISTER_THING
from bench.capacity import (
    Assumptions,
    capacity,
    fleet_provisioning_uses,
    main,
    provisioning_uses,
    registry_ceiling,
)


def test_one_region_is_the_single_region_capacity() -> None:
    assert capacity(fleet_provisioning_uses(Assumptions(), 1, 0.25)) == capacity(
        provisioning_uses(Assumptions())
    )


@pytest.mark.parametrize("regions", [2, 3, 5])
def test_each_region_adds_its_own_register_thing_quota(regions: int) -> None:
    fleet = capacity(fleet_provisioning_uses(Assumptions(), regions, 0.25))
    assert fleet.limiting == REGISTER_THING
    assert fleet.rate == pytest.approx(10 * regions)
    assert fleet.seconds(1_000_000) == pytest.approx(100_000 / regions)


def test_the_registry_is_shared_so_its_ceiling_does_not_grow_with_regions() -> None:
    one = registry_ceiling(fleet_provisioning_uses(Assumptions(), 1, 0.25))
    five = registry_ceiling(fleet_provisioning_uses(Assumptions(), 5, 0.25))
    assert one == five
    # Two items written twice by the hook's transaction and one activation update: 5 write units a device.
    assert (one.limiting, one.rate) == (DYNAMODB_TABLE_WRITES, 40_000 / 5)


def test_enough_regions_make_the_registry_the_limit() -> None:
    fleet = capacity(fleet_provisioning_uses(Assumptions(), 1_000, 0.25))
    assert fleet.limiting == DYNAMODB_TABLE_WRITES


def test_a_cross_region_round_trip_holds_lambda_concurrency_longer() -> None:
    def concurrency_per_device(round_trip: float) -> float:
        uses = fleet_provisioning_uses(Assumptions(), 2, round_trip)
        [use] = [use for use in uses if use.quota == LAMBDA_CONCURRENCY]
        return use.per_unit

    assert concurrency_per_device(1.0) - concurrency_per_device(0.0) == pytest.approx(1.0 / 2)


def test_no_region_is_refused() -> None:
    with pytest.raises(ValueError, match="one region at least"):
        fleet_provisioning_uses(Assumptions(), 0, 0.25)


def test_the_report_runs_and_names_the_limiting_quota(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--regions", "1", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Global fleet")))
    assert lines[start + 2].split()[:3] == ["1", "10.0", "RegisterThing"]
    assert lines[start + 3].split()[:3] == ["3", "30.0", "RegisterThing"]
