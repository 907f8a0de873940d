"""fleetctl: naming the stack (outputs file or flags), argument checks and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetctl.cli import app
from fleetctl.errors import ExitCode
from hook.contract import Attr
from tests.support import REGION, TABLE_NAME, Fleet

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")


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


@pytest.mark.parametrize("command", [["show"], ["revoke", "--reason", "x"], ["decommission"]])
@pytest.mark.parametrize("serial", ["", "TS 1", "S" * 65])
def test_a_malformed_serial_is_a_usage_error_naming_it(fleet: Fleet, command: list[str], serial: str) -> None:
    result = fleet.run(command[0], serial, *command[1:])
    assert result.exit_code == ExitCode.USAGE
    message = " ".join(result.stderr.replace("│", " ").split())  # Rich wraps the error in a box
    assert "is not a serial number: expected 1-64 characters" in message
