"""A running emulator with the local stack deployed in it: what the demo, the e2e tests and the benchmark
start from."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from local.deployer import LocalStack, deploy
from local.device import Broker
from local.emulator import Emulator
from local.fleet import FleetTarget
from local.inspection import Inspector
from program.outputs import StackOutput


@dataclass
class Sandbox:
    """The emulator, the deployed stack, what devices need to reach it, and a read-only view of it."""

    emulator: Emulator
    stack: LocalStack
    target: FleetTarget
    inspector: Inspector

    @property
    def registry_table(self) -> str:
        """Name of the device registry table."""
        return str(self.stack.outputs[StackOutput.REGISTRY_TABLE])

    def wait_for_status(
        self, serials: Iterable[str], status: str, timeout: float = 15.0
    ) -> dict[str, dict[str, str]]:
        """Poll the registry until every serial has ``status`` (activation runs asynchronously, from a topic
        rule); returns the registry, whether or not they all got there in time."""
        wanted = set(serials)
        deadline = time.monotonic() + timeout
        while True:
            items = self.inspector.registry(self.registry_table)
            if (
                all(items.get(serial, {}).get("status") == status for serial in wanted)
                or time.monotonic() > deadline
            ):
                return items
            time.sleep(0.2)


@contextmanager
def sandbox() -> Iterator[Sandbox]:
    """Start the emulator, deploy the local stack into it, and stop the emulator on exit, whatever happens."""
    with Emulator() as emulator:
        endpoint_url = emulator.address.endpoint_url
        stack = deploy(endpoint_url)
        broker = Broker(emulator.address.mqtt_host, emulator.address.mqtt_port, emulator.ca_pem())
        yield Sandbox(
            emulator=emulator,
            stack=stack,
            target=FleetTarget.from_outputs(broker, stack.outputs),
            inspector=Inspector(endpoint_url, str(stack.outputs[StackOutput.REGION])),
        )
