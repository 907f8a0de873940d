"""How the scenario's checks fail: :class:`ScenarioFailure` (an ``AssertionError``) saying what was found and
what was expected."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class ScenarioFailure(AssertionError):
    """A check of the scenario failed."""


def expect(condition: object, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ScenarioFailure(message)


def expect_equal(actual: object, expected: object, what: str) -> None:
    """Fail unless ``actual == expected``, naming ``what`` and both values."""
    if actual != expected:
        raise ScenarioFailure(f"{what}: got {actual!r}, expected {expected!r}")


def present(value: T | None, what: str) -> T:
    """``value``; fail naming ``what`` when it is ``None``."""
    if value is None:
        raise ScenarioFailure(f"{what} does not exist")
    return value
