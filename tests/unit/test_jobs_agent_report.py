"""How the device simulator reports a rotation (:mod:`local.devices.jobs_agent`), with a fake session and
jobs client: a failure reaches the stack even when AWS IoT rejects the job execution's update because the
execution has ended, so the stack drops the new certificate the device no longer uses."""

from __future__ import annotations

from typing import Any

import pytest
from awsiot import iotjobs

from hook.rotation_contract import RotationStep, rotation_topic
from local.devices import jobs_agent
from local.devices.jobs_agent import JobStatus, _JobExecution
from local.devices.mqtt_session import Rejected


class FakeSession:
    client = object()

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.published.append((topic, payload))


@pytest.fixture
def execution_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS IoT rejects every UpdateJobExecution: the execution is already in a terminal status."""

    def rejected(operation: str, future: Any) -> None:
        raise Rejected(operation, "InvalidStateTransition", "the execution has ended")

    monkeypatch.setattr(iotjobs, "IotJobsClientV2", lambda *args: _Jobs())
    monkeypatch.setattr(jobs_agent, "await_result", rejected)


class _Jobs:
    def update_job_execution(self, request: Any) -> None:
        return None


@pytest.mark.usefixtures("execution_ended")
def test_a_failure_reaches_the_stack_when_the_executions_update_is_rejected() -> None:
    session: Any = FakeSession()

    _JobExecution("thing", "job-1").report(session, JobStatus.FAILED, "the new certificate did not connect")

    assert session.published == [
        (
            rotation_topic("thing", RotationStep.RESULT),
            {"jobId": "job-1", "status": "FAILED", "reason": "the new certificate did not connect"},
        )
    ]


@pytest.mark.usefixtures("execution_ended")
def test_a_success_the_execution_refuses_is_not_claimed_to_the_stack() -> None:
    session: Any = FakeSession()

    with pytest.raises(Rejected):
        _JobExecution("thing", "job-1").report(session, JobStatus.SUCCEEDED)

    assert session.published == []
