"""fleetctl teardown on moto: what a `pulumi destroy` would trip on is gone afterwards (device policies
attached to nothing, thing types without things), the stack's own claim certificate is left to the destroy,
a re-run finishes an interrupted run, and the confirmation, dry run and wait."""

from __future__ import annotations

import pytest

from components.documents import fleet_group_name
from fleetctl.context import StackContext
from fleetctl.errors import ExitCode
from fleetctl.stack_teardown import Remaining, StackScope, Teardown
from hook.contract import Attr, DeviceStatus, device_type_resource_name, thing_name
from tests.support import BASE, CLAIM_POLICY, Fleet, fail_once, rows

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")

SENSORS = device_type_resource_name(BASE, "temperature-sensor")
"""The policy and thing type of the devices these tests provision."""


def provision(fleet: Fleet, serial: str) -> str:
    """A device as the template leaves it: its thing of its type's thing type; its certificate id."""
    certificate_id = fleet.provision(serial)
    if SENSORS not in {each["thingTypeName"] for each in fleet.iot.list_thing_types()["thingTypes"]}:
        fleet.iot.create_thing_type(thingTypeName=SENSORS)
    fleet.iot.update_thing(thingName=thing_name(BASE, serial), thingTypeName=SENSORS)
    return certificate_id


def targets(fleet: Fleet, policy: str = SENSORS) -> list[str]:
    return list(fleet.iot.list_targets_for_policy(policyName=policy)["targets"])


def things_of_type(fleet: Fleet) -> list[str]:
    return [each["thingName"] for each in fleet.iot.list_things(thingTypeName=SENSORS)["things"]]


def test_teardown_decommissions_every_approved_device_and_leaves_the_claim_certificate(fleet: Fleet) -> None:
    certificates = [provision(fleet, serial) for serial in ("TS-000001", "TS-000002")]
    fleet.run_json("preregister", str(fleet.manifest(*rows("TS-000009"))))

    report = fleet.run_json("teardown", "--yes")

    assert report["deviceCounts"] == {
        "dryRun": False,
        "changed": 2,
        "alreadyDone": 0,
        "skipped": 1,
        "error": None,
    }
    assert report["remaining"] == {"policyTargets": {}, "things": {}, "groups": []}
    assert targets(fleet) == [] and things_of_type(fleet) == []
    for serial, certificate_id in zip(("TS-000001", "TS-000002"), certificates, strict=True):
        assert fleet.item(serial)[Attr.STATUS] == DeviceStatus.DECOMMISSIONED
        assert fleet.certificate(certificate_id)["status"] == "REVOKED"
    # Never approved: nothing of it in AWS IoT, and a retained registry keeps its manifest row.
    assert fleet.item("TS-000009")[Attr.STATUS] == DeviceStatus.PREREGISTERED
    # The claim certificate and its policy are the stack's own resources: the destroy deletes them.
    assert fleet.certificate(fleet.claim_certificate_id)["status"] == "ACTIVE"
    assert fleet.policies(fleet.claim_certificate_id) == [CLAIM_POLICY]


def test_a_rotation_in_progress_loses_its_pending_certificate_too(fleet: Fleet) -> None:
    current = provision(fleet, "TS-000001")
    pending = fleet.iot.create_keys_and_certificate(setAsActive=True)  # issued, attached, not yet confirmed
    fleet.iot.attach_policy(policyName=SENSORS, target=pending["certificateArn"])
    fleet.iot.attach_thing_principal(
        thingName=thing_name(BASE, "TS-000001"), principal=pending["certificateArn"]
    )
    fleet.dynamodb.update_item(
        TableName=fleet_table(fleet),
        Key={"serialNumber": {"S": "TS-000001"}},
        UpdateExpression="SET pendingCertificateId = :pending",
        ExpressionAttributeValues={":pending": {"S": pending["certificateId"]}},
    )

    report = fleet.run_json("teardown", "--yes")

    [row] = report["devices"]
    revoked = [step["target"] for step in row["steps"] if step["action"] == "revoke-certificate"]
    assert sorted(revoked) == sorted([current, pending["certificateId"]])
    assert report["policyTargets"] == []  # nothing was left for the last sweep
    assert targets(fleet) == [] and things_of_type(fleet) == []


def test_things_the_registry_no_longer_holds_and_kept_things_are_removed(fleet: Fleet) -> None:
    lost = provision(fleet, "TS-000001")
    kept = provision(fleet, "TS-000002")
    fleet.dynamodb.delete_item(TableName=fleet_table(fleet), Key={"serialNumber": {"S": "TS-000001"}})
    fleet.run_json("decommission", "TS-000002", "--keep-thing")

    report = fleet.run_json("teardown", "--yes")

    assert [row["serial"] for row in report["leftoverThings"]] == ["TS-000001", "TS-000002"]
    assert report["leftoverCounts"]["changed"] == 2
    assert things_of_type(fleet) == [] and targets(fleet) == []
    assert fleet.certificate(lost)["status"] == "REVOKED"
    assert fleet.certificate(kept)["status"] == "REVOKED"
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.DECOMMISSIONED


def test_a_thing_of_a_stack_type_not_named_by_the_stack_is_reported_and_left_alone(fleet: Fleet) -> None:
    provision(fleet, "TS-000001")
    fleet.iot.create_thing(thingName="bench-unit", thingTypeName=SENSORS)

    result = fleet.run("teardown", "--yes", "--wait", "0")

    assert result.exit_code == ExitCode.AWS
    assert f"thing type {SENSORS} has bench-unit" in result.stderr
    assert "not the stack's: delete it or remove its thing type" in result.stderr
    assert things_of_type(fleet) == ["bench-unit"]


def test_a_group_an_operator_made_under_the_fleet_group_is_reported_and_left_alone(fleet: Fleet) -> None:
    gateways = device_type_resource_name(BASE, "gateway")
    fleet.iot.create_thing_group(thingGroupName=f"{BASE}-fleet")
    fleet.iot.create_thing_group(thingGroupName=gateways, parentGroupName=f"{BASE}-fleet")
    fleet.iot.create_thing_group(thingGroupName="canary", parentGroupName=gateways)

    result = fleet.run("teardown", "--yes", "--wait", "0")

    assert result.exit_code == ExitCode.AWS
    assert f"thing group {BASE}-fleet has groups the stack did not make: canary" in result.stderr
    groups = fleet.iot.list_thing_groups(parentGroup=gateways)["thingGroups"]
    assert [group["groupName"] for group in groups] == ["canary"]


def test_what_only_a_device_policy_holds_is_released_and_a_claim_certificate_only_detached(
    fleet: Fleet,
) -> None:
    provision(fleet, "TS-000001")
    stray = fleet.iot.create_keys_and_certificate(setAsActive=True)  # a rotation's, its registry item lost
    fleet.iot.attach_policy(policyName=SENSORS, target=stray["certificateArn"])
    claim_arn = fleet.certificate(fleet.claim_certificate_id)["certificateArn"]
    fleet.iot.attach_policy(policyName=SENSORS, target=claim_arn)

    report = fleet.run_json("teardown", "--yes")

    released = {row["target"]: [step["action"] for step in row["steps"]] for row in report["policyTargets"]}
    assert released == {
        stray["certificateArn"]: ["revoke-certificate", "detach-policy"],
        claim_arn: ["detach-policy"],
    }
    assert targets(fleet) == []
    assert fleet.certificate(stray["certificateId"])["status"] == "REVOKED"
    assert fleet.certificate(fleet.claim_certificate_id)["status"] == "ACTIVE"
    assert fleet.policies(fleet.claim_certificate_id) == [CLAIM_POLICY]


def test_the_stacks_rotation_jobs_in_progress_are_cancelled_and_no_other_job(fleet: Fleet) -> None:
    provision(fleet, "TS-000001")
    thing_arn = fleet.iot.describe_thing(thingName=thing_name(BASE, "TS-000001"))["thingArn"]
    for job_id in (f"{BASE}-rotate-20260101T000000Z-ab12", "ota-firmware-7"):
        fleet.iot.create_job(jobId=job_id, targets=[thing_arn], document="{}")

    report = fleet.run_json("teardown", "--yes")

    assert report["rotationJobsCancelled"] == [f"{BASE}-rotate-20260101T000000Z-ab12"]
    job = fleet.iot.describe_job(jobId=f"{BASE}-rotate-20260101T000000Z-ab12")["job"]
    assert (job["status"], job["reasonCode"], job["forceCanceled"]) == ("CANCELED", "STACK_TEARDOWN", True)
    assert fleet.iot.describe_job(jobId="ota-firmware-7")["job"]["status"] != "CANCELED"


def test_a_run_after_an_interruption_finishes_the_job_and_a_third_changes_nothing(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, aws_operations: list[str]
) -> None:
    for serial in ("TS-000001", "TS-000002", "TS-000003"):
        provision(fleet, serial)
    fail_once(monkeypatch, "DeleteThing", "InternalFailureException")

    failed = fleet.run("teardown", "--yes")

    assert failed.exit_code == ExitCode.AWS
    assert "a re-run of `fleetctl teardown` finishes the job" in failed.stderr
    assert "DeleteThing" in failed.stderr
    serials = ("TS-000001", "TS-000002", "TS-000003")
    done = sum(fleet.item(serial)[Attr.STATUS] == DeviceStatus.DECOMMISSIONED for serial in serials)
    assert done < 3

    finished = fleet.run_json("teardown", "--yes")
    assert (finished["deviceCounts"]["changed"], finished["deviceCounts"]["alreadyDone"]) == (3 - done, done)
    assert finished["remaining"] == {"policyTargets": {}, "things": {}, "groups": []}
    assert things_of_type(fleet) == [] and targets(fleet) == []

    aws_operations.clear()
    again = fleet.run_json("teardown", "--yes")
    assert (again["deviceCounts"]["changed"], again["deviceCounts"]["alreadyDone"]) == (0, 3)
    assert (again["leftoverThings"], again["policyTargets"]) == ([], [])
    changes = {"UpdateCertificate", "DetachPolicy", "DetachThingPrincipal", "DeleteThing", "CancelJob"}
    assert changes.isdisjoint(aws_operations)


def test_a_dry_run_lists_everything_and_changes_nothing(fleet: Fleet) -> None:
    certificate_id = provision(fleet, "TS-000001")
    provision(fleet, "TS-000002")
    fleet.dynamodb.delete_item(TableName=fleet_table(fleet), Key={"serialNumber": {"S": "TS-000002"}})

    plan = fleet.run_json("teardown", "--dry-run")

    assert [(row["serial"], row["action"]) for row in plan["devices"]] == [("TS-000001", "decommission")]
    assert [(row["serial"], row["action"]) for row in plan["leftoverThings"]] == [
        ("TS-000002", "delete-thing")
    ]
    assert len(plan["policyTargets"]) == 2
    assert fleet.certificate(certificate_id)["status"] == "ACTIVE"
    assert sorted(things_of_type(fleet)) == [thing_name(BASE, "TS-000001"), thing_name(BASE, "TS-000002")]
    assert fleet.item("TS-000001")[Attr.STATUS] == DeviceStatus.ACTIVE


def test_a_dry_run_in_tables_says_what_would_change(fleet: Fleet) -> None:
    provision(fleet, "TS-000001")

    result = fleet.run("teardown", "--dry-run")

    assert result.exit_code == ExitCode.OK, result.output
    assert "TS-000001: ACTIVE: would decommission" in result.stdout
    assert f"{SENSORS} is attached to arn:" in result.stdout
    assert "nothing was changed" in result.stdout
    assert things_of_type(fleet) == [thing_name(BASE, "TS-000001")]


def test_the_confirmation_names_the_count_and_no_changes_nothing(fleet: Fleet) -> None:
    for serial in ("TS-000001", "TS-000002"):
        provision(fleet, serial)

    declined = fleet.run("teardown", input="n\n")

    assert declined.exit_code == ExitCode.ABORTED
    assert f"Decommission 2 device(s) of stack {BASE}?" in declined.stderr
    assert "nothing was changed" in declined.stderr
    assert len(things_of_type(fleet)) == 2

    accepted = fleet.run("teardown", input="y\n")
    assert accepted.exit_code == ExitCode.OK, accepted.output
    assert "ready for `pulumi destroy`" in accepted.stdout
    assert things_of_type(fleet) == []


def test_a_rate_of_an_api_teardown_does_not_call_is_refused(fleet: Fleet) -> None:
    result = fleet.run("teardown", "--dry-run", "--rate", "CreateJob=5")

    assert result.exit_code == ExitCode.USAGE
    assert "CancelJob" in result.output


def test_teardown_paces_its_aws_iot_requests(fleet: Fleet, paced: list[str]) -> None:
    provision(fleet, "TS-000001")

    fleet.run_json("teardown", "--yes", "--rate", "DeleteThing=50")

    assert {"ListJobs", "ListThings", "ListTargetsForPolicy", "UpdateCertificate", "DeleteThing"} <= set(
        paced
    )


def test_what_aws_iot_detaches_late_is_waited_for_and_what_stays_is_reported(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = StackContext.resolve(fleet.outputs)
    work = Teardown(stack, StackScope.of(stack))
    late = Remaining({SENSORS: ["arn:aws:iot:us-east-1:123456789012:cert/abc"]}, {})
    looks = iter([late, late, Remaining({}, {})])
    monkeypatch.setattr(Teardown, "remaining", lambda self: next(looks))
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    assert not work.wait_until_clear(60, interval=10, clock=lambda: now[0], sleep=sleep)
    assert slept == [10, 10]

    looks = iter([late] * 10)
    assert work.wait_until_clear(15, interval=10, clock=lambda: now[0], sleep=sleep) == late
    assert slept[2:] == [10, 5]


def fleet_table(fleet: Fleet) -> str:
    return str(StackContext.resolve(fleet.outputs).table)


def test_the_scope_names_every_device_type_and_claim_certificate(fleet: Fleet) -> None:
    scope = StackScope.of(StackContext.resolve(fleet.outputs))

    assert scope.resource_names == [
        device_type_resource_name(BASE, each) for each in ("gateway", "humidity-sensor", "temperature-sensor")
    ]
    assert scope.claim_certificate_ids == {fleet.claim_certificate_id}
    assert scope.rotation_job_prefix == f"{BASE}-rotate-"
    assert scope.fleet_group == fleet_group_name(BASE)
