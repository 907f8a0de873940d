"""The acceptance runner's orchestration, with a fake Automation API stack and a fake scenario: the order of
the steps, teardown after failures and interrupts, refusals, the exit status; and the command line."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pulumi.automation as auto
import pytest

from local.acceptance import aws_runner
from local.acceptance.aws_scenario import AwsScenario
from local.acceptance.pulumi_cli import Interrupts
from local.acceptance.run_plan import MARKER_KEY, Plan, Refused
from local.acceptance.run_report import Exit, Report
from local.acceptance.stack_sweep import Sweep
from local.devices.mqtt_session import Broker
from local.scenario.full_run import CheckResult, ScenarioResult
from program.config import PROJECT_DIR
from program.outputs import StackOutput

PLAN = Plan("acc1", "eu-west-1", own_account_settings=False, run_id="run-1")
OUTPUTS = {"iotEndpoint": auto.OutputValue("abc-ats.iot.eu-west-1.amazonaws.com", False)}
PASSED = ScenarioResult([], [CheckResult("every device gets the outcome", passed=True)])
CLEAN = Sweep(decommissioned=2, certificates=3, shadows=2, left=[], blocks_destroy=False)


def _command_error(message: str) -> auto.CommandError:
    return auto.CommandError(auto.CommandResult(stdout="", stderr=message, code=255))


def _raises(error: BaseException) -> Callable[[], None]:
    def raise_it() -> None:
        raise error

    return raise_it


class FakeStack:
    """An Automation API stack, and its workspace, that records each call in ``events``."""

    def __init__(self, events: list[str], *, keeps_config: bool = True) -> None:
        self.events = events
        self.keeps_config = keeps_config
        self.config: dict[str, auto.ConfigValue] = {}
        self.selected: str | None = "dev"
        self.on_up: Callable[[], None] = lambda: None
        self.destroy_failures: list[Callable[[], None]] = []

    def stack(self) -> auto.StackSummary | None:
        return auto.StackSummary(self.selected, current=True) if self.selected else None

    def create(self, stack_name: str) -> FakeStack:
        self.events.append(f"create {stack_name}")
        self.selected = stack_name
        return self

    def select_stack(self, stack_name: str) -> None:
        self.selected = stack_name

    def set_all_config(self, config: dict[str, auto.ConfigValue], *, path: bool = False) -> None:
        self.events.append("set config")
        if self.keeps_config:
            self.config.update(config)

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        return dict(self.config)

    def up(self, *, on_output: Callable[[str], Any]) -> Any:
        self.events.append("up")
        on_output("+ 60 created")
        self.on_up()
        return SimpleNamespace(outputs=OUTPUTS)

    def destroy(self, *, on_output: Callable[[str], Any]) -> None:
        self.events.append("destroy")
        if self.destroy_failures:
            self.destroy_failures.pop(0)()

    def cancel(self) -> None:
        self.events.append("cancel")

    def export_stack(self) -> auto.Deployment:
        return auto.Deployment(version=3, deployment={})

    def remove_stack(self, stack_name: str) -> None:
        self.events.append(f"remove {stack_name}")
        self.selected = None


class FakeScenario:
    """Records ``scenario`` and ``clean up``; ``run`` returns ``result`` or raises ``error``; the clean-up
    sweeps as ``swept`` or raises it."""

    def __init__(
        self,
        events: list[str],
        result: ScenarioResult = PASSED,
        error: BaseException | None = None,
        swept: Sweep | Exception = CLEAN,
    ):
        self.events = events
        self.result = result
        self.error = error
        self.swept = swept
        self.outputs: Mapping[str, Any] = {}

    def run(self, outputs: Mapping[str, Any]) -> ScenarioResult:
        self.events.append("scenario")
        self.outputs = outputs
        if self.error is not None:
            raise self.error
        return self.result

    def clean_up(self, outputs: Mapping[str, Any]) -> Sweep:
        self.events.append("clean up")
        if isinstance(self.swept, Exception):
            raise self.swept
        return self.swept


def _run(
    stack: FakeStack,
    scenario: FakeScenario,
    tmp_path: Path,
    log: list[str] | None = None,
    restore_account: Callable[[], str] | None = None,
) -> Report:
    (tmp_path / "Pulumi.yaml").write_bytes((PROJECT_DIR / "Pulumi.yaml").read_bytes())
    logged = (log if log is not None else []).append
    return aws_runner.run(
        PLAN,
        stack,
        scenario,
        interrupts=Interrupts(logged),
        log=logged,
        root=tmp_path,
        restore_account=restore_account,
    )


TEARDOWN = ["clean up", "destroy", "remove acc1"]


def test_the_happy_path_deploys_runs_the_scenario_then_destroys_and_removes_the_stack(tmp_path: Path) -> None:
    events: list[str] = []
    stack, scenario = FakeStack(events), FakeScenario(events)

    report = _run(stack, scenario, tmp_path)

    assert events == ["create acc1", "set config", "up", "scenario", *TEARDOWN]
    assert scenario.outputs == {"iotEndpoint": "abc-ats.iot.eu-west-1.amazonaws.com"}
    assert {key: value.value for key, value in stack.config.items()} == PLAN.config()
    assert not any(value.secret for value in stack.config.values())
    assert (report.destroyed, report.removed, report.exit_code) == (True, True, Exit.PASSED)
    assert stack.selected == "dev"  # `stack init` selected acc1, `stack rm` none: the previous one again


def test_a_failed_check_still_destroys_and_fails_the_run(tmp_path: Path) -> None:
    events: list[str] = []
    failed = ScenarioResult([], [CheckResult("a revoked device cannot connect", False, "still connects")])

    report = _run(FakeStack(events), FakeScenario(events, result=failed), tmp_path)

    assert events[-3:] == TEARDOWN
    assert report.exit_code == Exit.FAILED


def test_a_scenario_error_still_destroys_and_is_reported(tmp_path: Path) -> None:
    events: list[str] = []

    report = _run(FakeStack(events), FakeScenario(events, error=RuntimeError("broker unreachable")), tmp_path)

    assert events == ["create acc1", "set config", "up", "scenario", *TEARDOWN]
    assert report.error == "RuntimeError: broker unreachable"
    assert report.exit_code == Exit.FAILED


def test_a_failed_up_destroys_what_was_created_without_running_the_scenario(tmp_path: Path) -> None:
    events: list[str] = []
    stack = FakeStack(events)

    stack.on_up = _raises(_command_error("error: update failed"))

    report = _run(stack, FakeScenario(events), tmp_path)

    assert events == ["create acc1", "set config", "up", "destroy", "remove acc1"]
    assert "update failed" in report.error
    assert report.exit_code == Exit.FAILED


def test_keyboard_interrupt_in_the_scenario_still_cleans_up_and_destroys(tmp_path: Path) -> None:
    events: list[str] = []

    report = _run(FakeStack(events), FakeScenario(events, error=KeyboardInterrupt()), tmp_path)

    assert events == ["create acc1", "set config", "up", "scenario", *TEARDOWN]
    assert report.interrupted
    assert report.exit_code == Exit.INTERRUPTED


def test_sigterm_during_up_interrupts_it_and_the_stack_is_destroyed(tmp_path: Path) -> None:
    events: list[str] = []
    stack = FakeStack(events)
    before = signal.getsignal(signal.SIGTERM)
    interrupts: list[str] = []

    def terminated() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            events.append("up went on")  # never: the runner's handler raises as the signal arrives
        except KeyboardInterrupt as interrupt:
            interrupts.append(str(interrupt))
            raise

    stack.on_up = terminated

    report = _run(stack, FakeScenario(events), tmp_path)

    assert interrupts == ["SIGTERM"]
    assert events == ["create acc1", "set config", "up", "destroy", "remove acc1"]
    assert report.exit_code == Exit.INTERRUPTED
    assert signal.getsignal(signal.SIGTERM) is before


def test_ctrl_c_during_teardown_does_not_stop_it_and_a_cancelled_destroy_is_run_again(tmp_path: Path) -> None:
    events: list[str] = []
    log: list[str] = []
    stack = FakeStack(events)
    before = signal.getsignal(signal.SIGINT)

    def cancelled() -> None:  # Ctrl-C while `pulumi destroy` fails
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        raise _command_error("error: destroy failed")

    stack.destroy_failures = [cancelled]

    report = _run(stack, FakeScenario(events), tmp_path, log)

    assert events[-4:] == ["clean up", "destroy", "destroy", "remove acc1"]
    assert any(line.startswith("SIGINT: still tearing down") for line in log)
    assert report.exit_code == Exit.PASSED
    assert report.destroy_errors[0].startswith("attempt 1 failed: CommandError")
    assert signal.getsignal(signal.SIGINT) is before


LOCKED = auto.ConcurrentUpdateError(auto.CommandResult("", "error: the stack is currently locked by", 255))


def test_a_stack_left_locked_is_cancelled_once_then_destroyed_without_waiting(tmp_path: Path) -> None:
    events: list[str] = []
    stack = FakeStack(events)
    stack.destroy_failures = [_raises(LOCKED)]

    report = _run(stack, FakeScenario(events, error=KeyboardInterrupt()), tmp_path)

    assert events[events.index("clean up") :] == ["clean up", "destroy", "cancel", "destroy", "remove acc1"]
    assert report.destroy_errors == []
    assert report.exit_code == Exit.INTERRUPTED


def test_a_stack_still_locked_after_cancel_counts_as_a_failed_destroy(tmp_path: Path) -> None:
    events: list[str] = []
    stack = FakeStack(events)
    stack.destroy_failures = [_raises(LOCKED)] * (aws_runner.DESTROY_ATTEMPTS + 1)

    report = _run(stack, FakeScenario(events), tmp_path)

    assert events[events.index("clean up") :] == [
        "clean up",
        "destroy",
        "cancel",
        *["destroy"] * aws_runner.DESTROY_ATTEMPTS,
    ]
    assert report.exit_code == Exit.LEFT_BEHIND


def test_a_stack_that_cannot_be_destroyed_is_kept_in_the_workspace_and_reported(tmp_path: Path) -> None:
    events: list[str] = []
    stack = FakeStack(events)

    failure = _command_error("error: deleting thing type: still deprecated")
    stack.destroy_failures = [_raises(failure)] * aws_runner.DESTROY_ATTEMPTS

    report = _run(stack, FakeScenario(events), tmp_path)

    assert events[-4:] == ["clean up", *["destroy"] * aws_runner.DESTROY_ATTEMPTS]
    assert not report.removed
    assert report.exit_code == Exit.LEFT_BEHIND
    assert "RESOURCES MAY REMAIN: run `pulumi destroy --stack acc1" in report.render()


class ExistingStack(FakeStack):
    """A stack that already exists in the backend."""

    def create(self, stack_name: str) -> FakeStack:
        self.events.append(f"create {stack_name}")
        raise auto.StackAlreadyExistsError(
            auto.CommandResult("", f"error: stack '{stack_name}' already exists", 255)
        )


def test_what_the_sweep_left_that_blocks_the_destroy_keeps_the_stack_for_fleetctl_teardown(
    tmp_path: Path,
) -> None:
    events: list[str] = []
    blocker = "stack iot-provisioning-acc1 is not ready for `pulumi destroy`; still there:\n  thing type ..."
    swept = Sweep(1, 2, 1, [blocker], blocks_destroy=True)

    report = _run(FakeStack(events), FakeScenario(events, swept=swept), tmp_path)

    assert events[-2:] == ["scenario", "clean up"]  # no destroy: each attempt would fail the same way
    assert report.exit_code == Exit.LEFT_BEHIND
    text = report.render()
    assert "  LEFT BEHIND: stack iot-provisioning-acc1 is not ready for `pulumi destroy`" in text
    assert "`fleetctl --outputs outputs.json teardown`, then `pulumi destroy --stack acc1" in text


def test_a_leftover_that_does_not_block_the_destroy_still_fails_the_run_with_its_id(tmp_path: Path) -> None:
    events: list[str] = []
    swept = Sweep(2, 2, 2, ["certificate c9: AccessDeniedException"], blocks_destroy=False)

    report = _run(FakeStack(events), FakeScenario(events, swept=swept), tmp_path)

    assert events[-3:] == TEARDOWN
    assert report.exit_code == Exit.LEFT_BEHIND
    text = report.render()
    assert "  LEFT BEHIND: certificate c9: AccessDeniedException\n" in text
    assert text.endswith(
        "Result: LEFT BEHIND (see the teardown): PASSED (1 checks); the stack was destroyed and removed."
    )


def test_a_sweep_that_fails_leaves_the_devices_leftovers_unknown_and_the_run_exits_3(tmp_path: Path) -> None:
    events: list[str] = []
    scenario = FakeScenario(events, swept=RuntimeError("no registry table"))

    report = _run(FakeStack(events), scenario, tmp_path)

    assert report.destroyed and report.removed
    assert report.exit_code == Exit.LEFT_BEHIND
    assert "  devices: FAILED: RuntimeError: no registry table\n" in report.render()


def test_refuses_a_stack_that_already_exists_in_the_backend(tmp_path: Path) -> None:
    events: list[str] = []

    with pytest.raises(Refused, match="already exists in the Pulumi backend"):
        _run(ExistingStack(events), FakeScenario(events), tmp_path)
    assert events == ["create acc1"]


def test_refuses_a_stack_that_has_a_config_file_in_the_project(tmp_path: Path) -> None:
    events: list[str] = []
    (tmp_path / "Pulumi.acc1.yaml").write_text("config: {}\n", encoding="utf-8")

    with pytest.raises(Refused, match=r"Pulumi\.acc1\.yaml exists"):
        _run(FakeStack(events), FakeScenario(events), tmp_path)
    assert events == []


def test_a_stack_without_this_runs_marker_is_neither_deployed_nor_destroyed(tmp_path: Path) -> None:
    events: list[str] = []

    report = _run(FakeStack(events, keeps_config=False), FakeScenario(events), tmp_path)

    assert events == ["create acc1", "set config"]
    assert report.exit_code == Exit.LEFT_BEHIND
    assert f"lacks this run's {MARKER_KEY}" in report.render()


def test_main_refuses_without_the_pulumi_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    assert aws_runner.main(["--stack", "acc1", "--region", "eu-west-1"]) == Exit.REFUSED
    assert "refused: the Pulumi CLI is not on PATH" in capsys.readouterr().err


@pytest.mark.parametrize(("profile_region", "expected"), [("eu-central-1", "eu-central-1"), (None, "")])
def test_main_takes_the_aws_profiles_region_when_none_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile_region: str | None, expected: str
) -> None:
    config = tmp_path / "aws-config"
    config.write_text(
        f"[default]\nregion = {profile_region}\n" if profile_region else "[default]\n", encoding="utf-8"
    )
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    regions: list[str] = []

    def make_plan(stack: str, region: str, own_account_settings: bool) -> Plan:
        regions.append(region)
        raise Refused("stop here")

    monkeypatch.setattr(aws_runner, "make_plan", make_plan)

    assert aws_runner.main(["--stack", "acc1"]) == Exit.REFUSED
    assert regions == [expected]


@pytest.mark.parametrize("port", [8883, 443])
def test_devices_connect_on_the_port_the_run_was_given(port: int) -> None:
    outputs: dict[str, Any] = {
        StackOutput.IOT_ENDPOINT: "abc-ats.iot.eu-west-1.amazonaws.com",
        StackOutput.CLAIM_CERTIFICATE_PEM: "claim-pem",
        StackOutput.CLAIM_PRIVATE_KEY: "claim-key",
        StackOutput.CLAIM_CLIENT_ID_PREFIX: "claim-",
        StackOutput.TEMPLATE_NAME: "iot-provisioning-acc1-fleet",
    }

    deployment = AwsScenario(PLAN, "ca-pem", port).deployment(outputs)

    assert deployment.target.broker == Broker("abc-ats.iot.eu-west-1.amazonaws.com", port, "ca-pem")


def _run_restoring(stack: FakeStack, events: list[str], tmp_path: Path, restore: Callable[[], str]) -> Report:
    return _run(stack, FakeScenario(events), tmp_path, restore_account=restore)


def test_account_settings_are_switched_back_once_the_stack_is_destroyed(tmp_path: Path) -> None:
    events: list[str] = []

    def restore() -> str:
        events.append("restore")
        return "switched back: THING off"

    report = _run_restoring(FakeStack(events), events, tmp_path, restore)

    assert events[-3:] == ["destroy", "remove acc1", "restore"]
    assert "  account event configurations: switched back: THING off\n" in report.render()
    assert report.exit_code == Exit.PASSED


def test_account_settings_that_cannot_be_switched_back_are_left_behind(tmp_path: Path) -> None:
    events: list[str] = []
    denied = _raises(RuntimeError("AccessDeniedException: iot:UpdateEventConfigurations"))

    report = _run_restoring(FakeStack(events), events, tmp_path, lambda: str(denied()))

    assert report.removed
    assert report.exit_code == Exit.LEFT_BEHIND
    assert (
        "LEFT BEHIND: AWS IoT event configurations or logging options not put back: RuntimeError: AccessDenied"
        in (report.render())
    )


def test_account_settings_are_not_touched_while_the_stack_still_declares_them(tmp_path: Path) -> None:
    events: list[str] = []
    stack = FakeStack(events)
    stack.destroy_failures = [_raises(_command_error("error: deleting policy"))] * aws_runner.DESTROY_ATTEMPTS

    def restore() -> str:
        events.append("restore")
        return "switched back: THING off"

    report = _run_restoring(stack, events, tmp_path, restore)

    assert "restore" not in events
    assert report.exit_code == Exit.LEFT_BEHIND
    assert (
        "LEFT BEHIND: AWS IoT event configurations and logging options: the stack still declares them"
        in report.render()
    )


def test_ctrl_c_while_events_are_switched_back_is_noted_and_the_previous_stack_selected_again(
    tmp_path: Path,
) -> None:
    events: list[str] = []
    log: list[str] = []
    stack = FakeStack(events)

    def restore() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        events.append("restore")
        return "switched back: THING off"

    report = _run(stack, FakeScenario(events), tmp_path, log, restore_account=restore)

    assert events[-3:] == ["destroy", "remove acc1", "restore"]
    assert "SIGINT: still tearing down, so that the stack is not left behind" in log
    assert stack.selected == "dev"
    assert report.account == "switched back: THING off"
    assert report.exit_code == Exit.PASSED
