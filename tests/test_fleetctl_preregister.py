"""fleetctl preregister on moto: normalised rows, bad manifests, re-runs, conflicts, and the hook's view of
what it imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fleetctl.errors import ExitCode
from fleetctl.manifest import HEADER
from hook.contract import Attr, DeviceStatus
from tests.support import RULES, Fleet, hook_event, rows, serials

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")


def test_preregister_stores_normalised_rows_as_preregistered(fleet: Fleet) -> None:
    manifest = fleet.manifest(" TS-000001 ,temperature-sensor,AcmeIoT,v1.4.2,Line-1", *rows("TS-000002"))

    report = fleet.run_json("preregister", str(manifest))

    assert report == {"created": 2, "unchanged": 0, "conflicts": [], "skipped": []}
    item = fleet.item("TS-000001")
    assert item[Attr.STATUS] == DeviceStatus.PREREGISTERED
    assert item[Attr.FIRMWARE_VERSION] == "1.4.2"
    assert item[Attr.LOCATION] == "Line-1"
    assert item[Attr.CREATED_AT] == item[Attr.UPDATED_AT]


def test_reimporting_the_same_manifest_changes_nothing(fleet: Fleet) -> None:
    manifest = fleet.manifest(*rows(*serials(5)))
    fleet.run_json("preregister", str(manifest))
    before = {serial: fleet.item(serial) for serial in serials(5)}

    report = fleet.run_json("preregister", str(manifest))

    assert report == {"created": 0, "unchanged": 5, "conflicts": [], "skipped": []}
    assert {serial: fleet.item(serial) for serial in serials(5)} == before


def test_a_row_for_an_active_serial_is_reported_not_overwritten(fleet: Fleet) -> None:
    fleet.provision("TS-000002")
    before = fleet.item("TS-000002")

    report = fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001", "TS-000002"))))

    assert report["created"] == 1
    assert report["conflicts"] == [
        {"row": 3, "serial": "TS-000002", "detail": "already ACTIVE; left as it is"}
    ]
    assert fleet.item("TS-000002") == before


def test_a_row_that_differs_from_its_preregistration_is_reported_not_overwritten(fleet: Fleet) -> None:
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001", location="Line-1"))))

    report = fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001", location="Line-2"))))

    detail = "pre-registered with other values: location is 'Line-1', the manifest says 'Line-2'"
    assert report["conflicts"] == [{"row": 2, "serial": "TS-000001", "detail": detail}]
    assert fleet.item("TS-000001")[Attr.LOCATION] == "Line-1"


def test_preregister_prints_a_summary_line(fleet: Fleet) -> None:
    fleet.provision("TS-000002")
    manifest = fleet.manifest(*rows("TS-000001", "TS-000002"), "TS-000003,fridge,AcmeIoT,1.4.2,Line-1")

    result = fleet.run("preregister", str(manifest), "--skip-invalid")

    assert result.exit_code == ExitCode.OK, result.output
    assert f"{manifest}: 1 created, 0 unchanged, 1 conflicting, 1 skipped\n" in result.stdout


@pytest.mark.parametrize(
    ("header", "problems"),
    [
        (
            "serial,type,manufacturer,firmware,location",
            ["unknown column(s) type", "missing column(s) device_type"],
        ),
        ("serial,device_type,manufacturer,firmware", ["missing column(s) location"]),
        ("serial,device_type,manufacturer,firmware,location,serial", ["repeated serial"]),
    ],
)
def test_a_wrong_header_names_the_columns_and_writes_nothing(
    fleet: Fleet, header: str, problems: list[str]
) -> None:
    result = fleet.run("preregister", str(fleet.manifest(*rows("TS-000001"), header=header)))

    assert result.exit_code == ExitCode.USAGE
    assert HEADER in result.stderr
    for problem in problems:
        assert problem in result.stderr
    assert fleet.item_count() == 0


def test_a_manifest_in_another_column_order_is_accepted(fleet: Fleet) -> None:
    manifest = fleet.manifest(
        "Line-1,v1.4.2,AcmeIoT,temperature-sensor,TS-000001",
        header="location,firmware,manufacturer,device_type,serial",
    )

    assert fleet.run_json("preregister", str(manifest))["created"] == 1
    item = fleet.item("TS-000001")
    assert item[Attr.LOCATION] == "Line-1"


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty: expected the header"), (f"{HEADER}\n\n", "has a header but no device rows")],
)
def test_an_empty_manifest_is_a_usage_error(fleet: Fleet, content: str, message: str) -> None:
    manifest = fleet.tmp_path / "empty.csv"
    manifest.write_text(content, encoding="utf-8")

    result = fleet.run("preregister", str(manifest))

    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr


@pytest.mark.parametrize(
    ("row", "where", "message"),
    [
        (
            "TS-000002,water-meter,AcmeIoT,1.4.2,Line-1",
            "row 3, column device_type",
            "DeviceType 'water-meter' is not a configured device type; expected one of gateway, humidity-sensor, temperature-sensor",
        ),
        (
            "TS-2,temperature-sensor,AcmeIoT,1.4.2,Line-1",
            "row 3, column serial",
            "does not match the pattern of device type 'temperature-sensor' (got 'TS-2'); expected a serial matching TS-[0-9]{6}",
        ),
        (
            "TS-000002,temperature-sensor,Other,1.4.2,Line-1",
            "row 3, column manufacturer",
            "expected one of AcmeIoT, SensorWorks",
        ),
        ("TS-000002,temperature-sensor,AcmeIoT,1.4,Line-1", "row 3, column firmware", "(got '1.4')"),
        (
            "TS-000002,temperature-sensor,AcmeIoT,1.1.0,Line-1",
            "row 3, column firmware",
            "older than the minimum 1.2.0",
        ),
        ("TS-000002,temperature-sensor,AcmeIoT,1.4.2,Line 1", "row 3, column location", "may only contain"),
        ("TS-000002,temperature-sensor,AcmeIoT,1.4.2,", "row 3, column location", "Location is empty"),
        ("TS-000002,temperature-sensor,AcmeIoT", "row 3", "has 3 cells, expected 5"),
    ],
)
def test_a_bad_row_is_reported_by_row_and_column_and_nothing_is_written(
    fleet: Fleet, row: str, where: str, message: str
) -> None:
    manifest = fleet.manifest(*rows("TS-000001"), row)

    result = fleet.run("preregister", str(manifest))

    assert result.exit_code == ExitCode.USAGE
    assert f"{manifest} {where}: " in result.stderr
    assert message in result.stderr
    assert fleet.item_count() == 0


def test_duplicate_serials_inside_one_manifest_are_reported(fleet: Fleet) -> None:
    result = fleet.run("preregister", str(fleet.manifest(*rows("TS-000001", "TS-000002", "TS-000001"))))

    assert result.exit_code == ExitCode.USAGE
    assert "row 4, column serial: serial 'TS-000001' is also in row 2" in result.stderr
    assert fleet.item_count() == 0


def test_skip_invalid_imports_the_valid_rows_and_reports_the_others(fleet: Fleet) -> None:
    manifest = fleet.manifest(
        *rows("TS-000001"), "TS-000002,water-meter,AcmeIoT,1.4.2,Line-1", *rows("TS-000003")
    )

    report = fleet.run_json("preregister", str(manifest), "--skip-invalid")

    assert report["created"] == 2
    [skipped] = report["skipped"]
    assert (skipped["row"], skipped["column"]) == (3, "device_type")
    assert fleet.find_item("TS-000002") is None
    assert fleet.find_item("TS-000003") is not None


def test_ten_thousand_rows_import(fleet: Fleet) -> None:
    manifest = fleet.manifest(*rows(*serials(10_000)))

    report = fleet.run_json("preregister", str(manifest))

    assert (report["created"], report["unchanged"], report["conflicts"]) == (10_000, 0, [])
    assert fleet.item_count() == 10_000
    assert len(fleet.run_json("list", "--status", "PREREGISTERED")) == 10_000  # more than one 1 MB page


def test_the_hook_approves_a_serial_preregistered_by_fleetctl(
    fleet: Fleet, invoke: Callable[[Any], dict[str, Any]], configure_hook: Callable[[dict[str, Any]], None]
) -> None:
    configure_hook(RULES | {"requirePreregistration": True})
    fleet.run_json(
        "preregister", str(fleet.manifest("TS-000123,temperature-sensor,AcmeIoT,1.4.2,Factory-Floor-A"))
    )

    assert invoke(hook_event())["allowProvisioning"] is True
    assert fleet.item("TS-000123")[Attr.STATUS] == DeviceStatus.PENDING
