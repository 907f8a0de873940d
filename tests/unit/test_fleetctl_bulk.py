"""fleetctl revoke and decommission of selected devices on moto: each selector alone and combined and the
registry read behind it, dry runs, confirmation, an interrupted run finished by a re-run, and the pacing
to AWS IoT's rates (a token bucket tested on an injected clock)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from fleetctl import bulk, pacing, selection
from fleetctl.errors import ExitCode
from hook.contract import Attr, DeviceStatus, thing_name
from hook.registry_items import timestamp
from tests.support import (
    BASE,
    TABLE_NAME,
    Fleet,
    add_claim_generations,
    before_every_call,
    rows,
)

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")


def approved_days_ago(fleet: Fleet, serial: str, days: float) -> None:
    moment = timestamp(datetime.now(UTC) - timedelta(days=days))
    fleet.dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"serialNumber": {"S": serial}},
        UpdateExpression="SET approvedAt = :approved",
        ExpressionAttributeValues={":approved": {"S": moment}},
    )


def serials_file(fleet: Fleet, *lines: str) -> Path:
    path = fleet.tmp_path / "serials.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def would_revoke(fleet: Fleet, *args: str) -> tuple[list[str], dict[str, str]]:
    """The serials a dry run of ``revoke`` would change, and the skipped ones with why."""
    report = fleet.run_json("revoke", *args, "--reason", "recall", "--dry-run")
    assert report["counts"]["dryRun"] is True
    devices = report["devices"]
    changed = sorted(row["serial"] for row in devices if row["action"] != "skip")
    return changed, {row["serial"]: row["reason"] for row in devices if row["action"] == "skip"}


def fully_revoked(fleet: Fleet, serial: str, certificate_id: str) -> bool:
    item = fleet.item(serial)
    return (
        item[Attr.STATUS] == DeviceStatus.REVOKED
        and Attr.CERTIFICATES_REVOKED_AT in item
        and fleet.certificate(certificate_id)["status"] == "REVOKED"
        and fleet.policies(certificate_id) == []
        and fleet.thing_principals(serial) == []
    )


# --- selectors -------------------------------------------------------------------------------------------


def test_type_selects_through_the_type_index(fleet: Fleet, aws_operations: list[str]) -> None:
    fleet.provision("TS-000001")
    fleet.provision("GW-ABCD", device_type="gateway")
    fleet.provision("GW-EFGH", device_type="gateway")
    aws_operations.clear()

    assert would_revoke(fleet, "--type", "gateway") == (["GW-ABCD", "GW-EFGH"], {})
    assert set(aws_operations) == {"Query"}  # the type's shards; a dry run asks AWS IoT nothing


def test_claim_generation_selects_the_devices_approved_through_it(
    fleet: Fleet, aws_operations: list[str]
) -> None:
    second = add_claim_generations(fleet)
    fleet.provision("TS-000001")
    fleet.provision("TS-000002", claim=second)
    fleet.provision("GW-ABCD", device_type="gateway", claim=second)
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000003"))))
    aws_operations.clear()

    assert would_revoke(fleet, "--claim-generation", "2026-b") == (["GW-ABCD", "TS-000002"], {})
    assert set(aws_operations) == {"Scan"}  # no index is keyed by claim certificate: a filtered scan
    assert would_revoke(fleet, "--claim-generation", "2025-a") == (["TS-000001"], {})
    assert would_revoke(fleet, "--claim-generation", "2026-b", "--type", "gateway") == (["GW-ABCD"], {})


def test_an_unknown_claim_generation_is_a_usage_error_listing_the_known_ones(fleet: Fleet) -> None:
    result = fleet.run("revoke", "--claim-generation", "2024", "--reason", "recall", "--yes")
    assert result.exit_code == ExitCode.USAGE
    assert "claimCertificateIds" in result.stderr  # the fixture's outputs have none

    add_claim_generations(fleet)
    result = fleet.run("revoke", "--claim-generation", "2024", "--reason", "recall", "--yes")
    assert result.exit_code == ExitCode.USAGE
    assert (
        "--claim-generation '2024' is not a claim generation; expected one of 2025-a, 2026-b" in result.stderr
    )


def test_provisioned_before_selects_by_approval_time_in_utc(fleet: Fleet) -> None:
    for serial, days in (("TS-000001", 40), ("TS-000002", 10), ("TS-000003", 0)):
        fleet.provision(serial)
        approved_days_ago(fleet, serial, days)
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000004"))))  # never approved
    twenty_days_ago = (datetime.now(UTC) - timedelta(days=20)).date().isoformat()
    clock = f"{datetime.now(UTC) - timedelta(days=10) + timedelta(hours=1):%Y-%m-%dT%H:%M}"

    assert would_revoke(fleet, "--provisioned-before", twenty_days_ago) == (["TS-000001"], {})
    assert would_revoke(fleet, "--provisioned-before", clock)[0] == ["TS-000001", "TS-000002"]  # UTC
    # The same clock time two hours east of UTC is an hour before TS-000002's approval.
    assert would_revoke(fleet, "--provisioned-before", f"{clock}+02:00")[0] == ["TS-000001"]


def test_a_bad_date_names_the_option_and_the_expected_form(fleet: Fleet) -> None:
    result = fleet.run("revoke", "--provisioned-before", "last spring", "--reason", "recall", "--yes")

    assert result.exit_code == ExitCode.USAGE
    assert "--provisioned-before" in result.stderr
    assert "ISO date (2025-06-30)" in result.stderr


def test_a_file_is_read_by_batch_get_and_its_unknown_or_mismatching_serials_are_skipped_with_why(
    fleet: Fleet, aws_operations: list[str]
) -> None:
    fleet.provision("TS-000001")
    fleet.provision("GW-ABCD", device_type="gateway")
    path = serials_file(fleet, "TS-000001", "GW-ABCD", "TS-000009", "TS-000001", "")
    aws_operations.clear()

    assert would_revoke(fleet, "--file", str(path)) == (
        ["GW-ABCD", "TS-000001"],
        {"TS-000009": "not in the registry"},
    )
    assert set(aws_operations) == {"BatchGetItem"}
    assert would_revoke(fleet, "--file", str(path), "--type", "gateway") == (
        ["GW-ABCD"],
        {"TS-000001": "type temperature-sensor, not gateway", "TS-000009": "not in the registry"},
    )


def test_selectors_combine_as_an_intersection(fleet: Fleet) -> None:
    second = add_claim_generations(fleet)
    for serial, device_type, claim, days in (
        ("GW-AAAA", "gateway", second, 40),
        ("GW-BBBB", "gateway", second, 1),
        ("GW-CCCC", "gateway", None, 40),
        ("TS-000001", "temperature-sensor", second, 40),
    ):
        fleet.provision(serial, device_type=device_type, claim=claim)
        approved_days_ago(fleet, serial, days)
    before = (datetime.now(UTC) - timedelta(days=20)).date().isoformat()
    path = serials_file(fleet, "GW-AAAA", "GW-BBBB", "GW-CCCC", "TS-000001")
    everything = ("--type", "gateway", "--claim-generation", "2026-b", "--provisioned-before", before)

    assert would_revoke(fleet, *everything) == (["GW-AAAA"], {})
    changed, skipped = would_revoke(fleet, *everything, "--file", str(path))
    assert changed == ["GW-AAAA"]
    assert skipped["GW-BBBB"].startswith("approved ") and "not before" in skipped["GW-BBBB"]
    assert (
        skipped["GW-CCCC"]
        == f"approved through claim certificate {fleet.claim_certificate_id}, not generation 2026-b"
    )
    assert skipped["TS-000001"] == "type temperature-sensor, not gateway"
    assert would_revoke(fleet, "GW-AAAA", "--file", str(path), "--type", "gateway") == (["GW-AAAA"], {})


def test_no_selector_is_a_usage_error(fleet: Fleet) -> None:
    result = fleet.run("revoke", "--reason", "recall", "--yes")

    assert result.exit_code == ExitCode.USAGE
    assert "name the devices" in result.stderr


# --- dry run, confirmation, a real run -------------------------------------------------------------------


def test_a_dry_run_lists_what_would_change_and_changes_nothing(fleet: Fleet) -> None:
    certificates = {serial: fleet.provision(serial) for serial in ("TS-000001", "TS-000002")}
    fleet.run_json("revoke", "TS-000002", "--reason", "stolen")
    before = fleet.registry()

    report = fleet.run_json("revoke", "--type", "temperature-sensor", "--reason", "recall", "--dry-run")

    assert report["devices"] == [{"serial": "TS-000001", "status": "ACTIVE", "action": "revoke"}]
    assert report["counts"] == {"dryRun": True, "toChange": 1, "alreadyDone": 1, "skipped": 0, "error": None}
    assert fleet.registry() == before
    assert fleet.certificate(certificates["TS-000001"])["status"] == "ACTIVE"
    table = fleet.run("decommission", "--type", "temperature-sensor", "--dry-run")
    assert table.exit_code == ExitCode.OK
    assert "TS-000001: ACTIVE: would decommission" in table.stdout
    assert "TS-000002: REVOKED: would decommission" in table.stdout
    assert "dry run: decommission would change 2 device(s)" in table.stdout
    assert fleet.registry() == before


def test_a_declined_confirmation_changes_nothing(fleet: Fleet) -> None:
    certificate_id = fleet.provision("TS-000001")
    fleet.provision("TS-000002")
    before = fleet.registry()

    declined = fleet.run("revoke", "--type", "temperature-sensor", "--reason", "recall", input="n\n")

    assert declined.exit_code == ExitCode.ABORTED
    assert "Revoke 2 device(s)?" in declined.stderr
    assert "nothing was changed" in declined.stderr
    assert fleet.registry() == before
    assert fleet.certificate(certificate_id)["status"] == "ACTIVE"


def test_yes_revokes_every_selected_device_and_a_second_run_has_nothing_left(fleet: Fleet) -> None:
    certificates = {serial: fleet.provision(serial) for serial in ("TS-000001", "TS-000002", "TS-000003")}
    fleet.provision("GW-ABCD", device_type="gateway")

    report = fleet.run_json("revoke", "--type", "temperature-sensor", "--reason", "recall", "--yes")

    assert [row["serial"] for row in report["devices"]] == sorted(certificates)
    assert [step["action"] for step in report["devices"][0]["steps"]] == [
        "registry-revoked",
        "revoke-certificate",
        "detach-policy",
        "detach-thing-principal",
    ]
    assert report["counts"] == {"dryRun": False, "changed": 3, "alreadyDone": 0, "skipped": 0, "error": None}
    assert all(fully_revoked(fleet, serial, certificate) for serial, certificate in certificates.items())
    assert fleet.item("TS-000001")[Attr.REVOCATION_REASON] == "recall"
    assert fleet.item("GW-ABCD")[Attr.STATUS] == DeviceStatus.ACTIVE

    again = fleet.run_json("revoke", "--type", "temperature-sensor", "--reason", "recall", "--yes")
    assert again["devices"] == []
    assert again["counts"]["alreadyDone"] == 3


def test_an_accepted_confirmation_proceeds(fleet: Fleet) -> None:
    certificate_id = fleet.provision("TS-000001")

    accepted = fleet.run("revoke", "--type", "temperature-sensor", "--reason", "recall", input="y\n")

    assert accepted.exit_code == ExitCode.OK, accepted.output
    assert "revoke: 1 device(s) changed" in accepted.stdout
    assert fully_revoked(fleet, "TS-000001", certificate_id)


def test_a_single_serial_is_not_asked_about(fleet: Fleet) -> None:
    fleet.provision("TS-000001")

    result = fleet.run("revoke", "TS-000001", "--reason", "stolen")  # no input: a question would abort

    assert result.exit_code == ExitCode.OK, result.output
    assert fleet.item("TS-000001")[Attr.CERTIFICATES_REVOKED_AT]


def test_pre_registered_devices_are_revoked_in_the_registry_without_asking_aws_iot(
    fleet: Fleet, aws_operations: list[str]
) -> None:
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000001", "TS-000002"))))
    aws_operations.clear()

    report = fleet.run_json("revoke", "--type", "temperature-sensor", "--reason", "batch recalled", "--yes")

    assert report["counts"]["changed"] == 2
    assert {operation for operation in aws_operations} == {"Query", "UpdateItem"}
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.REVOKED


def test_bulk_decommission_deletes_the_things_and_skips_what_is_done(fleet: Fleet) -> None:
    for serial in ("TS-000001", "TS-000002"):
        fleet.provision(serial)
    fleet.run_json("decommission", "TS-000002")

    report = fleet.run_json("decommission", "--type", "temperature-sensor", "--yes")

    assert [row["serial"] for row in report["devices"]] == ["TS-000001"]
    assert report["devices"][0]["steps"][-2:] == [
        {"action": "delete-thing", "target": thing_name(BASE, "TS-000001")},
        {"action": "registry-decommissioned", "target": "TS-000001"},
    ]
    assert report["counts"]["alreadyDone"] == 1
    assert fleet.iot.list_things()["things"] == []
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.DECOMMISSIONED


# --- an interrupted run, and the re-run that finishes it --------------------------------------------------


def test_a_rerun_after_an_interruption_finishes_every_device_without_redoing_the_finished_ones(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    serials = [f"TS-{number:06d}" for number in range(1, 13)]
    certificates = {serial: fleet.provision(serial) for serial in serials}
    calls: list[str] = []
    operations: list[str] = []
    failing = {"after": 4}
    lock = threading.Lock()

    def fail_after_k_devices(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        with lock:
            operations.append(model.name)
            if model.name != "UpdateCertificate":
                return None
            calls.append(model.name)
            if len(calls) != failing["after"] + 1:
                return None
        error = {"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}
        return AWSResponse("https://injected/UpdateCertificate", 400, HTTPHeaders(), None), error

    before_every_call(monkeypatch, fail_after_k_devices)
    monkeypatch.setattr(bulk, "WORKERS", 2)  # at most 4 devices in flight: the failure stops the others
    arguments = ("revoke", "--type", "temperature-sensor", "--reason", "recall", "--yes")

    interrupted = fleet.run(*arguments)

    assert interrupted.exit_code == ExitCode.AWS
    assert "a re-run with the same selectors finishes the job" in interrupted.stderr
    assert "UpdateCertificate" in interrupted.stderr
    unfinished = [serial for serial in serials if not fully_revoked(fleet, serial, certificates[serial])]
    # The device that failed is REVOKED (the hook denies it) but its certificate is not: a re-run that
    # selected only the devices not yet REVOKED would leave it so.
    half_done = [
        serial
        for serial in unfinished
        if fleet.item(serial)[Attr.STATUS] == DeviceStatus.REVOKED
        and fleet.certificate(certificates[serial])["status"] == "ACTIVE"
    ]
    assert half_done
    assert 4 <= len(serials) - len(unfinished) <= 4 + 2 * 2
    never_started = [
        serial for serial in unfinished if fleet.item(serial)[Attr.STATUS] == DeviceStatus.ACTIVE
    ]
    assert never_started

    operations.clear()
    finished = fleet.run_json(*arguments)

    assert sorted(row["serial"] for row in finished["devices"]) == unfinished
    assert finished["counts"]["alreadyDone"] == len(serials) - len(unfinished)
    assert all(fully_revoked(fleet, serial, certificates[serial]) for serial in serials)
    assert {row["action"] for row in finished["devices"] if row["serial"] in half_done} == {
        "finish-revocation"
    }
    # Finished devices are skipped on their registry record: AWS IoT is asked about the others only.
    assert operations.count("DescribeCertificate") == len(unfinished)
    assert operations.count("ListThingPrincipals") == len(unfinished)


# --- pacing ---------------------------------------------------------------------------------------------


class FakeClock:
    """A clock that only moves when told to, and a sleep that records how long it was asked to sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def most_in_any_window(moments: list[float], window: float) -> int:
    ordered = sorted(moments)
    return max(
        sum(1 for other in ordered[index:] if other < start + window) for index, start in enumerate(ordered)
    )


@pytest.mark.parametrize(("rate", "burst"), [(10.0, 1.0), (3.0, 1.0), (100.0, 5.0)])
def test_the_token_bucket_never_exceeds_its_rate(rate: float, burst: float) -> None:
    clock = FakeClock()
    bucket = pacing.TokenBucket(rate, burst=burst, clock=clock, sleep=clock.sleep)
    moments = []
    for number in range(200):
        if number % 7 == 0:
            clock.now += 0.013 * number  # the caller pauses now and then
        bucket.take()
        moments.append(clock.now)

    for window in (1 / rate, 0.5, 1.0, 2.0):
        assert most_in_any_window(moments, window) <= burst + rate * window + 1e-9
    assert clock.slept  # it did have to wait


def test_the_token_bucket_shared_by_threads_spaces_their_takes() -> None:
    clock = FakeClock()  # frozen: every take is reserved against the same instant
    bucket = pacing.TokenBucket(10, clock=clock, sleep=lambda _: None)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        waited = bucket.take()
        with lock:
            waits.append(waited)

    threads = [threading.Thread(target=take) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    moments = [clock.now + wait for wait in waits]
    assert most_in_any_window(moments, 1.0) <= 1 + 10
    assert sorted(waits) == pytest.approx([number / 10 for number in range(40)])


def test_the_pacer_keeps_a_bucket_per_operation_at_its_rate() -> None:
    clock = FakeClock()
    pacer = pacing.Pacer(
        {"UpdateCertificate": 10, "DeleteThing": 100}, default=1, clock=clock, sleep=clock.sleep
    )

    for _ in range(5):
        pacer.take("UpdateCertificate")
        pacer.take("DeleteThing")
    assert clock.now - 1000.0 == pytest.approx(0.4)  # 4 waits of 1/10 s; DeleteThing's tokens came meanwhile
    assert pacer.take("SomethingElse") == 0
    assert pacer.take("SomethingElse") == pytest.approx(1.0)


def test_every_aws_iot_call_of_a_bulk_run_goes_through_the_pacer_and_has_a_documented_rate(
    fleet: Fleet, paced: list[str]
) -> None:
    fleet.provision("TS-000001")
    fleet.provision("TS-000002")

    fleet.run_json("decommission", "--type", "temperature-sensor", "--yes")

    assert set(paced) == pacing.LIFECYCLE_APIS  # what --rate takes for revoke and decommission
    assert set(paced) <= set(pacing.IOT_RATES)  # each with its documented rate
    assert paced.count("UpdateCertificate") == 2


def test_paced_seconds_is_set_by_the_slowest_operation() -> None:
    assert pacing.paced_seconds({"UpdateCertificate": 1000, "DeleteThing": 1000}) == pytest.approx(100)
    assert pacing.paced_seconds({}) == 0


def test_parse_moment_reads_dates_and_times_in_utc() -> None:
    assert selection.parse_moment("2025-06-30") == datetime(2025, 6, 30, tzinfo=UTC)
    assert selection.parse_moment("2025-06-30T12:00") == datetime(2025, 6, 30, 12, tzinfo=UTC)
    assert selection.parse_moment("2025-06-30T12:00+02:00") == datetime(2025, 6, 30, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="expected an ISO date"):
        selection.parse_moment("30/06/2025")


def test_own_rates_replace_the_defaults_of_the_apis_they_name() -> None:
    rates = pacing.own_rates(["UpdateCertificate=40", " DeleteThing =2.5"], pacing.LIFECYCLE_APIS)
    pacer = pacing.aws_iot_pacer(rates)

    pacer.take("UpdateCertificate")
    pacer.take("DescribeCertificate")
    raised = pacer.take("UpdateCertificate")  # due 1/40 s after the first
    default = pacer.take("DescribeCertificate")  # due 1/10 s after the first

    assert 0 < raised <= 1 / 40
    assert 1 / 40 < default <= 1 / 10
    assert rates == {"UpdateCertificate": 40.0, "DeleteThing": 2.5}


def test_a_bulk_run_is_paced_at_the_rates_given(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    certificate = fleet.provision("TS-000001")
    paced_at: list[dict[str, float] | None] = []
    original = pacing.aws_iot_pacer

    def recording(own_rates: dict[str, float] | None = None) -> pacing.Pacer:
        paced_at.append(own_rates)
        return original(own_rates)

    monkeypatch.setattr(pacing, "aws_iot_pacer", recording)

    fleet.run_json(
        "revoke",
        "--type",
        "temperature-sensor",
        "--reason",
        "recall",
        "--yes",
        "--rate",
        "UpdateCertificate=20",
    )

    assert paced_at == [{"UpdateCertificate": 20.0}]
    assert fully_revoked(fleet, "TS-000001", certificate)


def unboxed(text: str) -> str:
    """Click's error as one line: Rich draws it in a box and wraps it at the terminal's width."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        (
            ["UpdateCertificates=20"],
            "'UpdateCertificates=20': expected API=PER_SECOND, API one of DeleteThing, DescribeCertificate, "
            "DetachPolicy, DetachThingPrincipal, ListAttachedPolicies, ListThingPrincipals, UpdateCertificate",
        ),
        (["CreateJob=5"], "'CreateJob=5': expected API=PER_SECOND, API one of DeleteThing,"),  # rotate's
        (["UpdateCertificate"], "'UpdateCertificate': expected API=PER_SECOND"),
        (["UpdateCertificate=0"], "'UpdateCertificate=0': PER_SECOND must be a number of at least 0.1"),
        (["UpdateCertificate=0.05"], "PER_SECOND must be a number of at least 0.1"),
        (["UpdateCertificate=-5"], "PER_SECOND must be a number of at least 0.1"),
        (["UpdateCertificate=fast"], "must be a number of at least 0.1, as in UpdateCertificate=20"),
        (["UpdateCertificate=inf"], "PER_SECOND must be a number of at least 0.1"),
        (["UpdateCertificate=nan"], "PER_SECOND must be a number of at least 0.1"),
        (["DeleteThing=50", "DeleteThing=60"], "'DeleteThing=60': DeleteThing is given twice"),
    ],
)
def test_a_bad_rate_is_a_usage_error_naming_it_and_nothing_is_changed(
    fleet: Fleet, rates: list[str], message: str
) -> None:
    certificate = fleet.provision("TS-000001")
    options = [option for rate in rates for option in ("--rate", rate)]

    result = fleet.run("decommission", "--type", "temperature-sensor", "--yes", *options)

    assert result.exit_code == ExitCode.USAGE, result.output
    assert "--rate" in result.stderr
    assert message in unboxed(result.stderr)
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.ACTIVE
    assert fleet.certificate(certificate)["status"] == "ACTIVE"
