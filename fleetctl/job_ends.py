"""When a rotation job ends: ``--end-after`` read and checked, the CreateJob ``schedulingConfig`` that ends
the job then, and whether a described job has ended.

Without an end, a job whose device stays offline never ends (a ``QUEUED`` execution has no timeout) and
holds one of the account's active jobs for good ("AWS IoT Jobs limits",
https://docs.aws.amazon.com/iot/latest/developerguide/job-limits.html).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_iot.type_defs import SchedulingConfigTypeDef

END_AFTER_DEFAULT: Final = "14d"
"""Two weeks: a device that is off for a weekend or a holiday still takes its job."""
END_AFTER_MIN: Final = timedelta(hours=1)
"""AWS IoT refuses an ``endTime`` less than thirty minutes away (API Reference, SchedulingConfig); an hour
keeps a margin for the time between the plan and the request, and the minute the time is cut to."""
END_AFTER_MAX: Final = timedelta(days=730)
"""AWS IoT refuses an ``endTime`` more than two years away (API Reference, SchedulingConfig)."""
END_BEHAVIOR: Final = "CANCEL"
"""At the end, cancel what is still ``QUEUED`` (the devices that never took the job) and let an
``IN_PROGRESS`` execution finish or reach its in-progress timeout: ``FORCE_CANCEL`` would cancel a device
in the middle of its rotation, which then cannot report it (CancelJob: ``force``), and ``STOP_ROLLOUT``
would leave the offline devices' executions ``QUEUED``. Valid values: ``STOP_ROLLOUT | CANCEL |
FORCE_CANCEL`` (API Reference, SchedulingConfig ``endBehavior``)."""
END_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M"
"""``endTime`` as sent: "YYYY-MM-DD for the date and HH:MM for the time" (API Reference, SchedulingConfig),
written in UTC. That page and the CLI's Timestamp page it links name no time zone for this string; UTC is
fleetctl's choice (the zone of its job ids), not a documented rule; ``rotate start`` reports the
``endTime`` it sent."""
ENDED_JOB_STATUSES: Final = frozenset({"COMPLETED", "CANCELED", "DELETION_IN_PROGRESS"})
"""Job statuses after which no execution runs (API Reference, Job ``status``)."""
_END_AFTER = re.compile(r"(\d{1,6})([dh])")
_UNITS: Final = {"d": timedelta(days=1), "h": timedelta(hours=1)}


def parse_end_after(value: str) -> timedelta:
    """How long after its creation a job ends, from ``<N>d`` or ``<N>h``; :class:`ValueError` naming the
    expected form and range otherwise."""
    found = _END_AFTER.fullmatch(value.strip())
    if found is None:
        raise ValueError(f"{value!r}: expected a number of days or hours, such as 14d or 36h")
    duration = int(found.group(1)) * _UNITS[found.group(2)]
    if not END_AFTER_MIN <= duration <= END_AFTER_MAX:
        raise ValueError(
            f"{value!r}: expected from 1h to {END_AFTER_MAX.days}d (AWS IoT ends a job at least 30 minutes "
            "and at most two years after it is created)"
        )
    return duration


def scheduling_config(now: datetime, end_after: timedelta) -> SchedulingConfigTypeDef:
    """CreateJob's ``schedulingConfig``: end the job ``end_after`` from ``now`` with :data:`END_BEHAVIOR`."""
    return {
        "endTime": (now + end_after).astimezone(UTC).strftime(END_TIME_FORMAT),
        "endBehavior": END_BEHAVIOR,
    }


def job_end(job: Mapping[str, Any]) -> datetime | None:
    """When a described job ends (its ``schedulingConfig.endTime``; UTC unless it names an offset), or
    ``None`` when it has no end or one that cannot be read. DescribeJob's model types ``endTime`` as a
    free string (1-64 characters), so seconds, fractions or a ``Z`` that AWS IoT may add when it echoes
    the value are read too; an unreadable one leaves the job's ``status`` to tell whether it ended."""
    end = job.get("schedulingConfig", {}).get("endTime")
    if not end:
        return None
    try:
        moment = datetime.fromisoformat(str(end).strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def has_ended(job: Mapping[str, Any], now: datetime) -> bool:
    """Whether a described job has ended: completed, cancelled, or past its end time."""
    end = job_end(job)
    return job.get("status") in ENDED_JOB_STATUSES or (end is not None and now >= end)
