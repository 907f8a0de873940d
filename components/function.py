"""A Lambda function of this project: the packaged hook code, its own log group and a least-privilege role."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components import documents
from components.powertools import ARCHITECTURE, RUNTIME
from hook.contract import METRICS_NAMESPACE_ENV


@dataclass(frozen=True)
class FunctionArgs:
    """What differs between the project's functions."""

    function_name: str
    handler: str
    description: str
    code: pulumi.Archive
    statements: pulumi.Input[list[dict[str, Any]]]
    """IAM statements the function needs besides writing its own log group."""
    environment: dict[str, pulumi.Input[str]]
    metrics_namespace: str
    """The stack's CloudWatch namespace for the function's metrics."""
    layer_arn: pulumi.Input[str]
    timeout: int
    memory_size: int
    log_retention_days: int
    tags: dict[str, str] = field(default_factory=dict)


def create_function(name: str, args: FunctionArgs, parent: pulumi.Resource) -> aws.lambda_.Function:
    """Declare the function, its log group (``/aws/lambda/<name>``, with retention) and its role."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=f"/aws/lambda/{args.function_name}",
        retention_in_days=args.log_retention_days,
        tags=args.tags,
        opts=child,
    )
    role = aws.iam.Role(
        f"{name}-role",
        name=args.function_name,
        assume_role_policy=documents.service_trust_policy("lambda.amazonaws.com"),
        tags=args.tags,
        opts=child,
    )
    role_policy = aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=pulumi.Output.all(log_group.arn, args.statements).apply(
            lambda values: documents.function_role_policy(values[0], values[1])
        ),
        opts=child,
    )
    return aws.lambda_.Function(
        name,
        name=args.function_name,
        description=args.description,
        runtime=RUNTIME,
        architectures=[ARCHITECTURE],
        handler=args.handler,
        code=args.code,
        layers=[args.layer_arn],
        role=role.arn,
        timeout=args.timeout,
        memory_size=args.memory_size,
        environment=aws.lambda_.FunctionEnvironmentArgs(
            variables={
                **args.environment,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                METRICS_NAMESPACE_ENV: args.metrics_namespace,
            }
        ),
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group.name),
        tags=args.tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[log_group, role_policy]),
    )
