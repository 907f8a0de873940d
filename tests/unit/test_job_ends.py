"""When a rotation job ends (:mod:`fleetctl.job_ends`): ``--end-after``, the CreateJob ``schedulingConfig``
and whether a described job has ended, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from fleetctl.job_ends import has_ended, job_end, parse_end_after, scheduling_config

NOW = datetime(2026, 3, 1, 12, 0, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "duration"),
    [
        ("14d", timedelta(days=14)),
        ("1h", timedelta(hours=1)),
        (" 36h ", timedelta(hours=36)),
        ("730d", timedelta(days=730)),
    ],
)
def test_end_after_takes_days_or_hours_within_what_aws_iot_accepts(value: str, duration: timedelta) -> None:
    assert parse_end_after(value) == duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0h", "expected from 1h to 730d"),
        ("731d", "expected from 1h to 730d"),
        ("20m", "expected a number of days or hours"),
        ("2w", "expected a number of days or hours"),
        ("-3d", "expected a number of days or hours"),
        ("", "expected a number of days or hours"),
    ],
)
def test_an_end_aws_iot_would_refuse_is_refused_with_the_form_expected(value: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_end_after(value)


def test_the_scheduling_config_ends_the_job_in_utc_minutes_and_cancels_what_is_queued() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=2)))

    assert scheduling_config(local, timedelta(days=14)) == {
        "endTime": "2026-03-15T12:00",
        "endBehavior": "CANCEL",
    }


@pytest.mark.parametrize(
    ("job", "ended"),
    [
        ({"status": "IN_PROGRESS"}, False),
        ({"status": "IN_PROGRESS", "schedulingConfig": {"endTime": "2026-03-01T12:01"}}, False),
        ({"status": "IN_PROGRESS", "schedulingConfig": {"endTime": "2026-03-01T12:00"}}, True),
        ({"status": "COMPLETED"}, True),
        ({"status": "CANCELED", "schedulingConfig": {"endTime": "2026-04-01T00:00"}}, True),
        ({"status": "DELETION_IN_PROGRESS"}, True),
    ],
)
def test_a_job_has_ended_when_aws_iot_ended_it_or_its_end_time_passed(
    job: dict[str, Any], ended: bool
) -> None:
    assert has_ended(job, NOW) is ended


def test_a_jobs_end_is_read_back_as_utc() -> None:
    assert job_end({"schedulingConfig": {"endTime": "2026-03-15T12:00"}}) == datetime(
        2026, 3, 15, 12, 0, tzinfo=UTC
    )
    assert job_end({}) is None


@pytest.mark.parametrize(
    "echoed",
    ["2026-03-15T12:00", "2026-03-15T12:00:00", "2026-03-15T12:00:00.000Z", "2026-03-15T14:00+02:00"],
)
def test_a_jobs_end_is_read_in_the_forms_aws_iot_may_echo(echoed: str) -> None:
    # DescribeJob's endTime is a free string in the model: a form other than the one sent must not stop
    # rotate status or resume.
    assert job_end({"schedulingConfig": {"endTime": echoed}}) == datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def test_an_unreadable_end_leaves_the_jobs_status_to_tell() -> None:
    job = {"status": "IN_PROGRESS", "schedulingConfig": {"endTime": "next Tuesday"}}

    assert job_end(job) is None
    assert has_ended(job, NOW) is False
    assert has_ended({**job, "status": "CANCELED"}, NOW) is True
