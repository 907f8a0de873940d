"""The acceptance runner against a stand-in Pulumi CLI (``tests/pulumi_stand_in.py``) driven through the
Automation API's own ``PulumiCommand`` and ``Stack``: interrupts cancel ``pulumi up`` instead of killing
it, the teardown needs no wait, the config passes the CLI's type check, the selected stack comes back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pulumi.automation as auto
import pytest

from local.acceptance import aws_runner
from local.acceptance.pulumi_cli import InterruptibleCommand, Interrupts
from local.acceptance.run_plan import Plan, Refused
from local.acceptance.run_report import Exit, Report
from local.acceptance.stack_sweep import Sweep
from local.scenario.full_run import CheckResult, ScenarioResult
from program.config import PROJECT_DIR
from tests import pulumi_stand_in

PASSED = ScenarioResult([], [CheckResult("every device gets the outcome", passed=True)])


class Scenario:
    """Passes; ``on_run`` runs first."""

    def __init__(self, on_run: Any = None) -> None:
        self.on_run = on_run
        self.ran = False

    def run(self, outputs: Mapping[str, Any]) -> ScenarioResult:
        self.ran = True
        if self.on_run is not None:
            self.on_run()
        return PASSED

    def clean_up(self, outputs: Mapping[str, Any]) -> Sweep:
        return Sweep(decommissioned=0, certificates=0, shadows=0, left=[], blocks_destroy=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This project's ``Pulumi.yaml`` in a directory of its own, the stand-in CLI first on PATH, and a
    stack ``dev`` selected."""
    directory = tmp_path / "project"
    directory.mkdir()
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", directory / "Pulumi.yaml")
    pulumi_stand_in.install(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PULUMI_STAND_IN_STATE", str(tmp_path / "state.json"))
    pulumi_stand_in.save({"current": "dev", "stacks": {"dev": {}}, "calls": []})
    yield directory


def _state() -> dict[str, Any]:
    return pulumi_stand_in.load()


def _commands() -> list[str]:
    """Each CLI call, as ``stack init``, ``config set-all``, ``config``, ``up``..."""
    commands = []
    for call in _state()["calls"]:
        words = [arg for arg in call if not arg.startswith("-")]
        two = words[0] == "stack" or words[1:2] == ["set-all"]
        commands.append(" ".join(words[:2] if two else words[:1]))
    return commands


def _run(project: Path, plan: Plan, scenario: Scenario, log: list[str]) -> Report:
    interrupts = Interrupts(log.append)
    workspace = aws_runner.ProjectWorkspace(InterruptibleCommand(interrupts), project)
    return aws_runner.run(plan, workspace, scenario, interrupts=interrupts, log=log.append, root=project)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the SDK's reader
def test_the_sdks_own_command_lets_an_interrupt_kill_the_cli_which_leaves_the_stack_locked(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The problem the runner's command solves, reproduced: KeyboardInterrupt in `PulumiCommand.run` closes
    # the CLI's pipes, its next line kills it with SIGPIPE, before it has cancelled.
    monkeypatch.setenv("PULUMI_STAND_IN_SIGNAL", "SIGINT")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        workspace = auto.LocalWorkspace(work_dir=str(project), pulumi_command=auto.PulumiCommand())
        stack = auto.Stack.create("acc1", workspace)
        with pytest.raises(KeyboardInterrupt):
            stack.up(on_output=print)
    finally:
        signal.signal(signal.SIGINT, previous)
    time.sleep(2 * pulumi_stand_in.RESOURCES * 0.3)  # longer than the whole `up` would take

    acc1 = _state()["stacks"]["acc1"]
    assert acc1["locked"]  # and, at times, a resource being created left as a pending operation
    assert len(acc1["resources"]) < pulumi_stand_in.RESOURCES


@pytest.mark.parametrize("received", ["SIGINT", "SIGTERM"])
def test_an_interrupt_during_up_cancels_it_and_the_stack_is_destroyed_at_once(
    project: Path, monkeypatch: pytest.MonkeyPatch, received: str
) -> None:
    monkeypatch.setenv("PULUMI_STAND_IN_SIGNAL", received)
    log: list[str] = []
    scenario = Scenario()
    started = time.monotonic()

    report = _run(project, Plan("acc1", "eu-west-1", own_account_settings=False), scenario, log)

    assert time.monotonic() - started < 20
    cancelling = log.index(
        "^C received; cancelling. If you would like to terminate immediately, press ^C again."
    )
    assert any("(waiting for it to finish)" in line for line in log[cancelling:])  # it went on printing
    assert not any("terminating" in line for line in log)  # one SIGINT only
    assert "update canceled" in report.error
    assert not scenario.ran
    commands = _commands()  # no `pulumi cancel`: the CLI released the stack itself
    assert commands[commands.index("up") :] == [
        "up",
        "config",
        "stack export",
        "destroy",
        "stack history",
        "stack rm",
        "stack select",
    ]
    assert _state()["stacks"] == {"dev": {}}
    assert _state()["current"] == "dev"  # selected again after `stack rm`
    assert report.pending_operations == []
    assert report.exit_code == Exit.INTERRUPTED


def test_a_second_interrupt_is_not_forwarded_so_the_cli_finishes_cancelling(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_STAND_IN_SIGNAL", "SIGINT,SIGTERM")
    log: list[str] = []

    report = _run(project, Plan("acc1", "eu-west-1", False), Scenario(), log)

    assert "SIGTERM: waiting for the Pulumi CLI to finish cancelling" in log
    assert sum("received; cancelling" in line for line in log) == 1
    assert not any("terminating" in line for line in log)
    assert _state()["stacks"] == {"dev": {}}
    assert report.exit_code == Exit.INTERRUPTED


def test_a_stack_a_killed_cli_left_locked_is_cancelled_then_destroyed_and_its_pending_operation_reported(
    project: Path,
) -> None:
    def killed_mid_update() -> None:  # what a CLI killed during `up` leaves
        state = _state()
        urn = "urn:pulumi:acc1::iot-fleet-provisioning::aws:iot/thing:Thing::orphan"
        state["stacks"]["acc1"].update(locked=True, pending=[{"resource": {"urn": urn}, "type": "creating"}])
        pulumi_stand_in.save(state)

    log: list[str] = []
    started = time.monotonic()

    report = _run(project, Plan("acc1", "eu-west-1", False), Scenario(killed_mid_update), log)

    assert time.monotonic() - started < 20
    commands = _commands()
    assert commands[commands.index("cancel") - 1 : commands.index("cancel") + 2] == [
        "destroy",
        "cancel",
        "destroy",
    ]
    assert report.destroyed and report.removed
    assert report.pending_operations == [
        "urn:pulumi:acc1::iot-fleet-provisioning::aws:iot/thing:Thing::orphan, interrupted while creating"
    ]
    assert report.exit_code == Exit.LEFT_BEHIND
    assert "RESOURCES MAY REMAIN: the destroy forgot the pending operations" in report.render()


@pytest.mark.parametrize(
    ("during", "noted", "exit_code"),
    [
        ("stack init", "SIGTERM: the run stops after this step and tears the stack down", Exit.INTERRUPTED),
        # the read of the new stack's marker: a CLI cut short must not make the stack look someone else's
        ("config acc1", "SIGTERM: the run stops after this step and tears the stack down", Exit.INTERRUPTED),
        ("destroy", "SIGTERM: still tearing down, so that the stack is not left behind", Exit.PASSED),
    ],
)
def test_sigterm_while_the_stack_is_created_or_destroyed_is_noted_and_the_stack_still_removed(
    project: Path, monkeypatch: pytest.MonkeyPatch, during: str, noted: str, exit_code: Exit
) -> None:
    monkeypatch.setenv("PULUMI_STAND_IN_SIGNAL", "SIGTERM")
    monkeypatch.setenv("PULUMI_STAND_IN_SIGNAL_DURING", during)
    log: list[str] = []

    report = _run(project, Plan("acc1", "eu-west-1", False), Scenario(), log)

    assert noted in log
    assert ("up" in _commands()) is (during == "destroy")  # after `stack init`, straight to the teardown
    assert _state()["stacks"] == {"dev": {}}
    assert _state()["current"] == "dev"
    assert report.exit_code == exit_code


@pytest.mark.parametrize("own_account_settings", [False, True])
def test_the_runners_config_passes_the_clis_type_check_on_up(
    project: Path, own_account_settings: bool
) -> None:
    plan = Plan("acc1", "eu-west-1", own_account_settings, account_event_types=("JOB", "THING"))
    state_during_scenario: dict[str, Any] = {}
    scenario = Scenario(lambda: state_during_scenario.update(_state()["stacks"]["acc1"]["config"]))

    report = _run(project, plan, scenario, [])

    assert report.error == ""
    assert report.exit_code == Exit.PASSED
    stored = state_during_scenario.get("iot-fleet-provisioning:accountEventTypes")
    if own_account_settings:
        assert stored == {"text": '["JOB","THING"]', "object": True}
    else:
        assert stored is None


def test_a_list_written_as_json_text_fails_up_as_the_cli_reports_it(project: Path) -> None:
    # What the runner did before: set_all_config without --path stores the list as text.
    workspace = auto.LocalWorkspace(work_dir=str(project), pulumi_command=auto.PulumiCommand())
    stack = auto.Stack.create("acc1", workspace)
    stack.set_all_config(
        {"iot-fleet-provisioning:accountEventTypes": auto.ConfigValue(json.dumps(["THING"]))}
    )

    with pytest.raises(auto.CommandError, match="must be of type 'array<string>'"):
        stack.up(on_output=print)


def test_a_cli_version_the_sdk_does_not_support_is_refused_with_a_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_STAND_IN_VERSION", "v2.25.0")

    with pytest.raises(Refused, match=r"this Pulumi CLI does not suit .*2\.25\.0"):
        aws_runner.pulumi_command(Interrupts(print))
