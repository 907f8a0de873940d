"""The rules of the Device Defender settings (``defenderAudit``, ``defenderSuppressionExpires``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

SUPPRESSION_MAX_DAYS: Final = 366
"""How far ahead a claim certificate's suppression may expire: a year, so that it is looked at again."""


def defender_audit_problem(
    enabled: bool,
    expires: date | None,
    *,
    owner_without_monitoring: bool,
    today: date | None = None,
) -> str | None:
    """What is wrong with the Device Defender settings, or ``None``. ``today`` defaults to today (UTC)."""
    if not enabled:
        return None
    today = today or datetime.now(UTC).date()
    latest = today + timedelta(days=SUPPRESSION_MAX_DAYS)
    if expires is None:
        return (
            "defenderAudit needs defenderSuppressionExpires: the day (YYYY-MM-DD, after today and at most "
            f"{SUPPRESSION_MAX_DAYS} days ahead, e.g. {today + timedelta(days=180)}) the suppressions of the "
            "claim certificates' shared-certificate finding expire"
        )
    if not today < expires <= latest:
        return (
            f"defenderSuppressionExpires = {expires}: expected a day after today ({today}) and at most "
            f"{SUPPRESSION_MAX_DAYS} days ahead (until {latest}); to renew the suppressions, set a later day "
            "and run pulumi up"
        )
    if owner_without_monitoring:
        return (
            "defenderAudit in the account-settings owner (accountSettings) needs enableMonitoring: the "
            "audit's findings go to the alert topic"
        )
    return None
