"""The local deployer's SSM parameters: created as the provider creates them without ``overwrite``, so a
second owner of the account settings fails at the owner marker, naming it, as it would on AWS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from components.account import OWNER_MARKER
from local.deploy.resources import Emulated
from local.deploy.resources.data import parameter


@pytest.fixture
def emulated() -> Iterator[Emulated]:
    with mock_aws():
        yield Emulated(endpoint_url=None, region="us-east-1")  # type: ignore[arg-type]  # AWS endpoints, moto


def marker(owner: str) -> dict[str, str]:
    return {"name": OWNER_MARKER, "type": "String", "insecureValue": owner}


def test_a_second_owner_marker_fails_naming_account_settings_and_keeps_the_first(emulated: Emulated) -> None:
    parameter_id, outputs = parameter(emulated, "account-owner", marker("iot-fleet-provisioning/dev"))
    assert parameter_id == OWNER_MARKER
    assert outputs["arn"].endswith(f":parameter{OWNER_MARKER}")

    with pytest.raises(RuntimeError, match=r"accountSettings/owner.*ParameterAlreadyExists"):
        parameter(emulated, "account-owner", marker("iot-fleet-provisioning/staging"))

    stored = emulated.client("ssm").get_parameter(Name=OWNER_MARKER)["Parameter"]["Value"]
    assert stored == "iot-fleet-provisioning/dev"
