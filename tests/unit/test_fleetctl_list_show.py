"""fleetctl list and show on moto: through the sharded indexes (a scan for the whole registry), tables and
JSON."""

from __future__ import annotations

import pytest

from fleetctl.errors import ExitCode
from hook.contract import Attr, DeviceStatus, device_type_resource_name, thing_name
from tests.support import BASE, Fleet, rows

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")


def test_list_filters_through_the_sharded_indexes_and_scans_only_for_the_whole_registry(
    fleet: Fleet, aws_operations: list[str]
) -> None:
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001", "TS-000002"))))
    fleet.provision("TS-000003")
    fleet.provision("GW-ABCD", device_type="gateway")

    def listed(*args: str) -> tuple[list[str], set[str]]:
        aws_operations.clear()
        serials = [item[Attr.SERIAL_NUMBER] for item in fleet.run_json("list", *args)]
        return serials, set(aws_operations)

    everything, operations = listed()
    assert sorted(everything) == ["GW-ABCD", "TS-000001", "TS-000002", "TS-000003"]
    assert operations == {"Scan"}  # the whole registry: a parallel scan, bindings left out
    assert listed("--status", "PREREGISTERED") == (["TS-000001", "TS-000002"], {"Query"})
    assert listed("--type", "gateway") == (["GW-ABCD"], {"Query"})
    assert listed("--status", "ACTIVE", "--type", "temperature-sensor") == (["TS-000003"], {"Query"})
    assert listed("--status", "PENDING", "--type", "temperature-sensor") == ([], {"Query"})
    assert len(listed("--limit", "3")[0]) == 3
    assert len(listed("--type", "temperature-sensor", "--limit", "2")[0]) == 2


def test_list_rejects_an_unknown_status(fleet: Fleet) -> None:
    assert fleet.run("list", "--status", "LOST").exit_code == ExitCode.USAGE


def test_list_prints_a_table(fleet: Fleet) -> None:
    fleet.provision("TS-000001")

    result = fleet.run("list")

    assert result.exit_code == ExitCode.OK
    assert "1 device(s)" in result.stdout
    assert "TS-000001" in result.stdout


def test_show_gathers_registry_thing_certificate_policies_and_groups(fleet: Fleet) -> None:
    certificate_id = fleet.provision("TS-000001")

    device = fleet.run_json("show", "TS-000001")

    assert device["registry"][Attr.STATUS] == DeviceStatus.ACTIVE
    assert device["thing"]["name"] == thing_name(BASE, "TS-000001")
    assert device["thing"]["groups"] == [device_type_resource_name(BASE, "temperature-sensor")]
    [certificate] = device["certificates"]
    assert certificate["certificateId"] == certificate_id
    assert certificate["status"] == "ACTIVE"
    assert certificate["attachedToThing"] is True
    assert certificate["policies"] == [device_type_resource_name(BASE, "temperature-sensor")]


def test_show_prints_each_part_and_says_which_are_gone(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.run_json("decommission", "TS-000001")

    result = fleet.run("show", "TS-000001")

    assert result.exit_code == ExitCode.OK
    assert "Registry item of TS-000001" in result.stdout
    assert "DECOMMISSIONED" in result.stdout
    assert "Thing: none" in result.stdout
    assert "REVOKED" in result.stdout


def test_show_of_an_unknown_serial_is_not_found(fleet: Fleet) -> None:
    result = fleet.run("show", "TS-999999")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert "TS-999999" in result.stderr
