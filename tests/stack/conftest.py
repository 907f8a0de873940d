"""The whole stack under Pulumi's mocks, built once per session for each configuration and shared."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.pulumi_mocks import Build, Deployment, deploy, settings_for


@pytest.fixture(scope="session")
def build() -> Build:
    """:func:`tests.pulumi_mocks.deploy`, run once per session for each configuration: configs that give
    the same settings (the program reads nothing else) share one deployment, which tests only read."""
    built: dict[tuple[str, str], Deployment] = {}

    def build(config: Mapping[str, Any], stack: str = "dev") -> Deployment:
        key = (stack, settings_for(config, stack).model_dump_json())
        if key not in built:
            built[key] = deploy(config, stack)
        return built[key]

    return build
