"""The account's registry-event switches recorded before an owning run and switched back after its stack is
destroyed. moto has neither DescribeEventConfigurations nor UpdateEventConfigurations, so AWS IoT is a
botocore Stubber, which checks every request and response against the service's real model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from components.account import EVENT_TYPES
from local.acceptance.event_switches import EventSwitches


@pytest.fixture
def iot() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("iot", region_name="eu-west-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _described(*on: str) -> dict[str, Any]:
    return {"eventConfigurations": {kind: {"Enabled": kind in on} for kind in EVENT_TYPES}}


def test_thing_events_an_owning_run_switched_on_are_switched_off_again(iot: tuple[Any, Stubber]) -> None:
    client, stubber = iot
    stubber.add_response("describe_event_configurations", _described("JOB"))
    found = EventSwitches.read(client)
    stubber.add_response("describe_event_configurations", _described("JOB", "THING"))  # the stack's
    stubber.add_response(
        "update_event_configurations", {}, {"eventConfigurations": {"THING": {"Enabled": False}}}
    )

    assert found.restore(client, ("JOB", "THING")) == "switched back: THING off"


def test_switches_the_stack_did_not_change_are_not_written(iot: tuple[Any, Stubber]) -> None:
    client, stubber = iot
    stubber.add_response("describe_event_configurations", _described("THING", "JOB"))
    found = EventSwitches.read(client)

    assert found.restore(client, ("JOB", "THING")) == "as found (the stack changed none)"  # no request


def test_a_switch_changed_again_since_the_stack_set_it_is_left_as_it_is(iot: tuple[Any, Stubber]) -> None:
    client, stubber = iot
    stubber.add_response("describe_event_configurations", {"eventConfigurations": {"JOB": {"Enabled": True}}})
    found = EventSwitches.read(client)  # THING left out: off
    stubber.add_response("describe_event_configurations", _described("JOB"))  # THING off again, by someone

    assert found.restore(client, ("JOB", "THING")) == (
        "switched back: none; not as the stack set them, so left as they are: THING"
    )
