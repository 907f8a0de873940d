"""The sample fleet against the deployed stack: what approved and rejected devices leave behind.

The checks are the shared scenario's (``local/scenario/``), the same the acceptance run makes on AWS."""

from __future__ import annotations

import pytest

from local.scenario.fleet_checks import FLEET_CHECKS, FleetCheck
from local.scenario.provisioned_fleet import Fleet
from local.scenario.sandbox import Sandbox

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("check", FLEET_CHECKS, ids=lambda check: check.__name__)
def test_the_sample_fleet_passes_the_scenario_check(box: Sandbox, fleet: Fleet, check: FleetCheck) -> None:
    check(box, fleet)
