"""The Pulumi program under the mock engine: what it declares, checked property by property."""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from typing import Any

import pytest

from components.documents import THINGS_REGISTRATION_ACTIONS, AccountScope, claim_policy, template_body
from components.function_archives import FUNCTIONS, PRE_PROVISIONING, archive_sources
from hook.contract import (
    REGISTRY_INDEXES,
    REGISTRY_PARTITION_KEY,
    RULES_FILE_NAME,
    VENDOR_CHAIN_PARAMETER,
    Parameter,
    thing_name,
)
from hook.rules import parse_rules
from program.outputs import deployment_instructions
from program.settings import SettingsError
from tests.pulumi_mocks import ACCOUNT_ID, Build, Declared, Deployment, comparable, deploy, settings_for
from tests.support import rules_entry

REGION = "us-east-1"
BASE = "iot-provisioning-dev"
TEMPLATE = f"{BASE}-fleet"
TABLE = f"{BASE}-device-registry"
IOT_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}"
DEVICE_TYPE_RESOURCES = (
    "aws:iot/policy:Policy",
    "aws:iot/thingType:ThingType",
    "aws:iot/thingGroup:ThingGroup",
)
HOOK = f"{BASE}-provisioning-hook"
TAGGABLE = {
    "aws:dynamodb/table:Table",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:cloudwatch/eventRule:EventRule",
    "aws:iot/topicRule:TopicRule",
    "aws:kms/key:Key",
    "aws:sns/topic:Topic",
    "aws:iot/policy:Policy",
    "aws:iot/thingType:ThingType",
    "aws:iot/thingGroup:ThingGroup",
    "aws:iot/provisioningTemplate:ProvisioningTemplate",
    "aws:iam/role:Role",
    "aws:lambda/function:Function",
    "aws:lambda/eventSourceMapping:EventSourceMapping",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:sqs/queue:Queue",
    "aws:ssm/parameter:Parameter",
}
NOT_TAGGABLE = {
    "aws:iot/certificate:Certificate",
    "aws:iot/policyAttachment:PolicyAttachment",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:lambda/permission:Permission",
    "aws:cloudwatch/dashboard:Dashboard",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:iot/eventConfigurations:EventConfigurations",
    "aws:iot/loggingOptions:LoggingOptions",
    "aws:kms/alias:Alias",
    "aws:sns/topicPolicy:TopicPolicy",
    "aws:sns/topicSubscription:TopicSubscription",
}
"""Every resource type the program declares, split by whether AWS lets it carry tags."""


@pytest.fixture(scope="module")
def dev(build: Build) -> Deployment:
    return build({"aws:region": REGION, "tags": {"Owner": "IoT-Team"}})


def policy_document(resource: Declared, key: str = "policy") -> dict[str, Any]:
    document: dict[str, Any] = json.loads(resource.inputs[key])
    return document


def named(deployment: Deployment, typ: str, name: str) -> Declared:
    [resource] = [
        resource for resource in deployment.mocks.of_type(typ) if resource.inputs.get("name") == name
    ]
    return resource


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**statement, "Action": _list(statement["Action"]), "Resource": _list(statement["Resource"])}
        for statement in document["Statement"]
    ]


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


# --- claim certificate and its policy ------------------------------------------------------------------


def test_claim_policy_allows_exactly_provisioning_through_this_template(dev: Deployment) -> None:
    claim = statements(policy_document(named(dev, "aws:iot/policy:Policy", f"{BASE}-claim")))
    topics = [
        "$aws/certificates/create/json",
        "$aws/certificates/create-from-csr/json",
        f"$aws/provisioning-templates/{TEMPLATE}/provision/json",
    ]
    assert claim == [
        {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": [f"{IOT_ARN}:client/{BASE}-claim-*"]},
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": [f"{IOT_ARN}:topic/{topic}*" for topic in topics],
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Subscribe"],
            "Resource": [f"{IOT_ARN}:topicfilter/{topic}/*" for topic in topics],
        },
    ]


CREATE = "$aws/certificates/create"
FROM_CSR = "$aws/certificates/create-from-csr"
PROVISION = f"$aws/provisioning-templates/{TEMPLATE}/provision"
NAMES = {
    "client_id_prefix": f"{BASE}-claim-",
    "template": TEMPLATE,
    "claim_certificate_id": "0" * 63 + "1",
    "endpoint": f"abc123-ats.iot.{REGION}.amazonaws.com",
    "table": TABLE,
}
"""The names in the dev stack's outputs that the deployment instructions name."""
CSR_ONLY_JSON_AND_CBOR = {"deviceKeys": "device", "provisioningPayloadFormats": ["json", "cbor"]}


def claim_documents(config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The claim policy and the deployment instructions of the dev stack with ``config``, from the functions
    that build them and the settings the program reads."""
    settings = settings_for({"aws:region": REGION, **config})
    policy = claim_policy(
        AccountScope("aws", REGION, ACCOUNT_ID),
        settings.template_name,
        NAMES["client_id_prefix"],
        aws_keys=settings.claim_allows_aws_keys,
        payload_formats=settings.provisioning_payload_formats,
    )
    return json.loads(policy), deployment_instructions(settings, **NAMES)


def test_the_stack_declares_the_claim_policy_and_instructions_its_settings_give(build: Build) -> None:
    deployment = build({"aws:region": REGION, **CSR_ONLY_JSON_AND_CBOR})
    document, instructions = claim_documents(CSR_ONLY_JSON_AND_CBOR)
    assert policy_document(named(deployment, "aws:iot/policy:Policy", f"{BASE}-claim")) == document
    assert deployment.outputs["deploymentInstructions"] == instructions


@pytest.mark.parametrize(
    ("config", "topics"),
    [
        ({}, {f"{CREATE}/json", f"{FROM_CSR}/json", f"{PROVISION}/json"}),
        ({"deviceKeys": "device"}, {f"{FROM_CSR}/json", f"{PROVISION}/json"}),
        (
            {"provisioningPayloadFormats": ["json", "cbor"]},
            {
                f"{CREATE}/json",
                f"{CREATE}/cbor",
                f"{FROM_CSR}/json",
                f"{FROM_CSR}/cbor",
                f"{PROVISION}/json",
                f"{PROVISION}/cbor",
            },
        ),
        (
            {"deviceKeys": "device", "provisioningPayloadFormats": ["cbor"]},
            {f"{FROM_CSR}/cbor", f"{PROVISION}/cbor"},
        ),
        ({"requireKeyBinding": True}, {f"{FROM_CSR}/json", f"{PROVISION}/json"}),
        (
            {"deviceTypes": [{"name": "gateway", "keyBinding": True}, {"name": "meter", "keyBinding": True}]},
            {f"{FROM_CSR}/json", f"{PROVISION}/json"},
        ),
        (
            {"deviceTypes": ["gateway", {"name": "meter", "keyBinding": True}]},
            {f"{CREATE}/json", f"{FROM_CSR}/json", f"{PROVISION}/json"},
        ),
    ],
    ids=[
        "defaults",
        "csr only",
        "json and cbor",
        "csr only, cbor only",
        "every type binds keys",
        "each type binds keys",
        "one type binds keys",
    ],
)
def test_claim_policy_topics_follow_device_keys_and_payload_formats(
    config: dict[str, Any], topics: set[str]
) -> None:
    document, instructions = claim_documents(config)
    [connect, messaging, subscribe] = statements(document)
    assert connect["Resource"] == [f"{IOT_ARN}:client/{BASE}-claim-*"]
    assert messaging["Action"] == ["iot:Publish", "iot:Receive"]
    assert set(messaging["Resource"]) == {f"{IOT_ARN}:topic/{topic}*" for topic in topics}
    assert subscribe["Action"] == ["iot:Subscribe"]
    assert set(subscribe["Resource"]) == {f"{IOT_ARN}:topicfilter/{topic}/*" for topic in topics}
    # Whatever the wildcards, a topic left out is matched by no resource (fnmatch's * also spans /).
    every_topic = {
        f"{operation}/{fmt}" for operation in (CREATE, FROM_CSR, PROVISION) for fmt in ("json", "cbor")
    }
    for left_out in every_topic - topics:
        for topic in (left_out, f"{left_out}/accepted", f"{left_out}/rejected"):
            assert not any(fnmatch.fnmatchcase(f"{IOT_ARN}:topic/{topic}", r) for r in messaging["Resource"])
            assert not any(
                fnmatch.fnmatchcase(f"{IOT_ARN}:topicfilter/{topic}", r) for r in subscribe["Resource"]
            )
    assert "CreateCertificateFromCsr" in instructions
    assert ("CreateKeysAndCertificate" in instructions) == (f"{CREATE}/json" in topics)


def test_claim_policy_is_attached_to_the_active_claim_certificate(dev: Deployment) -> None:
    certificate = dev.mocks.one("aws:iot/certificate:Certificate")
    assert certificate.inputs["active"] is True
    assert "csr" not in certificate.inputs
    attachment = dev.mocks.one("aws:iot/policyAttachment:PolicyAttachment")
    assert attachment.inputs["policy"] == f"{BASE}-claim"
    assert attachment.inputs["target"].endswith("certificate/" + certificate.name)


def test_claim_private_key_leaves_the_stack_only_as_a_secret(dev: Deployment) -> None:
    assert "claimCertificatePrivateKey" in dev.secret_outputs
    assert dev.outputs["claimCertificatePrivateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert dev.secret_outputs == {"claimCertificatePrivateKey"}
    assert all(
        "PRIVATE KEY" not in str(value)
        for name, value in dev.outputs.items()
        if name not in dev.secret_outputs
    )


def test_rotation_keeps_every_claim_generation_attached_until_it_is_removed(build: Build) -> None:
    rotating = build({"aws:region": REGION, "claimCertificates": ["2026-a", "2026-b"]})
    certificates = rotating.mocks.of_type("aws:iot/certificate:Certificate")
    assert sorted(c.name for c in certificates) == [
        "provisioning-claim-certificate-2026-a",
        "provisioning-claim-certificate-2026-b",
    ]
    attachments = rotating.mocks.of_type("aws:iot/policyAttachment:PolicyAttachment")
    assert sorted(a.inputs["target"].rsplit("/", 1)[1] for a in attachments) == sorted(
        c.name for c in certificates
    )
    assert all(a.inputs["policy"] == f"{BASE}-claim" for a in attachments)
    assert set(rotating.outputs["claimCertificateIds"]) == {"2026-a", "2026-b"}
    assert rotating.outputs["claimCertificateId"] == rotating.outputs["claimCertificateIds"]["2026-b"]
    alarms = {a.inputs["name"] for a in rotating.mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert {f"{BASE}-claim-abuse-2026-a", f"{BASE}-claim-abuse-2026-b"} <= alarms
    retired = build({"aws:region": REGION, "claimCertificates": ["2026-b"]})
    assert [c.name for c in retired.mocks.of_type("aws:iot/certificate:Certificate")] == [
        "provisioning-claim-certificate-2026-b"
    ]


def csr(tag: str) -> str:
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{tag}\n-----END CERTIFICATE REQUEST-----\n"


def test_claim_csr_keeps_the_private_key_out_of_the_stack(build: Build) -> None:
    deployment = build({"aws:region": REGION, "claimCertificates": [{"name": "1", "csr": csr("A")}]})
    assert deployment.mocks.one("aws:iot/certificate:Certificate").inputs["csr"] == csr("A")
    assert "claimCertificatePrivateKey" not in deployment.outputs
    assert "private key stays with the factory" in deployment.outputs["deploymentInstructions"]


def test_each_claim_generation_is_issued_from_its_own_csr(build: Build) -> None:
    # Generation 1 shipped with factory key A; generation 2 gets a new key B. Generation 1's declaration is
    # the same before and after, so appending 2 cannot replace the certificate in the factory images.
    before = build({"aws:region": REGION, "claimCertificates": [{"name": "1", "csr": csr("A")}]})
    after = build(
        {
            "aws:region": REGION,
            "claimCertificates": [{"name": "1", "csr": csr("A")}, {"name": "2", "csr": csr("B")}],
        }
    )
    certificates = {c.name: c for c in after.mocks.of_type("aws:iot/certificate:Certificate")}
    assert certificates["provisioning-claim-certificate-1"].inputs["csr"] == csr("A")
    assert certificates["provisioning-claim-certificate-2"].inputs["csr"] == csr("B")
    [first] = before.mocks.of_type("aws:iot/certificate:Certificate")
    assert comparable(first.inputs) == comparable(certificates[first.name].inputs)
    assert "claimCertificatePrivateKey" not in after.outputs


def test_a_new_csr_on_an_issued_generation_never_replaces_its_certificate(dev: Deployment) -> None:
    # csr forces a replacement (terraform-provider-aws iot/certificate.go): the program ignores later
    # changes to it, so a certificate in factory images is never replaced by an edit.
    for certificate in dev.mocks.of_type("aws:iot/certificate:Certificate"):
        assert "csr" in certificate.ignore_changes


def test_a_deactivated_claim_generation_is_never_reactivated_by_the_program(build: Build) -> None:
    # Config may deactivate; while config says active, the program ignores the status it reads back on
    # refresh, so it never re-opens a certificate that `fleetctl claim deactivate` closed.
    deployment = build({"aws:region": REGION, "claimCertificates": [{"name": "1", "active": False}, "2"]})
    certificates = {c.name: c for c in deployment.mocks.of_type("aws:iot/certificate:Certificate")}
    old, current = (
        certificates["provisioning-claim-certificate-1"],
        certificates["provisioning-claim-certificate-2"],
    )
    assert old.inputs["active"] is False
    assert "active" not in old.ignore_changes  # the deactivation is applied
    assert current.inputs["active"] is True
    assert "active" in current.ignore_changes  # a CLI deactivation is never undone
    assert len(deployment.mocks.of_type("aws:iot/policyAttachment:PolicyAttachment")) == 2


# --- device types --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device_type", ["temperature-sensor", "gateway"])
def test_device_policy_passes_the_overly_permissive_policy_check(dev: Deployment, device_type: str) -> None:
    document = policy_document(named(dev, "aws:iot/policy:Policy", f"{BASE}_{device_type}"))
    thing = "${iot:Connection.Thing.ThingName}"
    own_topics = [
        f"dt/{device_type}/{thing}/*",
        f"$aws/things/{thing}/shadow/*",
        f"$aws/things/{thing}/jobs/*",
    ]
    connect, publish, subscribe, *rotation = statements(document)
    assert connect == {
        "Effect": "Allow",
        "Action": ["iot:Connect"],
        "Resource": [f"{IOT_ARN}:client/{thing}"],
        "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
    }
    assert publish["Action"] == ["iot:Publish", "iot:Receive"]
    assert publish["Resource"] == [f"{IOT_ARN}:topic/{topic}" for topic in own_topics]
    assert subscribe["Action"] == ["iot:Subscribe"]
    assert subscribe["Resource"] == [f"{IOT_ARN}:topicfilter/{topic}" for topic in own_topics]
    # Rotation: the device sends its CSR and its result, and may only hear its own answers.
    assert rotation == [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish"],
            "Resource": [f"{IOT_ARN}:topic/rotation/{thing}/{step}" for step in ("csr", "result")],
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Receive"],
            "Resource": [f"{IOT_ARN}:topic/rotation/{thing}/{step}" for step in ("certificate", "rejected")],
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Subscribe"],
            "Resource": [
                f"{IOT_ARN}:topicfilter/rotation/{thing}/{step}" for step in ("certificate", "rejected")
            ],
        },
    ]
    for statement in statements(document):
        assert statement["Effect"] == "Allow"
        assert not any(action in {"iot:*", "*"} or action.endswith("*") for action in statement["Action"])
        assert not any(resource.endswith(":*") or resource == "*" for resource in statement["Resource"])


def test_each_device_type_has_a_thing_type_and_a_group_under_the_fleet_group(dev: Deployment) -> None:
    groups = {group.inputs["name"]: group for group in dev.mocks.of_type("aws:iot/thingGroup:ThingGroup")}
    assert groups.pop(f"{BASE}-fleet").inputs.get("parentGroupName") is None
    expected = {
        f"{BASE}_{t}" for t in ("temperature-sensor", "humidity-sensor", "pressure-sensor", "gateway")
    }
    assert set(groups) == expected
    assert all(group.inputs["parentGroupName"] == f"{BASE}-fleet" for group in groups.values())
    thing_types = {
        thing_type.inputs["name"] for thing_type in dev.mocks.of_type("aws:iot/thingType:ThingType")
    }
    assert thing_types == expected


TWO_TYPES = ["gateway", "meter"]
THREE_TYPES = ["gateway", "meter", "valve"]


def test_adding_or_removing_a_device_type_changes_exactly_its_resources(build: Build) -> None:
    three = build({"aws:region": REGION, "deviceTypes": THREE_TYPES})
    two = build({"aws:region": REGION, "deviceTypes": TWO_TYPES})
    names_three = {(r.type, r.name) for r in three.mocks.resources}
    names_two = {(r.type, r.name) for r in two.mocks.resources}
    assert names_two < names_three
    assert names_three - names_two == {(typ, f"{BASE}_valve-{suffix}") for typ, suffix in _suffixes()}
    unchanged = {(r.type, r.name): comparable(r.inputs) for r in two.mocks.resources}
    for resource in three.mocks.resources:
        # The functions' code carries the rules and initial shadows; everything else is untouched.
        if (resource.type, resource.name) in unchanged and resource.type != "aws:lambda/function:Function":
            assert comparable(resource.inputs) == unchanged[(resource.type, resource.name)], resource.name


def test_a_retired_device_type_keeps_its_resources_and_takes_no_new_device(build: Build) -> None:
    # AWS refuses to delete a policy still attached to certificates, or a thing type that is not deprecated
    # or still has things: retiring keeps all three, deprecates the type and makes the hook deny it.
    serving = build({"aws:region": REGION, "deviceTypes": TWO_TYPES})
    retired = build({"aws:region": REGION, "deviceTypes": ["gateway", {"name": "meter", "retired": True}]})
    assert {(r.type, r.name) for r in retired.mocks.resources} == {
        (r.type, r.name) for r in serving.mocks.resources
    }
    thing_types = {t.inputs["name"]: t.inputs for t in retired.mocks.of_type("aws:iot/thingType:ThingType")}
    assert thing_types[f"{BASE}_meter"]["deprecated"] is True
    assert thing_types[f"{BASE}_gateway"]["deprecated"] is False
    policy = named(retired, "aws:iot/policy:Policy", f"{BASE}_meter")
    assert policy.inputs == named(serving, "aws:iot/policy:Policy", f"{BASE}_meter").inputs
    rules = parse_rules(retired.outputs["hookRules"])
    assert rules.device_types["meter"].retired is True
    assert rules.device_types["gateway"].retired is False


@pytest.mark.parametrize(
    ("region", "partition", "layer_account"),
    [
        ("eu-west-1", "aws", "017000801446"),
        ("cn-north-1", "aws-cn", "498634801083"),
        ("us-gov-west-1", "aws-us-gov", "165093116878"),
        ("us-gov-east-1", "aws-us-gov", "165087284144"),
    ],
)
def test_every_accepted_region_gets_its_partitions_layer_and_managed_policy(
    region: str, partition: str, layer_account: str, build: Build
) -> None:
    deployment = build({"aws:region": region})
    hook = named(deployment, "aws:lambda/function:Function", HOOK)
    assert hook.inputs["layers"] == [
        f"arn:{partition}:lambda:{region}:{layer_account}:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:27"
    ]
    attachment = deployment.mocks.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert (
        attachment.inputs["policyArn"]
        == f"arn:{partition}:iam::aws:policy/service-role/AWSIoTThingsRegistration"
    )
    claim = policy_document(named(deployment, "aws:iot/policy:Policy", f"{BASE}-claim"))
    assert all(
        resource.startswith(f"arn:{partition}:iot:{region}:")
        for statement in statements(claim)
        for resource in statement["Resource"]
    )


def _suffixes() -> list[tuple[str, str]]:
    return [
        ("aws:iot/policy:Policy", "policy"),
        ("aws:iot/thingType:ThingType", "thing-type"),
        ("aws:iot/thingGroup:ThingGroup", "thing-group"),
    ]


# --- the provisioning template -------------------------------------------------------------------------


def test_template_is_an_enabled_fleet_template_with_the_hook(dev: Deployment) -> None:
    template = dev.mocks.one("aws:iot/provisioningTemplate:ProvisioningTemplate")
    hook = named(dev, "aws:lambda/function:Function", HOOK)
    assert template.inputs["name"] == TEMPLATE
    assert template.inputs["enabled"] is True
    assert template.inputs["type"] == "FLEET_PROVISIONING"
    assert template.inputs["preProvisioningHook"] == {
        "targetArn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{hook.inputs['name']}",
        "payloadVersion": "2020-04-01",
    }
    assert template.inputs["provisioningRoleArn"].endswith(f"role/{BASE}-{REGION}-provisioning")


def test_template_body_builds_the_thing_from_the_parameters(dev: Deployment) -> None:
    body = json.loads(
        dev.mocks.one("aws:iot/provisioningTemplate:ProvisioningTemplate").inputs["templateBody"]
    )
    # Zero-touch types read the vendor chain from the request; no resource refers to it (issue 23).
    assert set(body["Parameters"]) == {*(parameter.value for parameter in Parameter), VENDOR_CHAIN_PARAMETER}
    per_type = {"Fn::Join": ["_", [BASE, {"Ref": "DeviceType"}]]}
    thing = body["Resources"]["thing"]["Properties"]
    assert thing["ThingName"] == {"Fn::Join": ["_", [BASE, {"Ref": "SerialNumber"}]]}
    assert thing["ThingTypeName"] == per_type
    assert thing["ThingGroups"] == [per_type]
    assert thing["AttributePayload"] == {
        "serialNumber": {"Ref": "SerialNumber"},
        "deviceType": {"Ref": "DeviceType"},
        "manufacturer": {"Ref": "Manufacturer"},
        "firmwareVersion": {"Ref": "FirmwareVersion"},
        "location": {"Ref": "Location"},
    }
    assert body["Resources"]["certificate"]["Properties"] == {
        "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
        "Status": "ACTIVE",
    }
    assert body["Resources"]["policy"]["Properties"] == {"PolicyName": per_type}


def test_per_type_names_in_the_template_match_the_declared_resources(dev: Deployment) -> None:
    # The template derives "<prefix>-<DeviceType>"; a device type outside the stack has no such
    # policy, thing type or group, so provisioning it fails even if the hook were bypassed.
    body = json.loads(
        dev.mocks.one("aws:iot/provisioningTemplate:ProvisioningTemplate").inputs["templateBody"]
    )
    separator, (base, _) = body["Resources"]["policy"]["Properties"]["PolicyName"]["Fn::Join"]
    for device_type in ("temperature-sensor", "humidity-sensor", "pressure-sensor", "gateway"):
        for typ in DEVICE_TYPE_RESOURCES:
            assert named(dev, typ, base + separator + device_type)


def test_every_reference_in_the_template_resolves(dev: Deployment) -> None:
    body = json.loads(
        dev.mocks.one("aws:iot/provisioningTemplate:ProvisioningTemplate").inputs["templateBody"]
    )
    refs, lookups = _references(body["Resources"])
    assert refs
    assert refs <= set(body["Parameters"]) | {"AWS::IoT::Certificate::Id"}
    assert all(mapping in body.get("Mappings", {}) for mapping in lookups)


def _references(node: Any) -> tuple[set[str], set[str]]:
    refs: set[str] = set()
    lookups: set[str] = set()
    if isinstance(node, dict):
        if "Ref" in node:
            refs.add(node["Ref"])
        if "Fn::FindInMap" in node:
            lookups.add(node["Fn::FindInMap"][0])
        children: list[Any] = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        children = []
    for child in children:
        child_refs, child_lookups = _references(child)
        refs |= child_refs
        lookups |= child_lookups
    return refs, lookups


def test_template_body_stays_small_with_200_device_types(build: Build, dev: Deployment) -> None:
    # The body names no device type, so 200 types deploy the body that 2, 3 or 4 types do; each type adds
    # its own policy beside the claim's.
    body = template_body(BASE)
    assert len(body.encode()) < 10 * 1024
    for types, deployment in (
        (TWO_TYPES, build({"aws:region": REGION, "deviceTypes": TWO_TYPES})),
        (THREE_TYPES, build({"aws:region": REGION, "deviceTypes": THREE_TYPES})),
        (["temperature-sensor", "humidity-sensor", "pressure-sensor", "gateway"], dev),
    ):
        template = deployment.mocks.one("aws:iot/provisioningTemplate:ProvisioningTemplate")
        assert template.inputs["templateBody"] == body
        policies = Counter(r.type for r in deployment.mocks.resources)["aws:iot/policy:Policy"]
        assert policies == len(types) + 1  # the types' and the claim's


# --- roles and the hook --------------------------------------------------------------------------------


def test_provisioning_role_is_trusted_by_iot_for_this_account_only(dev: Deployment) -> None:
    role = named(dev, "aws:iam/role:Role", f"{BASE}-{REGION}-provisioning")
    assert policy_document(role, "assumeRolePolicy")["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "iot.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
        }
    ]


def test_provisioning_role_gets_the_policy_aws_documents_by_default(dev: Deployment) -> None:
    attachment = dev.mocks.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["role"] == f"{BASE}-{REGION}-provisioning"
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration"
    roles_with_inline_policies = {
        p.inputs["role"] for p in dev.mocks.of_type("aws:iam/rolePolicy:RolePolicy")
    }
    assert f"{BASE}-{REGION}-provisioning-id" not in roles_with_inline_policies


def scoped_role_statements(deployment: Deployment) -> list[dict[str, Any]]:
    [role_policy] = [
        p
        for p in deployment.mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"].endswith("-provisioning-id")
    ]
    return statements(policy_document(role_policy))


def test_scoped_provisioning_role_keeps_every_managed_action_within_this_stack(build: Build) -> None:
    scoped = build({"aws:region": REGION, "provisioningRolePolicy": "scoped"})
    assert not scoped.mocks.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    granted = scoped_role_statements(scoped)
    actions = [action for statement in granted for action in statement["Action"]]
    assert sorted(actions) == sorted(THINGS_REGISTRATION_ACTIONS)
    by_action = {action: statement["Resource"] for statement in granted for action in statement["Action"]}
    # Actions IAM lists no resource type for take only "*"; the rest name this stack's resources.
    assert by_action["iot:ListAttachedPolicies"] == ["*"]
    assert by_action["iot:RegisterThing"] == ["*"]
    assert by_action["iot:CreateThing"] == [
        f"{IOT_ARN}:billinggroup/{BASE}_*",
        f"{IOT_ARN}:thing/{BASE}_*",
    ]
    assert by_action["iot:ListThingPrincipals"] == [f"{IOT_ARN}:thing/{BASE}_*"]
    assert by_action["iot:AddThingToThingGroup"] == [
        f"{IOT_ARN}:thing/{BASE}_*",
        f"{IOT_ARN}:thinggroup/{BASE}-fleet",
        f"{IOT_ARN}:thinggroup/{BASE}_*",
    ]
    assert by_action["iot:AttachPolicy"] == [
        f"{IOT_ARN}:cert/*",
        f"{IOT_ARN}:thinggroup/{BASE}-fleet",
        f"{IOT_ARN}:thinggroup/{BASE}_*",
    ]
    assert "iot:DeletePolicy" not in by_action


def test_no_stack_can_touch_another_stacks_things_or_policies(build: Build) -> None:
    # "dev" is a prefix of "dev-eu": neither stack's role may reach the other's things, types, groups or
    # policies, even for a serial or type chosen to collide ("eu-SN1" in dev vs "SN1" in dev-eu).
    dev = build({"aws:region": REGION, "provisioningRolePolicy": "scoped"}, stack="dev")
    dev_eu = build({"aws:region": REGION, "provisioningRolePolicy": "scoped"}, stack="dev-eu")
    kinds = (
        ("policy", "aws:iot/policy:Policy"),
        ("thinggroup", "aws:iot/thingGroup:ThingGroup"),
        ("thingtype", "aws:iot/thingType:ThingType"),
    )
    for mine, theirs in ((dev, dev_eu), (dev_eu, dev)):
        allowed = [
            resource
            for statement in scoped_role_statements(mine)
            for resource in statement["Resource"]
            if resource != "*"
        ]
        their_names = [
            f"{IOT_ARN}:{kind}/{resource.inputs['name']}"
            for kind, typ in kinds
            for resource in theirs.mocks.of_type(typ)
        ]
        their_base = theirs.outputs["provisioningTemplateName"].removesuffix("-fleet")
        their_names.append(f"{IOT_ARN}:thing/{thing_name(their_base, 'SN1')}")
        their_names.append(f"{IOT_ARN}:thinggroup/{their_base}-fleet")
        for name in their_names:
            assert not any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed), name
    assert thing_name("iot-provisioning-dev", "eu-SN1") != thing_name("iot-provisioning-dev-eu", "SN1")


def test_hook_role_may_only_write_its_logs_update_the_registry_and_check_the_claim_breaker(
    dev: Deployment,
) -> None:
    policies = {p.inputs["role"]: p for p in dev.mocks.of_type("aws:iam/rolePolicy:RolePolicy")}
    log_group = named(dev, "aws:cloudwatch/logGroup:LogGroup", f"/aws/lambda/{HOOK}")
    logs, registry = statements(policy_document(policies[f"{BASE}-{REGION}-hook-id"]))
    assert logs["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert logs["Resource"] == [f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{log_group.inputs['name']}:*"]
    assert registry["Action"] == ["dynamodb:ConditionCheckItem", "dynamodb:UpdateItem"]
    assert registry["Resource"] == [f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE}"]
    hook_role = named(dev, "aws:iam/role:Role", f"{BASE}-{REGION}-hook")
    assert policy_document(hook_role, "assumeRolePolicy")["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }


def test_hook_runs_on_arm64_python_313_with_the_layer_json_logs_and_retention(dev: Deployment) -> None:
    hook = named(dev, "aws:lambda/function:Function", HOOK)
    log_group = named(dev, "aws:cloudwatch/logGroup:LogGroup", f"/aws/lambda/{HOOK}")
    assert hook.inputs["runtime"] == "python3.13"
    assert hook.inputs["architectures"] == ["arm64"]
    assert hook.inputs["handler"] == "hook.pre_provisioning.lambda_handler"
    assert (hook.inputs["timeout"], hook.inputs["memorySize"]) == (5, 256)
    assert hook.inputs["layers"] == [
        f"arn:aws:lambda:{REGION}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:27"
    ]
    assert hook.inputs["environment"]["variables"]["REGISTRY_TABLE_NAME"] == TABLE
    assert hook.inputs["loggingConfig"] == {"logFormat": "JSON", "logGroup": log_group.inputs["name"]}
    assert log_group.inputs["name"] == f"/aws/lambda/{hook.inputs['name']}"
    assert log_group.inputs["retentionInDays"] == 30


def test_hook_settings_come_from_config(build: Build) -> None:
    deployment = build(
        {"aws:region": "eu-west-1", "lambdaTimeout": 3, "lambdaMemorySize": 512, "powertoolsLayerVersion": 30}
    )
    hook = named(deployment, "aws:lambda/function:Function", HOOK)
    assert (hook.inputs["timeout"], hook.inputs["memorySize"]) == (3, 512)
    assert hook.inputs["layers"][0].startswith("arn:aws:lambda:eu-west-1:017000801446:")
    assert hook.inputs["layers"][0].endswith(":30")


def test_hook_package_holds_the_hook_and_the_rules_of_the_configured_types(build: Build) -> None:
    types = [
        "gateway",
        {"name": "meter", "serialPattern": "M-[0-9]{4}", "minFirmwareVersion": "v2.1.0", "retired": False},
    ]
    deployment = build({"aws:region": REGION, "deviceTypes": types, "requirePreregistration": True})
    assets = named(deployment, "aws:lambda/function:Function", HOOK).inputs["code"].assets
    assert set(assets) == {*archive_sources(PRE_PROVISIONING), f"hook/{RULES_FILE_NAME}"}
    assert {
        "hook/pre_provisioning.py",
        "hook/contract.py",
        "hook/rules.py",
        "hook/registry_transitions.py",
    } <= set(assets)
    rules = json.loads(assets[f"hook/{RULES_FILE_NAME}"].text)
    assert rules == {
        "deviceTypes": {
            "gateway": rules_entry(),
            "meter": rules_entry(serialPattern="M-[0-9]{4}", minFirmwareVersion="v2.1.0"),
        },
        "requirePreregistration": True,
    }
    assert set(parse_rules(rules).device_types) == {"gateway", "meter"}


def test_each_function_is_deployed_with_its_own_package_of_what_it_imports(dev: Deployment) -> None:
    by_handler = {code.handler: code for code in FUNCTIONS}
    functions = dev.mocks.of_type("aws:lambda/function:Function")

    assert sorted(function.inputs["handler"] for function in functions) == sorted(by_handler)
    for function in functions:
        code = by_handler[function.inputs["handler"]]
        assets = function.inputs["code"].assets
        assert set(assets) == {*archive_sources(code), *(f"hook/{name}" for name in code.config_files)}


def test_iot_may_invoke_the_hook_only_for_this_account(dev: Deployment) -> None:
    [permission] = [
        p for p in dev.mocks.of_type("aws:lambda/permission:Permission") if p.inputs["function"] == HOOK
    ]
    assert permission.inputs["principal"] == "iot.amazonaws.com"
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["sourceAccount"] == ACCOUNT_ID
    # AWS documents no SourceArn for a hook's invocation: a condition on one could refuse every request.
    assert "sourceArn" not in permission.inputs


# --- the registry ---------------------------------------------------------------------------------------


def test_registry_table_is_keyed_and_indexed_from_the_hook_contract(dev: Deployment) -> None:
    table = dev.mocks.one("aws:dynamodb/table:Table")
    assert table.inputs["name"] == TABLE
    assert table.inputs["hashKey"] == REGISTRY_PARTITION_KEY
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    indexes = {
        index["name"]: [(key["attributeName"], key["keyType"]) for key in index["keySchemas"]]
        for index in table.inputs["globalSecondaryIndexes"]
    }
    assert indexes == {
        name: [(hash_key, "HASH"), (range_key, "RANGE")]
        for name, (hash_key, range_key) in REGISTRY_INDEXES.items()
    }
    # Sharded partition keys only: no index is keyed by the five statuses or the handful of types.
    assert indexes == {
        "byStatusShard": [("statusShard", "HASH"), ("updatedAt", "RANGE")],
        "byTypeShard": [("typeShard", "HASH"), ("serialNumber", "RANGE")],
    }
    assert {index["projectionType"] for index in table.inputs["globalSecondaryIndexes"]} == {"ALL"}
    assert sorted(attribute["name"] for attribute in table.inputs["attributes"]) == [
        "serialNumber",
        "statusShard",
        "typeShard",
        "updatedAt",
    ]
    assert table.inputs["pointInTimeRecovery"] == {"enabled": True}
    assert table.inputs["serverSideEncryption"] == {"enabled": True}
    assert table.inputs["deletionProtectionEnabled"] is False
    assert table.protect is False


def test_protected_data_cannot_be_deleted_by_accident(build: Build) -> None:
    deployment = build({"aws:region": REGION}, stack="prod")
    table = deployment.mocks.one("aws:dynamodb/table:Table")
    assert table.inputs["deletionProtectionEnabled"] is True
    assert table.protect is True
    assert [r.name for r in deployment.mocks.resources if r.protect] == [table.name]


def test_provisioned_billing_sets_capacity_on_the_table_and_every_index(build: Build) -> None:
    deployment = build(
        {
            "aws:region": REGION,
            "dynamodbBillingMode": "PROVISIONED",
            "dynamodbReadCapacity": 7,
            "dynamodbWriteCapacity": 3,
        }
    )
    table = deployment.mocks.one("aws:dynamodb/table:Table")
    assert (table.inputs["billingMode"], table.inputs["readCapacity"], table.inputs["writeCapacity"]) == (
        "PROVISIONED",
        7,
        3,
    )
    assert all(
        (i["readCapacity"], i["writeCapacity"]) == (7, 3) for i in table.inputs["globalSecondaryIndexes"]
    )


# --- tags, outputs, bad config -------------------------------------------------------------------------


def test_every_taggable_resource_carries_environment_project_and_extra_tags(dev: Deployment) -> None:
    declared_types = {r.type for r in dev.mocks.resources if not r.type.startswith("iot-fleet-provisioning:")}
    assert declared_types <= TAGGABLE | NOT_TAGGABLE, "classify every new resource type"
    expected = {
        "Project": "iot-fleet-provisioning",
        "Environment": "dev",
        "ManagedBy": "pulumi",
        "Owner": "IoT-Team",
    }
    for resource in dev.mocks.resources:
        if resource.type in TAGGABLE:
            assert resource.inputs.get("tags") == expected, resource.name


def test_outputs_name_the_deployed_resources_and_the_instructions_use_them(dev: Deployment) -> None:
    outputs = dev.outputs
    assert outputs["provisioningTemplateName"] == TEMPLATE
    assert outputs["provisioningTemplateArn"].endswith(f"provisioningtemplate/{TEMPLATE}")
    assert outputs["deviceRegistryTableName"] == TABLE
    assert outputs["provisioningHookFunctionName"] == f"{BASE}-provisioning-hook"
    assert outputs["iotEndpoint"] == f"abc123-ats.iot.{REGION}.amazonaws.com"
    assert outputs["claimCertificateId"] == "0" * 63 + "1"  # the id AWS gave the claim certificate (mocked)
    assert outputs["claimCertificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    assert outputs["region"] == REGION
    assert outputs["baseName"] == BASE
    assert parse_rules(outputs["hookRules"]).device_types.keys() == {
        "temperature-sensor",
        "humidity-sensor",
        "pressure-sensor",
        "gateway",
    }
    instructions = outputs["deploymentInstructions"]
    for name in (
        TEMPLATE,
        TABLE,
        outputs["iotEndpoint"],
        outputs["claimCertificateId"],
        f'"{BASE}-claim-<serial>"',
    ):
        assert name in instructions


def test_bad_config_fails_before_any_resource_is_declared() -> None:
    with pytest.raises(SettingsError, match="lambdaTimeout = 90"):
        deploy({"aws:region": REGION, "lambdaTimeout": 90})
