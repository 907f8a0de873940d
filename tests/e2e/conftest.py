"""Fixtures of the end-to-end suite: one emulator with the local stack for the whole session, and the
sample fleet provisioned into it once. The emulator is stopped when the session ends, however it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import pytest

from local.devices.fleet_runner import Outcome
from local.devices.sample_fleet import load_fleet
from local.scenario.provisioned_fleet import FLEET_CONCURRENCY, Fleet, provision_devices
from local.scenario.sandbox import Sandbox, sandbox
from local.scenario.signed_manifests import signed_manifest_devices
from local.scenario.zero_touch import zero_touch_devices
from program.settings import Settings

TEARS_DOWN_THE_STACK: Final = "tears_down_the_stack"
"""The marker of a test that removes the session's fleet (``fleetctl teardown``)."""
OWN_EMULATOR: Final = "own_emulator"
"""The marker of a test that runs ``make sandbox`` itself: it runs first, while the ports are free."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that tear the session's stack down run after every other one, whatever the order they were
    collected in: the others need the sample fleet they remove."""
    items.sort(key=lambda item: item.get_closest_marker(TEARS_DOWN_THE_STACK) is not None)
    # Stable sort: a test starting its own emulator goes first, before the session's holds the ports.
    items.sort(key=lambda item: item.get_closest_marker(OWN_EMULATOR) is None)


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
    """The sample fleet and the zero-touch devices provisioned (the factory manifest pre-registered first),
    with the hook's reasons for the rejected devices."""
    devices = [*load_fleet(), *zero_touch_devices(box), *signed_manifest_devices(box)]
    return provision_devices(box, devices, concurrency=FLEET_CONCURRENCY)


@pytest.fixture(scope="session")
def approved(fleet: Fleet) -> list[Outcome]:
    """The devices of the sample fleet that provisioned."""
    return fleet.approved


Fleetctl = Callable[..., dict[str, Any]]


@pytest.fixture
def fleetctl(box: Sandbox) -> Fleetctl:
    """Run ``fleetctl --outputs stack.json <args> --json`` as an operator would, against the emulator (with its
    root credentials: the suite's fake ``testing`` key is unknown to the emulator, which checks keys with
    ``AUTH=true``); returns its JSON output, and fails the test when fleetctl fails."""
    return box.fleetctl
