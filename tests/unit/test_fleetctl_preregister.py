"""fleetctl preregister on moto: normalised rows, bad manifests, re-runs, conflicts, and the hook's view of
what it imported."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto.core import models as moto_models

from fleetctl import output, progress, repeats
from fleetctl.context import StackContext
from fleetctl.errors import ExitCode, UsageProblem
from fleetctl.manifest import HEADER, checked_manifest
from hook.contract import Attr, DeviceStatus, public_key_binding_key
from hook.rules import parse_rules
from tests.support import (
    RULES,
    TABLE_NAME,
    Fleet,
    before_every_call,
    hook_event,
    rows,
    serials,
    write_rules,
)

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


# --- fleet scale: streaming, public keys, one request per row, re-runs, throttling, progress --------------


def _public_key(key: Any = None) -> tuple[str, str, str]:
    """A device's public key as a manifest may give it: PEM, base64 DER SubjectPublicKeyInfo, and the
    fingerprint (lowercase hex SHA-256 of that DER)."""
    public = (key or ec.generate_private_key(ec.SECP256R1())).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode(), base64.b64encode(der).decode(), hashlib.sha256(der).hexdigest()


def _keyed(serial: str, key: str, location: str = "Line-1") -> str:
    """A manifest row with a public_key cell (quoted: a PEM spans lines)."""
    return f'{serial},temperature-sensor,AcmeIoT,v1.4.2,{location},"{key}"'


KEYED_HEADER = f"{HEADER},public_key"


def _raw_item(fleet: Fleet, key: str) -> dict[str, Any] | None:
    item: dict[str, Any] = fleet.dynamodb.get_item(
        TableName=TABLE_NAME, Key={"serialNumber": {"S": key}}, ConsistentRead=True
    )
    return item.get("Item")


def test_a_public_key_in_any_form_is_stored_as_its_fingerprint_and_bound_to_the_serial(fleet: Fleet) -> None:
    keys = [_public_key() for _ in range(3)]
    manifest = fleet.manifest(
        _keyed("TS-000001", keys[0][0]),
        _keyed("TS-000002", keys[1][1]),
        _keyed("TS-000003", f"sha256:{keys[2][2].upper()}"),
        *(f"{row}," for row in rows("TS-000004")),
        header=KEYED_HEADER,
    )

    report = fleet.run_json("preregister", str(manifest))

    assert report == {"created": 4, "unchanged": 0, "conflicts": [], "skipped": []}
    for serial, (_, _, fingerprint) in zip(serials(3), keys, strict=True):
        assert fleet.item(serial)[Attr.PUBLIC_KEY_SHA256] == fingerprint
        binding = _raw_item(fleet, public_key_binding_key(fingerprint))
        assert binding is not None
        assert binding[Attr.DEVICE_SERIAL_NUMBER] == {"S": serial}
    assert Attr.PUBLIC_KEY_SHA256 not in fleet.item("TS-000004")


def test_the_header_names_public_key_as_optional(fleet: Fleet) -> None:
    result = fleet.run("preregister", str(fleet.manifest(*rows("TS-000001"), header=f"{HEADER},key")))

    assert result.exit_code == ExitCode.USAGE
    assert (
        f"the header must name the columns {HEADER} (in any order), and may add public_key" in result.stderr
    )
    assert "unknown column(s) key" in result.stderr


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (lambda: _public_key(rsa.generate_private_key(65537, 1024))[1], "RSA of 1024 bits"),  # noqa: S505 (refused)
        (lambda: _public_key(ec.generate_private_key(ec.SECP256K1()))[1], "EC on curve secp256k1"),
        (lambda: "not-a-key", "neither PEM, base64 nor a fingerprint"),
        (
            lambda: (
                ec.generate_private_key(ec.SECP256R1())
                .private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                .decode()
            ),
            "a private key must never leave the device",
        ),
    ],
)
def test_a_bad_public_key_is_reported_by_row_and_column_and_nothing_is_written(
    fleet: Fleet, key: Callable[[], str], message: str
) -> None:
    manifest = fleet.manifest(
        _keyed("TS-000001", _public_key()[1]), _keyed("TS-000002", key()), header=KEYED_HEADER
    )

    result = fleet.run("preregister", str(manifest))

    assert result.exit_code == ExitCode.USAGE
    assert f"{manifest} row 3, column public_key: " in result.stderr
    assert message in result.stderr
    assert fleet.item_count() == 0


def test_a_key_on_two_rows_is_reported_like_a_duplicate_serial(fleet: Fleet) -> None:
    pem, der, fingerprint = _public_key()
    manifest = fleet.manifest(
        _keyed("TS-000001", pem),
        _keyed("TS-000002", _public_key()[1]),
        _keyed("TS-000003", der),
        header=KEYED_HEADER,
    )

    result = fleet.run("preregister", str(manifest))

    assert result.exit_code == ExitCode.USAGE
    # The quoted PEM cell spans lines 2-6: rows are numbered by the line they start on.
    assert f"row 8, column public_key: public key sha256:{fingerprint} is also in row 2" in result.stderr
    assert fleet.item_count() == 0


def test_every_repeat_of_a_serial_names_its_first_row_and_the_rows_are_skipped_in_order(fleet: Fleet) -> None:
    manifest = fleet.manifest(
        *rows("TS-000001", "TS-000002"),
        "TS-000003,water-meter,AcmeIoT,1.4.2,Line-1",
        *rows("TS-000001", "TS-000004", "TS-000001"),
    )

    report = fleet.run_json("preregister", str(manifest), "--skip-invalid")

    assert report["created"] == 3
    assert [(each["row"], each["column"], each["detail"]) for each in report["skipped"]] == [
        (4, "device_type", report["skipped"][0]["detail"]),
        (5, "serial", "serial 'TS-000001' is also in row 2"),
        (7, "serial", "serial 'TS-000001' is also in row 2"),
    ]
    assert fleet.item("TS-000001")[Attr.CREATED_AT] == fleet.item("TS-000004")[Attr.CREATED_AT]


def test_a_row_repeating_a_serial_does_not_claim_its_key(fleet: Fleet) -> None:
    """The same row twice is one repeated serial, not also a repeated key."""
    _, der, _ = _public_key()
    manifest = fleet.manifest(_keyed("TS-000001", der), _keyed("TS-000001", der), header=KEYED_HEADER)

    report = fleet.run_json("preregister", str(manifest), "--skip-invalid")

    assert report["created"] == 1
    assert [(each["row"], each["column"]) for each in report["skipped"]] == [(3, "serial")]


def test_a_type_that_binds_keys_needs_a_key_in_every_row(fleet: Fleet) -> None:
    rules = json.loads(json.dumps(RULES))
    rules["deviceTypes"]["temperature-sensor"]["keyBinding"] = True
    rules_file = write_rules(fleet.tmp_path / "rules.json", rules)
    manifest = fleet.manifest(
        _keyed("TS-000001", _public_key()[1]), *(f"{row}," for row in rows("TS-000002")), header=KEYED_HEADER
    )

    result = fleet.run("--rules", str(rules_file), "preregister", str(manifest))

    assert result.exit_code == ExitCode.USAGE
    assert (
        f"{manifest} row 3, column public_key: device type 'temperature-sensor' binds each serial to its "
        "device's key; expected a PEM public key"
    ) in result.stderr
    assert fleet.item_count() == 0


def test_a_key_bound_to_another_serial_in_the_registry_is_a_conflict_naming_it(fleet: Fleet) -> None:
    _, der, _ = _public_key()
    fleet.run_json("preregister", str(fleet.manifest(_keyed("TS-000001", der), header=KEYED_HEADER)))

    report = fleet.run_json(
        "preregister",
        str(
            fleet.manifest(
                *(f"{row}," for row in rows("TS-000009")), _keyed("TS-000002", der), header=KEYED_HEADER
            )
        ),
    )

    assert report["created"] == 1
    assert report["conflicts"] == [
        {
            "row": 3,
            "serial": "TS-000002",
            "detail": "its public key is bound to serial 'TS-000001'; left as it is",
        }
    ]
    assert fleet.find_item("TS-000002") is None


def test_a_keyed_row_reimported_is_unchanged_and_with_another_key_a_conflict(fleet: Fleet) -> None:
    _, der, fingerprint = _public_key()
    fleet.run_json("preregister", str(fleet.manifest(_keyed("TS-000001", der), header=KEYED_HEADER)))

    again = fleet.run_json("preregister", str(fleet.manifest(_keyed("TS-000001", der), header=KEYED_HEADER)))
    _, other_der, other = _public_key()
    changed = fleet.run_json(
        "preregister", str(fleet.manifest(_keyed("TS-000001", other_der), header=KEYED_HEADER))
    )
    unkeyed = fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001"))))

    assert (again["created"], again["unchanged"], again["conflicts"]) == (0, 1, [])
    [conflict] = changed["conflicts"]
    assert conflict["detail"] == (
        f"pre-registered with other values: publicKeySha256 is {fingerprint}, the manifest gives {other}"
    )
    [conflict] = unkeyed["conflicts"]
    assert conflict["detail"].endswith(f"publicKeySha256 is {fingerprint}, the manifest gives none")
    assert fleet.item("TS-000001")[Attr.PUBLIC_KEY_SHA256] == fingerprint


def test_each_row_is_one_request_and_a_rerun_sends_each_once_more(
    fleet: Fleet, aws_operations: list[str]
) -> None:
    manifest = fleet.manifest(
        *(_keyed(serial, _public_key()[1]) for serial in serials(5)),
        *(f"{row}," for row in rows(*serials(15, start=6))),
        header=KEYED_HEADER,
    )

    first = fleet.run_json("preregister", str(manifest))
    requests_first = Counter(aws_operations)
    aws_operations.clear()
    second = fleet.run_json("preregister", str(manifest))

    assert (first["created"], second["unchanged"]) == (20, 20)
    assert requests_first == {"TransactWriteItems": 5, "PutItem": 15}
    assert Counter(aws_operations) == requests_first


def test_an_interrupted_import_is_finished_by_running_it_again(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = fleet.manifest(*rows(*serials(60)))
    written = 25
    calls = itertools.count()
    failing = True

    def fail_after_some(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name == "PutItem" and failing and next(calls) >= written:
            error = {"Error": {"Code": "AccessDeniedException", "Message": "injected"}}
            return AWSResponse("https://injected/PutItem", 400, HTTPHeaders(), None), error
        return None

    before_every_call(monkeypatch, fail_after_some)

    interrupted = fleet.run("preregister", str(manifest), "--json")
    failing = False
    report = fleet.run_json("preregister", str(manifest))

    assert interrupted.exit_code == ExitCode.AWS
    assert "AccessDeniedException" in interrupted.stderr
    assert (
        "run the same command again to finish (rows already stored are reported unchanged)"
        in interrupted.stderr
    )
    assert (report["created"], report["unchanged"], report["conflicts"]) == (60 - written, written, [])
    assert {serial for serial in serials(60) if fleet.find_item(serial)} == set(serials(60))


def _throttle_first_attempt(
    monkeypatch: pytest.MonkeyPatch, operation: str, code: str, **details: Any
) -> list[str]:
    """Answer the first attempt of fleetctl's next ``operation`` with DynamoDB's throttling error ``code``
    (HTTP 400) at ``before-send``, so the client's retry handling sees it as from AWS; returns the attempts
    of ``operation`` made.

    botocore calls every ``before-send`` handler and takes the first answer, so moto's own handler would
    still apply the throttled attempt: it is switched off for that attempt (DynamoDB applies nothing it
    throttles) and on again by a handler that runs after it."""
    attempts: list[str] = []

    def throttle(request: Any, **_: Any) -> Any:  # an AWSResponse answers the attempt
        attempts.append(operation)
        if len(attempts) > 1:
            return None
        moto_models.botocore_stubber.enabled = False
        body = json.dumps(
            {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected", **details}
        )
        return AWSResponse(request.url, 400, HTTPHeaders(), _Body(body.encode()))

    def resume_moto(**_: Any) -> None:
        moto_models.botocore_stubber.enabled = True

    session = boto3.Session()
    session.events.register(f"before-send.dynamodb.{operation}", throttle)  # runs before moto's handler
    session.events.register_last("before-send", resume_moto)  # runs after it
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return attempts


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Any:
        yield self._content


def test_the_import_writes_through_a_client_that_slows_down_when_throttled(fleet: Fleet) -> None:
    """botocore's adaptive retry mode: retries, and a client-side rate that drops on throttling."""
    records = StackContext.resolve(fleet.outputs).bulk_records

    config: Any = records._client.meta.config  # botocore's stubs do not declare `retries`
    assert config.retries["mode"] == "adaptive"


ITEM_THROTTLED = {
    "CancellationReasons": [{"Code": "ThrottlingError", "Message": "injected"}, {"Code": "None"}]
}
"""A transaction cancelled because one item lacked capacity: botocore does not retry it, fleetctl does."""


@pytest.mark.parametrize(
    ("operation", "code", "details", "keyed"),
    [
        ("PutItem", "ProvisionedThroughputExceededException", {}, False),
        ("TransactWriteItems", "ThrottlingException", {}, True),
        ("TransactWriteItems", "TransactionCanceledException", ITEM_THROTTLED, True),
    ],
)
def test_a_throttled_write_is_retried_and_the_row_stored(
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    code: str,
    details: dict[str, Any],
    keyed: bool,
) -> None:
    attempts = _throttle_first_attempt(monkeypatch, operation, code, **details)
    row = _keyed("TS-000001", _public_key()[1]) if keyed else rows("TS-000001")[0] + ","

    report = fleet.run_json("preregister", str(fleet.manifest(row, header=KEYED_HEADER)))

    assert (report["created"], report["conflicts"]) == (1, [])
    assert attempts == [operation, operation]
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.PREREGISTERED


def test_a_transaction_cancelled_for_another_reason_is_not_retried(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    invalid = {"CancellationReasons": [{"Code": "ValidationError", "Message": "injected"}, {"Code": "None"}]}
    attempts = _throttle_first_attempt(
        monkeypatch, "TransactWriteItems", "TransactionCanceledException", **invalid
    )

    result = fleet.run(
        "preregister", str(fleet.manifest(_keyed("TS-000001", _public_key()[1]), header=KEYED_HEADER))
    )

    assert result.exit_code == ExitCode.AWS
    assert "TransactionCanceledException" in result.stderr
    assert attempts == ["TransactWriteItems"]
    assert fleet.find_item("TS-000001") is None


def test_progress_lines_on_stderr_when_it_is_not_a_terminal(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick = fleet.run("preregister", str(fleet.manifest(*rows(*serials(3)))))
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_SECONDS", 0.0)

    result = fleet.run("preregister", str(fleet.manifest(*rows(*serials(3, start=4)))))

    assert quick.exit_code == result.exit_code == ExitCode.OK
    assert quick.stderr == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("checking the manifest: 1 rows, ")
    assert re.fullmatch(r"pre-registering: 1/3 rows \(33%\), [0-9,]+ rows/s, about \d+s left", lines[4])
    assert re.fullmatch(r"pre-registering: 3/3 rows \(100%\), [0-9,]+ rows/s, done in \d+s", lines[-1])


def test_a_long_report_shows_its_first_rows_and_json_lists_them_all(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.run_json("preregister", str(fleet.manifest(*rows(*serials(3), location="Line-1"))))
    monkeypatch.setattr(output, "TABLE_ROWS_SHOWN", 2)
    changed = fleet.manifest(*rows(*serials(3), location="Line-2"))

    table = fleet.run("preregister", str(changed))
    report = fleet.run_json("preregister", str(changed))

    assert "0 created, 0 unchanged, 3 conflicting, 0 skipped" in table.stdout
    assert "Conflicts (left as they are): the first 2 of 3 (--json lists them all)" in table.stdout
    assert "TS-000002" in table.stdout
    assert "TS-000003" not in table.stdout
    assert [conflict["serial"] for conflict in report["conflicts"]] == serials(3)


def test_repeats_are_found_across_sort_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repeats, "SORT_CHUNK", 3)
    finder = repeats.RepeatFinder()
    for value in ["a", "b", "c", "d", "e", "a", "f", "g", "e", "h", "a"]:
        finder.add(value)

    assert finder.repeated() == {repeats.digest("a"), repeats.digest("e")}


def test_a_manifest_changed_after_its_check_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join([HEADER, *rows("TS-000001", "TS-000002")]) + "\n", encoding="utf-8")

    with checked_manifest(path, parse_rules(RULES)) as checked:
        path.write_text(
            "\n".join([HEADER, *rows("TS-000001", "TS-000002", "TS-000003")]) + "\n", encoding="utf-8"
        )
        with pytest.raises(UsageProblem, match="changed while it was being imported"):
            list(checked.rows())
