"""The local deployer's translation of identity policies into the emulator's terms (``emulated_policy``): the
same grants, on the resources the emulator checks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.deploy.resources.compute import emulated_policy
from tests.pulumi_mocks import ACCOUNT_ID, Build, Deployment

IOT_ARN = f"arn:aws:iot:us-east-1:{ACCOUNT_ID}"
BASE = "iot-provisioning-dev"
ROLE_BASE = f"{BASE}-us-east-1"


@pytest.fixture(scope="module")
def policies(build: Build) -> dict[str, dict[str, Any]]:
    deployment: Deployment = build({"aws:region": "us-east-1"})
    return {
        policy.inputs["role"].removesuffix("-id"): json.loads(policy.inputs["policy"])
        for policy in deployment.mocks.of_type("aws:iam/rolePolicy:RolePolicy")
    }


def test_thing_principal_grants_name_the_same_things_as_resources(
    policies: dict[str, dict[str, Any]],
) -> None:
    for role, action in (
        (f"{ROLE_BASE}-rotation", "iot:AttachThingPrincipal"),
        (f"{ROLE_BASE}-retirement", "iot:DetachThingPrincipal"),
    ):
        emulated = emulated_policy(policies[role])["Statement"]
        [statement] = [s for s in emulated if action in s["Action"]]
        # The emulator checks the action on the thing's ARN and has no iot:thingArn key.
        assert statement == {"Effect": "Allow", "Action": [action], "Resource": [f"{IOT_ARN}:thing/{BASE}_*"]}


def test_target_policy_actions_move_to_star_and_the_rest_stays(policies: dict[str, dict[str, Any]]) -> None:
    original = policies[f"{ROLE_BASE}-rotation"]["Statement"]
    emulated = emulated_policy(policies[f"{ROLE_BASE}-rotation"])["Statement"]
    assert {"Effect": "Allow", "Action": ["iot:AttachPolicy"], "Resource": ["*"]} in emulated
    assert {
        "Effect": "Allow",
        "Action": ["iot:UpdateCertificate"],
        "Resource": [f"{IOT_ARN}:cert/*"],
    } in emulated
    untouched = [
        s for s in original if not {"iot:AttachPolicy", "iot:AttachThingPrincipal"} & set(s["Action"])
    ]
    assert all(statement in emulated for statement in untouched)
    granted = {action for statement in emulated for action in statement["Action"]}
    assert granted == {action for statement in original for action in statement["Action"]}


def test_every_other_role_is_deployed_as_written(policies: dict[str, dict[str, Any]]) -> None:
    others = {
        role: document
        for role, document in policies.items()
        if role not in {f"{ROLE_BASE}-rotation", f"{ROLE_BASE}-retirement"}
    }
    assert len(others) >= 5
    assert all(emulated_policy(document) == document for document in others.values())


def test_a_deny_or_a_conditional_grant_is_never_widened() -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Action": ["iot:AttachPolicy"], "Resource": [f"{IOT_ARN}:cert/*"]},
            {
                "Effect": "Allow",
                "Action": ["iot:DetachPolicy"],
                "Resource": [f"{IOT_ARN}:cert/*"],
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
            },
        ],
    }
    assert emulated_policy(document) == document
