"""A Lambda function of this project: its own package of `hook/` code, log group and least-privilege role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components import documents
from components.function_archives import FunctionCode, function_archive
from components.names import AccountWideNames, Role
from components.powertools import ARCHITECTURE, RUNTIME
from hook.contract import METRICS_NAMESPACE_ENV


@dataclass(frozen=True)
class FunctionDefaults:
    """What every function of the stack shares. The components that declare functions retain and tag their
    other resources the same way."""

    config_files: Mapping[str, str]
    """The configuration files the stack generates for its functions, by file name (the rules, the
    activation's configuration); each function's package takes the ones it reads."""
    layer_arn: pulumi.Input[str]
    """The Powertools layer."""
    log_retention_days: int
    metrics_namespace: str
    """The stack's namespace of the functions' metrics (:func:`hook.contract.metrics_namespace`)."""
    account_wide_names: AccountWideNames
    """Names the functions' roles (IAM names are account-wide, so they carry the region)."""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionArgs:
    """What differs between the project's functions."""

    function_name: str
    role: Role
    """Which of the stack's roles the function runs with; its own, named from this."""
    code: FunctionCode
    description: str
    statements: pulumi.Input[list[dict[str, Any]]]
    """IAM statements the function needs besides writing its own log group."""
    environment: dict[str, pulumi.Input[str]]
    timeout: int
    memory_size: int


def create_function(
    name: str, args: FunctionArgs, defaults: FunctionDefaults, parent: pulumi.Resource
) -> aws.lambda_.Function:
    """Declare the function, its log group (``/aws/lambda/<name>``, with retention) and its role.

    A renamed role is replaced: its ``name`` is ForceNew (terraform-provider-aws iam/role.go) and Pulumi
    creates the new role before it deletes the old one; the function's ``role`` is updated in place, retried
    while the new role propagates (lambda/function.go ``retryFunctionOp``)."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=f"/aws/lambda/{args.function_name}",
        retention_in_days=defaults.log_retention_days,
        tags=defaults.tags,
        opts=child,
    )
    role = aws.iam.Role(
        f"{name}-role",
        name=defaults.account_wide_names.role(args.role),
        assume_role_policy=documents.service_trust_policy("lambda.amazonaws.com"),
        tags=defaults.tags,
        opts=child,
    )
    role_policy = aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=pulumi.Output.all(log_group.arn, args.statements).apply(
            lambda values: documents.log_writer_policy(values[0], documents.FUNCTION_LOG_ACTIONS, values[1])
        ),
        opts=child,
    )
    return aws.lambda_.Function(
        name,
        name=args.function_name,
        description=args.description,
        runtime=RUNTIME,
        architectures=[ARCHITECTURE],
        handler=args.code.handler,
        code=function_archive(args.code, defaults.config_files),
        layers=[defaults.layer_arn],
        role=role.arn,
        timeout=args.timeout,
        memory_size=args.memory_size,
        environment=aws.lambda_.FunctionEnvironmentArgs(
            variables={
                **args.environment,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                METRICS_NAMESPACE_ENV: defaults.metrics_namespace,
            }
        ),
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group.name),
        tags=defaults.tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[log_group, role_policy]),
    )


def create_stream_mapping(
    name: str,
    stream_arn: pulumi.Input[str],
    function: aws.lambda_.Function,
    filter_patterns: list[str],
    *,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    **settings: Any,
) -> aws.lambda_.EventSourceMapping:
    """A function's event source mapping on a DynamoDB stream, given only the records of
    ``filter_patterns`` (ORed), with bisection of a failing batch; ``settings``: the mapping's starting
    position, batch size, retries and the like. Created after the function, so after its role policy:
    Lambda's checks that the role may read the stream pass at creation."""
    return aws.lambda_.EventSourceMapping(
        name,
        event_source_arn=stream_arn,
        function_name=function.arn,
        bisect_batch_on_function_error=True,
        filter_criteria=aws.lambda_.EventSourceMappingFilterCriteriaArgs(
            filters=[
                aws.lambda_.EventSourceMappingFilterCriteriaFilterArgs(pattern=pattern)
                for pattern in filter_patterns
            ]
        ),
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
        **settings,
    )
