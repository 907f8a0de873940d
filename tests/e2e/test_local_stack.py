"""The emulator and the local deployer themselves: loopback only, always stopped, faithful defaults."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from components.account import OWNER_MARKER
from local.deploy.mock_engine import LOCAL_STACK, EmulatorMocks
from local.deploy.resources import Emulated, UnsupportedResource
from local.deploy.resources.iot_core import provisioning_template
from local.emulator.launcher import Emulator, EmulatorAddress, listening
from local.scenario.sandbox import Sandbox
from program.settings import PROJECT

pytestmark = pytest.mark.e2e

_LISTEN = "0A"


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp) of the sockets listening on ``port``."""
    addresses = []
    for line in Path("/proc/net/tcp").read_text(encoding="utf-8").splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == _LISTEN and int(hex_port, 16) == port:
            addresses.append(address)
    return addresses


def test_the_emulator_listens_on_loopback_only(box: Sandbox) -> None:
    address = box.emulator.address
    for port in (address.gateway_port, address.mqtt_port):
        assert _listeners(port) == ["0100007F"]  # 127.0.0.1


def test_the_emulator_is_stopped_even_when_the_work_fails(tmp_path: Path) -> None:
    address = EmulatorAddress(gateway_port=4576, mqtt_port=8893)
    emulator = Emulator(address, log_path=tmp_path / "ministack.log")
    with pytest.raises(RuntimeError, match="work failed"), emulator:
        assert listening(address.gateway_port)
        raise RuntimeError("work failed")
    assert not listening(address.gateway_port)
    assert not listening(address.mqtt_port)


def test_an_unsupported_resource_type_fails_naming_it(box: Sandbox) -> None:
    mocks = EmulatorMocks(Emulated(box.emulator.address.endpoint_url, "us-east-1"))
    args = pulumi.runtime.MockResourceArgs(
        typ="aws:s3/bucketV2:BucketV2", name="uploads", inputs={}, custom=True
    )
    with pytest.raises(UnsupportedResource, match="aws:s3/bucketV2:BucketV2"):
        mocks.new_resource(args)
    assert mocks.failures == [
        "aws:s3/bucketV2:BucketV2 uploads: UnsupportedResource: "
        "aws:s3/bucketV2:BucketV2 (resource uploads) is not supported by the local deployer"
    ]


def test_a_provisioning_template_without_enabled_is_disabled_as_the_provider_default(box: Sandbox) -> None:
    iot = box.inspector.client("iot")
    deployed = iot.describe_provisioning_template(templateName=box.target.template_name)
    assert deployed["enabled"] is True  # the program sets it
    emulated = Emulated(box.emulator.address.endpoint_url, "us-east-1")
    _, outputs = provisioning_template(
        emulated,
        "default-template",
        {
            "name": "e2e-default-enabled",
            "templateBody": deployed["templateBody"],
            "provisioningRoleArn": deployed["provisioningRoleArn"],
            "type": "FLEET_PROVISIONING",
        },
    )
    assert outputs["enabled"] is False
    assert iot.describe_provisioning_template(templateName="e2e-default-enabled")["enabled"] is False


def test_the_retirement_mapping_reads_the_whole_stream_and_keeps_given_up_batches_in_its_queue(
    box: Sandbox,
) -> None:
    """The deployer passes the mapping's starting position and on-failure destination on, and creates the
    encrypted queue the destination names."""
    base = box.settings.base_name
    [mapping] = box.inspector.client("lambda").list_event_source_mappings(
        FunctionName=f"{base}-certificate-retirement"
    )["EventSourceMappings"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    sqs = box.inspector.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{base}-certificate-retirement-failures")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == attributes["QueueArn"]
    assert (attributes["SqsManagedSseEnabled"], attributes["MessageRetentionPeriod"]) == ("true", "1209600")


def test_the_local_stack_claims_the_account_settings_with_its_owner_marker(box: Sandbox) -> None:
    # The local stack owns the account settings (accountSettings defaults to true): the deployer creates the
    # marker every account setting waits for, naming the stack.
    marker = box.inspector.client("ssm").get_parameter(Name=OWNER_MARKER)["Parameter"]
    assert marker["Value"] == f"{PROJECT}/{LOCAL_STACK}"
