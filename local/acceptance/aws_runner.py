"""``make aws-acceptance STACK=<name>``: the shared scenario (``local/scenario/``) on a throwaway AWS stack.

Deploys this very program as a new stack with the Pulumi Automation API, provisions the sample fleet and a
device to revoke against the real endpoint with ``local/devices/firmware.py``, runs the scenario's checks,
prints a report, and always sweeps what the devices left, destroys the stack, removes it from the workspace
and switches back the registry events it switched on, also after a failure, Ctrl-C or SIGTERM. It only
ever deploys and destroys a stack it created (see :func:`run`).
Needs the Pulumi CLI and AWS credentials; nothing in ``make test`` runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol

import boto3
import pulumi.automation as auto
from awscrt import io as crt_io

from local.acceptance.aws_scenario import MQTT_PORT, MQTT_PORT_WITH_ALPN, AwsScenario
from local.acceptance.event_switches import EventSwitches
from local.acceptance.logging_options import LoggingOptions
from local.acceptance.pulumi_cli import InterruptibleCommand, Interrupts
from local.acceptance.run_plan import (
    AMAZON_ROOT_CA_NAME,
    MARKER_KEY,
    MAX_STACK_NAME,
    Plan,
    Refused,
    account_event_types,
    account_logging,
    account_switches,
    amazon_root_ca,
    fetch_url,
    make_plan,
    refuse_existing_deployment,
)
from local.acceptance.run_report import Exit, Report
from local.acceptance.stack_config import declared_types, set_all_arguments, stored_by_path, type_errors
from local.acceptance.stack_sweep import Sweep
from local.deploy.vendor_roots import write_vendor_roots
from local.scenario.full_run import ScenarioResult
from program.config import PROJECT_DIR

DESTROY_ATTEMPTS: Final = 3


# --- the Automation API, as the runner uses it ---------------------------------------------------------


class UpResult(Protocol):
    """The part of ``pulumi.automation.UpResult`` the runner uses."""

    @property
    def outputs(self) -> Mapping[str, auto.OutputValue]: ...


class PulumiStack(Protocol):
    """The part of ``pulumi.automation.Stack`` the runner uses."""

    def set_all_config(self, config: dict[str, auto.ConfigValue], *, path: bool = False) -> None: ...

    def get_all_config(self) -> Mapping[str, auto.ConfigValue]: ...

    def up(self, *, on_output: Callable[[str], Any]) -> UpResult: ...

    def destroy(self, *, on_output: Callable[[str], Any]) -> object: ...

    def cancel(self) -> None: ...

    def export_stack(self) -> auto.Deployment: ...


class Workspace(Protocol):
    """The part of ``pulumi.automation.LocalWorkspace`` the runner uses, and ``pulumi stack init``."""

    def stack(self) -> auto.StackSummary | None: ...

    def create(self, stack_name: str) -> PulumiStack: ...

    def select_stack(self, stack_name: str) -> None: ...

    def remove_stack(self, stack_name: str) -> None: ...


class Scenario(Protocol):
    """What the runner runs once the stack is up, and what it sweeps before destroying it."""

    def run(self, outputs: Mapping[str, Any]) -> ScenarioResult: ...

    def clean_up(self, outputs: Mapping[str, Any]) -> Sweep: ...


class ProjectWorkspace(auto.LocalWorkspace):
    """The LocalWorkspace of this very program (``Pulumi.yaml`` in ``work_dir``), run by ``command``."""

    def __init__(self, command: auto.PulumiCommand, work_dir: Path = PROJECT_DIR) -> None:
        super().__init__(work_dir=str(work_dir), pulumi_command=command)

    def create(self, stack_name: str) -> auto.Stack:
        """``pulumi stack init <name>``, which also selects it."""
        return auto.Stack.create(stack_name, self)


# --- the run -----------------------------------------------------------------------------------------


def run(
    plan: Plan,
    workspace: Workspace,
    scenario: Scenario,
    *,
    interrupts: Interrupts,
    log: Callable[[str], Any],
    root: Path = PROJECT_DIR,
    restore_account: Callable[[], str] | None = None,
) -> Report:
    """Create the stack, configure it, deploy it, run the scenario; then, whatever happened (an error,
    Ctrl-C, SIGTERM), sweep what the scenario's devices left, destroy the stack, remove it from the
    workspace and select again the stack that was selected before.

    It works only on a stack it creates. :class:`Refused`, with nothing created or destroyed, when
    ``Pulumi.<stack>.yaml`` exists in ``root`` (a committed or someone's stack), the stack exists in the
    backend, or ``pulumi up`` would refuse the config's types. It writes :data:`MARKER_KEY` into the new
    stack's config, and deploys and destroys only while the stack's config holds this run's value.
    Once the stack is destroyed, ``restore_account`` puts back the account-wide settings it changed and
    says what it did. Signals are handled by ``interrupts`` from ``pulumi stack init`` to the end of the
    teardown.
    """
    if (root / f"Pulumi.{plan.stack}.yaml").exists():
        raise Refused(
            f"Pulumi.{plan.stack}.yaml exists: {plan.stack} is not a throwaway stack; pick another name"
        )
    arguments = config_arguments(plan, root)
    previous = _selected_stack(workspace)
    with interrupts.handled():
        stack = _create(workspace, plan)
        log(f"created stack {plan.stack} (run {plan.run_id})")
        report = Report(plan)
        outputs: dict[str, Any] | None = None
        try:
            # also when interrupted: the teardown destroys only a stack whose config holds the marker, and
            # a `pulumi config` that an interrupt cut short would make the new stack look someone else's
            # (outside an update's cancellation scope a Go CLI exits on SIGINT: os/signal, "Default behavior")
            config = {key: auto.ConfigValue(value) for key, value in arguments.items()}
            stack.set_all_config(config, path=True)
            report.not_ours = not _holds_marker(stack, plan, log)
            with interrupts.interruptible():
                if not report.not_ours:
                    with report.timed("deploy"):
                        up = stack.up(on_output=log)
                    interrupts.check()  # an interrupt that came too late to cancel it
                    outputs = {name: output.value for name, output in up.outputs.items()}
                    with report.timed("scenario"):
                        report.scenario = scenario.run(outputs)
        except KeyboardInterrupt:
            report.interrupted = True
        except Exception as error:
            report.error = _describe(error)
        finally:
            interrupts.tearing_down = True
            report.interrupted = report.interrupted or bool(interrupts.received)
            _tear_down(stack, workspace, scenario, outputs, report=report, log=log)
            if not report.not_ours and restore_account is not None:
                _restore_account(restore_account, report)
            _select_again(workspace, previous, report, log)
    return report


def config_arguments(plan: Plan, root: Path = PROJECT_DIR) -> dict[str, str]:
    """The ``pulumi config set-all --path`` arguments of the plan's config; :class:`Refused` when
    ``pulumi up`` would refuse a value's type (``Pulumi.yaml`` in ``root``)."""
    declared = declared_types(root / "Pulumi.yaml")
    try:
        arguments = set_all_arguments(plan.config(), declared)
    except ValueError as error:
        raise Refused(str(error)) from error
    problems = type_errors(plan.stack, stored_by_path(arguments), declared)
    if problems:
        raise Refused("`pulumi up` would refuse the stack config: " + "; ".join(problems))
    return arguments


def _selected_stack(workspace: Workspace) -> str | None:
    try:
        selected = workspace.stack()
    except auto.CommandError as error:
        raise Refused(f"`pulumi stack ls` failed: {_describe(error)}") from error
    return selected.name if selected is not None else None


def _create(workspace: Workspace, plan: Plan) -> PulumiStack:
    try:
        return workspace.create(plan.stack)
    except auto.StackAlreadyExistsError as error:
        raise Refused(
            f"stack {plan.stack} already exists in the Pulumi backend; the runner only deploys and destroys "
            "a stack it creates: pick another name"
        ) from error
    except auto.CommandError as error:
        raise Refused(f"`pulumi stack init {plan.stack}` failed: {_describe(error)}") from error


def _tear_down(
    stack: PulumiStack,
    workspace: Workspace,
    scenario: Scenario,
    outputs: Mapping[str, Any] | None,
    *,
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
    report.pending_operations = _pending_operations(stack)
    _destroy(stack, report, log)
    if report.destroyed:
        try:
            workspace.remove_stack(report.plan.stack)
            report.removed = True
        except Exception as error:
            report.destroy_errors.append(f"stack rm failed: {_describe(error)}")


def _put_back(iot: Any, switches: EventSwitches, logging: LoggingOptions, kept_on: Collection[str]) -> str:
    """What an owning stack changed in the account and its destroy leaves, put back as the run found it:
    the registry events, then AWS IoT's logging options (not tried when the first raises)."""
    return f"{switches.restore(iot, kept_on)}; {logging.restore(iot)}"


def _restore_account(restore: Callable[[], str], report: Report) -> None:
    """Put back the account's registry events and logging once the stack is destroyed (their delete does
    nothing)."""
    if not report.destroyed:
        report.left_behind.append(
            "AWS IoT event configurations and logging options: the stack still declares them; once it is "
            "destroyed, put back what it changed (docs/acceptance.md, step 6)"
        )
        return
    try:
        report.account = restore()
    except Exception as error:
        report.left_behind.append(
            f"AWS IoT event configurations or logging options not put back: {_describe(error)}"
        )


def _pending_operations(stack: PulumiStack) -> list[str]:
    """The operations the state records as under way: what a stopped ``pulumi up`` was changing, which
    ``pulumi destroy`` drops from the state (pulumi/pulumi ``deployment_executor.go``
    ``printPendingOperationsWarning``), so that a resource being created may stay in the account."""
    try:
        deployment = stack.export_stack().deployment or {}
    except Exception as error:
        return [f"unknown: `pulumi stack export` failed: {_describe(error, lines=2)}"]
    return [
        f"{operation['resource']['urn']}, interrupted while {operation['type']}"
        for operation in deployment.get("pending_operations") or []
    ]


def _destroy(stack: PulumiStack, report: Report, log: Callable[[str], Any]) -> None:
    """``pulumi destroy``, until it succeeds or has failed :data:`DESTROY_ATTEMPTS` times. Every CLI
    command of the run has ended by now, so a stack still locked was left so by a CLI that was killed:
    ``pulumi cancel`` (once) releases it."""
    failures = 0
    cancelled = False
    while failures < DESTROY_ATTEMPTS:
        log(f"destroying stack {report.plan.stack}")
        try:
            with report.timed("destroy"):
                stack.destroy(on_output=log)
        except auto.ConcurrentUpdateError as error:
            if cancelled:
                failures += 1
                report.destroy_errors.append(f"attempt {failures} failed: {_describe(error)}")
                continue
            log("an update that did not end (a Pulumi CLI was killed) locks the stack: `pulumi cancel`")
            cancelled = True
            try:
                stack.cancel()
            except Exception as cancel_error:
                report.destroy_errors.append(f"cancel failed: {_describe(cancel_error)}")
            continue
        except Exception as error:
            failures += 1
            report.destroy_errors.append(f"attempt {failures} failed: {_describe(error)}")
            continue
        report.destroyed = True
        return


def _select_again(
    workspace: Workspace, previous: str | None, report: Report, log: Callable[[str], Any]
) -> None:
    """``pulumi stack init`` selected the new stack and ``pulumi stack rm`` leaves none selected
    (pulumi/pulumi ``stack_remove.go``): select again the stack that was selected before the run."""
    if previous is None:
        return
    try:
        workspace.select_stack(previous)
    except Exception as error:
        log(f"could not select stack {previous} again: {_describe(error, lines=2)}")
        report.destroy_errors.append(f"`pulumi stack select {previous}` failed: {_describe(error, lines=2)}")


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


def pulumi_command(interrupts: Interrupts) -> InterruptibleCommand:
    """The Pulumi CLI on ``PATH``; :class:`Refused` when it is missing, or a version the SDK does not
    support (the SDK's ``InvalidVersionError``)."""
    if shutil.which("pulumi") is None:
        raise Refused("the Pulumi CLI is not on PATH: https://www.pulumi.com/docs/install/")
    try:
        return InterruptibleCommand(interrupts)
    except auto.InvalidVersionError as error:
        raise Refused(f"this Pulumi CLI does not suit the Automation API installed ({error})") from error
    except (OSError, subprocess.CalledProcessError) as error:
        raise Refused(f"`pulumi version` failed: {error}") from error


def main(argv: list[str] | None = None) -> int:
    """Run the acceptance scenario on AWS; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--stack", required=True, help=f"new stack name, also its environment (<= {MAX_STACK_NAME})"
    )
    parser.add_argument("--region", help="default: $AWS_REGION, else the AWS profile's region")
    parser.add_argument(
        "--ca-file", type=Path, help=f"{AMAZON_ROOT_CA_NAME} PEM; default: fetched from amazontrust.com"
    )
    parser.add_argument(
        "--own-account-settings",
        action="store_true",
        help="the stack owns the account-wide AWS IoT settings (accountSettings true) for the run",
    )
    parser.add_argument(
        "--mqtt-port",
        type=int,
        choices=(MQTT_PORT, MQTT_PORT_WITH_ALPN),
        default=MQTT_PORT,
        help=f"port devices connect to; {MQTT_PORT_WITH_ALPN} (TLS with ALPN x-amzn-mqtt-ca) where a network "
        f"blocks {MQTT_PORT}",
    )
    arguments = parser.parse_args(argv)
    interrupts = Interrupts(print)
    try:
        # boto3's region: AWS_DEFAULT_REGION, else the profile's `region` (AWS_PROFILE or default)
        region = arguments.region or os.environ.get("AWS_REGION") or boto3.session.Session().region_name
        plan = make_plan(arguments.stack, region or "", arguments.own_account_settings)
        if arguments.mqtt_port == MQTT_PORT_WITH_ALPN and not crt_io.is_alpn_available():
            raise Refused(f"--mqtt-port {MQTT_PORT_WITH_ALPN} needs TLS ALPN, which awscrt lacks here")
        command = pulumi_command(interrupts)
        iot = boto3.client("iot", region_name=plan.region)
        found = account_switches(iot)  # recorded before anything changes them
        logging = account_logging(iot)
        event_types = account_event_types(iot, plan.own_account_settings)
        plan = dataclasses.replace(plan, account_event_types=event_types)
        refuse_existing_deployment(plan, boto3.client("dynamodb", region_name=plan.region), iot)
        ca_pem = amazon_root_ca(arguments.ca_file, fetch_url)
        scenario = AwsScenario(plan, ca_pem, arguments.mqtt_port)
        write_vendor_roots(
            plan.config(), scenario.vendor
        )  # what the zero-touch type pins; `pulumi up` reads it
        restore = partial(_put_back, iot, found, logging, event_types) if plan.own_account_settings else None
        report = run(
            plan,
            ProjectWorkspace(command),
            scenario,
            interrupts=interrupts,
            log=print,
            restore_account=restore,
        )
    except Refused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return Exit.REFUSED
    except KeyboardInterrupt:  # before `pulumi stack init`: from there on, run() handles signals
        print("interrupted before anything was created", file=sys.stderr)
        return Exit.INTERRUPTED
    print(report.render())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
