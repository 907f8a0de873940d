"""The sharded registry indexes on the emulator: what fleetctl lists through them and through the parallel
scan is what the table holds, and the stale-approvals function counts through the ``PENDING`` shards with
the one permission its role has (``dynamodb:Query`` on the status index), IAM enforced."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from hook.contract import Attr, DeviceStatus
from local.devices.fleet_runner import Outcome
from local.scenario.sandbox import Sandbox
from program.outputs import StackOutput
from tests.e2e.conftest import Fleetctl

pytestmark = pytest.mark.e2e


def _listed(fleetctl: Fleetctl, *args: str) -> list[str]:
    items: Any = fleetctl("list", *args)
    return sorted(item[Attr.SERIAL_NUMBER] for item in items)


def test_lists_through_the_sharded_indexes_and_the_scan_match_the_table(
    box: Sandbox, approved: list[Outcome], fleetctl: Fleetctl
) -> None:
    box.wait_for_status([outcome.device.identity.serial_number for outcome in approved], DeviceStatus.ACTIVE)
    devices = box.inspector.registry(box.registry_table)

    assert _listed(fleetctl) == sorted(devices)
    for status in {item[Attr.STATUS] for item in devices.values()}:
        in_status = sorted(serial for serial, item in devices.items() if item[Attr.STATUS] == status)
        assert _listed(fleetctl, "--status", status) == in_status, status
    for device_type in {item[Attr.DEVICE_TYPE] for item in devices.values() if Attr.DEVICE_TYPE in item}:
        of_type = sorted(
            serial for serial, item in devices.items() if item.get(Attr.DEVICE_TYPE) == device_type
        )
        assert _listed(fleetctl, "--type", device_type) == of_type, device_type
        active = sorted(serial for serial in of_type if devices[serial][Attr.STATUS] == DeviceStatus.ACTIVE)
        assert _listed(fleetctl, "--status", "ACTIVE", "--type", device_type) == active
    claims = Counter(
        item[Attr.CLAIM_CERTIFICATE_ID]
        for item in devices.values()
        if Attr.CLAIM_CERTIFICATE_ID in item and item[Attr.STATUS] != DeviceStatus.PREREGISTERED
    )
    rows: Any = fleetctl("claim", "status")
    [claim] = rows
    assert claim["devices"] == claims[claim["certificateId"]] > 0


def test_the_stale_approvals_function_counts_through_the_pending_shards(box: Sandbox) -> None:
    function_name = f"{box.outputs[StackOutput.HOOK_FUNCTION]}".replace(
        "provisioning-hook", "stale-approvals"
    )
    answer = box.inspector.client("lambda").invoke(FunctionName=function_name, Payload=b"{}")
    assert "FunctionError" not in answer, answer["Payload"].read()
    result = json.loads(answer["Payload"].read())
    assert result == {"stale": 0, "thingEventsEnabled": True}
