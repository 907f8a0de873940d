"""The Device Defender settings' rules: a suppression expiry after today and within a year, and findings
need the owner's alert topic."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from program.defender import SUPPRESSION_MAX_DAYS, defender_audit_problem

TODAY = date(2026, 12, 6)


@pytest.mark.parametrize(
    ("expires", "accepted"),
    [
        (TODAY - timedelta(days=1), False),
        (TODAY, False),
        (TODAY + timedelta(days=1), True),
        (TODAY + timedelta(days=SUPPRESSION_MAX_DAYS), True),
        (TODAY + timedelta(days=SUPPRESSION_MAX_DAYS + 1), False),
    ],
)
def test_the_suppressions_expire_after_today_and_within_a_year(expires: date, accepted: bool) -> None:
    problem = defender_audit_problem(True, expires, owner_without_monitoring=False, today=TODAY)
    assert (problem is None) == accepted
    if problem:
        assert f"defenderSuppressionExpires = {expires}" in problem
        assert "2027-12-07" in problem  # the last day accepted, so the reader knows what to set


def test_an_audit_without_an_expiry_is_refused_with_an_example_day() -> None:
    problem = defender_audit_problem(True, None, owner_without_monitoring=False, today=TODAY)
    assert problem is not None and "e.g. 2027-06-04" in problem


def test_the_owner_needs_its_alert_topic_for_the_findings() -> None:
    expires = TODAY + timedelta(days=30)
    assert defender_audit_problem(True, expires, owner_without_monitoring=True, today=TODAY)
    assert defender_audit_problem(True, expires, owner_without_monitoring=False, today=TODAY) is None


def test_nothing_is_required_while_the_audit_is_off() -> None:
    assert defender_audit_problem(False, None, owner_without_monitoring=True, today=TODAY) is None
