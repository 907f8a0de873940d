"""The whole scenario, for a report: provision the sample fleet, run every check on it, revoke a device; each
check's result. The acceptance run on AWS runs it (``local/acceptance/aws_scenario.py``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial

from local.deploy.mock_engine import local_config
from local.devices.fleet_runner import Outcome
from local.devices.sample_fleet import load_fleet
from local.scenario.deployment import Deployment
from local.scenario.expectations import ScenarioFailure
from local.scenario.fleet_checks import FLEET_CHECKS, FleetCheck
from local.scenario.provisioned_fleet import provision_devices
from local.scenario.revocation_checks import a_revoked_device_cannot_connect
from local.scenario.signed_manifests import signed_manifest_devices
from local.scenario.zero_touch import zero_touch_devices
from program.settings import PROJECT


def scenario_config() -> dict[str, str]:
    """The stack config the scenario's expectations rest on: the local stack's device types and their
    rules, which the sample fleet's rejections depend on."""
    key = f"{PROJECT}:deviceTypes"
    return {key: local_config()[key]}


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, and why not."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class ScenarioResult:
    """The devices' outcomes and every check's result."""

    outcomes: list[Outcome]
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        """Every check passed."""
        return all(check.passed for check in self.checks)


def run_check(name: str, action: Callable[[], object]) -> CheckResult:
    """Run one check; any error fails it (``KeyboardInterrupt`` is not caught)."""
    try:
        action()
    except ScenarioFailure as failure:
        return CheckResult(name, passed=False, detail=str(failure))
    except Exception as error:
        return CheckResult(name, passed=False, detail=f"{type(error).__name__}: {error}")
    return CheckResult(name, passed=True)


def run(
    deployment: Deployment,
    revoke: Callable[[str, str], object],
    *,
    checks: Collection[FleetCheck] = FLEET_CHECKS,
) -> ScenarioResult:
    """The whole scenario: provision the sample fleet and the zero-touch devices, run ``checks`` on them,
    then revoke a device."""
    vendor_devices = [*zero_touch_devices(deployment), *signed_manifest_devices(deployment)]
    fleet = provision_devices(deployment, [*load_fleet(), *vendor_devices])
    results = [run_check(_name(check), partial(check, deployment, fleet)) for check in checks]
    results.append(
        run_check(
            _name(a_revoked_device_cannot_connect),
            partial(a_revoked_device_cannot_connect, deployment, revoke),
        )
    )
    return ScenarioResult(fleet.outcomes, results)


def _name(check: Callable[..., object]) -> str:
    return check.__name__.replace("_", " ")
