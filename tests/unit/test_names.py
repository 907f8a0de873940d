"""Account-wide names carry the region and fit IAM's 64 characters for every name the settings accept."""

from __future__ import annotations

import pytest

from components import names
from components.names import AccountWideNames, Role
from components.powertools import COMMERCIAL_ARM64_REGIONS, OTHER_PARTITION_LAYER_ACCOUNTS
from hook.contract import TEMPLATE_NAME_SUFFIX
from program import settings as settings_module
from program.config import parse_settings
from program.settings import TEMPLATE_NAME_MAX_LENGTH, SettingsError

LONGEST_BASE = "b" * (TEMPLATE_NAME_MAX_LENGTH - len(TEMPLATE_NAME_SUFFIX))
"""The longest ``<resourcePrefix>-<environment>`` the template name leaves room for."""


def test_names_carry_the_base_the_region_and_the_purpose() -> None:
    account = AccountWideNames("iot-provisioning-prod", "eu-west-1")
    assert account.role(Role.PROVISIONING) == "iot-provisioning-prod-eu-west-1-provisioning"
    assert account.role(Role.RETIREMENT) == "iot-provisioning-prod-eu-west-1-retirement"
    assert account.dashboard == "iot-provisioning-prod-eu-west-1-provisioning"


@pytest.mark.parametrize("region", sorted(COMMERCIAL_ARM64_REGIONS | set(OTHER_PARTITION_LAYER_ACCOUNTS)))
def test_the_longest_base_name_fits_iam_in_every_region_the_settings_accept(region: str) -> None:
    assert AccountWideNames(LONGEST_BASE, region).oversized_roles() == []


def test_role_names_over_iams_limit_are_reported() -> None:
    oversized = AccountWideNames("b" * 40, "ap-southeast-4").oversized_roles()
    assert "b" * 40 + "-ap-southeast-4-stale-approvals" in oversized
    assert all(len(name) > names.IAM_ROLE_NAME_MAX_LENGTH for name in oversized)


def test_settings_refuse_names_that_do_not_fit_naming_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    # No region the settings accept makes the longest base too long today: a lower limit stands in for a
    # longer region name, to show the settings refuse such a config and say which keys make the name.
    monkeypatch.setattr(names, "IAM_ROLE_NAME_MAX_LENGTH", 40)
    monkeypatch.setattr(settings_module, "IAM_ROLE_NAME_MAX_LENGTH", 40)
    values = {"aws:region": "us-east-1", "resourcePrefix": "iot-provisioning", "environment": "staging"}
    with pytest.raises(SettingsError) as caught:
        parse_settings(values, "dev")
    message = str(caught.value)
    assert "resourcePrefix, environment and aws:region" in message
    assert "iot-provisioning-staging-us-east-1-stale-approvals" in message
    assert "longer than the 40 characters IAM allows" in message
