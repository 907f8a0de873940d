"""A running emulator with the local stack deployed in it: what the demo, the e2e tests and the benchmark
start from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from local.deploy.inspection import Inspector
from local.deploy.mock_engine import LOCAL_STACK, LocalStack, deploy, local_config
from local.devices.fleet_runner import FleetTarget
from local.devices.mqtt_session import Broker
from local.devices.vendor import Vendor
from local.emulator.launcher import ACCESS_KEY, Emulator, EmulatorAddress
from local.scenario.deployment import EMULATOR_PATIENCE, Deployment, stack_settings
from local.scenario.emulator_lock import emulator_lock
from program.outputs import StackOutput


@dataclass(kw_only=True)
class Sandbox(Deployment):
    """The emulator and the local stack deployed in it, as a :class:`Deployment` of the scenario."""

    emulator: Emulator
    stack: LocalStack


@contextmanager
def sandbox(vendor: Vendor | None = None, holder: str = "an e2e run or a benchmark") -> Iterator[Sandbox]:
    """Start the emulator, deploy the local stack into it (its zero-touch types pinning ``vendor``'s root, a
    new vendor's by default: ``stack.vendor``), and stop the emulator on exit, whatever happens. The
    emulator's lock is held meanwhile in the name of ``holder`` (``make sandbox``, ``make demo``...), so a
    second one raises :class:`~local.scenario.emulator_lock.EmulatorBusy` naming the first."""
    address = EmulatorAddress()
    with emulator_lock(address, holder), Emulator(address) as emulator:
        endpoint_url = emulator.address.endpoint_url
        stack = deploy(endpoint_url, vendor=vendor)
        broker = Broker(emulator.address.mqtt_host, emulator.address.mqtt_port, emulator.ca_pem())
        yield Sandbox(
            emulator=emulator,
            stack=stack,
            target=FleetTarget.from_outputs(broker, stack.outputs),
            inspector=Inspector(endpoint_url, str(stack.outputs[StackOutput.REGION])),
            outputs=stack.outputs,
            settings=stack_settings(local_config(), LOCAL_STACK),
            patience=EMULATOR_PATIENCE,
            vendor=stack.vendor,
            fleetctl_environment={
                "AWS_ENDPOINT_URL": endpoint_url,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,  # the emulator's root credentials: AUTH=true checks keys
                "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
                "AWS_SESSION_TOKEN": None,
            },
        )
