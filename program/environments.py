"""Which environment names count as production, for the settings whose ``auto`` depends on it.

``protectData: auto`` and ``logRetentionDays: auto`` protect data and keep logs longer in production. A
production stack is often not named exactly ``prod`` (``prod-eu``, ``production``, ``prod2``, ``eu-prd``), and
a false "no" loses data, while a false "yes" costs only a manual step before destroy and longer logs: the rule
errs on the side of protecting. An explicit ``true`` or ``false`` always wins over it.
"""

from __future__ import annotations

import re
from typing import Final

PRODUCTION_WORDS: Final = frozenset({"prd", "live"})
"""Words that name production on their own (``eu-prd``, ``live2``); ``prod`` counts anywhere in a word."""
PRODUCTION_STEM: Final = "prod"
"""A word containing it counts: ``prod``, ``production``, ``prod2``, and also ``preprod``, ``nonprod`` and
``product-demo`` (erring on the side of protecting)."""
_WORD_BOUNDARIES: Final = re.compile(r"[-_.]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])")


def environment_words(environment: str) -> list[str]:
    """The words of an environment name: split on ``-``, ``_``, ``.`` and between letters and digits."""
    return [word for word in _WORD_BOUNDARIES.split(environment.lower()) if word]


def is_production(environment: str) -> bool:
    """Whether ``auto`` settings treat ``environment`` as production: a word of it contains ``prod``, or is
    ``prd`` or ``live``."""
    return any(PRODUCTION_STEM in word or word in PRODUCTION_WORDS for word in environment_words(environment))
