"""The shared scenario (``local/scenario/``) on the deployed AWS stack: the stack as a
:class:`~local.scenario.deployment.Deployment` reached at its ``iotEndpoint``, devices revoked with fleetctl,
and what they left swept before the stack is destroyed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import boto3

from fleetctl.context import StackContext
from fleetctl.device_removal import revoke
from local.acceptance.run_plan import Plan
from local.acceptance.stack_sweep import Sweep, sweep
from local.deploy.inspection import Inspector
from local.devices.fleet_runner import FleetTarget
from local.devices.mqtt_session import Broker
from local.devices.vendor import Vendor
from local.scenario import full_run
from local.scenario.deployment import AWS_PATIENCE, Deployment, stack_settings
from local.scenario.full_run import ScenarioResult
from program.outputs import StackOutput

MQTT_PORT: Final = 8883
MQTT_PORT_WITH_ALPN: Final = 443
"""AWS IoT takes MQTT over TLS on 443 from a client that offers ALPN ``x-amzn-mqtt-ca`` ("Device
communication protocols"); the device SDK's builder offers it on this port (``mqtt5_client_builder``)."""


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


class AwsScenario:
    """The shared scenario against the deployed stack on AWS, and the removal of what its devices left."""

    def __init__(self, plan: Plan, ca_pem: str, mqtt_port: int = MQTT_PORT) -> None:
        self._plan = plan
        self._ca_pem = ca_pem
        self._mqtt_port = mqtt_port
        self.certificates: set[str] = set()
        """Every certificate a device of the scenario was issued, recorded as AWS IoT issued it."""
        self.vendor = Vendor()
        """The simulated vendor whose root the stack's zero-touch types pin, written before the deployment
        (``local/deploy/vendor_roots.py``); the scenario's zero-touch devices are its elements."""

    def deployment(self, outputs: Mapping[str, Any]) -> Deployment:
        """The stack as the scenario sees it, reached at its ``iotEndpoint`` with Amazon Root CA 1."""
        endpoint = str(outputs[StackOutput.IOT_ENDPOINT])
        return Deployment(
            target=FleetTarget.from_outputs(
                Broker(endpoint, self._mqtt_port, self._ca_pem), dict(outputs), self.certificates.add
            ),
            inspector=AwsInspector(self._plan.region, endpoint),
            outputs=outputs,
            settings=stack_settings(self._plan.config(), self._plan.stack),
            patience=AWS_PATIENCE,
            vendor=self.vendor,
        )

    def run(self, outputs: Mapping[str, Any]) -> ScenarioResult:
        """Run the scenario; devices are revoked with fleetctl, as an operator would."""
        context = StackContext(outputs)
        return full_run.run(self.deployment(outputs), lambda serial, reason: revoke(context, serial, reason))

    def clean_up(self, outputs: Mapping[str, Any]) -> Sweep:
        """Sweep what the scenario's devices left (:func:`~local.acceptance.stack_sweep.sweep`)."""
        endpoint = str(outputs[StackOutput.IOT_ENDPOINT])
        inspector = AwsInspector(self._plan.region, endpoint)
        return sweep(StackContext(outputs), inspector.client("iot-data"), self.certificates)
