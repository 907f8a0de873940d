"""Which environment names ``protectData: auto`` and ``logRetentionDays: auto`` treat as production."""

from __future__ import annotations

import pytest

from program.environments import environment_words, is_production


@pytest.mark.parametrize(
    ("environment", "production"),
    [
        ("prod", True),
        ("prod-eu", True),
        ("eu-prod", True),
        ("production", True),
        ("prod2", True),
        ("2prod", True),
        ("prd", True),
        ("eu-prd-1", True),
        ("live", True),
        ("live3", True),
        ("eu_live", True),
        ("prod.eu", True),
        # erring on the side of protecting: "prod" anywhere in a word
        ("preprod", True),
        ("nonprod", True),
        ("product-demo", True),
        ("dev", False),
        ("staging", False),
        ("test-1", False),
        ("local", False),
        ("qa", False),
        ("delivery", False),
        ("olive", False),
        ("prdx", False),
        ("uat", False),
    ],
)
def test_auto_settings_treat_names_that_say_production_as_production(
    environment: str, production: bool
) -> None:
    assert is_production(environment) is production


def test_words_split_on_separators_and_digit_boundaries() -> None:
    assert environment_words("eu-prd2_live.x") == ["eu", "prd", "2", "live", "x"]
