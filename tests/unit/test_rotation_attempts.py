"""A rotation job's one attempt per serial, as the registry item lists it (pure; the conditional writes are
tested through the rotation function in ``test_certificate_rotation.py``)."""

from __future__ import annotations

from hook.contract import Attr
from hook.registry_items import Item
from hook.rotation_attempts import ATTEMPTED_ROTATION_JOBS_KEPT, rotation_attempted, with_attempt


def test_a_listed_job_is_attempted_and_no_other_is_though_its_name_contains_it() -> None:
    item: Item = {Attr.ATTEMPTED_ROTATION_JOB_IDS: "base-rotate-12 base-rotate-3"}
    assert rotation_attempted(item, "base-rotate-12")
    assert not rotation_attempted(item, "base-rotate-1")


def test_an_item_written_before_the_list_counts_its_pending_certificates_job_as_attempted() -> None:
    pending: Item = {Attr.PENDING_CERTIFICATE_ID: "c" * 64, Attr.ROTATION_JOB_ID: "base-rotate-1"}
    assert rotation_attempted(pending, "base-rotate-1")
    # Without a pending certificate the job may be tried again: an abandoned one, or a retry after
    # the function gave the job back for a passing AWS error.
    abandoned: Item = {Attr.ROTATION_JOB_ID: "base-rotate-1"}
    assert not rotation_attempted(abandoned, "base-rotate-1")


def test_the_list_keeps_the_newest_jobs_first_each_once() -> None:
    item: Item = {}
    for number in range(ATTEMPTED_ROTATION_JOBS_KEPT + 5):
        item[Attr.ATTEMPTED_ROTATION_JOB_IDS] = with_attempt(item, f"job-{number}")
    listed = item[Attr.ATTEMPTED_ROTATION_JOB_IDS].split()
    assert len(listed) == ATTEMPTED_ROTATION_JOBS_KEPT
    assert listed[:2] == [
        f"job-{ATTEMPTED_ROTATION_JOBS_KEPT + 4}",
        f"job-{ATTEMPTED_ROTATION_JOBS_KEPT + 3}",
    ]
    assert with_attempt(item, listed[3]).split()[0] == listed[3]
    assert len(set(with_attempt(item, listed[3]).split())) == ATTEMPTED_ROTATION_JOBS_KEPT
