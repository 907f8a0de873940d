"""make sandbox's pieces that need no emulator: the lock one emulator per port holds, and the environment
file an operator sources in another terminal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from local.emulator.launcher import EmulatorAddress
from local.scenario.emulator_lock import EmulatorBusy, emulator_lock
from local.scenario.sandbox_run import environment_file

ADDRESS = EmulatorAddress(gateway_port=4566)


def test_a_second_emulator_is_told_which_one_runs(tmp_path: Path) -> None:
    with (
        emulator_lock(ADDRESS, "make sandbox in /home/op/fleet", tmp_path),
        pytest.raises(EmulatorBusy) as busy,
        emulator_lock(ADDRESS, "make demo", tmp_path),
    ):
        pytest.fail("two emulators held the lock of one port")
    message = str(busy.value)
    assert "127.0.0.1:4566" in message
    assert f"make sandbox in /home/op/fleet, pid {os.getpid()}" in message


def test_the_lock_is_free_once_its_holder_is_done(tmp_path: Path) -> None:
    with emulator_lock(ADDRESS, "make sandbox", tmp_path):
        pass
    with emulator_lock(ADDRESS, "make demo", tmp_path) as path:
        assert path.read_text(encoding="utf-8") == f"make demo, pid {os.getpid()}\n"


def test_emulators_on_other_ports_do_not_share_a_lock(tmp_path: Path) -> None:
    second_region = EmulatorAddress(gateway_port=4567, mqtt_port=8884)
    with emulator_lock(ADDRESS, "make sandbox", tmp_path), emulator_lock(second_region, "region 2", tmp_path):
        pass


def test_the_environment_file_points_a_shell_at_the_sandbox(tmp_path: Path) -> None:
    bin_directory = tmp_path / "a clone" / ".venv" / "bin"
    outputs = tmp_path / "a clone" / ".sandbox" / "stack.json"
    env_file = tmp_path / "sandbox.env"
    env_file.write_text(
        environment_file(
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SESSION_TOKEN": None,
            },
            region="us-east-1",
            outputs=outputs,
            bin_directory=bin_directory,
        ),
        encoding="utf-8",
    )
    shell = subprocess.run(  # noqa: S603
        ["/bin/sh", "-c", f'. "{env_file}" && env'],
        env={"PATH": "/usr/bin:/bin", "AWS_SESSION_TOKEN": "a real session", "AWS_PROFILE": "prod"},
        capture_output=True,
        text=True,
        check=True,
    )
    seen = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
    assert seen["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert seen["AWS_ACCESS_KEY_ID"] == "test"
    assert seen["AWS_REGION"] == seen["AWS_DEFAULT_REGION"] == "us-east-1"
    assert seen["FLEETCTL_OUTPUTS"] == str(outputs)
    assert seen["PATH"] == f"{bin_directory}:/usr/bin:/bin"
    assert "AWS_SESSION_TOKEN" not in seen  # the operator's AWS session must not reach the emulator
    assert "AWS_PROFILE" not in seen
