"""fleetctl revoke and decommission on moto: every step, re-runs after partial failures, races with the
hook, and the hook denying what they retired."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import typer

from fleetctl import device_removal
from fleetctl.cli import app
from fleetctl.devices import find_device
from fleetctl.errors import ExitCode
from hook.contract import Attr, DeviceStatus, thing_name
from tests.support import (
    BASE,
    Fleet,
    decision_logs,
    fail_once,
    hook_event,
    output_lines,
    rows,
    valid_parameters,
)

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")


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

    monkeypatch.setattr(device_removal, "find_device", look_up_then_approve)
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
    monkeypatch.setattr(device_removal, "DELETE_THING_BACKOFF_SECONDS", 0)

    report = fleet.run_json("decommission", "TS-000001")

    assert {"action": "delete-thing", "target": thing_name(BASE, "TS-000001")} in report["steps"]
    assert thing_name(BASE, "TS-000001") not in {
        thing["thingName"] for thing in fleet.iot.list_things()["things"]
    }


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


@pytest.mark.parametrize(
    "command", [["revoke", "TS-000001", "--reason", "stolen"], ["decommission", "TS-000001"]]
)
def test_a_revoked_or_decommissioned_certificate_stays_bound_to_its_serial(
    fleet: Fleet,
    invoke: Callable[[Any], dict[str, Any]],
    hook_output: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    certificate_id = fleet.provision("TS-000001")
    fleet.run_json(*command)
    hook_output.readouterr()

    event = hook_event(valid_parameters(SerialNumber="TS-000002")) | {"certificateId": certificate_id}
    assert invoke(event)["allowProvisioning"] is False
    [decision] = decision_logs(output_lines(hook_output))
    assert decision["reason"] == "CertificateInUse"
    devices, bindings = fleet.registry()
    assert set(devices) == {"TS-000001"}
    assert bindings == {certificate_id: "TS-000001"}


def test_revoke_decommission_and_rotate_take_one_block_of_selectors_and_run_options() -> None:
    root: Any = typer.main.get_command(app)  # Any: Click's Group, which newer Typer versions vendor
    rotate = root.commands["rotate"]

    def options(command: Any) -> set[str]:
        return {name for parameter in command.params for name in parameter.opts}

    selectors = {"serial", "--type", "--claim-generation", "--file", "--provisioned-before"}
    run = {"--dry-run", "--yes", "--rate", "--json"}
    for command in (root.commands["revoke"], root.commands["decommission"], rotate.commands["start"]):
        assert selectors | run <= options(command), command.name
    assert options(rotate.commands["resume"]) == {"job_id", "--end-after", *run}
    assert options(rotate.commands["status"]) == {"job_id", "--json"}
