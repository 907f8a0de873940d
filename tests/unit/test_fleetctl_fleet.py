"""fleetctl across a fleet of two regions: the registry read and written once, in the registry region;
AWS IoT asked in the region each device provisioned in; claim certificates and the report per region."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner, Result

from fleetctl.cli import app
from fleetctl.errors import ExitCode
from hook.contract import SERVICE_DIMENSION, Attr, Metric, Service, metrics_namespace, thing_name
from tests.support import BASE, CLAIM_POLICY, REGION, Fleet
from tests.unit.test_fleetctl_claim_certs import certificate_pem

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")

OTHER = "eu-west-1"
"""The second region of the fleet; the ``fleet`` fixture's region holds the registry."""


@dataclass
class TwoRegions:
    """The ``fleet`` fixture's stack as the registry region of a fleet, and a second region's stack."""

    home: Fleet
    other: Fleet
    outputs: list[Path]

    def run(self, *args: str, input: str | None = None) -> Result:
        given = [option for path in self.outputs for option in ("--outputs", str(path))]
        return CliRunner().invoke(app, [*given, *args], input=input)

    def run_json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == ExitCode.OK, (result.output, result.stderr, repr(result.exception))
        return json.loads(result.stdout)


def fleet_outputs(outputs: dict[str, Any], region: str) -> dict[str, Any]:
    """A region's outputs of the fleet ``global``, whose registry is in :data:`REGION`."""
    return {
        **outputs,
        "region": region,
        "provisioningTemplateArn": f"arn:aws:iot:{region}:123456789012:provisioningtemplate/{BASE}-fleet",
        "fleetName": "global",
        "fleetRegions": [REGION, OTHER],
        "registryRegion": REGION,
    }


@pytest.fixture
def regions(fleet: Fleet) -> TwoRegions:
    """The claim certificate registered in the second region as well, without its CA, as the program does."""
    iot = boto3.client("iot", region_name=OTHER)
    pem = fleet.certificate(fleet.claim_certificate_id)["certificatePem"]
    claim = iot.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")
    iot.create_policy(policyName=CLAIM_POLICY, policyDocument="{}")
    iot.attach_policy(policyName=CLAIM_POLICY, target=claim["certificateArn"])
    single = json.loads(fleet.outputs.read_text(encoding="utf-8"))
    paths = []
    for region in (REGION, OTHER):
        path = fleet.tmp_path / f"{region}.json"
        path.write_text(json.dumps(fleet_outputs(single, region)), encoding="utf-8")
        paths.append(path)
    other = replace(
        fleet, iot=iot, outputs=paths[1], template_arn=fleet_outputs(single, OTHER)["provisioningTemplateArn"]
    )
    return TwoRegions(fleet, other, paths)


def test_revoke_acts_in_the_region_the_device_provisioned_in(regions: TwoRegions) -> None:
    here = regions.home.provision("TS-000001")
    there = regions.other.provision("TS-000002")
    assert regions.home.item("TS-000002")[Attr.REGION] == OTHER

    result = regions.run("revoke", "TS-000002", "--reason", "cloned", "--json")

    assert result.exit_code == ExitCode.OK, result.output
    assert regions.other.certificate(there)["status"] == "REVOKED"
    assert regions.other.thing_principals("TS-000002") == []
    assert regions.home.item("TS-000002")[Attr.STATUS] == "REVOKED"
    assert regions.home.certificate(here)["status"] == "ACTIVE"


def test_a_bulk_decommission_reaches_every_region_and_show_reads_the_devices_own(regions: TwoRegions) -> None:
    regions.home.provision("TS-000001")
    regions.other.provision("TS-000002")
    shown = regions.run_json("show", "TS-000002")
    assert shown["thing"]["name"] == thing_name(BASE, "TS-000002")

    result = regions.run("decommission", "--type", "temperature-sensor", "--reason", "end of life", "--yes")

    assert result.exit_code == ExitCode.OK, result.output
    for fleet, serial in ((regions.home, "TS-000001"), (regions.other, "TS-000002")):
        assert fleet.item(serial)[Attr.STATUS] == "DECOMMISSIONED"
        assert fleet.iot.list_things()["things"] == []


def test_a_device_of_a_region_whose_outputs_are_missing_is_skipped_with_why(regions: TwoRegions) -> None:
    there = regions.other.provision("TS-000002")

    rows = regions.home.run_json("revoke", "--type", "temperature-sensor", "--reason", "x", "--dry-run")
    result = regions.home.run("revoke", "TS-000002", "--reason", "x")

    assert [row["action"] for row in rows["devices"]] == ["skip"]
    assert f"region {OTHER}: no stack outputs" in rows["devices"][0]["reason"]
    assert result.exit_code == ExitCode.USAGE
    assert f"region {OTHER}" in result.stderr
    assert regions.other.certificate(there)["status"] == "ACTIVE"
    assert regions.home.item("TS-000002")[Attr.STATUS] == "ACTIVE"


def test_claim_status_and_deactivate_cover_every_region(regions: TwoRegions) -> None:
    regions.home.provision("TS-000001")
    regions.other.provision("TS-000002")
    regions.other.provision("TS-000003")

    claims = regions.run_json("claim", "status")
    done = regions.run_json("claim", "deactivate", regions.home.claim_certificate_id, "--yes")

    assert {claim["region"]: claim["devices"] for claim in claims} == {REGION: 1, OTHER: 2}
    assert [(each["region"], each["status"], each["changed"]) for each in done] == [
        (REGION, "INACTIVE", True),
        (OTHER, "INACTIVE", True),
    ]
    for fleet in (regions.home, regions.other):
        assert fleet.certificate(fleet.claim_certificate_id)["status"] == "INACTIVE"


def test_the_report_counts_devices_claims_and_the_hooks_metrics_by_region(regions: TwoRegions) -> None:
    regions.home.provision("TS-000001")
    regions.other.provision("TS-000002")
    manifest = regions.home.manifest("TS-000009,temperature-sensor,AcmeIoT,v1.4.2,Line-1")
    assert regions.run("preregister", str(manifest)).exit_code == ExitCode.OK
    for region, approved, denied in ((REGION, 1, 0), (OTHER, 1, 3)):
        boto3.client("cloudwatch", region_name=region).put_metric_data(
            Namespace=metrics_namespace(BASE),
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": SERVICE_DIMENSION, "Value": Service.HOOK.value}],
                    "Value": value,
                    "Timestamp": datetime.now(UTC),
                }
                for metric, value in (
                    (Metric.PROVISIONING_APPROVED, approved),
                    (Metric.PROVISIONING_REJECTED, denied),
                )
            ],
        )

    report = regions.run_json("report", "--hours", "1")

    assert (report["fleet"], report["preregistered"]) == ("global", 1)
    assert [(each["region"], each["approved"], each["denied"]) for each in report["regions"]] == [
        (REGION, 1, 0),
        (OTHER, 1, 3),
    ]
    assert [each["devices"] for each in report["regions"]] == [{"ACTIVE": 1}, {"ACTIVE": 1}]
    claim = regions.home.claim_certificate_id
    assert [each["claimCertificates"] for each in report["regions"]] == [{claim: 1}, {claim: 1}]


def test_outputs_of_two_fleets_or_without_the_registry_region_are_refused(regions: TwoRegions) -> None:
    other = json.loads(regions.outputs[1].read_text(encoding="utf-8"))
    stray = regions.home.tmp_path / "stray.json"
    stray.write_text(json.dumps({**other, "fleetName": "another"}), encoding="utf-8")

    mixed = CliRunner().invoke(app, ["--outputs", str(regions.outputs[0]), "--outputs", str(stray), "list"])
    alone = CliRunner().invoke(app, ["--outputs", str(stray), "--outputs", str(regions.outputs[1]), "list"])

    assert mixed.exit_code == ExitCode.USAGE
    assert "fleetName 'another'" in mixed.stderr
    assert alone.exit_code == ExitCode.USAGE


def test_a_directory_of_outputs_names_the_fleet(regions: TwoRegions) -> None:
    regions.other.provision("TS-000002")

    result = CliRunner().invoke(app, ["--outputs", str(regions.home.tmp_path), "show", "TS-000002", "--json"])

    assert result.exit_code == ExitCode.USAGE  # outputs.json, the fixture's single-region file, is there too
    (regions.home.tmp_path / "outputs.json").unlink()
    shown = CliRunner().invoke(app, ["--outputs", str(regions.home.tmp_path), "show", "TS-000002", "--json"])
    assert shown.exit_code == ExitCode.OK, shown.output
    assert json.loads(shown.stdout)["registry"][Attr.REGION] == OTHER


def test_rotation_takes_one_regions_outputs_and_asks_only_that_regions_devices(regions: TwoRegions) -> None:
    regions.home.provision("TS-000001")
    regions.other.provision("TS-000002")

    whole_fleet = regions.run("rotate", "start", "--type", "temperature-sensor", "--dry-run", "--json")
    plan = regions.other.run_json("rotate", "start", "--type", "temperature-sensor", "--dry-run")
    named = regions.other.run_json(
        "rotate", "start", "--file", str(serials_file(regions, "TS-000001")), "--dry-run"
    )

    assert whole_fleet.exit_code == ExitCode.USAGE
    assert "rotation jobs are regional" in whole_fleet.stderr
    assert [target["serial"] for target in plan["targets"]] == ["TS-000002"]
    assert plan["skipped"] == []
    assert named["targets"] == []
    assert [each["serial"] for each in named["skipped"]] == ["TS-000001"]
    assert f"provisioned in {REGION}" in named["skipped"][0]["reason"]


def serials_file(regions: TwoRegions, *serials: str) -> Path:
    path = regions.home.tmp_path / "serials.txt"
    path.write_text("\n".join(serials) + "\n", encoding="utf-8")
    return path


def test_certs_expiring_describes_each_certificate_in_its_devices_region(regions: TwoRegions) -> None:
    soon = certificate_pem(timedelta(days=3))
    regions.other.provision("TS-000002", certificate_pem=soon)

    found = regions.run_json("certs", "expiring", "--days", "30")
    alone = regions.home.run("certs", "expiring", "--days", "30")

    assert [each["serial"] for each in found["certificates"]] == ["TS-000002"]
    assert alone.exit_code == ExitCode.USAGE
    assert f"region {OTHER}" in alone.stderr


def test_deactivating_a_claim_certificate_needs_every_regions_outputs_and_changes_nothing_without(
    regions: TwoRegions,
) -> None:
    claim = regions.home.claim_certificate_id
    result = CliRunner().invoke(
        app, ["--outputs", str(regions.outputs[0]), "claim", "deactivate", claim, "--yes"]
    )

    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"no stack outputs of {OTHER}" in result.stderr
    for fleet in (regions.home, regions.other):
        assert fleet.certificate(fleet.claim_certificate_id)["status"] == "ACTIVE"
