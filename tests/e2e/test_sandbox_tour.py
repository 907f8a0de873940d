"""docs/sandbox-tour.md as a new user runs it: ``make sandbox`` in one process, every command of the page's
``console`` blocks in others (a trailing ``&`` runs in the background, as in a shell), then Ctrl-C; the page
cannot drift from what the tools do, and the sandbox leaves nothing listening."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Final

import pytest

from local.emulator.launcher import EmulatorAddress, listening

pytestmark = [pytest.mark.e2e, pytest.mark.own_emulator]

ROOT: Final = Path(__file__).resolve().parents[2]
TOUR: Final = ROOT / "docs" / "sandbox-tour.md"
SANDBOX: Final = ROOT / ".sandbox"
READY_SECONDS: Final = 180.0
COMMAND_SECONDS: Final = 120.0


def tour_commands(markdown: str) -> list[str]:
    """The ``$ `` lines of the page's ``console`` blocks, in order."""
    blocks = re.findall(r"^```console\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def _wait_until_ready(sandbox: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not (SANDBOX / "sandbox.env").exists():
        assert sandbox.poll() is None, f"make sandbox exited with {sandbox.returncode}: {log.read_text()}"
        assert time.monotonic() < deadline, (
            f"make sandbox not ready in {READY_SECONDS:.0f} s: {log.read_text()}"
        )
        time.sleep(0.5)


def _shell(command: str, log: Path) -> subprocess.Popen[str]:
    """``command`` in a new shell of the clone with the sandbox's environment, as terminal 2 has it."""
    with log.open("a", encoding="utf-8") as output:
        return subprocess.Popen(  # noqa: S603
            ["bash", "-c", f"source {SANDBOX / 'sandbox.env'} && {command}"],  # noqa: S607
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "160"},
        )


def test_the_tour_runs_on_a_sandbox_and_ctrl_c_leaves_nothing_listening(tmp_path: Path) -> None:
    commands = tour_commands(TOUR.read_text(encoding="utf-8"))
    assert any(command.startswith("fleetctl revoke") for command in commands)
    log = tmp_path / "sandbox.log"
    with log.open("w", encoding="utf-8") as output:
        sandbox = subprocess.Popen(
            ["make", "--no-print-directory", "sandbox"],  # noqa: S607
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C goes to the terminal's whole process group: make and python
        )
    background: list[tuple[str, subprocess.Popen[str], Path]] = []
    try:
        _wait_until_ready(sandbox, log)
        second = subprocess.run(
            ["make", "--no-print-directory", "sandbox"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )
        assert second.returncode != 0
        assert "an emulator already runs on 127.0.0.1:4566" in second.stderr
        assert "make sandbox in" in second.stderr
        for index, command in enumerate(commands):
            command_log = tmp_path / f"command-{index}.log"
            if command.endswith("&"):
                background.append((command, _shell(command.removesuffix("&"), command_log), command_log))
                continue
            finished = _shell(command, command_log)
            status = finished.wait(COMMAND_SECONDS)
            assert status == 0, f"`{command}` exited with {status}:\n{command_log.read_text()}"
        for command, process, command_log in background:
            assert process.wait(COMMAND_SECONDS) == 0, f"`{command}`:\n{command_log.read_text()}"
        device_lines = background[0][2].read_text()
        assert "TS-900001: connected as" in device_lines
        assert re.search(r"TS-900001: rotated by job \S+: certificate \w+ -> \w+", device_lines), device_lines
        # The emulator keeps a revoked device's live session (AWS ends it): its next round is refused.
        assert "TS-900001: connection refused" in device_lines
        suspended, resumed = [
            (tmp_path / f"command-{index}.log").read_text()
            for index, command in enumerate(commands)
            if command.startswith("python -m local.devices --serial TS-990006")
        ]
        assert "TS-990006: not provisioned" in suspended, suspended
        assert "TS-990006: provisioned as" in resumed, resumed
    finally:
        for _, process, _ in background:
            if process.poll() is None:
                process.kill()
        os.killpg(sandbox.pid, signal.SIGINT)
        status = sandbox.wait(60)
    address = EmulatorAddress()
    assert status in (0, -signal.SIGINT), log.read_text()  # make dies of the SIGINT it passed on
    assert "sandbox stopped" in log.read_text()
    assert not listening(address.gateway_port)
    assert not listening(address.mqtt_port)
    assert not any(SANDBOX.glob("*.json")), "the sandbox left its stack outputs or claim key behind"
    assert not (SANDBOX / "sandbox.env").exists()
