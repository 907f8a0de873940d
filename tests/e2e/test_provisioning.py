"""The sample fleet against the deployed stack: what approved and rejected devices leave behind.

The checks are the shared scenario's (``local/scenario.py``), the same the acceptance run makes on AWS."""

from __future__ import annotations

import pytest

from local.sandbox import Sandbox
from local.scenario import FLEET_CHECKS, Fleet, FleetCheck

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("check", FLEET_CHECKS, ids=lambda check: check.__name__)
def test_the_sample_fleet_passes_the_scenario_check(box: Sandbox, fleet: Fleet, check: FleetCheck) -> None:
    check(box, fleet)
