"""``make aws-acceptance STACK=<name>``: the shared scenario (``local/scenario/``) on a throwaway AWS stack.

Deploys this very program as a new stack with the Pulumi Automation API, provisions the sample fleet and a
device to revoke against the real endpoint with ``local/devices/firmware.py``, runs the scenario's checks,
prints a report, and always removes the devices, destroys the stack and removes it from the workspace, also
after a failure, Ctrl-C or SIGTERM. It only ever deploys and destroys a stack it created (see :func:`run`).
Needs the Pulumi CLI and AWS credentials; nothing in ``make test`` runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, Final, Protocol

import boto3
import pulumi.automation as auto

from local.acceptance.aws_scenario import AwsScenario
from local.acceptance.run_plan import (
    AMAZON_ROOT_CA_NAME,
    MARKER_KEY,
    MAX_STACK_NAME,
    Plan,
    Refused,
    account_event_types,
    account_switches,
    amazon_root_ca,
    fetch_url,
    make_plan,
    refuse_existing_deployment,
)
from local.acceptance.run_report import Exit, Report
from local.acceptance.stack_sweep import Sweep
from local.scenario.full_run import ScenarioResult
from program.config import PROJECT_DIR

DESTROY_ATTEMPTS: Final = 3
LOCK_WAIT_SECONDS: Final = 900.0
"""How long the teardown waits for another update of the stack to finish: a ``pulumi up`` the runner was
interrupted in goes on until it has cancelled (Ctrl-C) or finished (SIGTERM, which it does not get)."""
LOCK_POLL_SECONDS = 15.0


# --- the Automation API, as the runner uses it ---------------------------------------------------------


class Workspace(Protocol):
    """The part of ``pulumi.automation.Workspace`` the runner uses."""

    def remove_stack(self, stack_name: str) -> None: ...


class UpResult(Protocol):
    """The part of ``pulumi.automation.UpResult`` the runner uses."""

    @property
    def outputs(self) -> Mapping[str, auto.OutputValue]: ...


class PulumiStack(Protocol):
    """The part of ``pulumi.automation.Stack`` the runner uses."""

    @property
    def workspace(self) -> Workspace: ...

    def set_all_config(self, config: dict[str, auto.ConfigValue]) -> None: ...

    def get_all_config(self) -> Mapping[str, auto.ConfigValue]: ...

    def up(self, *, on_output: Callable[[str], Any]) -> UpResult: ...

    def destroy(self, *, on_output: Callable[[str], Any]) -> object: ...


class Scenario(Protocol):
    """What the runner runs once the stack is up, and what it sweeps before destroying it."""

    def run(self, outputs: Mapping[str, Any]) -> ScenarioResult: ...

    def clean_up(self, outputs: Mapping[str, Any]) -> Sweep: ...


def create_local_stack(name: str) -> PulumiStack:
    """``pulumi stack init <name>`` of this very program: a LocalWorkspace on the project root."""
    return auto.create_stack(name, work_dir=str(PROJECT_DIR))


# --- the run -----------------------------------------------------------------------------------------


def run(
    plan: Plan,
    create_stack: Callable[[str], PulumiStack],
    scenario: Scenario,
    log: Callable[[str], Any],
    root: Path = PROJECT_DIR,
    *,
    restore_account: Callable[[], str] | None = None,
) -> Report:
    """Create the stack, configure it, deploy it, run the scenario; then, whatever happened (an error,
    Ctrl-C, SIGTERM), remove the scenario's devices, destroy the stack and remove it from the workspace.

    It works only on a stack it creates. :class:`Refused`, with nothing created or destroyed, when
    ``Pulumi.<stack>.yaml`` exists in ``root`` (a committed or someone's stack) or the stack exists in
    the backend. It writes :data:`MARKER_KEY` into the new stack's config, and deploys and destroys only
    while the stack's config holds this run's value. Once the stack is destroyed, ``restore_account`` puts
    back the account-wide settings it changed and says what it did.
    """
    if (root / f"Pulumi.{plan.stack}.yaml").exists():
        raise Refused(
            f"Pulumi.{plan.stack}.yaml exists: {plan.stack} is not a throwaway stack; pick another name"
        )
    try:
        stack = create_stack(plan.stack)
    except auto.StackAlreadyExistsError as error:
        raise Refused(
            f"stack {plan.stack} already exists in the Pulumi backend; the runner only deploys and destroys "
            "a stack it creates: pick another name"
        ) from error
    except auto.CommandError as error:
        raise Refused(f"`pulumi stack init {plan.stack}` failed: {_describe(error)}") from error
    log(f"created stack {plan.stack} (run {plan.run_id})")
    report = Report(plan)
    outputs: dict[str, Any] | None = None
    try:
        with _termination_as_interrupt():
            stack.set_all_config({key: auto.ConfigValue(value) for key, value in plan.config().items()})
            report.not_ours = not _holds_marker(stack, plan, log)
            if not report.not_ours:
                with report.timed("deploy"):
                    up = stack.up(on_output=log)
                outputs = {name: output.value for name, output in up.outputs.items()}
                with report.timed("scenario"):
                    report.scenario = scenario.run(outputs)
    except KeyboardInterrupt:
        report.interrupted = True
    except Exception as error:
        report.error = _describe(error)
    finally:
        with _interrupts_deferred(log):
            _tear_down(stack, scenario, outputs, report, log)
            if not report.not_ours and restore_account is not None:
                _restore_account(restore_account, report)
    return report


def _tear_down(
    stack: PulumiStack,
    scenario: Scenario,
    outputs: Mapping[str, Any] | None,
    report: Report,
    log: Callable[[str], Any],
) -> None:
    if outputs is not None:
        log("sweeping what the scenario's devices left (fleetctl teardown)")
        with report.timed("clean up"):
            try:
                swept = scenario.clean_up(outputs)
                report.clean_up, report.destroy_blocked = str(swept), swept.blocks_destroy
                report.left_behind += swept.left
            except Exception as error:
                report.clean_up = f"FAILED: {_describe(error)}"
                report.left_behind.append(
                    "what the devices left is unknown: the sweep failed (devices, above)"
                )
    if report.not_ours or not _holds_marker(stack, report.plan, log):
        report.not_ours = True
        return
    if report.destroy_blocked:  # each attempt would fail on the same policy or thing type
        return
    _destroy(stack, report, log)
    if report.destroyed:
        try:
            stack.workspace.remove_stack(report.plan.stack)
            report.removed = True
        except Exception as error:
            report.destroy_errors.append(f"stack rm failed: {_describe(error)}")


def _restore_account(restore: Callable[[], str], report: Report) -> None:
    """Switch back the account's registry events once the stack is destroyed (its delete does nothing)."""
    if not report.destroyed:
        report.left_behind.append(
            "AWS IoT event configurations: the stack still declares them; once it is destroyed, switch back "
            "what it switched on (docs/acceptance.md, Teardown)"
        )
        return
    try:
        report.account = restore()
    except Exception as error:
        report.left_behind.append(f"AWS IoT event configurations not switched back: {_describe(error)}")


def _destroy(stack: PulumiStack, report: Report, log: Callable[[str], Any]) -> None:
    """``pulumi destroy``, until it succeeds or has failed :data:`DESTROY_ATTEMPTS` times. While another
    update holds the stack (an interrupted ``pulumi up`` still finishing), wait for it instead."""
    failures = 0
    waiting_until = time.monotonic() + LOCK_WAIT_SECONDS
    while failures < DESTROY_ATTEMPTS:
        log(f"destroying stack {report.plan.stack}")
        try:
            with report.timed("destroy"):
                stack.destroy(on_output=log)
        except Exception as error:
            if isinstance(error, auto.ConcurrentUpdateError) and time.monotonic() < waiting_until:
                log("another update holds the stack (an interrupted `pulumi up` finishing?): waiting")
                time.sleep(LOCK_POLL_SECONDS)
                continue
            failures += 1
            report.destroy_errors.append(f"attempt {failures} failed: {_describe(error)}")
            continue
        report.destroyed = True
        return


def _holds_marker(stack: PulumiStack, plan: Plan, log: Callable[[str], Any]) -> bool:
    try:
        marker = stack.get_all_config().get(MARKER_KEY)
    except Exception as error:
        log(f"cannot read the stack's config: {_describe(error)}")
        return False
    return marker is not None and marker.value == plan.run_id


def _describe(error: BaseException, lines: int = 12) -> str:
    """The error's type and the last ``lines`` lines of its message (a CLI error holds its whole output)."""
    text = "\n".join(str(error).strip().splitlines()[-lines:])
    return f"{type(error).__name__}: {text}"


@contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt``, as Ctrl-C does, so both end in the teardown."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _interrupts_deferred(log: Callable[[str], Any]) -> Iterator[None]:
    """Ctrl-C and SIGTERM do not stop the teardown; a ``pulumi destroy`` they cancel is run again."""

    def note(signum: int, frame: FrameType | None) -> None:
        log(f"{signal.Signals(signum).name}: still tearing down, so that the stack is not left behind")

    previous = {each: signal.signal(each, note) for each in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the acceptance scenario on AWS; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--stack", required=True, help=f"new stack name, also its environment (<= {MAX_STACK_NAME})"
    )
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", ""), help="default: $AWS_REGION")
    parser.add_argument(
        "--ca-file", type=Path, help=f"{AMAZON_ROOT_CA_NAME} PEM; default: fetched from amazontrust.com"
    )
    parser.add_argument(
        "--own-account-settings",
        action="store_true",
        help="the stack owns the account-wide AWS IoT settings (accountSettings true) for the run",
    )
    arguments = parser.parse_args(argv)
    try:
        plan = make_plan(arguments.stack, arguments.region, arguments.own_account_settings)
        if shutil.which("pulumi") is None:
            raise Refused("the Pulumi CLI is not on PATH: https://www.pulumi.com/docs/install/")
        iot = boto3.client("iot", region_name=plan.region)
        found = account_switches(iot)  # recorded before anything changes them
        event_types = account_event_types(iot, plan.own_account_settings)
        plan = dataclasses.replace(plan, account_event_types=event_types)
        refuse_existing_deployment(plan, boto3.client("dynamodb", region_name=plan.region), iot)
        ca_pem = amazon_root_ca(arguments.ca_file, fetch_url)
        restore = partial(found.restore, iot, event_types) if plan.own_account_settings else None
        report = run(plan, create_local_stack, AwsScenario(plan, ca_pem), print, restore_account=restore)
    except Refused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return Exit.REFUSED
    print(report.render())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
