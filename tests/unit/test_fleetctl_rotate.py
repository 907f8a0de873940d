"""fleetctl rotate on moto: choosing devices, the jobs that ask them to rotate, resuming a job's failures
and a job's status.

moto creates a job's executions (QUEUED) but has no jobs data plane for devices to report on, so a device's
outcome is written into moto's job execution directly (:func:`report`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.iot.models import iot_backends

from fleetctl import pacing, rotation_jobs
from fleetctl.commands import rotate
from fleetctl.errors import ExitCode, UsageProblem
from fleetctl.operator_transitions import OperatorRecords
from hook.contract import Attr, DeviceStatus, thing_name
from hook.registry_decisions import Provenance
from hook.registry_items import timestamp
from hook.rotation_contract import rotation_job_id_prefix
from hook.rules import parse_rules, validate_request
from tests.support import (
    BASE,
    REGION,
    RULES,
    TABLE_NAME,
    TEMPLATE_ARN,
    Fleet,
    add_claim_generations,
    before_every_call,
    certificate_id,
    fail_once,
    rows,
    valid_parameters,
)

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")

JOB_ID = re.compile(rf"{BASE}-rotate-\d{{14}}-[0-9a-f]{{4}}")
"""``<base>-rotate-<UTC time>-<4 random hex digits>``; the rotation function answers only jobs whose id
starts ``<base>-rotate-``."""


def thing_arn(serial: str) -> str:
    return f"arn:aws:iot:{REGION}:{DEFAULT_ACCOUNT_ID}:thing/{thing_name(BASE, serial)}"


def set_times(fleet: Fleet, serial: str, **days_ago: float) -> None:
    """Set the item's timestamps (approvedAt=40 means approved 40 days ago)."""
    now = datetime.now(UTC)
    names = {name: f"#{name}" for name in days_ago}
    fleet.dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"serialNumber": {"S": serial}},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in days_ago),
        ExpressionAttributeNames={value: name for name, value in names.items()},
        ExpressionAttributeValues={
            f":{name}": {"S": timestamp(now - timedelta(days=days))} for name, days in days_ago.items()
        },
    )


def jobs(fleet: Fleet) -> list[str]:
    return [job["jobId"] for job in fleet.iot.list_jobs()["jobs"]]


def report(job_id: str, serial: str, status: str, **details: str) -> None:
    """What the device reports through the jobs data plane (UpdateJobExecution), which moto lacks."""
    execution = iot_backends[DEFAULT_ACCOUNT_ID][REGION].job_executions[(job_id, thing_name(BASE, serial))]
    execution.status = status
    execution.status_details_map = details


def rotation_job(fleet: Fleet, job_id: str, *serials: str, key: str = "RSA-2048", **config: Any) -> None:
    """A rotation job as an earlier ``fleetctl rotate`` created it, with CreateJob's ``config``."""
    document = {"operation": "rotate-certificate", "keyAlgorithm": key}
    fleet.iot.create_job(
        jobId=job_id,
        targets=[thing_arn(serial) for serial in serials],
        document=json.dumps(document),
        targetSelection="SNAPSHOT",
        **config,
    )


def begin_rotation(fleet: Fleet, serial: str, job_id: str, minutes_ago: float = 0) -> str:
    """The rotation function's CSR step in the registry: a pending certificate of ``job_id``, requested
    ``minutes_ago``; its id."""
    pending = fleet.iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
    assert OperatorRecords(fleet.dynamodb, TABLE_NAME).begin_rotation(fleet.item(serial), pending, job_id)
    if minutes_ago:
        set_times(fleet, serial, rotationRequestedAt=minutes_ago / (24 * 60))
    return str(pending)


def confirm_rotation(fleet: Fleet, serial: str, job_id: str) -> None:
    """A whole rotation by ``job_id`` as the registry records it: the device confirmed its new certificate."""
    begin_rotation(fleet, serial, job_id)
    assert OperatorRecords(fleet.dynamodb, TABLE_NAME).complete_rotation(fleet.item(serial)) is not None


def selected(fleet: Fleet, *args: str) -> tuple[list[str], dict[str, str]]:
    """The serials a dry run would target, and the skipped ones with why."""
    plan = fleet.run_json("rotate", "start", *args, "--dry-run")
    assert plan["created"] is False
    return [row["serial"] for row in plan["targets"]], {
        row["serial"]: row["reason"] for row in plan["skipped"]
    }


def serials_file(fleet: Fleet, *lines: str) -> Path:
    path = fleet.tmp_path / "serials.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- selection -------------------------------------------------------------------------------------------


def test_a_dry_run_shows_the_plan_and_creates_no_job(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")

    plan = fleet.run_json("rotate", "start", "TS-000001", "--dry-run")

    assert [row["serial"] for row in plan["targets"]] == ["TS-000001"]
    assert plan["targets"][0]["thingName"] == thing_name(BASE, "TS-000001")
    [job] = plan["jobs"]
    assert JOB_ID.fullmatch(job["jobId"])
    assert (job["jobArn"], job["serials"]) == (None, ["TS-000001"])
    assert plan["document"] == {"operation": "rotate-certificate", "keyAlgorithm": "EC-P256"}
    assert jobs(fleet) == []

    table = fleet.run("rotate", "start", "TS-000001", "--dry-run")
    assert table.exit_code == ExitCode.OK
    assert "TS-000001" in table.stdout
    assert "dry run" in table.stdout
    assert jobs(fleet) == []


def test_type_selects_the_active_devices_of_that_type(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.provision("GW-ABCD", device_type="gateway")
    fleet.provision("GW-EFGH", device_type="gateway")
    fleet.run_json("revoke", "GW-EFGH", "--reason", "stolen")

    assert selected(fleet, "--type", "gateway") == (["GW-ABCD"], {})


def test_older_than_measures_from_the_latest_of_rotation_reprovisioning_and_approval(fleet: Fleet) -> None:
    for serial in ("TS-000001", "TS-000002", "TS-000003", "TS-000004"):
        fleet.provision(serial)
    set_times(fleet, "TS-000001", approvedAt=40)
    set_times(fleet, "TS-000002", approvedAt=400, rotatedAt=10)
    set_times(fleet, "TS-000003", approvedAt=400, reprovisionedAt=5)
    set_times(fleet, "TS-000004", approvedAt=400, rotatedAt=35, reprovisionedAt=31)

    plan = fleet.run_json("rotate", "start", "--older-than", "30", "--dry-run")

    ages = {row["serial"]: row["certificateAgeDays"] for row in plan["targets"]}
    assert ages == {"TS-000001": 40, "TS-000004": 31}
    assert plan["skipped"] == []
    assert selected(fleet, "--older-than", "0")[0] == ["TS-000001", "TS-000002", "TS-000003", "TS-000004"]


def test_a_file_names_devices_and_those_that_cannot_rotate_are_skipped_with_why(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000003")
    fleet.run_json("revoke", "TS-000003", "--reason", "stolen")
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000002"))))
    path = serials_file(fleet, "TS-000001", "", "  TS-000002  ", "TS-000003", "TS-000009", "TS-000001")

    targets, skipped = selected(fleet, "--file", str(path))

    assert targets == ["TS-000001"]
    assert skipped == {
        "TS-000002": "PREREGISTERED; only ACTIVE devices rotate",
        "TS-000003": "REVOKED; only ACTIVE devices rotate",
        "TS-000009": "not in the registry",
    }
    table = fleet.run("rotate", "start", "--file", str(path), "--dry-run")
    assert "Skipped" in table.stdout
    assert "not in the registry" in table.stdout


def test_selectors_combine_as_an_intersection(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")
    fleet.provision("GW-ABCD", device_type="gateway")
    fleet.provision("GW-EFGH", device_type="gateway")
    for serial in ("TS-000001", "GW-ABCD"):
        set_times(fleet, serial, approvedAt=100)
    path = serials_file(fleet, "TS-000001", "TS-000002", "GW-ABCD")

    targets, skipped = selected(fleet, "--file", str(path), "--type", "gateway", "--older-than", "90")

    assert targets == ["GW-ABCD"]  # GW-EFGH is not in the file
    assert skipped == {
        "TS-000001": "type temperature-sensor, not gateway",
        "TS-000002": "type temperature-sensor, not gateway",
    }
    assert selected(fleet, "--type", "temperature-sensor", "--older-than", "90") == (["TS-000001"], {})
    assert selected(fleet, "TS-000002", "--file", str(path), "--older-than", "90") == (
        [],
        {"TS-000002": "certificate 0 day(s) old, not older than 90"},
    )


def test_claim_generation_and_provisioned_before_select_devices_to_rotate(fleet: Fleet) -> None:
    second = add_claim_generations(fleet)
    fleet.provision("TS-000001")
    fleet.provision("TS-000002", claim=second)
    fleet.provision("TS-000003", claim=second)
    fleet.provision("TS-000004", claim=second)
    fleet.run_json("revoke", "TS-000004", "--reason", "stolen")
    set_times(fleet, "TS-000001", approvedAt=100)
    set_times(fleet, "TS-000002", approvedAt=100)
    before = f"{datetime.now(UTC) - timedelta(days=50):%Y-%m-%d}"

    assert selected(fleet, "--claim-generation", "2026-b") == (["TS-000002", "TS-000003"], {})
    assert selected(fleet, "--provisioned-before", before) == (["TS-000001", "TS-000002"], {})
    assert selected(fleet, "--claim-generation", "2026-b", "--provisioned-before", before) == (
        ["TS-000002"],
        {},
    )
    path = serials_file(fleet, "TS-000001", "TS-000003", "TS-000004")
    targets, skipped = selected(fleet, "--file", str(path), "--claim-generation", "2026-b")
    assert targets == ["TS-000003"]
    assert skipped == {
        "TS-000001": f"approved through claim certificate {fleet.claim_certificate_id}, not generation 2026-b",
        "TS-000004": "REVOKED; only ACTIVE devices rotate",
    }
    unknown = fleet.run("rotate", "start", "--claim-generation", "2027", "--yes")
    assert unknown.exit_code == ExitCode.USAGE
    assert "expected one of 2025-a, 2026-b" in unknown.stderr
    assert jobs(fleet) == []


def test_a_device_whose_thing_is_not_recorded_is_skipped(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.dynamodb.update_item(
        TableName=TABLE_NAME, Key={"serialNumber": {"S": "TS-000001"}}, UpdateExpression="REMOVE thingName"
    )

    assert selected(fleet, "--type", "temperature-sensor") == (
        [],
        {"TS-000001": "no thingName in the registry item"},
    )


# --- creating jobs -------------------------------------------------------------------------------------


def test_yes_creates_a_snapshot_job_for_the_devices_things_with_the_rotation_document(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")

    done = fleet.run_json(
        "rotate", "start", "--type", "temperature-sensor", "--key-algorithm", "RSA-2048", "--yes"
    )

    assert done["created"] is True
    [created] = done["jobs"]
    assert jobs(fleet) == [created["jobId"]]
    job = fleet.iot.describe_job(jobId=created["jobId"])["job"]
    assert job["jobArn"] == created["jobArn"]
    assert job["targetSelection"] == "SNAPSHOT"
    assert sorted(job["targets"]) == [thing_arn("TS-000001"), thing_arn("TS-000002")]
    document = json.loads(fleet.iot.get_job_document(jobId=created["jobId"])["document"])
    assert document == {"operation": "rotate-certificate", "keyAlgorithm": "RSA-2048"}
    # A device that took the job and never reports ends TIMED_OUT, which rotate resume picks up.
    assert job["timeoutConfig"] == {"inProgressTimeoutInMinutes": 30}
    # A device that never takes it is cancelled at the job's end, 14 days on by default.
    assert job["schedulingConfig"]["endBehavior"] == "CANCEL"
    end = datetime.strptime(job["schedulingConfig"]["endTime"], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    assert timedelta(days=14, minutes=-2) < end - datetime.now(UTC) <= timedelta(days=14)
    assert done["endTime"] == job["schedulingConfig"]["endTime"]
    # The rotation function answers only CSRs of a job whose id starts with the stack's rotation prefix.
    assert created["jobId"].startswith(rotation_job_id_prefix(BASE))
    assert JOB_ID.fullmatch(created["jobId"])


def test_two_runs_in_the_same_second_create_two_jobs(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")
    instant = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls.fromtimestamp(instant.timestamp(), tz)

    monkeypatch.setattr(rotate, "datetime", Frozen)

    first = fleet.run_json("rotate", "start", "TS-000001", "--yes")["jobs"][0]["jobId"]
    second = fleet.run_json("rotate", "start", "TS-000002", "--yes")["jobs"][0]["jobId"]

    assert first != second
    assert first[:-4] == second[:-4] == f"{rotation_job_id_prefix(BASE)}20260301120000-"
    assert sorted(jobs(fleet)) == sorted([first, second])


def test_a_base_name_too_long_for_a_job_id_is_refused_before_any_job(fleet: Fleet) -> None:
    # <base>-rotate-<14 digits>-<4 hex> must fit AWS IoT's 64 characters.
    base = "b" * (rotation_jobs.JOB_ID_MAX_LENGTH - len("-rotate-") - 14 - 1 - 4 + 1)
    targets = [
        rotation_jobs.Target("TS-000001", thing_name(base, "TS-000001"), "temperature-sensor", None, None)
    ]

    def stack(base_name: str) -> Any:  # _jobs reads only the base name
        return SimpleNamespace(base_name=base_name)

    with pytest.raises(UsageProblem, match="base name is too long"):
        rotation_jobs._jobs(stack(base), targets, datetime.now(UTC))
    [job] = rotation_jobs._jobs(stack(base[1:]), targets, datetime.now(UTC))
    assert len(job.job_id) == rotation_jobs.JOB_ID_MAX_LENGTH
    assert rotation_jobs.is_job_id(job.job_id)
    assert jobs(fleet) == []


def test_the_operator_is_asked_and_no_means_no_job(fleet: Fleet) -> None:
    fleet.provision("TS-000001")

    declined = fleet.run("rotate", "start", "TS-000001", input="n\n")

    assert declined.exit_code == ExitCode.ABORTED
    assert "rotate their certificate" in declined.stderr
    assert "no job created" in declined.stderr
    assert jobs(fleet) == []

    accepted = fleet.run("rotate", "start", "TS-000001", input="y\n")
    assert accepted.exit_code == ExitCode.OK, accepted.output
    [job_id] = jobs(fleet)
    assert job_id in accepted.stdout
    assert f"fleetctl rotate status {job_id}" in accepted.stdout


def test_more_devices_than_a_job_takes_make_several_jobs(fleet: Fleet) -> None:
    serials = [f"TS-{number:06d}" for number in range(1, rotation_jobs.JOB_TARGETS_MAX + 2)]
    records = OperatorRecords(fleet.dynamodb, TABLE_NAME)
    rules = parse_rules(RULES)
    for serial in serials:  # registry only: the things are not needed to create jobs
        request = validate_request(valid_parameters(SerialNumber=serial, FirmwareVersion="2.1.0"), rules)
        provenance = Provenance(certificate_id(serial), fleet.claim_certificate_id, TEMPLATE_ARN, serial)
        records.approve(request, provenance, require_preregistration=False)
        assert records.activate(serial, thing_name(BASE, serial)) is None

    done = fleet.run_json("rotate", "start", "--type", "temperature-sensor", "--yes")

    first, second = done["jobs"]
    assert first["jobId"].endswith("-1")
    assert second["jobId"] == first["jobId"][:-1] + "2"
    assert (len(first["serials"]), second["serials"]) == (100, [serials[-1]])
    for job in done["jobs"]:
        assert JOB_ID.fullmatch(job["jobId"].rsplit("-", 1)[0])
        described = fleet.iot.describe_job(jobId=job["jobId"])["job"]
        assert sorted(described["targets"]) == sorted(thing_arn(serial) for serial in job["serials"])
        assert "part" in described["description"]


def test_a_failure_after_some_jobs_were_created_names_them(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")
    monkeypatch.setattr(rotation_jobs, "JOB_TARGETS_MAX", 1)
    calls: list[str] = []

    def second_create_job_fails(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name == "CreateJob":
            calls.append(model.name)
            if len(calls) == 2:
                error = {"Error": {"Code": "LimitExceededException", "Message": "too many active jobs"}}
                return AWSResponse("https://injected/CreateJob", 400, HTTPHeaders(), None), error
        return None

    before_every_call(monkeypatch, second_create_job_fails)

    result = fleet.run("rotate", "start", "--type", "temperature-sensor", "--yes")

    assert result.exit_code == ExitCode.AWS
    [created] = jobs(fleet)
    assert created.endswith("-1")
    assert f"created before it: {created}; 1 device(s)" in result.stderr
    assert "LimitExceededException" in result.stderr
    assert "run the same command again once jobs finish" in result.stderr

    # The devices' jobs run their course; the same command then asks only the device left out.
    again = fleet.run_json("rotate", "start", "--type", "temperature-sensor", "--yes")

    [job] = again["jobs"]
    assert job["serials"] == ["TS-000002"]
    assert again["skipped"] == [
        {"serial": "TS-000001", "reason": f"asked by job {created}, not finished (see rotate status)"}
    ]


def test_the_active_jobs_limit_at_the_first_job_says_what_to_do(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.provision("TS-000001")
    fail_once(monkeypatch, "CreateJob", "LimitExceededException")

    result = fleet.run("rotate", "start", "--type", "temperature-sensor", "--yes")

    assert result.exit_code == ExitCode.AWS
    assert jobs(fleet) == []
    assert "created before it: none; 1 device(s)" in result.stderr
    assert "run the same command again once jobs finish" in result.stderr


def test_a_device_asked_by_an_unfinished_job_is_asked_again_only_once_that_job_has_ended(
    fleet: Fleet,
) -> None:
    for serial in ("TS-000001", "TS-000002"):
        fleet.provision(serial)
    [first] = fleet.run_json("rotate", "start", "TS-000001", "--yes")["jobs"]

    targets, skipped = selected(fleet, "--type", "temperature-sensor")
    assert (targets, skipped) == (
        ["TS-000002"],
        {"TS-000001": f"asked by job {first['jobId']}, not finished (see rotate status)"},
    )

    report(first["jobId"], "TS-000001", "IN_PROGRESS")  # the device took the job: still asked
    assert selected(fleet, "TS-000001")[0] == []
    report(first["jobId"], "TS-000001", "TIMED_OUT")  # it ended without a rotation: ask it again
    assert selected(fleet, "--type", "temperature-sensor") == (["TS-000001", "TS-000002"], {})


def test_a_device_holding_an_unconfirmed_pending_certificate_is_left_to_the_resume_of_its_job(
    fleet: Fleet,
) -> None:
    """It reported SUCCEEDED and its confirmation was lost: it may be on the pending certificate, which the
    rotation function would refuse a new job's CSR from. Resuming its job retires that certificate first."""
    for serial in ("TS-000001", "TS-000002"):
        fleet.provision(serial)
    job_id = f"{BASE}-rotate-20250101000000"
    rotation_job(fleet, job_id, "TS-000001", timeoutConfig={"inProgressTimeoutInMinutes": 30})
    pending = begin_rotation(fleet, "TS-000001", job_id, minutes_ago=45)
    report(job_id, "TS-000001", "SUCCEEDED")

    targets, skipped = selected(fleet, "--type", "temperature-sensor")
    assert targets == ["TS-000002"]
    assert skipped["TS-000001"].startswith(f"pending certificate {pending} of job {job_id} not confirmed")

    [resumed] = fleet.run_json("rotate", "resume", job_id, "--yes")["jobs"]
    assert resumed["serials"] == ["TS-000001"]
    assert Attr.PENDING_CERTIFICATE_ID not in fleet.item("TS-000001")


def test_the_jobs_of_another_stack_or_operation_do_not_hold_devices_back(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.iot.create_job(
        jobId="firmware-update-1", targets=[thing_arn("TS-000001")], document="{}", targetSelection="SNAPSHOT"
    )
    fleet.iot.create_job(
        jobId="other-stack-rotate-20260101000000-abcd",
        targets=[thing_arn("TS-000001")],
        document="{}",
        targetSelection="SNAPSHOT",
    )

    assert selected(fleet, "TS-000001") == (["TS-000001"], {})


def test_nothing_to_rotate_creates_nothing_and_asks_nothing(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.run_json("revoke", "TS-000001", "--reason", "stolen")

    result = fleet.run("rotate", "start", "TS-000001")

    assert result.exit_code == ExitCode.OK
    assert "no device to rotate" in result.stdout
    assert jobs(fleet) == []


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["start", "--older-than", "-1", "--yes"], "--older-than"),
        (["start", "--older-than", "soon", "--yes"], "--older-than"),
        (["start", "TS 1", "--yes"], "SERIAL"),
        (["start", "--type", "gateway", "--key-algorithm", "DSA", "--yes"], "--key-algorithm"),
        (["resume", "not a job", "--yes"], "JOB_ID"),
        (["start", "--type", "gateway", "--end-after", "20m", "--yes"], "--end-after"),
        (["start", "--type", "gateway", "--end-after", "0h", "--yes"], "expected from 1h to 730d"),
        (["resume", "job-1", "--end-after", "731d", "--yes"], "expected from 1h to 730d"),
        (["status", "x" * 65], "JOB_ID"),
        (["start", "--yes"], "SERIAL, --type TYPE, --older-than DAYS and/or --file PATH"),
        # What each sub-command does not take is Click's usage error: "No such option".
        (["status", "job-1", "--type", "gateway"], "No such option: --type"),
        (["resume", "job-1", "--key-algorithm", "RSA-2048", "--yes"], "No such option: --key-algorithm"),
        (["status", "job-1", "--yes", "--rate", "CreateJob=2"], "No such option: --yes"),
        (["status", "job-1", "--rate", "CreateJob=2"], "No such option: --rate"),
        (
            ["start", "--type", "gateway", "--rate", "UpdateCertificate=5", "--yes"],
            "'UpdateCertificate=5': expected",
        ),
        (["resume", "job-1", "--rate", "UpdateCertificate=5", "--yes"], "'UpdateCertificate=5': expected"),
        (
            ["start", "--type", "gateway", "--rate", "CreateJob=0", "--yes"],
            "'CreateJob=0': PER_SECOND",
        ),
    ],
)
def test_bad_arguments_are_usage_errors_that_name_the_argument(
    fleet: Fleet, args: list[str], named: str
) -> None:
    result = fleet.run("rotate", *args)

    assert result.exit_code == ExitCode.USAGE, result.output
    assert named.lower() in result.stderr.lower()
    assert jobs(fleet) == []


def test_bad_lines_of_the_file_are_reported_by_number_and_nothing_is_done(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    path = serials_file(fleet, "TS-000001", "TS 000002", "", "TS-000003;rm")

    result = fleet.run("rotate", "start", "--file", str(path), "--yes")

    assert result.exit_code == ExitCode.USAGE
    assert f"--file {path} line 2: 'TS 000002' is not a serial number" in result.stderr
    assert f"--file {path} line 4: 'TS-000003;rm'" in result.stderr
    assert "line 1" not in result.stderr
    assert jobs(fleet) == []


def test_an_unknown_serial_is_not_found(fleet: Fleet) -> None:
    result = fleet.run("rotate", "start", "TS-999999", "--yes")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert "TS-999999" in result.stderr
    assert jobs(fleet) == []


# --- resume and status ---------------------------------------------------------------------------------


def test_resume_targets_only_the_devices_not_rotated_still_active_and_not_rotated_since(fleet: Fleet) -> None:
    serials = ["TS-000001", "TS-000002", "TS-000003", "TS-000004", "TS-000005", "TS-000006", "TS-000007"]
    for serial in serials:
        fleet.provision(serial)
    rotation_job(fleet, f"{BASE}-rotate-20250101000000", *serials)
    report(f"{BASE}-rotate-20250101000000", "TS-000001", "FAILED", reason="new key lost")
    # SUCCEEDED, but the registry never heard the device confirm its new certificate: not rotated.
    report(f"{BASE}-rotate-20250101000000", "TS-000002", "SUCCEEDED")
    confirm_rotation(fleet, "TS-000007", f"{BASE}-rotate-20250101000000")
    report(f"{BASE}-rotate-20250101000000", "TS-000007", "SUCCEEDED")
    report(f"{BASE}-rotate-20250101000000", "TS-000003", "TIMED_OUT")
    report(f"{BASE}-rotate-20250101000000", "TS-000004", "FAILED")
    fleet.run_json("revoke", "TS-000004", "--reason", "stolen")
    report(f"{BASE}-rotate-20250101000000", "TS-000005", "REJECTED")
    set_times(fleet, "TS-000005", rotatedAt=-0.01)  # rotated by another job after this one was created
    # TS-000006 is still QUEUED: its device has not taken the job yet.

    plan = fleet.run_json("rotate", "resume", f"{BASE}-rotate-20250101000000", "--dry-run")

    assert plan["resumedFrom"] == f"{BASE}-rotate-20250101000000"
    assert [row["serial"] for row in plan["targets"]] == ["TS-000001", "TS-000002", "TS-000003"]
    skipped = {row["serial"]: row["reason"] for row in plan["skipped"]}
    assert skipped["TS-000004"] == "REVOKED; only ACTIVE devices rotate"
    assert skipped["TS-000005"].startswith("rotated since the job was created")
    assert set(skipped) == {"TS-000004", "TS-000005"}

    done = fleet.run_json("rotate", "resume", f"{BASE}-rotate-20250101000000", "--yes")
    [resumed] = done["jobs"]
    assert resumed["jobId"] != f"{BASE}-rotate-20250101000000"
    job = fleet.iot.describe_job(jobId=resumed["jobId"])["job"]
    assert sorted(job["targets"]) == [thing_arn("TS-000001"), thing_arn("TS-000002"), thing_arn("TS-000003")]
    document = json.loads(fleet.iot.get_job_document(jobId=resumed["jobId"])["document"])
    assert document == {"operation": "rotate-certificate", "keyAlgorithm": "RSA-2048"}


def test_resume_leaves_out_a_failed_device_a_newer_unfinished_job_asked(fleet: Fleet) -> None:
    for serial in ("TS-000001", "TS-000002"):
        fleet.provision(serial)
    rotation_job(fleet, f"{BASE}-rotate-20250101000000", "TS-000001", "TS-000002")
    for serial in ("TS-000001", "TS-000002"):
        report(f"{BASE}-rotate-20250101000000", serial, "FAILED")
    [newer] = fleet.run_json("rotate", "start", "TS-000001", "--yes")["jobs"]

    plan = fleet.run_json("rotate", "resume", f"{BASE}-rotate-20250101000000", "--dry-run")

    assert [row["serial"] for row in plan["targets"]] == ["TS-000002"]
    assert plan["skipped"] == [
        {
            "serial": "TS-000001",
            "reason": f"asked by job {newer['jobId']}, not finished (see rotate status)",
        }
    ]


def test_resume_refuses_a_job_that_is_not_a_rotation_and_a_job_that_does_not_exist(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.iot.create_job(
        jobId="firmware-update-7",
        targets=[thing_arn("TS-000001")],
        document=json.dumps({"operation": "install", "url": "https://example.com/fw.bin"}),
    )

    other = fleet.run("rotate", "resume", "firmware-update-7", "--yes")
    assert other.exit_code == ExitCode.USAGE
    assert "'firmware-update-7' is not a certificate rotation job" in other.stderr

    missing = fleet.run("rotate", "resume", "no-such-job", "--yes")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert "no-such-job" in missing.stderr
    assert jobs(fleet) == ["firmware-update-7"]


def test_status_counts_executions_and_lists_the_devices_not_rotated_with_their_reason(fleet: Fleet) -> None:
    serials = ("TS-000001", "TS-000002", "TS-000003", "TS-000004", "TS-000005")
    for serial in serials:
        fleet.provision(serial)
    job_id = f"{BASE}-rotate-20250101000000"
    rotation_job(fleet, job_id, *serials)
    report(job_id, "TS-000001", "FAILED", reason="new key lost")
    pending = begin_rotation(fleet, "TS-000002", job_id)
    report(job_id, "TS-000002", "SUCCEEDED")  # its confirmation never reached the registry
    report(job_id, "TS-000003", "TIMED_OUT")
    confirm_rotation(fleet, "TS-000005", job_id)
    report(job_id, "TS-000005", "SUCCEEDED")

    status = fleet.run_json("rotate", "status", job_id)

    assert {name: count for name, count in status["executions"].items() if count} == {
        "QUEUED": 1,
        "SUCCEEDED": 2,
        "FAILED": 1,
        "TIMED_OUT": 1,
    }
    assert {name: count for name, count in status["outcomes"].items() if count} == {
        "rotated": 1,
        "unconfirmed": 1,
        "failed": 1,
        "ended-unfinished": 1,
        "waiting": 1,
    }
    assert (status["ended"], status["endTime"]) == (False, None)  # created without an end, as before
    assert status["notRotated"] == [
        {
            "serial": "TS-000001",
            "thingName": thing_name(BASE, "TS-000001"),
            "status": "FAILED",
            "outcome": "failed",
            "reason": "new key lost",
            "pendingCertificateId": None,
        },
        {
            "serial": "TS-000002",
            "thingName": thing_name(BASE, "TS-000002"),
            "status": "SUCCEEDED",
            "outcome": "unconfirmed",
            "reason": "",
            "pendingCertificateId": pending,
        },
        {
            "serial": "TS-000003",
            "thingName": thing_name(BASE, "TS-000003"),
            "status": "TIMED_OUT",
            "outcome": "ended-unfinished",
            "reason": "",
            "pendingCertificateId": None,
        },
    ]
    table = fleet.run("rotate", "status", job_id)
    assert table.exit_code == ExitCode.OK
    assert "new key lost" in table.stdout
    assert jobs(fleet) == [job_id]


def test_end_after_sets_each_jobs_end_resumed_ones_included(fleet: Fleet) -> None:
    fleet.provision("TS-000001")

    [first] = fleet.run_json("rotate", "start", "TS-000001", "--end-after", "36h", "--yes")["jobs"]
    report(first["jobId"], "TS-000001", "FAILED")
    [second] = fleet.run_json("rotate", "resume", first["jobId"], "--end-after", "2d", "--yes")["jobs"]

    for job_id, hours in ((first["jobId"], 36), (second["jobId"], 48)):
        scheduling = fleet.iot.describe_job(jobId=job_id)["job"]["schedulingConfig"]
        end = datetime.strptime(scheduling["endTime"], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
        assert timedelta(hours=hours, minutes=-2) < end - datetime.now(UTC) <= timedelta(hours=hours)


def test_status_counts_executions_still_open_when_the_job_ended_as_ended_unfinished(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")
    job_id = f"{BASE}-rotate-20250101000000"
    ended = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    rotation_job(
        fleet,
        job_id,
        "TS-000001",
        "TS-000002",
        schedulingConfig={"endTime": ended, "endBehavior": "STOP_ROLLOUT"},
    )
    report(job_id, "TS-000002", "IN_PROGRESS")

    status = fleet.run_json("rotate", "status", job_id)

    assert status["ended"] is True
    assert {name: count for name, count in status["outcomes"].items() if count} == {"ended-unfinished": 2}
    assert [row["serial"] for row in status["notRotated"]] == ["TS-000001", "TS-000002"]
    plan = fleet.run_json("rotate", "resume", job_id, "--dry-run")
    assert [row["serial"] for row in plan["targets"]] == ["TS-000001", "TS-000002"]


def test_resume_retires_the_jobs_pending_certificates_left_past_its_in_progress_timeout(fleet: Fleet) -> None:
    serials = ("TS-000001", "TS-000002", "TS-000003")
    for serial in serials:
        fleet.provision(serial)
    job_id = f"{BASE}-rotate-20250101000000"
    rotation_job(fleet, job_id, *serials, timeoutConfig={"inProgressTimeoutInMinutes": 30})
    lost = begin_rotation(fleet, "TS-000001", job_id, minutes_ago=45)
    report(job_id, "TS-000001", "SUCCEEDED")  # the device's confirmation was lost on the way
    begin_rotation(fleet, "TS-000002", job_id, minutes_ago=10)
    report(job_id, "TS-000002", "SUCCEEDED")  # its confirmation may still be on its way
    other = begin_rotation(fleet, "TS-000003", "another-job", minutes_ago=45)
    report(job_id, "TS-000003", "TIMED_OUT")

    plan = fleet.run_json("rotate", "resume", job_id, "--dry-run")
    assert plan["stalePending"] == [{"serial": "TS-000001", "certificateId": lost}]
    assert fleet.item("TS-000001")[Attr.PENDING_CERTIFICATE_ID] == lost  # a dry run changes nothing

    done = fleet.run_json("rotate", "resume", job_id, "--yes")

    [job] = done["jobs"]
    # TS-000002 may be on its new certificate, whose confirmation may still come: a new job now would find
    # it on a certificate the registry does not call current, and its CSR refused. It is asked once the
    # timeout has passed (a resume then retires that certificate).
    assert job["serials"] == ["TS-000001", "TS-000003"]
    waiting = {row["serial"]: row["reason"] for row in done["skipped"]}
    assert waiting["TS-000002"].startswith("reported SUCCEEDED and may still confirm its new certificate")
    retired = fleet.item("TS-000001")
    assert Attr.PENDING_CERTIFICATE_ID not in retired  # the registry's stream revokes and detaches it
    assert retired[Attr.ROTATION_FAILURE_REASON] == rotation_jobs.STALE_PENDING_REASON
    assert fleet.item("TS-000002")[Attr.PENDING_CERTIFICATE_ID] != lost
    assert fleet.item("TS-000003")[Attr.PENDING_CERTIFICATE_ID] == other
    # The device can rotate again: a CSR of the new job, with its current certificate, begins a rotation.
    records = OperatorRecords(fleet.dynamodb, TABLE_NAME)
    assert records.begin_rotation(retired, certificate_id("again"), job["jobId"])


# --- what other commands see of a rotation -------------------------------------------------------------


def test_revoke_during_a_rotation_revokes_the_pending_certificate_too(fleet: Fleet) -> None:
    current = fleet.provision("TS-000001")
    pending = fleet.iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
    records = OperatorRecords(fleet.dynamodb, TABLE_NAME)
    assert records.begin_rotation(fleet.item("TS-000001"), pending, "job-1")  # not attached to the thing yet

    steps = fleet.run_json("revoke", "TS-000001", "--reason", "stolen")["steps"]

    assert {"action": "revoke-certificate", "target": pending} in steps
    assert fleet.certificate(pending)["status"] == "REVOKED"
    assert fleet.certificate(current)["status"] == "REVOKED"


def test_show_prints_the_rotation_facts_of_the_registry_item(fleet: Fleet) -> None:
    fleet.provision("TS-000001")
    pending = fleet.iot.create_keys_and_certificate(setAsActive=False)["certificateId"]
    records = OperatorRecords(fleet.dynamodb, TABLE_NAME)
    assert records.begin_rotation(fleet.item("TS-000001"), pending, "job-1")
    assert records.abandon_rotation(fleet.item("TS-000001"), "device lost its new key") is not None

    shown = fleet.run("show", "TS-000001")

    assert shown.exit_code == ExitCode.OK
    for fact in (Attr.ROTATION_FAILURE_REASON, Attr.ROTATION_JOB_ID, "device lost its new key"):
        assert fact in shown.stdout
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.ACTIVE


def test_rotate_paces_what_it_asks_aws_iot(fleet: Fleet, paced: list[str]) -> None:
    fleet.provision("TS-000001")
    fleet.run_json("rotate", "start", "TS-000001", "--yes")
    fleet.provision("TS-000002")

    fleet.run_json("rotate", "start", "--type", "temperature-sensor", "--yes", "--rate", "CreateJob=5")

    assert paced == ["ListJobs", "CreateJob", "ListJobs", "ListJobExecutionsForJob", "CreateJob"]
    assert set(paced) == pacing.ROTATION_APIS  # what --rate takes for rotate
