"""What a rotation job's execution amounts to (:mod:`fleetctl.rotation_outcomes`): its status read with
the registry and the job's end."""

from __future__ import annotations

import pytest

from fleetctl.rotation_outcomes import RESUMABLE, Outcome, execution_outcome


@pytest.mark.parametrize(
    ("status", "job_ended", "rotated", "outcome"),
    [
        ("SUCCEEDED", False, True, Outcome.ROTATED),
        ("SUCCEEDED", True, True, Outcome.ROTATED),
        ("SUCCEEDED", False, False, Outcome.UNCONFIRMED),  # confirmation lost, or no CSR ever sent
        ("FAILED", False, False, Outcome.FAILED),
        ("REJECTED", True, False, Outcome.FAILED),
        ("TIMED_OUT", False, False, Outcome.ENDED_UNFINISHED),
        ("CANCELED", True, False, Outcome.ENDED_UNFINISHED),
        ("REMOVED", False, False, Outcome.ENDED_UNFINISHED),
        ("QUEUED", False, False, Outcome.WAITING),
        ("IN_PROGRESS", False, False, Outcome.WAITING),
        ("QUEUED", True, False, Outcome.ENDED_UNFINISHED),  # a device offline until the job's end
        ("IN_PROGRESS", True, False, Outcome.ENDED_UNFINISHED),
        ("SOMETHING_NEW", False, False, Outcome.ENDED_UNFINISHED),
    ],
)
def test_an_execution_counts_as_rotated_only_when_the_registry_shows_it(
    status: str, job_ended: bool, rotated: bool, outcome: Outcome
) -> None:
    assert execution_outcome(status, job_ended=job_ended, rotated=rotated) is outcome


def test_every_outcome_but_rotated_and_waiting_is_resumed() -> None:
    assert set(Outcome) - RESUMABLE == {Outcome.ROTATED, Outcome.WAITING}
