"""Apply the local stack to the emulator through Pulumi's mock engine.

The Pulumi CLI is not needed: :class:`EmulatorMocks` answers the engine's resource registrations and
provider calls by creating each resource in the emulator with boto3, so the same ``build_stack`` that
``pulumi up`` runs declares everything, with the ``Pulumi.local.yaml`` config, and gets real ids and ARNs
back. There is no state, no update and no delete: deploy into a fresh (or reset) emulator.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi

from local.deploy.resources import CREATORS, Emulated, UnsupportedResource
from local.deploy.vendor_roots import write_vendor_roots
from local.devices.vendor import Vendor
from program.config import load_settings, read_stack_file
from program.settings import PROJECT
from program.stack import build_stack

LOCAL_STACK: Final = "local"
logger = logging.getLogger("local.deploy")


class DeployError(RuntimeError):
    """One or more resources could not be created; the message names each, with the reason."""


class EmulatorMocks(pulumi.runtime.Mocks):
    """Pulumi mocks that create every declared resource in the emulator and answer provider calls from it."""

    def __init__(self, emulated: Emulated) -> None:
        self.emulated = emulated
        self.created: list[tuple[str, str, str]] = []
        """(type, name, id) of every resource created, in creation order."""
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if not args.custom:  # a component: nothing to create
            return args.name, {}
        try:
            creator = CREATORS.get(args.typ)
            if creator is None:
                raise UnsupportedResource(
                    f"{args.typ} (resource {args.name}) is not supported by the local deployer"
                )
            resource_id, outputs = creator(self.emulated, args.name, dict(args.inputs))
        except Exception as error:
            with self._lock:
                self.failures.append(f"{args.typ} {args.name}: {type(error).__name__}: {error}")
            raise
        logger.debug("created %s %s (%s)", args.typ, args.name, resource_id)
        with self._lock:
            self.created.append((args.typ, args.name, resource_id))
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        answers = {
            "aws:index/getCallerIdentity:getCallerIdentity": self._caller_identity,
            "aws:index/getPartition:getPartition": self._partition,
            "aws:iot/getEndpoint:getEndpoint": self._iot_endpoint,
        }
        answer = answers.get(args.token)
        if answer is None:
            message = f"{args.token} is not answered by the local deployer"
            with self._lock:
                self.failures.append(message)
            raise UnsupportedResource(message)
        return answer(args.args)

    def _caller_identity(self, _: dict[str, Any]) -> dict[str, Any]:
        identity = self.emulated.client("sts").get_caller_identity()
        return {"accountId": identity["Account"], "arn": identity["Arn"], "userId": identity["UserId"]}

    def _partition(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws"}

    def _iot_endpoint(self, arguments: dict[str, Any]) -> dict[str, Any]:
        emulated = self.emulated
        endpoint_type = arguments.get("endpointType", "iot:Data-ATS")
        address = emulated.client("iot").describe_endpoint(endpointType=endpoint_type)["endpointAddress"]
        # The address the emulator reports does not resolve, and its gateway speaks plain HTTP.
        emulated.function_environment_overrides[f"https://{address}"] = emulated.endpoint_url
        emulated.note(
            f"functions reach the IoT data endpoint https://{address} at {emulated.endpoint_url} instead"
        )
        return {"endpointAddress": address, "endpointType": endpoint_type}


@dataclass
class LocalStack:
    """What a local deployment produced."""

    outputs: dict[str, Any]
    created: list[tuple[str, str, str]]
    """(type, name, id) of every resource created."""
    notes: list[str] = field(default_factory=list)
    """Where the emulator differs from AWS."""
    vendor: Vendor = field(default_factory=Vendor)
    """The simulated chip vendor whose root the stack's zero-touch types pin."""


def local_config(stack: str = LOCAL_STACK) -> dict[str, str]:
    """The config of ``Pulumi.<stack>.yaml`` as Pulumi stores it: full keys, structured values as JSON."""
    return read_stack_file(stack)


def deploy(
    endpoint_url: str,
    stack: str = LOCAL_STACK,
    vendor: Vendor | None = None,
    *,
    config_overrides: Mapping[str, str] | None = None,
    registry_endpoint: str | None = None,
) -> LocalStack:
    """Run the program with the stack's config (``config_overrides`` over it: a global fleet's region);
    create every resource in the emulator at ``endpoint_url``. The root files the config names are first
    written with ``vendor``'s root (a new vendor's by default). ``registry_endpoint``: where the functions
    reach a registry held by another emulator instance."""
    config = {**local_config(stack), **(config_overrides or {})}
    vendor = vendor or Vendor()
    write_vendor_roots(config, vendor)
    emulated = Emulated(
        endpoint_url=endpoint_url, region=config["aws:region"], registry_endpoint=registry_endpoint
    )
    mocks = EmulatorMocks(emulated)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(config)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> pulumi.Output[Any]:
        return pulumi.Output.all(**build_stack(load_settings())).apply(outputs.update)

    try:
        run()
    except Exception as error:
        if not mocks.failures:
            raise
        raise DeployError(
            "the local stack could not be deployed:\n  " + "\n  ".join(mocks.failures)
        ) from error
    if mocks.failures:
        raise DeployError("the local stack could not be deployed:\n  " + "\n  ".join(mocks.failures))
    return LocalStack(outputs=outputs, created=list(mocks.created), notes=list(emulated.notes), vendor=vendor)
