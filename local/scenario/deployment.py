"""A deployed stack as the scenario (``local/scenario/``) sees it, on the emulator or on AWS: how devices
reach it, a read-only view of it, its outputs and settings, and how long to wait for what it does
asynchronously."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from hook.contract import Attr, DeviceStatus
from local.deploy.inspection import Inspector
from local.devices.fleet_runner import FleetTarget
from local.devices.vendor import Vendor
from local.scenario.fleetctl_runner import run_fleetctl
from local.scenario.hook_logs import Denial, hook_denials
from program.config import settings_from_config
from program.outputs import StackOutput
from program.settings import Settings

T = TypeVar("T")


def eventually(probe: Callable[[], T], done: Callable[[T], bool], seconds: float, interval: float) -> T:
    """Call ``probe`` until ``done`` holds for its result or ``seconds`` have passed; the last result."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@dataclass(frozen=True)
class Patience:
    """Seconds to wait for what a deployment does asynchronously."""

    activation: float
    """Registry ``PENDING`` -> ``ACTIVE``: a topic rule invokes the activation function."""
    logs: float
    """The hook's log lines becoming readable."""
    revocation: float
    """A revoked certificate being refused on new connections; 0 for a single attempt."""
    interval: float = 0.2


EMULATOR_PATIENCE: Final = Patience(activation=15.0, logs=10.0, revocation=0.0)
AWS_PATIENCE: Final = Patience(activation=60.0, logs=60.0, revocation=60.0, interval=2.0)


@dataclass(kw_only=True)
class Deployment:
    """A deployed stack as the scenario sees it: how devices reach it, and a read-only view of it."""

    target: FleetTarget
    inspector: Inspector
    outputs: Mapping[str, Any]
    settings: Settings
    patience: Patience
    vendor: Vendor | None = None
    """The simulated chip vendor whose root the stack's zero-touch types pin: the scenario's zero-touch
    devices are its elements (``local/scenario/zero_touch.py``)."""
    fleetctl_environment: Mapping[str, str | None] = field(default_factory=dict)
    """What fleetctl needs in its environment to reach the stack (the emulator's endpoint and credentials);
    nothing on AWS, where it uses the default credentials."""

    def fleetctl(self, *args: str) -> Any:
        """Run ``fleetctl <args> --json`` on this stack as an operator would; its JSON output
        (:class:`~local.scenario.fleetctl_runner.FleetctlFailed` when it fails)."""
        return run_fleetctl(self.outputs, *args, environment=self.fleetctl_environment)

    @property
    def registry_table(self) -> str:
        """Name of the device registry table."""
        return str(self.outputs[StackOutput.REGISTRY_TABLE])

    def hook_denial(self, serial: str) -> Denial | None:
        """The last denial the hook logged for ``serial``, waiting for its log group to have one; ``None``
        when none came in time."""
        function_name = str(self.outputs[StackOutput.HOOK_FUNCTION])
        return eventually(
            lambda: hook_denials(self.inspector.client("logs"), function_name).get(serial),
            lambda denial: denial is not None,
            self.patience.logs,
            self.patience.interval,
        )

    def wait_for_status(
        self, serials: Iterable[str], status: DeviceStatus, timeout: float | None = None
    ) -> dict[str, dict[str, str]]:
        """Poll the registry until every serial has ``status`` (activation runs asynchronously, from a topic
        rule); returns the registry, whether or not they all got there in time."""
        wanted = set(serials)
        return eventually(
            lambda: self.inspector.registry(self.registry_table),
            lambda items: all(items.get(serial, {}).get(Attr.STATUS) == status for serial in wanted),
            self.patience.activation if timeout is None else timeout,
            self.patience.interval,
        )


def stack_settings(config: Mapping[str, str], stack: str) -> Settings:
    """The settings the program derives from a stack's config (full keys, values as Pulumi stores them)."""
    return settings_from_config(config, stack)
