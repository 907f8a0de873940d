"""A stack's config copied to a second region of the same account declares none of the first's
account-wide names (IAM roles, the CloudWatch dashboard), which would fail with ``EntityAlreadyExists``
or, for the dashboard, silently overwrite the other region's."""

from __future__ import annotations

from tests.pulumi_mocks import Build, Deployment, stack_config

ACCOUNT_WIDE_NAMES = {"aws:iam/role:Role": "name", "aws:cloudwatch/dashboard:Dashboard": "dashboardName"}
"""The account-wide types the stack declares, and the input that names each."""


def account_wide_names(deployment: Deployment) -> list[str]:
    return [
        resource.inputs[ACCOUNT_WIDE_NAMES[resource.type]]
        for resource in deployment.mocks.resources
        if resource.type in ACCOUNT_WIDE_NAMES and ACCOUNT_WIDE_NAMES[resource.type] in resource.inputs
    ]


def test_the_same_stack_in_two_regions_of_one_account_declares_disjoint_account_wide_names(
    build: Build,
) -> None:
    config = stack_config("prod")
    stacks = {
        region: build({**config, "aws:region": region}, stack="prod") for region in ("us-west-2", "eu-west-1")
    }
    names = {region: account_wide_names(deployment) for region, deployment in stacks.items()}
    for region, declared in names.items():
        # six function roles, the provisioning role, the IoT logging role and the dashboard
        assert len(declared) == 9
        assert all(f"-{region}-" in name for name in declared)
    assert not set(names["us-west-2"]) & set(names["eu-west-1"])


def test_every_iam_name_the_stack_declares_carries_the_region_or_is_left_to_auto_naming(build: Build) -> None:
    deployment = build({**stack_config("prod"), "aws:region": "eu-west-1"}, stack="prod")
    iam = [resource for resource in deployment.mocks.resources if resource.type.startswith("aws:iam/")]
    # An inline policy's name is unique within its role only (IAM PutRolePolicy), so a fixed one is safe.
    named = [
        resource
        for resource in iam
        if "name" in resource.inputs and resource.type != "aws:iam/rolePolicy:RolePolicy"
    ]
    assert named and all("-eu-west-1-" in resource.inputs["name"] for resource in named)
    # The rest get Pulumi's random suffix (the rules' log roles) or are named within their role.
    assert {resource.type for resource in iam if resource not in named} <= {
        "aws:iam/role:Role",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    }
