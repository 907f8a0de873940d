"""Fixtures of the end-to-end suite: one emulator with the local stack for the whole session, and the
sample fleet provisioned into it once. The emulator is stopped when the session ends, however it ends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from fleetctl.cli import app
from local.emulator import ACCESS_KEY
from local.fleet import Outcome
from local.sample_fleet import load_fleet
from local.sandbox import Sandbox, sandbox
from local.scenario import FLEET_CONCURRENCY, Fleet, provision_devices
from program.settings import Settings


@pytest.fixture(scope="session")
def box() -> Iterator[Sandbox]:
    """The running emulator with the local stack deployed."""
    with sandbox() as running:
        yield running


@pytest.fixture(scope="session")
def settings(box: Sandbox) -> Settings:
    """The local stack's settings, as the program validated them."""
    return box.settings


@pytest.fixture(scope="session")
def fleet(box: Sandbox) -> Fleet:
    """The sample fleet provisioned, with the hook's reasons for the rejected devices."""
    return provision_devices(box, load_fleet(), concurrency=FLEET_CONCURRENCY)


@pytest.fixture(scope="session")
def approved(fleet: Fleet) -> list[Outcome]:
    """The devices of the sample fleet that provisioned."""
    return fleet.approved


Fleetctl = Callable[..., dict[str, Any]]


@pytest.fixture
def fleetctl(box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleetctl:
    """Run ``fleetctl --outputs stack.json <args> --json`` as an operator would, against the emulator; returns
    its JSON output. boto3 reaches the emulator through ``AWS_ENDPOINT_URL``, with its root credentials
    (the suite's fake ``testing`` key is unknown to the emulator, which checks keys with ``AUTH=true``)."""
    outputs = tmp_path / "stack.json"
    outputs.write_text(json.dumps(box.stack.outputs), encoding="utf-8")
    monkeypatch.setenv("AWS_ENDPOINT_URL", box.emulator.address.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # credentials resolved from the environment above

    def run(*args: str) -> dict[str, Any]:
        result = CliRunner().invoke(app, ["--outputs", str(outputs), *args, "--json"])
        assert result.exit_code == 0, result.output
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    return run
