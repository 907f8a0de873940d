"""``fleetctl teardown`` on the emulator, after the sample fleet provisioned: afterwards nothing of the stack's
devices is attached to anything `pulumi destroy` deletes, and its thing types hold no thing.

It removes the whole fleet, so it runs after every other test of the session (``tears_down_the_stack``,
see ``conftest.py``). The emulator applies detachments at once where AWS may take seconds: the command
looks for what remains itself, and this test checks the same things through the emulator's API.
"""

from __future__ import annotations

from typing import Any

import pytest

from fleetctl.iot_reads import jobs_in_progress
from hook.contract import Attr, DeviceStatus, claim_policy_name, device_type_resource_name
from hook.rotation_contract import rotation_job_id_prefix
from local.devices.fleet_runner import Outcome
from local.scenario.sandbox import Sandbox
from program.outputs import StackOutput
from program.settings import Settings
from tests.e2e.conftest import Fleetctl

pytestmark = [pytest.mark.e2e, pytest.mark.tears_down_the_stack]


def _paged(iot: Any, operation: str, key: str, **arguments: Any) -> list[Any]:
    return list(iot.get_paginator(operation).paginate(**arguments).search(f"{key}[]"))


def test_after_teardown_nothing_of_the_stacks_devices_remains_attached(
    box: Sandbox, settings: Settings, approved: list[Outcome], fleetctl: Fleetctl
) -> None:
    iot = box.inspector.client("iot")
    base = settings.base_name
    names = [device_type_resource_name(base, device_type.name) for device_type in settings.device_types]
    devices = [outcome.provisioned for outcome in approved if outcome.provisioned is not None]
    lost, kept, rotating = devices[0], devices[1], devices[2]
    # An operator deleted one device's registry item; another was decommissioned keeping its thing; a third
    # was asked to rotate and never answered; a certificate got a device policy outside the registry.
    box.inspector.client("dynamodb").delete_item(
        TableName=box.registry_table, Key={Attr.SERIAL_NUMBER: {"S": lost.identity.serial_number}}
    )
    fleetctl("decommission", kept.identity.serial_number, "--keep-thing")
    [job] = fleetctl("rotate", "start", rotating.identity.serial_number, "--yes")["jobs"]
    stray = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName=names[0], target=stray["certificateArn"])
    assert any(_paged(iot, "list_targets_for_policy", "targets", policyName=name) for name in names)
    # Earlier tests of the session may have left rotation jobs of the stack open too: all are cancelled.
    open_jobs = set(jobs_in_progress(iot, rotation_job_id_prefix(base)))
    assert job["jobId"] in open_jobs

    report = fleetctl("teardown", "--yes")

    assert set(report["rotationJobsCancelled"]) == open_jobs
    assert list(jobs_in_progress(iot, rotation_job_id_prefix(base))) == []
    assert report["deviceCounts"]["error"] is None
    assert {row["serial"] for row in report["leftoverThings"]} >= {
        lost.identity.serial_number,
        kept.identity.serial_number,
    }
    assert report["remaining"] == {"policyTargets": {}, "things": {}, "groups": []}
    # What the destroy would trip on, read back through the emulator's API:
    for name in names:
        assert _paged(iot, "list_targets_for_policy", "targets", policyName=name) == [], name
        assert _paged(iot, "list_things", "things", thingTypeName=name) == [], name
    things = [thing["thingName"] for thing in _paged(iot, "list_things", "things")]
    assert [thing for thing in things if thing.startswith(f"{base}_")] == []
    for device in devices:
        certificate = box.inspector.certificate(device.certificate_id)
        assert certificate is not None
        assert (certificate.status, certificate.policies, certificate.things) == ("REVOKED", [], [])
    stray_now = box.inspector.certificate(stray["certificateId"])
    assert stray_now is not None
    assert (stray_now.status, stray_now.policies) == ("REVOKED", [])
    registry = box.inspector.registry(box.registry_table)
    assert {registry[device.identity.serial_number][Attr.STATUS] for device in devices} == {
        DeviceStatus.DECOMMISSIONED
    }
    assert iot.describe_job(jobId=job["jobId"])["job"]["status"] == "CANCELED"
    # The claim certificate and its policy are the stack's own: `pulumi destroy` deletes them.
    claim = box.inspector.certificate(str(box.outputs[StackOutput.CLAIM_CERTIFICATE_ID]))
    assert claim is not None
    assert (claim.status, claim.policies) == ("ACTIVE", [claim_policy_name(base)])

    again = fleetctl("teardown", "--yes")
    assert (again["deviceCounts"]["changed"], again["leftoverThings"], again["policyTargets"]) == (0, [], [])
    assert again["rotationJobsCancelled"] == []
