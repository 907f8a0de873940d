"""A three-region global fleet under mocks: the registry table only in the registry region, every other
region's functions granted on that table by its ARN, one claim certificate registered in each region, and a
custom device domain with a latency record per region when configured."""

from __future__ import annotations

import json
from typing import Any

import pytest

from program.outputs import StackOutput
from tests.pulumi_mocks import ACCOUNT_ID, Build, Declared, Deployment
from tests.stack.test_program import policy_document, statements

REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-1"]
FLEET = {"name": "acme-global", "regions": REGIONS, "registryRegion": "eu-west-1"}
TABLE = "iot-provisioning-dev-device-registry"
TABLE_ARN = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT_ID}:table/{TABLE}"
CLAIM_PEM = "-----BEGIN CERTIFICATE-----\nFROM-THE-REGISTRY-REGION\n-----END CERTIFICATE-----\n"
DOMAIN = {"name": "devices.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}


def region_config(region: str, **extra: Any) -> dict[str, Any]:
    """One region's stack config: the same fleet and device types; the registered claim certificate outside
    the registry region."""
    config: dict[str, Any] = {"aws:region": region, "fleet": FLEET, **extra}
    if region != FLEET["registryRegion"]:
        config["claimCertificates"] = [{"name": "1", "certificatePem": CLAIM_PEM}]
    return config


@pytest.fixture(scope="module")
def fleet(build: Build) -> dict[str, Deployment]:
    return {region: build(region_config(region)) for region in REGIONS}


def functions_using_the_registry(deployment: Deployment) -> list[Declared]:
    return [
        function
        for function in deployment.mocks.of_type("aws:lambda/function:Function")
        if "REGISTRY_TABLE_NAME" in function.inputs["environment"]["variables"]
    ]


def role_policy(deployment: Deployment, function_resource: str) -> dict[str, Any]:
    [policy] = [
        policy
        for policy in deployment.mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if policy.name == f"{function_resource}-policy"
    ]
    return policy_document(policy)


def dynamodb_resources(document: dict[str, Any]) -> set[str]:
    return {
        resource
        for statement in statements(document)
        if any(
            action.startswith("dynamodb:") and action != "dynamodb:ListStreams"
            for action in statement["Action"]
        )
        for resource in statement["Resource"]
    }


def test_only_the_registry_region_declares_the_table_and_follows_its_stream(
    fleet: dict[str, Deployment],
) -> None:
    # The stream's readers: the certificate retirement and the claim breaker (issue 24), the two readers per
    # shard DynamoDB Streams advises at most (DynamoDB developer guide, "Reading and processing a stream").
    declared = {
        region: (
            len(deployment.mocks.of_type("aws:dynamodb/table:Table")),
            sorted(
                mapping.inputs["functionName"].rsplit(":", 1)[-1]
                for mapping in deployment.mocks.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
            ),
        )
        for region, deployment in fleet.items()
    }
    readers = ["iot-provisioning-dev-certificate-retirement", "iot-provisioning-dev-claim-breaker"]
    assert declared == {"eu-west-1": (1, readers), "us-east-1": (0, []), "ap-southeast-1": (0, [])}


def test_every_region_exports_the_fleet_and_the_registry_it_uses(fleet: dict[str, Deployment]) -> None:
    for deployment in fleet.values():
        outputs = deployment.outputs
        assert outputs[StackOutput.FLEET_NAME] == "acme-global"
        assert outputs[StackOutput.FLEET_REGIONS] == REGIONS
        assert outputs[StackOutput.REGISTRY_REGION] == "eu-west-1"
        assert outputs[StackOutput.REGISTRY_TABLE] == TABLE


def test_every_function_of_every_region_finds_the_registry_in_the_registry_region(
    fleet: dict[str, Deployment],
) -> None:
    for deployment in fleet.values():
        using = functions_using_the_registry(deployment)
        assert len(using) >= 4  # hook, activation, stale approvals, rotation (and retirement there)
        for function in using:
            variables = function.inputs["environment"]["variables"]
            assert (variables["REGISTRY_TABLE_NAME"], variables["REGISTRY_REGION"]) == (TABLE, "eu-west-1")


def test_other_regions_functions_are_granted_on_the_registry_tables_arn_only(
    fleet: dict[str, Deployment],
) -> None:
    for region in ("us-east-1", "ap-southeast-1"):
        hook = role_policy(fleet[region], "provisioning-hook")
        assert dynamodb_resources(hook) == {TABLE_ARN}
        stale = role_policy(fleet[region], "lifecycle-stale-approvals")
        assert dynamodb_resources(stale) == {f"{TABLE_ARN}/index/byStatusShard"}


def test_the_registry_regions_retirement_acts_on_certificates_in_every_region(
    fleet: dict[str, Deployment],
) -> None:
    retirement = statements(role_policy(fleet["eu-west-1"], "certificates-retirement"))
    [revoking] = [statement for statement in retirement if "iot:UpdateCertificate" in statement["Action"]]
    assert revoking["Resource"] == [f"arn:aws:iot:{region}:{ACCOUNT_ID}:cert/*" for region in REGIONS]
    for region in ("us-east-1", "ap-southeast-1"):
        names = {
            function.inputs["name"]
            for function in fleet[region].mocks.of_type("aws:lambda/function:Function")
        }
        assert not any(name.endswith("certificate-retirement") for name in names)


def test_the_registry_region_makes_the_claim_certificate_and_the_others_register_it(
    fleet: dict[str, Deployment],
) -> None:
    [made] = fleet["eu-west-1"].mocks.of_type("aws:iot/certificate:Certificate")
    assert "certificatePem" not in made.inputs and "csr" not in made.inputs
    assert set(fleet["eu-west-1"].outputs[StackOutput.CLAIM_CERTIFICATE_PEMS]) == {"1"}
    for region in ("us-east-1", "ap-southeast-1"):
        [registered] = fleet[region].mocks.of_type("aws:iot/certificate:Certificate")
        pem = registered.inputs["certificatePem"]  # the provider marks it sensitive: a secret
        assert (
            pem["value"] if isinstance(pem, dict) else pem
        ) == CLAIM_PEM and "csr" not in registered.inputs
        assert "certificatePem" in registered.ignore_changes
        assert StackOutput.CLAIM_PRIVATE_KEY not in fleet[region].outputs


def test_alarms_on_the_registry_are_the_registry_regions_and_every_dashboard_shows_the_fleet(
    fleet: dict[str, Deployment],
) -> None:
    def alarms_on_the_table(deployment: Deployment) -> int:
        alarms = deployment.mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        return sum('"AWS/DynamoDB"' in json.dumps(alarm.inputs, default=str) for alarm in alarms)

    assert alarms_on_the_table(fleet["eu-west-1"]) > 0
    for region, deployment in fleet.items():
        if region != "eu-west-1":
            assert alarms_on_the_table(deployment) == 0
        body = json.loads(deployment.mocks.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
        widgets = {
            widget["properties"]["title"]: widget["properties"]["metrics"] for widget in body["widgets"]
        }
        assert all(row[-1] == {"region": "eu-west-1"} for row in widgets["Registry errors"])
        by_region = widgets["Fleet: approvals and rejections by region"]
        assert [row[-1]["region"] for row in by_region] == [r for r in REGIONS for _ in range(2)]


def test_a_device_domain_gives_each_region_a_domain_configuration_and_a_latency_record(build: Build) -> None:
    for region in REGIONS:
        certificate = f"arn:aws:acm:{region}:{ACCOUNT_ID}:certificate/0a1b2c3d"
        deployment = build(region_config(region, deviceDomain=DOMAIN | {"certificateArn": certificate}))
        configuration = deployment.mocks.one("aws:iot/domainConfiguration:DomainConfiguration")
        assert configuration.inputs["domainName"] == "devices.example.com"
        assert configuration.inputs["serverCertificateArns"] == [certificate]
        assert configuration.inputs["serviceType"] == "DATA"
        record = deployment.mocks.one("aws:route53/record:Record")
        assert (record.inputs["zoneId"], record.inputs["name"], record.inputs["type"]) == (
            DOMAIN["hostedZoneId"],
            "devices.example.com",
            "CNAME",
        )
        assert record.inputs["setIdentifier"] == region
        assert record.inputs["latencyRoutingPolicies"] == [{"region": region}]
        assert record.inputs["records"] == [f"abc123-ats.iot.{region}.amazonaws.com"]
        instructions = deployment.outputs[StackOutput.DEPLOYMENT_INSTRUCTIONS]
        assert "the endpoint devices.example.com (port 8883)" in instructions


def test_without_a_device_domain_no_domain_configuration_or_record_is_declared(
    fleet: dict[str, Deployment],
) -> None:
    for deployment in fleet.values():
        assert deployment.mocks.of_type("aws:iot/domainConfiguration:DomainConfiguration") == []
        assert deployment.mocks.of_type("aws:route53/record:Record") == []
