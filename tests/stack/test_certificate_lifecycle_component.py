"""The CertificateLifecycle component under the mock engine: the rotation rule and function, the retirement
function on the registry's stream, and what each may do."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hook import rotation_requests
from hook.certificate_retirement import dropped_certificates
from hook.contract import Attr, thing_name
from hook.rotation_contract import RotationRejection, RotationStep
from tests.pulumi_mocks import ACCOUNT_ID, STREAM_LABEL, Build, Declared, Deployment

REGION = "us-east-1"
BASE = "iot-provisioning-dev"
IOT_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{BASE}-device-registry"
STREAM_ARN = f"{TABLE_ARN}/stream/{STREAM_LABEL}"
RULE = "iot_provisioning_dev_certificate_rotation"
ROTATION = f"{BASE}-certificate-rotation"
RETIREMENT = f"{BASE}-certificate-retirement"
ROTATION_ROLE = f"{BASE}-{REGION}-rotation"
RETIREMENT_ROLE = f"{BASE}-{REGION}-retirement"
OWN_THINGS = {"ArnLike": {"iot:thingArn": f"{IOT_ARN}:thing/{BASE}_*"}}
FAILURES_QUEUE = f"{BASE}-certificate-retirement-failures"
FAILURES_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{FAILURES_QUEUE}"
CERTIFICATE_ID = "ab" * 32


@pytest.fixture(scope="module")
def dev(build: Build) -> Deployment:
    return build({"aws:region": REGION})


def named(deployment: Deployment, typ: str, name: str) -> Declared:
    [resource] = [r for r in deployment.mocks.of_type(typ) if r.inputs.get("name") == name]
    return resource


def retirement_mapping(deployment: Deployment) -> Declared:
    """The retirement function's mapping on the registry stream (the claim breaker has one too)."""
    [mapping] = [
        m
        for m in deployment.mocks.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
        if "certificate-retirement" in m.inputs["functionName"]
    ]
    return mapping


def role_statements(deployment: Deployment, role: str) -> list[dict[str, Any]]:
    [policy] = [
        p
        for p in deployment.mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == f"{role}-id"
    ]
    statements: list[dict[str, Any]] = json.loads(policy.inputs["policy"])["Statement"]
    return statements


# --- the registry's stream -------------------------------------------------------------------------------


def test_registry_table_streams_every_change_with_the_item_before_and_after(dev: Deployment) -> None:
    table = dev.mocks.one("aws:dynamodb/table:Table")
    assert (table.inputs["streamEnabled"], table.inputs["streamViewType"]) == (True, "NEW_AND_OLD_IMAGES")


# --- rotation ------------------------------------------------------------------------------------------


def test_rotation_rule_invokes_the_rotation_function_from_this_rule_only(dev: Deployment) -> None:
    rule = named(dev, "aws:iot/topicRule:TopicRule", RULE)
    assert rule.inputs["sqlVersion"] == "2016-03-23"
    assert rule.inputs["lambdas"] == [
        {"functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{ROTATION}"}
    ]
    assert rule.inputs["errorAction"]["cloudwatchLogs"]["logGroupName"] == f"/aws/iot/rules/{RULE}/errors"
    [permission] = [
        p for p in dev.mocks.of_type("aws:lambda/permission:Permission") if p.inputs["function"] == ROTATION
    ]
    assert permission.inputs["principal"] == "iot.amazonaws.com"
    assert permission.inputs["sourceArn"] == f"{IOT_ARN}:rule/{RULE}"
    assert permission.inputs["sourceAccount"] == ACCOUNT_ID


SQL = re.compile(
    r"SELECT (?P<select>.+) FROM '(?P<topics>[^']+)' "
    r"WHERE startswith\(topic\(2\), '(?P<prefix>[^']+)'\) AND \((?P<steps>.+)\)"
)


def rule_sql(deployment: Deployment) -> re.Match[str]:
    match = SQL.fullmatch(named(deployment, "aws:iot/topicRule:TopicRule", RULE).inputs["sql"])
    assert match, "the rotation rule's SQL changed shape: update this test's reading of it"
    return match


def project(select: str, topic: str, payload: dict[str, Any], principal: str) -> dict[str, Any]:
    """What the rule hands the function: each SELECT item, a payload field or one of the functions the rule
    uses, under its name or alias; a field the payload lacks is left out (AWS IoT SQL "Undefined")."""
    event: dict[str, Any] = {}
    for item in (part.strip() for part in select.split(",")):
        expression, _, alias = item.partition(" AS ")
        if expression == "principal()":
            event[alias] = principal
        elif call := re.fullmatch(r"topic\((\d)\)", expression):
            event[alias] = topic.split("/")[int(call[1]) - 1]
        else:
            assert re.fullmatch(r"\w+", expression), f"the rule selects {expression!r}: no * or expressions"
            if expression in payload:
                event[alias or expression] = payload[expression]
    return event


def csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TS-000001")])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_rotation_rule_takes_only_this_stacks_devices_requests(dev: Deployment) -> None:
    sql = rule_sql(dev)
    assert sql["topics"] == "rotation/+/+"
    assert thing_name(BASE, "TS-1").startswith(sql["prefix"])
    # A stack whose name extends this one's ("dev" and "dev-eu") never has its devices' requests taken.
    assert not thing_name(f"{BASE}-eu", "TS-1").startswith(sql["prefix"])
    # The function's own answers (certificate, rejected) match rotation/+/+ too: they must not loop back.
    assert sql["steps"] == "topic(3) = 'csr' OR topic(3) = 'result'"


@pytest.mark.parametrize(
    ("step", "payload"),
    [
        (RotationStep.CSR, {"csr": csr_pem(), "jobId": f"{BASE}-rotate-1"}),
        (RotationStep.RESULT, {"jobId": f"{BASE}-rotate-1", "status": "SUCCEEDED"}),
        (
            RotationStep.RESULT,
            {"jobId": f"{BASE}-rotate-1", "status": "FAILED", "reason": "new certificate refused"},
        ),
    ],
)
def test_rotation_rule_hands_the_function_every_field_of_a_step_and_the_caller_from_aws(
    dev: Deployment, step: RotationStep, payload: dict[str, Any]
) -> None:
    thing = thing_name(BASE, "TS-000001")
    # A device that puts a certificate id of its own choosing in the payload gets nowhere with it.
    forged = {**payload, "callerCertificateId": "00" * 32, "thingName": thing_name(BASE, "TS-2")}
    event = project(rule_sql(dev)["select"], f"rotation/{thing}/{step.value}", forged, CERTIFICATE_ID)
    request = rotation_requests.parse_request(event, BASE)
    assert request is not None
    assert (request.thing_name, request.step, request.caller_certificate_id) == (thing, step, CERTIFICATE_ID)
    assert (request.job_id, request.csr, request.status) == (
        payload["jobId"],
        payload.get("csr", ""),
        payload.get("status", ""),
    )


def test_rotation_role_signs_attaches_and_answers_for_this_stacks_things_only(dev: Deployment) -> None:
    logs, registry, sign, certificates, things, jobs, answer = role_statements(dev, ROTATION_ROLE)
    assert logs["Resource"] == [f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/{ROTATION}:*"]
    assert registry == {
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
        "Resource": [TABLE_ARN],
    }
    assert sign == {"Effect": "Allow", "Action": ["iot:CreateCertificateFromCsr"], "Resource": ["*"]}
    assert certificates == {
        "Effect": "Allow",
        "Action": ["iot:AttachPolicy", "iot:UpdateCertificate"],
        "Resource": [f"{IOT_ARN}:cert/*"],
    }
    assert things == {
        "Effect": "Allow",
        "Action": ["iot:AttachThingPrincipal"],
        "Resource": [f"{IOT_ARN}:cert/*"],
        "Condition": OWN_THINGS,
    }
    assert jobs == {
        "Effect": "Allow",
        "Action": ["iot:DescribeJobExecution"],
        "Resource": [f"{IOT_ARN}:job/{BASE}-rotate-*", f"{IOT_ARN}:thing/{BASE}_*"],
    }
    assert answer == {
        "Effect": "Allow",
        "Action": ["iot:Publish"],
        "Resource": [f"{IOT_ARN}:topic/rotation/{BASE}_*/{step}" for step in ("certificate", "rejected")],
    }


# --- retirement ----------------------------------------------------------------------------------------


def test_retirement_role_reads_the_stream_and_retires_certificates_of_this_stacks_things(
    dev: Deployment,
) -> None:
    logs, stream, list_streams, certificates, things, principals, failures = role_statements(
        dev, RETIREMENT_ROLE
    )
    assert logs["Resource"] == [f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/{RETIREMENT}:*"]
    assert stream == {
        "Effect": "Allow",
        "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
        "Resource": [STREAM_ARN],
    }
    assert list_streams == {"Effect": "Allow", "Action": ["dynamodb:ListStreams"], "Resource": ["*"]}
    assert certificates == {
        "Effect": "Allow",
        "Action": ["iot:DescribeCertificate", "iot:DetachPolicy", "iot:UpdateCertificate"],
        "Resource": [f"{IOT_ARN}:cert/*"],
    }
    assert things == {
        "Effect": "Allow",
        "Action": ["iot:DetachThingPrincipal"],
        "Resource": [f"{IOT_ARN}:cert/*"],
        "Condition": OWN_THINGS,
    }
    # whether a replacement certificate is attached yet, on this stack's things only
    assert principals == {
        "Effect": "Allow",
        "Action": ["iot:ListThingPrincipals"],
        "Resource": [f"{IOT_ARN}:thing/{BASE}_*"],
    }
    # Lambda sends a stream mapping's on-failure records with the function's execution role.
    assert failures == {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [FAILURES_QUEUE_ARN]}


def test_neither_function_attaches_or_detaches_another_stacks_things(build: Build) -> None:
    # "dev" is a prefix of "dev-eu": each stack's thing condition must miss the other's things.
    stacks = {stack: build({"aws:region": REGION}, stack=stack) for stack in ("dev", "dev-eu")}
    for mine, theirs in (("dev", "dev-eu"), ("dev-eu", "dev")):
        patterns = [
            statement["Condition"]["ArnLike"]["iot:thingArn"]
            for role in (
                f"iot-provisioning-{mine}-{REGION}-rotation",
                f"iot-provisioning-{mine}-{REGION}-retirement",
            )
            for statement in role_statements(stacks[mine], role)
            if "Condition" in statement
        ]
        assert len(patterns) == 2
        their_thing = f"{IOT_ARN}:thing/{thing_name(f'iot-provisioning-{theirs}', 'eu-SN1')}"
        own_thing = f"{IOT_ARN}:thing/{thing_name(f'iot-provisioning-{mine}', 'SN1')}"
        assert all(fnmatch.fnmatchcase(own_thing, pattern) for pattern in patterns)
        assert not any(fnmatch.fnmatchcase(their_thing, pattern) for pattern in patterns)


def test_retirement_function_follows_the_stream_reporting_failed_records_one_by_one(dev: Deployment) -> None:
    mapping = retirement_mapping(dev)
    assert mapping.inputs["eventSourceArn"] == STREAM_ARN
    assert mapping.inputs["functionName"] == f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{RETIREMENT}"
    # From the oldest record the stream holds: changes made before the mapping existed are retired too.
    assert mapping.inputs["startingPosition"] == "TRIM_HORIZON"
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping.inputs["bisectBatchOnFunctionError"] is True
    # Bounded: Lambda's default retries a failing record until it expires, holding its shard back a day.
    assert 0 < mapping.inputs["maximumRetryAttempts"] <= 10
    assert mapping.inputs["batchSize"] <= 100


def test_batches_given_up_on_are_kept_in_an_encrypted_queue_for_two_weeks(dev: Deployment) -> None:
    mapping = retirement_mapping(dev)
    assert mapping.inputs["destinationConfig"] == {"onFailure": {"destinationArn": FAILURES_QUEUE_ARN}}
    queue = named(dev, "aws:sqs/queue:Queue", FAILURES_QUEUE)
    assert queue.inputs["sqsManagedSseEnabled"] is True
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


def matches(value: Any, pattern: Any) -> bool:
    """Lambda's event filter rules as far as the mapping's patterns use them: nested keys, and at the leaves
    a list of values or ``{"exists": bool}``."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            matches(value.get(key, _MISSING), rule) for key, rule in pattern.items()
        )
    assert isinstance(pattern, list), pattern
    for rule in pattern:
        if isinstance(rule, dict):
            assert set(rule) == {"exists"}, f"this test does not model {rule}"
            if (value is not _MISSING) is rule["exists"]:
                return True
        elif value == rule:
            return True
    return False


_MISSING = object()


def typed(image: dict[str, str] | None) -> dict[str, dict[str, str]] | None:
    return None if image is None else {name: {"S": value} for name, value in image.items()}


def stream_record(event_name: str, old: dict[str, str] | None, new: dict[str, str] | None) -> dict[str, Any]:
    """A change of the registry as the stream gives it (``NEW_AND_OLD_IMAGES``)."""
    change: dict[str, Any] = {"Keys": {"serialNumber": {"S": (new or old or {})["serialNumber"]}}}
    for name, image in (("OldImage", typed(old)), ("NewImage", typed(new))):
        if image is not None:
            change[name] = image
    return {"eventName": event_name, "dynamodb": change}


PREREGISTERED = {"serialNumber": "TS-1", "status": "PREREGISTERED", "deviceType": "temperature-sensor"}
PENDING = {**PREREGISTERED, "status": "PENDING", Attr.CERTIFICATE_ID.value: "c1"}
ACTIVE = {**PENDING, "status": "ACTIVE", "thingName": f"{BASE}_TS-1"}
ROTATING = {**ACTIVE, Attr.PENDING_CERTIFICATE_ID.value: "c2"}
ROTATED = {**ACTIVE, Attr.CERTIFICATE_ID.value: "c2", "replacedCertificateIds": "c1"}
RETRYING = {**ACTIVE, Attr.PENDING_CERTIFICATE_ID.value: "c3"}
REVOKED = {**ACTIVE, "status": "REVOKED"}
REVOKED_ROTATING = {**ROTATING, "status": "REVOKED"}
DECOMMISSIONED = {**REVOKED, "status": "DECOMMISSIONED"}
Change = tuple[str, dict[str, str] | None, dict[str, str] | None]
CHANGES: dict[str, tuple[Change, bool]] = {
    # change: (event name, item before, item after), and whether the function is invoked for it
    "preregistration": (("INSERT", None, PREREGISTERED), False),
    "approval of a new serial": (("INSERT", None, PENDING), False),
    "approval of a preregistered serial": (("MODIFY", PREREGISTERED, PENDING), False),
    "activation": (("MODIFY", PENDING, ACTIVE), True),
    "rotation begun": (("MODIFY", ACTIVE, ROTATING), True),
    "rotation retried with a new key": (("MODIFY", ROTATING, RETRYING), True),
    "rotation completed": (("MODIFY", ROTATING, ROTATED), True),
    "rotation abandoned": (("MODIFY", ROTATING, ACTIVE), True),
    "re-provisioned": (("MODIFY", ACTIVE, {**ACTIVE, Attr.CERTIFICATE_ID.value: "c9"}), True),
    "revocation": (("MODIFY", ACTIVE, REVOKED), True),
    "revocation during a rotation": (("MODIFY", ROTATING, REVOKED_ROTATING), True),
    "revocation of a pending approval": (("MODIFY", PENDING, {**PENDING, "status": "REVOKED"}), True),
    "revocation of a preregistered serial": (
        ("MODIFY", PREREGISTERED, {**PREREGISTERED, "status": "REVOKED"}),
        False,
    ),
    "decommissioning of a revoked device": (("MODIFY", REVOKED, DECOMMISSIONED), True),
    "decommissioning of an active device": (("MODIFY", ACTIVE, {**ACTIVE, "status": "DECOMMISSIONED"}), True),
    "a revoked item changes again": (
        ("MODIFY", REVOKED_ROTATING, {**REVOKED_ROTATING, "revocationReason": "x"}),
        True,
    ),
    "release": (("REMOVE", PENDING, None), True),
}


@pytest.mark.parametrize(("change", "invoked"), CHANGES.values(), ids=CHANGES.keys())
def test_every_change_that_drops_a_certificate_reaches_the_retirement_function(
    dev: Deployment, change: Change, invoked: bool
) -> None:
    event_name, old, new = change
    mapping = retirement_mapping(dev)
    patterns = [json.loads(each["pattern"]) for each in mapping.inputs["filterCriteria"]["filters"]]
    delivered = any(matches(stream_record(event_name, old, new), pattern) for pattern in patterns)
    assert delivered is invoked
    # What the filter drops, the function would have found nothing to retire in.
    assert delivered or not dropped_certificates(old or {}, new or {})


def test_the_filtered_changes_include_every_kind_of_retirement() -> None:
    dropped = {
        name: dropped_certificates(old or {}, new or {}) for name, ((_, old, new), _) in CHANGES.items()
    }
    assert {name: ids for name, ids in dropped.items() if ids} == {
        "rotation retried with a new key": ["c2"],
        "rotation completed": ["c1"],
        "rotation abandoned": ["c2"],
        "re-provisioned": ["c1"],
        "revocation": ["c1"],
        "revocation during a rotation": ["c1", "c2"],
        "revocation of a pending approval": ["c1"],
        "decommissioning of an active device": ["c1"],
        "release": ["c1"],
    }


def test_both_functions_are_packaged_with_their_handlers_and_environment(dev: Deployment) -> None:
    functions = {f.inputs["name"]: f for f in dev.mocks.of_type("aws:lambda/function:Function")}
    for name in (ROTATION, RETIREMENT):
        function = functions[name]
        module, handler = function.inputs["handler"].rsplit(".", 1)
        source = function.inputs["code"].assets[module.replace(".", "/") + ".py"]
        tree = ast.parse(Path(source.path).read_text(encoding="utf-8"))
        assert handler in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        variables = function.inputs["environment"]["variables"]
        assert variables["REGISTRY_TABLE_NAME"] == f"{BASE}-device-registry"
        assert variables["STACK_BASE_NAME"] == BASE
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == f"IoTFleetProvisioning/{BASE}"
    rotation_variables = functions[ROTATION].inputs["environment"]["variables"]
    assert rotation_variables["IOT_DATA_ENDPOINT"] == f"https://abc123-ats.iot.{REGION}.amazonaws.com"
    assert "IOT_DATA_ENDPOINT" not in functions[RETIREMENT].inputs["environment"]["variables"]


def test_a_step_the_handler_refuses_is_refused_with_its_reason(dev: Deployment) -> None:
    # The projection above keeps what the handler validates: a bad job id is still the device's to fix.
    thing = thing_name(BASE, "TS-000001")
    event = project(
        rule_sql(dev)["select"],
        f"rotation/{thing}/csr",
        {"csr": csr_pem(), "jobId": "no spaces"},
        CERTIFICATE_ID,
    )
    with pytest.raises(rotation_requests.RotationRefused) as refused:
        rotation_requests.parse_request(event, BASE)
    assert refused.value.reason is RotationRejection.MALFORMED_REQUEST
