"""The local deployer creates every resource type the program declares: a component that declares a type
without a creator in ``local/deploy/resources/`` fails here, naming the type, before ``make demo`` does."""

from __future__ import annotations

from typing import Any, Final

from local.deploy.resources import CREATORS
from tests.pulumi_mocks import defender_config, deploy, stack_config

EVERY_FEATURE: Final[dict[str, Any]] = {
    "enableMonitoring": True,
    "enableAuditLogging": True,
    "accountSettings": True,
    "alertEmail": "alerts@example.com",
    "requirePreregistration": True,
    "protectData": True,
    **defender_config(),
}
"""Every optional feature of the settings switched on, so that every resource type the program can declare
is declared."""


def test_every_resource_type_of_the_local_stack_has_a_creator() -> None:
    deployment = deploy({**stack_config("local"), **EVERY_FEATURE}, stack="local")
    declared = {resource.type for resource in deployment.mocks.resources if resource.custom}

    missing = sorted(declared - set(CREATORS))

    assert declared, "the program declared no resource"
    assert not missing, "the local deployer has no creator for " + ", ".join(missing)
