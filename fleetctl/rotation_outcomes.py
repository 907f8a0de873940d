"""What a rotation job's execution amounts to for its device: the execution's status read with the
registry, since a ``SUCCEEDED`` execution alone does not show a rotation (the device's confirmation may have
been lost on the way, or the device reported success without ever sending a CSR)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

FAILED_STATUSES: Final = frozenset({"FAILED", "REJECTED"})
"""The device reported that it could not rotate."""
ENDED_STATUSES: Final = frozenset({"TIMED_OUT", "CANCELED", "REMOVED"})
"""AWS IoT or an operator ended the execution before the device finished."""
OPEN_STATUSES: Final = frozenset({"QUEUED", "IN_PROGRESS"})
"""The device has not finished: a ``QUEUED`` execution has no timeout, only the job's end ends it."""


class Outcome(StrEnum):
    """What an execution amounts to."""

    ROTATED = "rotated"
    """``SUCCEEDED``, and the registry shows this job's rotation completed."""
    UNCONFIRMED = "unconfirmed"
    """``SUCCEEDED``, but the registry shows no completed rotation of this job."""
    FAILED = "failed"
    """``FAILED`` or ``REJECTED``: the device said it could not."""
    ENDED_UNFINISHED = "ended-unfinished"
    """``TIMED_OUT``, ``CANCELED``, ``REMOVED``, or still ``QUEUED`` or ``IN_PROGRESS`` when the job ended."""
    WAITING = "waiting"
    """``QUEUED`` or ``IN_PROGRESS`` in a job that has not ended."""


RESUMABLE: Final = frozenset({Outcome.UNCONFIRMED, Outcome.FAILED, Outcome.ENDED_UNFINISHED})
"""Outcomes whose device ``rotate resume`` asks again (if still ``ACTIVE`` and not rotated since)."""


def execution_outcome(status: str, *, job_ended: bool, rotated: bool) -> Outcome:
    """The outcome of an execution in ``status``, of a job that has ended or not, whose device the registry
    shows ``rotated`` by this job or not. An unknown status counts as ended unfinished."""
    if status == "SUCCEEDED":
        return Outcome.ROTATED if rotated else Outcome.UNCONFIRMED
    if status in FAILED_STATUSES:
        return Outcome.FAILED
    if status in OPEN_STATUSES and not job_ended:
        return Outcome.WAITING
    return Outcome.ENDED_UNFINISHED
