"""``make aws-acceptance STACK=<name>``: the shared scenario (``local/scenario.py``) on a throwaway AWS stack.

Deploys this very program as a new stack with the Pulumi Automation API, provisions the sample fleet and a
device to revoke against the real endpoint with ``local/device.py``, runs the scenario's checks, prints a
report, and always removes the devices, destroys the stack and removes it from the workspace, also after
a failure, Ctrl-C or SIGTERM. It only ever deploys and destroys a stack it created (see :func:`run`).
Needs the Pulumi CLI and AWS credentials; nothing in ``make test`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import FrameType
from typing import Any, Final, Protocol

import boto3
import pulumi.automation as auto
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.x509.oid import NameOID

from fleetctl.context import StackContext
from fleetctl.devices import find_device
from fleetctl.errors import FleetctlError
from fleetctl.iot import attached_policies, describe_certificate, principal_things
from fleetctl.lifecycle import decommission, revoke
from hook.contract import Attr, template_name
from local import scenario
from local.device import Broker
from local.fleet import FleetTarget
from local.inspection import Inspector
from local.report import outcomes_table
from local.scenario import AWS_PATIENCE, Deployment, ScenarioResult, scenario_config, stack_settings
from program.outputs import StackOutput
from program.settings import PROJECT, TEMPLATE_NAME_MAX_LENGTH, Settings

ROOT: Final = Path(__file__).resolve().parent.parent
MARKER_KEY: Final = "acceptance:runId"
"""Stack config the runner writes when it creates the stack; it deploys and destroys only while it holds
this run's value."""
AMAZON_ROOT_CA_URL: Final = "https://www.amazontrust.com/repository/AmazonRootCA1.pem"
AMAZON_ROOT_CA_NAME: Final = "Amazon Root CA 1"
MQTT_PORT: Final = 8883
DESTROY_ATTEMPTS: Final = 3
LOCK_WAIT_SECONDS: Final = 900.0
"""How long the teardown waits for another update of the stack to finish: a ``pulumi up`` the runner was
interrupted in goes on until it has cancelled (Ctrl-C) or finished (SIGTERM, which it does not get)."""
LOCK_POLL_SECONDS = 15.0
DELETE_ATTEMPTS: Final = 6
"""AWS IoT detaches policies and things asynchronously: deleting a certificate may fail for a few seconds."""
CLEAN_UP_REASON: Final = "acceptance run clean-up"
_RESOURCE_PREFIX: Final[str] = Settings.model_fields["resource_prefix"].default
MAX_STACK_NAME: Final = TEMPLATE_NAME_MAX_LENGTH - len(template_name(f"{_RESOURCE_PREFIX}-"))
"""The stack name is the environment: it must keep ``<prefix>-<env>-fleet`` within AWS IoT's limit."""
_STACK_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]*")


class Exit(IntEnum):
    """Exit statuses of the runner."""

    PASSED = 0
    FAILED = 1
    REFUSED = 2
    LEFT_BEHIND = 3
    """The stack could not be destroyed or removed: resources may remain."""
    INTERRUPTED = 130


class Refused(Exception):
    """The run was refused before anything was deployed; the message says why and what to do."""


# --- what to deploy, and checks before deploying ------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The throwaway stack: its name (also its environment), region, and who owns the account settings."""

    stack: str
    region: str
    own_account_settings: bool
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))

    def config(self) -> dict[str, str]:
        """The stack config, as Pulumi stores it; the device types are the scenario's. No audit logging:
        what it creates in the account-settings owner outlives the stack."""
        return {
            "aws:region": self.region,
            f"{PROJECT}:environment": self.stack,
            f"{PROJECT}:protectData": "false",
            f"{PROJECT}:logRetentionDays": "1",
            f"{PROJECT}:enableMonitoring": "false",
            f"{PROJECT}:accountSettings": json.dumps(self.own_account_settings),
            # An owner's AWS IoT logging keeps AWSIotLogsV2, its role and policy when destroyed.
            f"{PROJECT}:enableAuditLogging": "false",
            **scenario_config(),
            MARKER_KEY: self.run_id,
        }


def make_plan(stack: str, region: str, own_account_settings: bool) -> Plan:
    """The plan, or :class:`Refused` when the stack name cannot be an environment or no region is given."""
    if not region:
        raise Refused("no AWS region: pass --region or set AWS_REGION")
    if not (_STACK_NAME.fullmatch(stack) and len(stack) <= MAX_STACK_NAME):
        raise Refused(
            f"stack name {stack!r}: it is also the stack's environment, so 1-{MAX_STACK_NAME} characters "
            "of a-z 0-9 -, starting with a letter or digit"
        )
    return Plan(stack, region, own_account_settings)


def require_thing_events(iot: Any, own_account_settings: bool) -> None:
    """Refuse unless the account's THING registry events are on, or this stack is to own that setting:
    without them no thing-created event fires, and no approved device could become ``ACTIVE``."""
    if own_account_settings:
        return
    try:
        configurations = iot.describe_event_configurations().get("eventConfigurations", {})
    except (BotoCoreError, ClientError) as error:
        raise Refused(f"cannot read the account's AWS IoT event configurations: {error}") from error
    if not configurations.get("THING", {}).get("Enabled"):
        raise Refused(
            "AWS IoT THING registry events are off in this account and region, so no approved device could "
            "become ACTIVE. Turn them on in the stack that owns the account settings, or pass "
            "--own-account-settings to let this throwaway stack own them (logging options, the "
            "AWSIotLogsV2 log group, event configurations) for the run."
        )


def amazon_root_ca(ca_file: Path | None, fetch: Callable[[str], bytes]) -> str:
    """Amazon Root CA 1 (PEM), the CA of AWS IoT's ATS endpoint: read from ``ca_file``, else fetched from
    :data:`AMAZON_ROOT_CA_URL`; :class:`Refused` unless it is that certificate."""
    source = str(ca_file) if ca_file is not None else AMAZON_ROOT_CA_URL
    try:
        pem = ca_file.read_bytes() if ca_file is not None else fetch(AMAZON_ROOT_CA_URL)
        names = x509.load_pem_x509_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except (OSError, ValueError) as error:
        raise Refused(f"Amazon Root CA 1 from {source}: {error}") from error
    if [name.value for name in names] != [AMAZON_ROOT_CA_NAME]:
        raise Refused(f"{source} is not {AMAZON_ROOT_CA_NAME}")
    return pem.decode("ascii")


def fetch_url(url: str) -> bytes:
    """The body of an HTTPS GET."""
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (only AMAZON_ROOT_CA_URL)
        body: bytes = response.read()
    return body


# --- the scenario on AWS ----------------------------------------------------------------------------


class AwsInspector(Inspector):
    """The scenario's read-only view on AWS, with the default credentials; shadows through the stack's
    ``iotEndpoint``."""

    def __init__(self, region: str, data_endpoint: str) -> None:  # no emulator: Inspector's init is not used
        session = boto3.session.Session(region_name=region)
        self._clients: dict[str, Any] = {
            "dynamodb": session.client("dynamodb"),
            "iot": session.client("iot"),
            "logs": session.client("logs"),
            "iot-data": session.client("iot-data", endpoint_url=f"https://{data_endpoint}"),
        }

    def client(self, service: str) -> Any:
        """A boto3 client of AWS in the stack's region."""
        return self._clients[service]


@dataclass(frozen=True)
class Removal:
    """What :func:`remove_devices` removed, and what it could not."""

    devices: int
    certificates: int
    problems: list[str]

    def __str__(self) -> str:
        removed = f"{self.devices} devices decommissioned, {self.certificates} certificates deleted"
        return removed + "".join(f"\n  could not: {problem}" for problem in self.problems)


def remove_devices(stack: StackContext, inspector: Inspector, certificate_ids: Iterable[str]) -> Removal:
    """Remove what devices created and the stack does not own, so that destroying it can succeed: every
    registry device is decommissioned with fleetctl (certificates revoked and detached, thing deleted)
    and its shadow deleted; then every certificate of those devices and ``certificate_ids`` is deleted."""
    certificates = set(certificate_ids)
    problems: list[str] = []
    registry = inspector.registry(stack.table)
    for serial, item in sorted(registry.items()):
        try:
            certificates.update(find_device(stack, serial).certificate_ids)
            _delete_shadow(
                inspector.client("iot-data"), item.get(Attr.THING_NAME) or stack.thing_name(serial)
            )
            decommission(stack, serial, CLEAN_UP_REASON, keep_thing=False)
        except (BotoCoreError, ClientError, FleetctlError) as error:
            problems.append(f"decommission {serial}: {error}")
    deleted = 0
    for certificate_id in sorted(certificates):
        try:
            deleted += _delete_certificate(stack.iot, certificate_id)
        except (BotoCoreError, ClientError) as error:
            problems.append(f"delete certificate {certificate_id}: {error}")
    return Removal(len(registry), deleted, problems)


def _delete_shadow(iot_data: Any, thing_name: str) -> None:
    try:
        iot_data.delete_thing_shadow(thingName=thing_name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise


def _delete_certificate(iot: Any, certificate_id: str) -> bool:
    """Detach the certificate's policies and things, deactivate and delete it; ``False`` if it is gone."""
    description = describe_certificate(iot, certificate_id)
    if description is None:
        return False
    arn = description["certificateArn"]
    for policy in attached_policies(iot, arn):
        iot.detach_policy(policyName=policy, target=arn)
    for thing in principal_things(iot, arn):
        iot.detach_thing_principal(thingName=thing, principal=arn)
    if description["status"] == "ACTIVE":
        iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    for attempt in range(1, DELETE_ATTEMPTS):
        try:
            iot.delete_certificate(certificateId=certificate_id)
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "DeleteConflictException":
                raise
        time.sleep(attempt)
    iot.delete_certificate(certificateId=certificate_id)  # the last attempt: its error is the one reported
    return True


class AwsScenario:
    """The shared scenario against the deployed stack on AWS, and the removal of what its devices left."""

    def __init__(self, plan: Plan, ca_pem: str) -> None:
        self._plan = plan
        self._ca_pem = ca_pem
        self.certificates: set[str] = set()
        """Every certificate a device of the scenario was issued."""

    def deployment(self, outputs: Mapping[str, Any]) -> Deployment:
        """The stack as the scenario sees it, reached at its ``iotEndpoint`` with Amazon Root CA 1."""
        endpoint = str(outputs[StackOutput.IOT_ENDPOINT])
        return Deployment(
            target=FleetTarget.from_outputs(Broker(endpoint, MQTT_PORT, self._ca_pem), dict(outputs)),
            inspector=AwsInspector(self._plan.region, endpoint),
            outputs=outputs,
            settings=stack_settings(self._plan.config(), self._plan.stack),
            patience=AWS_PATIENCE,
        )

    def run(self, outputs: Mapping[str, Any]) -> ScenarioResult:
        """Run the scenario; devices are revoked with fleetctl, as an operator would."""
        context = StackContext(outputs)
        return scenario.run(
            self.deployment(outputs),
            lambda serial, reason: revoke(context, serial, reason),
            on_certificate=self.certificates.add,
        )

    def clean_up(self, outputs: Mapping[str, Any]) -> str:
        """Remove the scenario's devices and certificates; says what was removed."""
        endpoint = str(outputs[StackOutput.IOT_ENDPOINT])
        inspector = AwsInspector(self._plan.region, endpoint)
        return str(remove_devices(StackContext(outputs), inspector, self.certificates))


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
    """What the runner runs once the stack is up, and what it removes before destroying it."""

    def run(self, outputs: Mapping[str, Any]) -> ScenarioResult: ...

    def clean_up(self, outputs: Mapping[str, Any]) -> str: ...


def create_local_stack(name: str) -> PulumiStack:
    """``pulumi stack init <name>`` of this very program: a LocalWorkspace on the project root."""
    return auto.create_stack(name, work_dir=str(ROOT))


# --- the run -----------------------------------------------------------------------------------------


@dataclass
class Report:
    """What happened, for the summary the runner prints and its exit status."""

    plan: Plan
    scenario: ScenarioResult | None = None
    error: str = ""
    interrupted: bool = False
    clean_up: str = ""
    destroy_errors: list[str] = field(default_factory=list)
    destroyed: bool = False
    removed: bool = False
    not_ours: bool = False
    """The stack's config lacked this run's marker: it was neither deployed nor destroyed."""
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Add the time the block takes to ``step``."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.monotonic() - started

    @property
    def exit_code(self) -> Exit:
        """``LEFT_BEHIND`` unless the stack is gone, then ``INTERRUPTED``, ``FAILED`` or ``PASSED``."""
        if not self.removed:
            return Exit.LEFT_BEHIND
        if self.interrupted:
            return Exit.INTERRUPTED
        if self.error or self.scenario is None or not self.scenario.passed:
            return Exit.FAILED
        return Exit.PASSED

    def render(self) -> str:
        """The report as text."""
        plan = self.plan
        lines = [f"Acceptance run on AWS: stack {plan.stack}, region {plan.region}, run {plan.run_id}", ""]
        if self.scenario is not None:
            lines += ["Checks", ""]
            for check in self.scenario.checks:
                lines.append(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}")
                lines += [f"          {line}" for line in check.detail.splitlines()]
            lines += ["", "Devices", "", outcomes_table(self.scenario.outcomes), ""]
        if self.interrupted:
            lines += ["Interrupted (Ctrl-C or SIGTERM).", ""]
        if self.error:
            lines += ["Error:", *(f"  {line}" for line in self.error.splitlines()), ""]
        lines += ["Teardown", "", f"  devices: {self.clean_up or 'none provisioned'}"]
        lines += [f"  destroy {error}" for error in self.destroy_errors]
        lines += [
            f"  stack destroyed: {'yes' if self.destroyed else 'NO'}",
            f"  stack removed from the workspace: {'yes' if self.removed else 'NO'}",
            "",
            "Time: " + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in self.seconds.items()),
            f"Result: {self._verdict()}",
        ]
        return "\n".join(lines)

    def _verdict(self) -> str:
        stack, cwd = self.plan.stack, ROOT
        if self.not_ours:
            return (
                f"REFUSED: the config of stack {stack} lacks this run's {MARKER_KEY}; it was neither "
                f"deployed nor destroyed. Check it, then `pulumi stack rm {stack} --cwd {cwd}`."
            )
        if not self.destroyed:
            return (
                f"RESOURCES MAY REMAIN: run `pulumi destroy --stack {stack} --cwd {cwd}`, then "
                f"`pulumi stack rm {stack} --cwd {cwd}`."
            )
        if not self.removed:
            return f"DESTROYED, NOT REMOVED: run `pulumi stack rm {stack} --cwd {cwd}`."
        if self.interrupted:
            return "INTERRUPTED; the stack was destroyed and removed."
        checks = self.scenario.checks if self.scenario is not None else []
        failed = sum(not check.passed for check in checks)
        if self.error or self.scenario is None or failed:
            return f"FAILED ({failed} of {len(checks)} checks failed); the stack was destroyed and removed."
        return f"PASSED ({len(checks)} checks); the stack was destroyed and removed."


def run(
    plan: Plan,
    create_stack: Callable[[str], PulumiStack],
    scenario: Scenario,
    log: Callable[[str], Any],
    root: Path = ROOT,
) -> Report:
    """Create the stack, configure it, deploy it, run the scenario; then, whatever happened (an error,
    Ctrl-C, SIGTERM), remove the scenario's devices, destroy the stack and remove it from the workspace.

    It works only on a stack it creates. :class:`Refused`, with nothing created or destroyed, when
    ``Pulumi.<stack>.yaml`` exists in ``root`` (a committed or someone's stack) or the stack exists in
    the backend. It writes :data:`MARKER_KEY` into the new stack's config, and deploys and destroys only
    while the stack's config holds this run's value.
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
    return report


def _tear_down(
    stack: PulumiStack,
    scenario: Scenario,
    outputs: Mapping[str, Any] | None,
    report: Report,
    log: Callable[[str], Any],
) -> None:
    if outputs is not None:
        log("removing the scenario's devices")
        with report.timed("clean up"):
            try:
                report.clean_up = scenario.clean_up(outputs)
            except Exception as error:
                report.clean_up = f"FAILED: {_describe(error)}"
    if report.not_ours or not _holds_marker(stack, report.plan, log):
        report.not_ours = True
        return
    _destroy(stack, report, log)
    if report.destroyed:
        try:
            stack.workspace.remove_stack(report.plan.stack)
            report.removed = True
        except Exception as error:
            report.destroy_errors.append(f"stack rm failed: {_describe(error)}")


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
        require_thing_events(boto3.client("iot", region_name=plan.region), plan.own_account_settings)
        ca_pem = amazon_root_ca(arguments.ca_file, fetch_url)
        report = run(plan, create_local_stack, AwsScenario(plan, ca_pem), log=print)
    except Refused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return Exit.REFUSED
    print(report.render())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
