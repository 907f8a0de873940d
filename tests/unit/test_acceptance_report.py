"""The acceptance run's report: each check, each device, the teardown, the time of each step, the verdict."""

from __future__ import annotations

from local.acceptance.run_plan import Plan
from local.acceptance.run_report import Exit, Report
from local.devices.firmware import Identity, ProvisionedDevice, Timings
from local.devices.fleet_runner import Outcome
from local.devices.mqtt_session import Credentials
from local.devices.sample_fleet import FleetDevice
from local.scenario.full_run import CheckResult, ScenarioResult

PLAN = Plan("acc1", "eu-west-1", own_account_settings=False, run_id="run-1")


def _outcomes() -> list[Outcome]:
    approved = Identity("TS-100001", "temperature-sensor", "AcmeIoT", "1.4.2", "plant-a")
    old = Identity("GW-0000CAFE", "gateway", "AcmeIoT", "1.9.9", "plant-b")
    return [
        Outcome(
            FleetDevice(approved, "APPROVED"),
            1.5,
            provisioned=ProvisionedDevice(
                approved, "iot-provisioning-acc1_TS-100001", "c1", Credentials("", ""), Timings()
            ),
        ),
        Outcome(
            FleetDevice(old, "FirmwareTooOld"),
            0.8,
            error="RegisterThing rejected: AccessDenied: denied",
            error_code="AccessDenied",
            reason="FirmwareTooOld: 1.9.9 is older than 2.0.0",
        ),
    ]


def test_the_report_shows_each_check_each_device_the_teardown_and_the_verdict() -> None:
    checks = [
        CheckResult("approved devices are active in the registry", passed=True),
        CheckResult("a revoked device cannot connect", False, "thing still connects\nwith certificate c9"),
    ]
    report = Report(
        PLAN,
        scenario=ScenarioResult(_outcomes(), checks),
        clean_up="1 devices decommissioned, 2 certificates deleted",
        destroyed=True,
        removed=True,
        seconds={"deploy": 181.0, "scenario": 42.4, "destroy": 390.2},
    )

    text = report.render()

    assert text.splitlines()[0] == "Acceptance run on AWS: stack acc1, region eu-west-1, run run-1"
    assert "  PASS  approved devices are active in the registry\n" in text
    assert (
        "  FAIL  a revoked device cannot connect\n"
        "          thing still connects\n"
        "          with certificate c9\n"
    ) in text
    assert "iot-provisioning-acc1_TS-100001" in text
    assert "1.9.9 is older than 2.0.0" in text
    assert "  devices: 1 devices decommissioned, 2 certificates deleted\n" in text
    assert "  stack destroyed: yes\n  stack removed from the workspace: yes\n" in text
    assert "Time: deploy 181 s, scenario 42 s, destroy 390 s\n" in text
    assert text.endswith("Result: FAILED (1 of 2 checks failed); the stack was destroyed and removed.")
    assert report.exit_code == Exit.FAILED
