"""fleetctl, the operator CLI, on moto: every command, bad manifests, re-runs, JSON output and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner, Result

from fleetctl import lifecycle
from fleetctl.cli import app
from fleetctl.devices import find_device
from fleetctl.errors import ExitCode
from fleetctl.manifest import HEADER
from hook.contract import Attr, DeviceStatus, device_type_resource_name, thing_name
from hook.registry import DeviceRegistry, Provenance, timestamp
from hook.rules import parse_rules, validate_request
from tests.support import RULES, TABLE_NAME, TEMPLATE_ARN, hook_event, valid_parameters
from tests.test_handler import decision_logs, output_lines

REGION = "us-east-1"
BASE = "fleet-test"
CLAIM_POLICY = f"{BASE}-claim"


@dataclass
class Fleet:
    """A deployed stack on moto: the registry, the claim certificate and policy, and its outputs file."""

    dynamodb: Any
    iot: Any
    claim_certificate_id: str
    outputs: Path
    tmp_path: Path

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, ["--outputs", str(self.outputs), *args], input=input)

    def run_json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == ExitCode.OK, result.output
        return json.loads(result.stdout)

    def find_item(self, serial: str) -> dict[str, str] | None:
        return DeviceRegistry(self.dynamodb, TABLE_NAME).get(serial)

    def item(self, serial: str) -> dict[str, str]:
        item = self.find_item(serial)
        assert item is not None, f"no registry item for {serial}"
        return item

    def item_count(self) -> int:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAME, Select="COUNT")
        return sum(page["Count"] for page in pages)

    def manifest(self, *lines: str, header: str = HEADER) -> Path:
        path = self.tmp_path / "manifest.csv"
        path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        return path

    def provision(
        self, serial: str, device_type: str = "temperature-sensor", claim: str | None = None
    ) -> str:
        """What the hook, the template and the activation function do for a device; returns its certificate id."""
        parameters = valid_parameters(SerialNumber=serial, DeviceType=device_type, FirmwareVersion="2.1.0")
        request = validate_request(parameters, parse_rules(RULES))
        certificate = self.iot.create_keys_and_certificate(setAsActive=True)
        registry = DeviceRegistry(self.dynamodb, TABLE_NAME)
        provenance = Provenance(
            certificate["certificateId"], claim or self.claim_certificate_id, TEMPLATE_ARN, serial
        )
        registry.approve(request, provenance, require_preregistration=False)
        name = thing_name(BASE, serial)
        self.iot.create_thing(thingName=name, attributePayload={"attributes": {"DeviceType": device_type}})
        self.iot.attach_thing_principal(thingName=name, principal=certificate["certificateArn"])
        policy = device_type_resource_name(BASE, device_type)
        if policy not in {each["policyName"] for each in self.iot.list_policies()["policies"]}:
            self.iot.create_policy(policyName=policy, policyDocument="{}")
            self.iot.create_thing_group(thingGroupName=policy)
        self.iot.attach_policy(policyName=policy, target=certificate["certificateArn"])
        self.iot.add_thing_to_thing_group(thingGroupName=policy, thingName=name)
        assert registry.activate(serial, name) is None
        return str(certificate["certificateId"])

    def certificate(self, certificate_id: str) -> dict[str, Any]:
        return dict(self.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"])

    def policies(self, certificate_id: str) -> list[str]:
        arn = self.certificate(certificate_id)["certificateArn"]
        return [each["policyName"] for each in self.iot.list_attached_policies(target=arn)["policies"]]

    def thing_principals(self, serial: str) -> list[str]:
        return list(self.iot.list_thing_principals(thingName=thing_name(BASE, serial))["principals"])


@pytest.fixture(autouse=True)
def no_outputs_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETCTL_OUTPUTS", raising=False)


@pytest.fixture
def fleet(dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """The stack on moto, in the registry table of the ``dynamodb`` fixture (which the hook fixtures use)."""
    iot = boto3.client("iot", region_name=REGION)
    claim = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_policy(policyName=CLAIM_POLICY, policyDocument="{}")
    iot.attach_policy(policyName=CLAIM_POLICY, target=claim["certificateArn"])
    outputs = tmp_path / "outputs.json"
    stack_outputs = {
        "deviceRegistryTableName": TABLE_NAME,
        "provisioningTemplateName": f"{BASE}-fleet",
        "provisioningTemplateArn": TEMPLATE_ARN,
        "claimCertificateId": claim["certificateId"],
        "region": REGION,
        "hookRules": RULES,
    }
    outputs.write_text(json.dumps(stack_outputs), encoding="utf-8")
    return Fleet(dynamodb, iot, claim["certificateId"], outputs, tmp_path)


def before_every_call(monkeypatch: pytest.MonkeyPatch, handler: Callable[..., None]) -> None:
    """Run ``handler(model=<operation model>, ...)`` before each AWS request of the clients created from
    now on: fleetctl makes its clients from boto3's default session, the test's own clients are older."""
    session = boto3.Session()
    session.events.register("before-call", handler)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)


@pytest.fixture
def aws_operations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the AWS operations fleetctl calls."""
    operations: list[str] = []
    before_every_call(monkeypatch, lambda model, **_: operations.append(model.name))
    return operations


def fail_once(monkeypatch: pytest.MonkeyPatch, operation: str, code: str = "ServiceUnavailable") -> None:
    """Make fleetctl's next call of ``operation`` fail as AWS would."""
    failures = [ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)]

    def handler(model: Any, **_: Any) -> None:
        if model.name == operation and failures:
            raise failures.pop()

    before_every_call(monkeypatch, handler)


def serials(count: int, start: int = 1) -> list[str]:
    return [f"TS-{number:06d}" for number in range(start, start + count)]


def rows(*serial_numbers: str, location: str = "Line-1") -> list[str]:
    return [f"{serial},temperature-sensor,AcmeIoT,v1.4.2,{location}" for serial in serial_numbers]


# --- stack context and exit codes ----------------------------------------------------------------------


def test_without_outputs_or_flags_is_a_usage_error_naming_both() -> None:
    result = CliRunner().invoke(app, ["list"])

    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == ""
    assert "--outputs FILE" in result.stderr
    assert "--table NAME" in result.stderr


def test_flags_name_the_stack_without_an_outputs_file(fleet: Fleet) -> None:
    fleet.provision("TS-000001")

    result = CliRunner().invoke(app, ["--table", TABLE_NAME, "--region", REGION, "list", "--json"])

    assert result.exit_code == ExitCode.OK, result.output
    assert [item[Attr.SERIAL_NUMBER] for item in json.loads(result.stdout)] == ["TS-000001"]


def test_outputs_that_are_not_json_are_a_usage_error(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text("Current stack outputs (2):", encoding="utf-8")

    result = CliRunner().invoke(app, ["--outputs", str(outputs), "list"])

    assert result.exit_code == ExitCode.USAGE
    assert "not JSON" in result.stderr


def test_an_aws_error_is_one_line_on_stderr_with_its_own_exit_code(fleet: Fleet) -> None:
    result = CliRunner().invoke(app, ["--outputs", str(fleet.outputs), "--table", "no-such-table", "list"])

    assert result.exit_code == ExitCode.AWS
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("fleetctl: AWS error:")
    assert "ResourceNotFoundException" in line


# --- preregister ---------------------------------------------------------------------------------------


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


# --- list ----------------------------------------------------------------------------------------------


def test_list_filters_through_the_indexes_and_never_scans(fleet: Fleet, aws_operations: list[str]) -> None:
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001", "TS-000002"))))
    fleet.provision("TS-000003")
    fleet.provision("GW-ABCD", device_type="gateway")
    aws_operations.clear()

    def listed(*args: str) -> list[str]:
        return [item[Attr.SERIAL_NUMBER] for item in fleet.run_json("list", *args)]

    assert sorted(listed()) == ["GW-ABCD", "TS-000001", "TS-000002", "TS-000003"]
    assert sorted(listed("--status", "PREREGISTERED")) == ["TS-000001", "TS-000002"]
    assert listed("--type", "gateway") == ["GW-ABCD"]
    assert listed("--status", "ACTIVE", "--type", "temperature-sensor") == ["TS-000003"]
    assert len(listed("--limit", "3")) == 3
    assert set(aws_operations) == {"Query"}


def test_list_rejects_an_unknown_status(fleet: Fleet) -> None:
    assert fleet.run("list", "--status", "LOST").exit_code == ExitCode.USAGE


def test_list_prints_a_table(fleet: Fleet) -> None:
    fleet.provision("TS-000001")

    result = fleet.run("list")

    assert result.exit_code == ExitCode.OK
    assert "1 device(s)" in result.stdout
    assert "TS-000001" in result.stdout


# --- show ----------------------------------------------------------------------------------------------


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


# --- revoke and decommission ---------------------------------------------------------------------------


def test_revoke_revokes_the_certificate_detaches_everything_and_records_why(fleet: Fleet) -> None:
    certificate_id = fleet.provision("TS-000001")

    report = fleet.run_json("revoke", "TS-000001", "--reason", "key leaked")

    assert [step["action"] for step in report["steps"]] == [
        "registry-revoked",
        "revoke-certificate",
        "detach-policy",
        "detach-thing-principal",
    ]
    assert fleet.certificate(certificate_id)["status"] == "REVOKED"
    assert fleet.policies(certificate_id) == []
    assert fleet.thing_principals("TS-000001") == []
    item = fleet.item("TS-000001")
    assert (item[Attr.STATUS], item[Attr.REVOCATION_REASON]) == (DeviceStatus.REVOKED, "key leaked")
    assert item[Attr.REVOKED_AT] >= item[Attr.ACTIVATED_AT]


def test_revoke_after_a_partial_failure_finishes_and_then_changes_nothing(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate_id = fleet.provision("TS-000001")
    fail_once(monkeypatch, "DetachThingPrincipal")

    failed = fleet.run("revoke", "TS-000001", "--reason", "stolen")

    assert failed.exit_code == ExitCode.AWS
    assert "DetachThingPrincipal" in failed.stderr
    assert fleet.certificate(certificate_id)["status"] == "REVOKED"
    assert fleet.thing_principals("TS-000001") != []
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.REVOKED  # the hook denies it already

    finished = fleet.run_json("revoke", "TS-000001", "--reason", "stolen")
    assert [step["action"] for step in finished["steps"]] == ["detach-thing-principal"]
    assert fleet.thing_principals("TS-000001") == []

    assert fleet.run_json("revoke", "TS-000001", "--reason", "again")["steps"] == []
    assert fleet.item("TS-000001")[Attr.REVOCATION_REASON] == "stolen"


def test_a_device_approved_while_it_is_being_revoked_loses_its_certificate_too(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The factory is still provisioning a recalled batch: the hook approves the serial after fleetctl
    # has looked the device up, before it writes REVOKED. That certificate must not stay usable.
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001"))))
    approved: list[str] = []
    look_up = find_device

    def look_up_then_approve(stack: Any, serial: str) -> Any:
        device = look_up(stack, serial)
        approved.append(fleet.provision(serial))
        return device

    monkeypatch.setattr(lifecycle, "find_device", look_up_then_approve)
    report = fleet.run_json("revoke", "TS-000001", "--reason", "batch recalled")

    assert fleet.certificate(approved[0])["status"] == "REVOKED"
    assert {"action": "revoke-certificate", "target": approved[0]} in report["steps"]
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.REVOKED


def test_decommission_records_when(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.run_json("decommission", "TS-000001")
    item = fleet.item("TS-000001")
    assert item[Attr.STATUS] == DeviceStatus.DECOMMISSIONED
    assert item[Attr.DECOMMISSIONED_AT] >= item[Attr.REVOKED_AT]


def test_decommission_waits_for_aws_to_finish_detaching_the_certificate(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.provision("TS-000001")
    fail_once(monkeypatch, "DeleteThing", code="InvalidRequestException")
    monkeypatch.setattr(lifecycle, "DELETE_THING_BACKOFF_SECONDS", 0)

    report = fleet.run_json("decommission", "TS-000001")

    assert {"action": "delete-thing", "target": thing_name(BASE, "TS-000001")} in report["steps"]
    assert thing_name(BASE, "TS-000001") not in {
        thing["thingName"] for thing in fleet.iot.list_things()["things"]
    }


@pytest.mark.parametrize("command", [["show"], ["revoke", "--reason", "x"], ["decommission"]])
@pytest.mark.parametrize("serial", ["", "TS 1", "S" * 65])
def test_a_malformed_serial_is_a_usage_error_naming_it(fleet: Fleet, command: list[str], serial: str) -> None:
    result = fleet.run(command[0], serial, *command[1:])
    assert result.exit_code == ExitCode.USAGE
    message = " ".join(result.stderr.replace("│", " ").split())  # Rich wraps the error in a box
    assert "is not a serial number: expected 1-64 characters" in message


def test_revoke_of_a_preregistered_serial_marks_it_revoked(fleet: Fleet) -> None:
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001"))))

    report = fleet.run_json("revoke", "TS-000001", "--reason", "batch recalled")

    assert report["steps"] == [{"action": "registry-revoked", "target": "TS-000001"}]
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.REVOKED


def test_revoke_of_an_unknown_serial_is_not_found(fleet: Fleet) -> None:
    result = fleet.run("revoke", "TS-999999", "--reason", "lost")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert fleet.item_count() == 0


def test_decommission_deletes_the_thing_and_a_second_run_changes_nothing(fleet: Fleet) -> None:
    certificate_id = fleet.provision("TS-000001")

    report = fleet.run_json("decommission", "TS-000001")

    assert [step["action"] for step in report["steps"]][-2:] == ["delete-thing", "registry-decommissioned"]
    assert fleet.certificate(certificate_id)["status"] == "REVOKED"
    assert fleet.iot.list_things()["things"] == []
    item = fleet.item("TS-000001")
    assert (item[Attr.STATUS], item[Attr.REVOCATION_REASON]) == (
        DeviceStatus.DECOMMISSIONED,
        "decommissioned",
    )
    again = fleet.run("decommission", "TS-000001")
    assert again.exit_code == ExitCode.OK
    assert "nothing to do" in again.stdout


def test_decommission_keep_thing_keeps_the_detached_thing(fleet: Fleet) -> None:
    fleet.provision("TS-000001")

    report = fleet.run_json("decommission", "TS-000001", "--keep-thing", "--reason", "end of life")

    assert "delete-thing" not in [step["action"] for step in report["steps"]]
    assert fleet.thing_principals("TS-000001") == []
    item = fleet.item("TS-000001")
    assert (item[Attr.STATUS], item[Attr.REVOCATION_REASON]) == (DeviceStatus.DECOMMISSIONED, "end of life")


# --- claim certificates --------------------------------------------------------------------------------


def test_claim_status_counts_the_devices_approved_through_it(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")
    fleet.run_json("revoke", "TS-000002", "--reason", "test")
    fleet.provision("TS-000003", claim="another-claim-certificate")

    [claim] = fleet.run_json("claim", "status")

    assert claim["certificateId"] == fleet.claim_certificate_id
    assert (claim["status"], claim["current"], claim["devices"]) == ("ACTIVE", True, 2)
    assert claim["ageDays"] == 0
    assert 360 <= claim["daysLeft"] <= 365  # moto signs certificates for 365 days


def test_claim_status_all_lists_every_certificate_with_the_claim_policy(fleet: Fleet) -> None:
    replacement = fleet.iot.create_keys_and_certificate(setAsActive=True)
    fleet.iot.attach_policy(policyName=CLAIM_POLICY, target=replacement["certificateArn"])

    claims = fleet.run_json("claim", "status", "--all")

    assert {claim["certificateId"]: claim["current"] for claim in claims} == {
        fleet.claim_certificate_id: True,
        replacement["certificateId"]: False,
    }


def test_claim_deactivate_asks_first_and_then_sets_it_inactive_once(fleet: Fleet) -> None:
    refused = fleet.run("claim", "deactivate", fleet.claim_certificate_id, input="n\n")
    assert refused.exit_code == ExitCode.ABORTED
    assert "stack outputs name" in refused.stderr
    assert fleet.certificate(fleet.claim_certificate_id)["status"] == "ACTIVE"

    confirmed = fleet.run("claim", "deactivate", fleet.claim_certificate_id, input="y\n")
    assert confirmed.exit_code == ExitCode.OK, confirmed.output
    assert fleet.certificate(fleet.claim_certificate_id)["status"] == "INACTIVE"
    assert "claimCertificates entry with active: false" in confirmed.stderr

    again = fleet.run_json("claim", "deactivate", fleet.claim_certificate_id)
    assert again == {"certificateId": fleet.claim_certificate_id, "status": "INACTIVE", "changed": False}


def test_claim_deactivate_yes_skips_the_question(fleet: Fleet) -> None:
    report = fleet.run_json("claim", "deactivate", fleet.claim_certificate_id, "--yes")

    assert report == {"certificateId": fleet.claim_certificate_id, "status": "INACTIVE", "changed": True}


def test_claim_deactivate_refuses_a_device_certificate_and_an_unknown_id(fleet: Fleet) -> None:
    device_certificate = fleet.provision("TS-000001")

    refused = fleet.run("claim", "deactivate", device_certificate, "--yes")
    unknown = fleet.run("claim", "deactivate", "0" * 64, "--yes")

    assert refused.exit_code == ExitCode.USAGE
    assert "not a claim certificate" in refused.stderr
    assert fleet.certificate(device_certificate)["status"] == "ACTIVE"
    assert unknown.exit_code == ExitCode.NOT_FOUND


# --- expiring certificates -----------------------------------------------------------------------------


def certificate_pem(valid_for: timedelta) -> str:
    """A self-signed certificate that expires ``valid_for`` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + valid_for)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def test_certs_expiring_lists_active_device_certificates_in_the_window(fleet: Fleet) -> None:
    year_long = fleet.provision("TS-000001")  # moto: 365 days
    soon = fleet.iot.register_certificate_without_ca(
        certificatePem=certificate_pem(timedelta(days=10)), status="ACTIVE"
    )
    fleet.iot.attach_thing_principal(
        thingName=thing_name(BASE, "TS-000001"), principal=soon["certificateArn"]
    )
    fleet.iot.register_certificate_without_ca(
        certificatePem=certificate_pem(timedelta(days=5)), status="INACTIVE"
    )
    other_stacks_thing = thing_name(f"{BASE}-eu", "TS-000001")  # another stack in the same account
    fleet.iot.create_thing(thingName=other_stacks_thing)
    theirs = fleet.iot.register_certificate_without_ca(
        certificatePem=certificate_pem(timedelta(days=3)), status="ACTIVE"
    )
    fleet.iot.attach_thing_principal(thingName=other_stacks_thing, principal=theirs["certificateArn"])

    within_30 = fleet.run_json("certs", "expiring", "--days", "30")
    within_400 = fleet.run_json("certs", "expiring", "--days", "400")

    assert [(each["certificateId"], each["things"]) for each in within_30] == [
        (soon["certificateId"], [thing_name(BASE, "TS-000001")])
    ]
    assert 9 <= within_30[0]["daysLeft"] <= 10
    assert [each["certificateId"] for each in within_400] == [soon["certificateId"], year_long]


def test_certs_expiring_says_when_none_expire(fleet: Fleet) -> None:
    result = fleet.run("certs", "expiring")

    assert result.exit_code == ExitCode.OK
    assert result.stdout == "Certificates expiring within 30 days: none\n"


# --- with the hook ---------------------------------------------------------------------------------------


def test_the_hook_approves_a_serial_preregistered_by_fleetctl(
    fleet: Fleet, invoke: Callable[[Any], dict[str, Any]], configure_hook: Callable[[dict[str, Any]], None]
) -> None:
    configure_hook(RULES | {"requirePreregistration": True})
    fleet.run_json(
        "preregister", str(fleet.manifest("TS-000123,temperature-sensor,AcmeIoT,1.4.2,Factory-Floor-A"))
    )

    assert invoke(hook_event())["allowProvisioning"] is True
    assert fleet.item("TS-000123")[Attr.STATUS] == DeviceStatus.PENDING


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (["revoke", "TS-000123", "--reason", "stolen"], "DeviceRevoked"),
        (["decommission", "TS-000123"], "DeviceDecommissioned"),
    ],
)
def test_the_hook_denies_a_serial_fleetctl_revoked_or_decommissioned(
    fleet: Fleet,
    invoke: Callable[[Any], dict[str, Any]],
    hook_output: pytest.CaptureFixture[str],
    command: list[str],
    reason: str,
) -> None:
    fleet.provision("TS-000123")
    fleet.run_json(*command)
    hook_output.readouterr()

    assert invoke(hook_event(certificate="replacement"))["allowProvisioning"] is False
    [decision] = decision_logs(output_lines(hook_output))
    assert decision["reason"] == reason


# --- release --------------------------------------------------------------------------------------------


def approve_only(fleet: Fleet, serial: str, *, approved_hours_ago: float) -> str:
    """What the hook does for a device that then never finishes provisioning; returns its certificate."""
    request = validate_request(
        valid_parameters(SerialNumber=serial, FirmwareVersion="2.1.0"), parse_rules(RULES)
    )
    certificate = fleet.iot.create_keys_and_certificate(setAsActive=False)
    provenance = Provenance(certificate["certificateId"], fleet.claim_certificate_id, TEMPLATE_ARN, serial)
    DeviceRegistry(fleet.dynamodb, TABLE_NAME).approve(request, provenance, require_preregistration=False)
    approved = timestamp(datetime.now(UTC) - timedelta(hours=approved_hours_ago))
    fleet.dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"serialNumber": {"S": serial}},
        UpdateExpression="SET approvedAt = :approved, updatedAt = :approved",
        ExpressionAttributeValues={":approved": {"S": approved}},
    )
    return str(certificate["certificateId"])


def test_release_deletes_a_stale_approval_so_the_device_can_provision_again(fleet: Fleet) -> None:
    stale_certificate = approve_only(fleet, "TS-000001", approved_hours_ago=2)

    report = fleet.run_json("release", "TS-000001")

    assert report["steps"][0] == {"action": "registry-deleted", "target": "TS-000001"}
    assert fleet.item_count() == 0
    assert fleet.certificate(stale_certificate)["status"] == "REVOKED"
    fleet.provision("TS-000001")  # a new certificate is approved again
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.ACTIVE


def test_release_returns_a_preregistered_serial_to_its_manifest_state(fleet: Fleet) -> None:
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001"))))
    fleet.dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"serialNumber": {"S": "TS-000001"}},
        UpdateExpression="SET createdAt = :imported",
        ExpressionAttributeValues={":imported": {"S": timestamp(datetime.now(UTC) - timedelta(hours=3))}},
    )
    approve_only(fleet, "TS-000001", approved_hours_ago=2)

    report = fleet.run_json("release", "TS-000001")

    assert report["steps"][0] == {"action": "registry-restored", "target": "TS-000001"}
    item = fleet.item("TS-000001")
    assert item[Attr.STATUS] == DeviceStatus.PREREGISTERED
    assert not {Attr.CERTIFICATE_ID, Attr.APPROVED_AT, Attr.CLIENT_ID} & set(item)
    assert item[Attr.DEVICE_TYPE] == "temperature-sensor"


def test_release_refuses_an_approval_that_may_still_complete_or_already_did(fleet: Fleet) -> None:
    approve_only(fleet, "TS-000001", approved_hours_ago=0.5)
    before = fleet.item("TS-000001")
    recent = fleet.run("release", "TS-000001")
    assert recent.exit_code == ExitCode.USAGE
    assert "approved less than an hour ago" in recent.stderr
    assert fleet.item("TS-000001") == before

    fleet.provision("TS-000002")
    provisioned = fleet.run("release", "TS-000002")
    assert provisioned.exit_code == ExitCode.USAGE
    assert "use revoke" in provisioned.stderr
