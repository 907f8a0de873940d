"""AWS IoT's logging options as the acceptance run found them, put back once its stack is destroyed
(moto has no v2 logging calls: botocore's Stubber answers with the real model)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from local.acceptance.logging_options import LoggingOptions

ROLE = "arn:aws:iam::123456789012:role/platform-iot-logging"


@pytest.fixture
def iot() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("iot", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_options_found_on_are_set_back_as_they_were(iot: tuple[Any, Stubber]) -> None:
    client, stubber = iot
    found = {"roleArn": ROLE, "defaultLogLevel": "WARN", "disableAllLogs": False}
    stubber.add_response("get_v2_logging_options", found)
    options = LoggingOptions.read(client)
    stubber.add_response("set_v2_logging_options", {}, expected_params=found)

    assert options.restore(client) == f"AWS IoT logging: put back (WARN, role {ROLE})"


def test_options_never_configured_are_left_off_and_said_so(iot: tuple[Any, Stubber]) -> None:
    client, stubber = iot
    stubber.add_client_error("get_v2_logging_options", service_error_code="NotConfiguredException")
    options = LoggingOptions.read(client)

    assert options.found is None
    assert "left off" in options.restore(client)  # and no call: the Stubber has none queued


def test_a_restore_aws_refuses_is_raised_for_the_report(iot: tuple[Any, Stubber]) -> None:
    client, stubber = iot
    stubber.add_response("get_v2_logging_options", {"roleArn": ROLE, "defaultLogLevel": "ERROR"})
    options = LoggingOptions.read(client)
    stubber.add_client_error("set_v2_logging_options", service_error_code="InvalidRequestException")

    with pytest.raises(client.exceptions.InvalidRequestException):
        options.restore(client)
