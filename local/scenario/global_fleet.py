"""A global fleet of two regions on two emulator instances, one per region: the registry region's stack on
the first, the other region's on the second, each deployed from a process of its own (Pulumi's mocks are
per process). The second region's functions reach the registry through a :class:`RegionRouter`, and so do
``fleetctl`` and the tests, whose AWS SDK has one endpoint for every region."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from local.deploy.inspection import Inspector
from local.deploy.mock_engine import LOCAL_STACK, deploy, local_config
from local.devices.fleet_runner import FleetTarget
from local.devices.mqtt_session import Broker
from local.emulator.launcher import ACCESS_KEY, Emulator, EmulatorAddress
from local.emulator.region_router import RegionRouter
from local.scenario.deployment import EMULATOR_PATIENCE, Deployment, stack_settings
from local.scenario.fleetctl_runner import run_fleetctl
from program.outputs import StackOutput
from program.settings import PROJECT

REGISTRY_REGION: Final = "us-east-1"
OTHER_REGION: Final = "eu-west-1"
FLEET: Final = {
    "name": "local-global",
    "regions": [REGISTRY_REGION, OTHER_REGION],
    "registryRegion": REGISTRY_REGION,
}
ADDRESSES: Final = {
    REGISTRY_REGION: EmulatorAddress(gateway_port=4587, mqtt_port=8903),
    OTHER_REGION: EmulatorAddress(gateway_port=4588, mqtt_port=8904),
}
"""Ports of their own: the sandbox (4566, 8883) and tests/e2e/test_local_stack.py (4576, 8893) may run
meanwhile."""
_CLAIM: Final = (StackOutput.CLAIM_CERTIFICATE_PEM, StackOutput.CLAIM_PRIVATE_KEY)
"""What a factory image carries, from the registry region's outputs: the same in every region."""


def region_config(region: str, claim_certificate_pems: Mapping[str, str] | None = None) -> dict[str, str]:
    """The local stack's config overrides for ``region`` of the fleet; a region other than the registry's
    registers the registry region's claim certificates (``claimCertificatePems``) by their PEM."""
    overrides = {"aws:region": region, f"{PROJECT}:fleet": json.dumps(FLEET)}
    if claim_certificate_pems:
        generations = [{"name": name, "certificatePem": pem} for name, pem in claim_certificate_pems.items()]
        overrides[f"{PROJECT}:claimCertificates"] = json.dumps(generations)
    return overrides


def deploy_in_own_process(
    endpoint_url: str, overrides: Mapping[str, str], registry_endpoint: str | None = None
) -> dict[str, Any]:
    """The outputs of the local stack with ``overrides``, deployed into the emulator at ``endpoint_url`` by
    a new process (``python -m local.scenario.global_fleet``)."""
    with tempfile.TemporaryDirectory() as directory:
        request, answer = Path(directory) / "request.json", Path(directory) / "outputs.json"
        request.write_text(
            json.dumps({"endpoint": endpoint_url, "overrides": overrides, "registry": registry_endpoint}),
            encoding="utf-8",
        )
        subprocess.run(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "local.scenario.global_fleet", str(request), str(answer)],
            check=True,
        )
        return dict(json.loads(answer.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class GlobalFleet:
    """Both regions as the scenario sees each (:class:`Deployment`), and the one endpoint of both."""

    regions: dict[str, Deployment]
    router: RegionRouter

    @property
    def registry(self) -> Deployment:
        """The registry region's deployment."""
        return self.regions[REGISTRY_REGION]

    @property
    def other(self) -> Deployment:
        """The other region's deployment."""
        return self.regions[OTHER_REGION]

    def fleetctl(self, *args: str) -> Any:
        """``fleetctl --outputs <each region's> <args> --json``, as an operator of the fleet runs it."""
        outputs = [deployment.outputs for deployment in self.regions.values()]
        return run_fleetctl(outputs, *args, environment=self.registry.fleetctl_environment)


@contextmanager
def global_fleet(log_directory: Path) -> Iterator[GlobalFleet]:
    """Start an emulator per region, deploy the fleet's stacks (the registry region's first: the other
    registers its claim certificate), and stop everything on exit, whatever happens."""
    with ExitStack() as running:
        emulators = {
            region: running.enter_context(
                Emulator(address, log_path=log_directory / f"ministack-{region}.log")
            )
            for region, address in ADDRESSES.items()
        }
        router = running.enter_context(
            RegionRouter({region: emulator.address.endpoint_url for region, emulator in emulators.items()})
        )
        registry_endpoint = {REGISTRY_REGION: None, OTHER_REGION: router.endpoint_url}
        configs = {REGISTRY_REGION: region_config(REGISTRY_REGION)}
        stacks: dict[str, dict[str, Any]] = {}
        for region in (REGISTRY_REGION, OTHER_REGION):  # the registry region's first: it makes the claim
            configs[region] = configs.get(region) or region_config(
                region, stacks[REGISTRY_REGION][StackOutput.CLAIM_CERTIFICATE_PEMS]
            )
            url = emulators[region].address.endpoint_url
            stacks[region] = deploy_in_own_process(url, configs[region], registry_endpoint[region])
        claim: dict[str, Any] = {name: stacks[REGISTRY_REGION][name] for name in _CLAIM}
        yield GlobalFleet(
            {
                region: _deployment(emulators[region], {**outputs, **claim}, configs[region], router)
                for region, outputs in stacks.items()
            },
            router,
        )


def _deployment(
    emulator: Emulator, outputs: dict[str, Any], config: Mapping[str, str], router: RegionRouter
) -> Deployment:
    broker = Broker(emulator.address.mqtt_host, emulator.address.mqtt_port, emulator.ca_pem())
    return Deployment(
        target=FleetTarget.from_outputs(broker, outputs),
        inspector=Inspector(emulator.address.endpoint_url, config["aws:region"]),
        outputs=outputs,
        settings=stack_settings({**local_config(), **config}, LOCAL_STACK),
        patience=EMULATOR_PATIENCE,
        fleetctl_environment={
            "AWS_ENDPOINT_URL": router.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
            "AWS_SESSION_TOKEN": None,
        },
    )


def _deploy_requested(request: Path, answer: Path) -> None:
    """Deploy as ``request`` says (endpoint, overrides, registry endpoint) and write the outputs."""
    asked = json.loads(request.read_text(encoding="utf-8"))
    stack = deploy(
        asked["endpoint"], config_overrides=asked["overrides"], registry_endpoint=asked["registry"]
    )
    answer.write_text(json.dumps(stack.outputs, default=str), encoding="utf-8")


if __name__ == "__main__":
    _deploy_requested(Path(sys.argv[1]), Path(sys.argv[2]))
