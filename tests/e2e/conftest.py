"""Fixtures of the end-to-end suite: one emulator with the local stack for the whole session, and the
sample fleet provisioned into it once. The emulator is stopped when the session ends, however it ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.deployer import local_config
from local.fleet import Outcome, provision_fleet, with_hook_reasons
from local.manifest import load_manifest
from local.sandbox import Sandbox, sandbox
from program.outputs import StackOutput
from program.settings import PROJECT, Settings, parse_settings

FLEET_CONCURRENCY = 4
"""Devices provisioning at once. Each concurrent hook invocation may start a new Lambda worker in the
emulator (a Python process importing Powertools and boto3); 4 keeps that burst well inside the emulator's
6-second hook deadline on a 2-core runner. The benchmark measures 8 at a time."""


@pytest.fixture(scope="session")
def box() -> Iterator[Sandbox]:
    """The running emulator with the local stack deployed."""
    with sandbox() as running:
        yield running


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The local stack's settings, as the program validated them."""
    values = {
        key.removeprefix(f"{PROJECT}:"): value
        for key, value in local_config().items()
        if key.startswith(f"{PROJECT}:") or key == "aws:region"
    }
    return parse_settings(values, "local")


@pytest.fixture(scope="session")
def fleet(box: Sandbox) -> list[Outcome]:
    """The sample manifest provisioned, with the hook's reasons for the rejected devices."""
    outcomes = provision_fleet(box.target, load_manifest(), concurrency=FLEET_CONCURRENCY)
    outcomes = with_hook_reasons(
        outcomes, box.inspector.client("logs"), box.stack.outputs[StackOutput.HOOK_FUNCTION]
    )
    box.wait_for_status([o.device.identity.serial_number for o in outcomes if o.approved], "ACTIVE")
    return outcomes


@pytest.fixture(scope="session")
def approved(fleet: list[Outcome]) -> list[Outcome]:
    """The devices of the sample fleet that provisioned."""
    return [outcome for outcome in fleet if outcome.approved]


@pytest.fixture(scope="session")
def rejected(fleet: list[Outcome]) -> list[Outcome]:
    """The devices of the sample fleet that the hook denied."""
    return [outcome for outcome in fleet if not outcome.approved]
