"""``python -m local.devices``: bad arguments and a missing sandbox are told before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.devices.__main__ import main


def test_a_serial_needs_its_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--serial", "TS-900001", "--sandbox", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--serial needs --type" in capsys.readouterr().err


def test_without_a_running_sandbox_it_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--serial", "TS-900001", "--type", "temperature-sensor", "--sandbox", str(tmp_path)])
    error = capsys.readouterr().err
    assert f"{tmp_path / 'devices.json'}" in error
    assert "is `make sandbox` running?" in error


def test_a_damaged_connection_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "devices.json").write_text('{"mqttHost": "localhost"}', encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["--serial", "TS-900001", "--type", "temperature-sensor", "--sandbox", str(tmp_path)])
    assert "not a sandbox connection file" in capsys.readouterr().err
