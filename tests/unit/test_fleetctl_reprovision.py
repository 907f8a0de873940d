"""fleetctl reprovision on moto: the grant it writes, what it refuses, and the hook honouring the grant."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID

from fleetctl.errors import ExitCode
from hook.contract import Attr, DeviceStatus
from tests.support import (
    Fleet,
    certificate_id,
    decision_logs,
    hook_event,
    output_lines,
    rows,
    valid_parameters,
)

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")

MOTO_CALLER = f"arn:aws:sts::{DEFAULT_ACCOUNT_ID}:user/moto"
"""The identity moto's GetCallerIdentity answers with."""
GRANT_ATTRIBUTES = {
    Attr.REPROVISION_ALLOWED_UNTIL,
    Attr.REPROVISION_GRANTED_BY,
    Attr.REPROVISION_GRANTED_AT,
    Attr.REPROVISION_REASON,
}


def test_a_grant_records_until_when_who_and_why(fleet: Fleet) -> None:
    old_certificate = fleet.provision("TS-000123")
    before = datetime.now(UTC)

    granted = fleet.run_json("reprovision", "TS-000123", "--reason", "  flash wiped in repair  ")

    # An hour by default: anyone with the claim certificate who knows the serial can use the grant.
    until = datetime.fromisoformat(granted["allowedUntil"])
    assert before + timedelta(hours=1) <= until <= datetime.now(UTC) + timedelta(hours=1)
    assert granted["grantedBy"] == MOTO_CALLER
    assert granted["reason"] == "flash wiped in repair"
    assert granted["certificateId"] == old_certificate
    item = fleet.item("TS-000123")
    assert item[Attr.REPROVISION_ALLOWED_UNTIL] == granted["allowedUntil"]
    assert (item[Attr.REPROVISION_GRANTED_BY], item[Attr.REPROVISION_REASON]) == (
        MOTO_CALLER,
        "flash wiped in repair",
    )
    assert item[Attr.STATUS] == DeviceStatus.ACTIVE


def test_the_window_sets_the_deadline_and_the_text_says_what_the_grant_allows(fleet: Fleet) -> None:
    old_certificate = fleet.provision("TS-000123")

    result = fleet.run("reprovision", "TS-000123", "--reason", "key lost", "--window", "72")

    assert result.exit_code == ExitCode.OK, result.output
    until = fleet.item("TS-000123")[Attr.REPROVISION_ALLOWED_UNTIL]
    assert datetime.fromisoformat(until) > datetime.now(UTC) + timedelta(hours=71)
    text = " ".join(result.stdout.split())
    assert f"until {until} (72 h)" in text
    assert f"certificate {old_certificate} is then replaced and revoked" in text
    assert f"granted by {MOTO_CALLER}: key lost" in text
    assert "anyone holding the claim certificate who knows the serial can use this grant" in text


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--reason", "key lost", "--window", "0"], "--window"),
        (["--reason", "key lost", "--window", "73"], "--window"),
        (["--reason", "key lost", "--window", "a day"], "--window"),
        (["--reason", "   "], "--reason"),
        (["--reason", "x" * 257], "--reason"),
        ([], "--reason"),
    ],
)
def test_bad_arguments_are_usage_errors_that_name_the_option(
    fleet: Fleet, args: list[str], named: str
) -> None:
    fleet.provision("TS-000123")

    result = fleet.run("reprovision", "TS-000123", *args)

    assert result.exit_code == ExitCode.USAGE
    assert named in result.stderr
    assert not GRANT_ATTRIBUTES & set(fleet.item("TS-000123"))


def test_a_reason_of_256_characters_is_accepted(fleet: Fleet) -> None:
    fleet.provision("TS-000123")

    granted = fleet.run_json("reprovision", "TS-000123", "--reason", "x" * 256)

    assert granted["reason"] == "x" * 256


@pytest.mark.parametrize(
    "state", [DeviceStatus.PREREGISTERED, DeviceStatus.REVOKED, DeviceStatus.DECOMMISSIONED]
)
def test_a_serial_that_is_not_active_is_refused_with_its_state(fleet: Fleet, state: DeviceStatus) -> None:
    if state is DeviceStatus.PREREGISTERED:
        fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000123"))))
    else:
        fleet.provision("TS-000123")
        command = (
            ["decommission"] if state is DeviceStatus.DECOMMISSIONED else ["revoke", "--reason", "stolen"]
        )
        fleet.run_json(command[0], "TS-000123", *command[1:])
    before = fleet.item("TS-000123")

    result = fleet.run("reprovision", "TS-000123", "--reason", "key lost")

    assert result.exit_code == ExitCode.USAGE
    assert f"serial 'TS-000123' is {state}; only an ACTIVE device" in result.stderr
    assert fleet.item("TS-000123") == before


def test_an_unknown_serial_is_not_found_and_nothing_is_written(fleet: Fleet) -> None:
    result = fleet.run("reprovision", "TS-999999", "--reason", "key lost")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert "TS-999999" in result.stderr
    assert fleet.item_count() == 0


def test_the_hook_approves_one_new_certificate_for_the_granted_serial(
    fleet: Fleet, invoke: Callable[[Any], dict[str, Any]], hook_output: pytest.CaptureFixture[str]
) -> None:
    old_certificate = fleet.provision("TS-000123")
    event = hook_event(valid_parameters(FirmwareVersion="2.1.0"), certificate="replacement")
    assert invoke(event)["allowProvisioning"] is False  # a second certificate for an ACTIVE serial: a clone

    fleet.run_json("reprovision", "TS-000123", "--reason", "flash wiped in repair")
    hook_output.readouterr()

    assert invoke(event)["allowProvisioning"] is True
    item = fleet.item("TS-000123")
    assert item[Attr.CERTIFICATE_ID] == certificate_id("replacement")
    assert item[Attr.REPLACED_CERTIFICATE_IDS].split() == [old_certificate]
    assert (item[Attr.STATUS], Attr.REPROVISION_ALLOWED_UNTIL in item) == (DeviceStatus.ACTIVE, False)
    another = hook_event(valid_parameters(FirmwareVersion="2.1.0"), certificate="another")
    assert invoke(another)["allowProvisioning"] is False  # the grant was used
    assert decision_logs(output_lines(hook_output))[-1]["reason"] == "DuplicateSerial"


def test_a_grant_admits_the_recorded_firmware_or_newer_and_an_older_one_only_with_allow_downgrade(
    fleet: Fleet, invoke: Callable[[Any], dict[str, Any]], hook_output: pytest.CaptureFixture[str]
) -> None:
    fleet.provision("TS-000123")  # firmware 2.1.0 recorded
    granted = fleet.run("reprovision", "TS-000123", "--reason", "restored from an old image")
    assert "Firmware 2.1.0 or newer is admitted" in " ".join(granted.stdout.split())
    hook_output.readouterr()

    older = hook_event(valid_parameters(FirmwareVersion="v2.0.9"), certificate="restored")
    assert invoke(older)["allowProvisioning"] is False
    assert decision_logs(output_lines(hook_output))[-1]["reason"] == "FirmwareDowngrade"
    item = fleet.item("TS-000123")
    assert (item[Attr.FIRMWARE_VERSION], Attr.REPROVISION_ALLOWED_UNTIL in item) == ("2.1.0", True)

    allowed = fleet.run_json(
        "reprovision", "TS-000123", "--reason", "restored from an old image", "--allow-downgrade"
    )
    assert (allowed["allowsDowngrade"], allowed["firmwareVersion"]) == (True, "2.1.0")
    assert invoke(older)["allowProvisioning"] is True
    item = fleet.item("TS-000123")
    assert item[Attr.CERTIFICATE_ID] == certificate_id("restored")
    assert item[Attr.FIRMWARE_VERSION] == "2.0.9"
    assert not {Attr.REPROVISION_ALLOWED_UNTIL, Attr.REPROVISION_ALLOWS_DOWNGRADE} & set(item)


@pytest.mark.parametrize("firmware", ["2.1.0", "2.10.0"])
def test_a_grant_without_allow_downgrade_admits_the_same_or_a_newer_firmware(
    fleet: Fleet, invoke: Callable[[Any], dict[str, Any]], firmware: str
) -> None:
    fleet.provision("TS-000123")
    fleet.run_json("reprovision", "TS-000123", "--reason", "one grant", "--allow-downgrade")
    # A grant replaces the one before, flag included.
    assert fleet.run_json("reprovision", "TS-000123", "--reason", "another")["allowsDowngrade"] is False
    assert Attr.REPROVISION_ALLOWS_DOWNGRADE not in fleet.item("TS-000123")

    event = hook_event(valid_parameters(FirmwareVersion=firmware), certificate="replacement")
    assert invoke(event)["allowProvisioning"] is True
    assert fleet.item("TS-000123")[Attr.FIRMWARE_VERSION] == firmware


def test_show_prints_the_grant(fleet: Fleet) -> None:
    fleet.provision("TS-000123")
    fleet.run_json("reprovision", "TS-000123", "--reason", "key lost")

    shown = fleet.run("show", "TS-000123")

    assert shown.exit_code == ExitCode.OK
    for fact in (
        Attr.REPROVISION_ALLOWED_UNTIL,
        Attr.REPROVISION_GRANTED_BY,
        Attr.REPROVISION_REASON,
        "key lost",
    ):
        assert fact in shown.stdout
