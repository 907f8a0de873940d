"""ClaimBreaker: the function that counts approvals per claim certificate on the registry table's stream and
trips a certificate's breaker past its budget (``hook/claim_breaker.py`` explains the design)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pulumi

from components import documents
from components.device_registry import RegistryReference
from components.function import FunctionArgs, FunctionDefaults, create_function, create_stream_mapping
from components.function_archives import CLAIM_BREAKER
from components.names import Role
from hook.claim_breaker import CLAIM_APPROVALS_PREFIX, CLAIM_BREAKER_PREFIX, CLAIM_BUDGETS_ENV
from hook.contract import Attr

BREAKER_TIMEOUT_SECONDS: Final = 30
BREAKER_BATCH_SIZE: Final = 100
"""Stream records per invocation: one count update per claim certificate in the batch, whatever its size."""
BREAKER_MAXIMUM_RETRY_ATTEMPTS: Final = 5
"""Retries of a failing batch before Lambda moves past it: the default (until the record expires, 24 hours)
would hold back every later approval of its stream shard, and so the trip."""


def breaker_filter_patterns() -> list[str]:
    """The stream records the function is given: those whose item names a claim certificate after the
    change (every approval, activation and later change of a provisioned device; the function counts only
    those that write a new ``approvedAt`` or ``reprovisionedAt``). Filtering on ``NewImage`` leaf nodes with
    ``exists``: AWS Lambda developer guide, "Using event filtering with a DynamoDB event source"."""
    pattern = {"dynamodb": {"NewImage": {Attr.CLAIM_CERTIFICATE_ID.value: {"S": [{"exists": True}]}}}}
    return [json.dumps(pattern, sort_keys=True)]


def budgets_document(certificate_ids: Mapping[str, str], budgets: Mapping[str, int]) -> str:
    """The function's :data:`~hook.claim_breaker.CLAIM_BUDGETS_ENV`: each generation's budget under its
    claim certificate's id (the hook and the stream know certificates, not generation names)."""
    return json.dumps(
        {certificate_ids[generation]: budgets[generation] for generation in certificate_ids}, sort_keys=True
    )


def breaker_statements(table_arn: str, stream_arn: str) -> list[dict[str, Any]]:
    """What the function needs: read the table's stream (as the retirement function does,
    ``components/certificate_lifecycle.py``), add to and read the approval counts, and open a breaker's
    items, and no other item of the table."""
    return [
        documents.allow(
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"], [stream_arn]
        ),
        # ListStreams takes only "*" (it lists stream ARNs, no data).
        documents.allow(["dynamodb:ListStreams"], ["*"]),
        # Only the breaker's and the counts' items, never a device's: dynamodb:LeadingKeys is the partition
        # key of the item a GetItem or UpdateItem names (DynamoDB developer guide, "Using IAM policy
        # conditions for fine-grained access control").
        documents.allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [table_arn])
        | {
            "Condition": {
                "ForAllValues:StringLike": {
                    "dynamodb:LeadingKeys": [f"{CLAIM_BREAKER_PREFIX}*", f"{CLAIM_APPROVALS_PREFIX}*"]
                }
            }
        },
    ]


@dataclass(frozen=True)
class ClaimBreakerArgs:
    """Arguments of :class:`ClaimBreaker`."""

    name_prefix: str
    registry: RegistryReference
    """The table whose stream carries the approvals, and which holds the breakers and the counts."""
    claim_certificates: Mapping[str, pulumi.Input[str]]
    """Each generation's claim certificate id, by generation name."""
    budget_per_generation: Mapping[str, int]
    """Each generation's approvals per hour, by generation name."""
    defaults: FunctionDefaults


class ClaimBreaker(pulumi.ComponentResource):
    """The claim-breaker function and its mapping on the registry table's stream."""

    function_name: pulumi.Output[str]

    def __init__(self, name: str, args: ClaimBreakerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iot-fleet-provisioning:index:ClaimBreaker", name, None, opts)
        generations = sorted(args.claim_certificates)
        budgets = pulumi.Output.all(
            *(args.claim_certificates[generation] for generation in generations)
        ).apply(
            lambda ids: budgets_document(dict(zip(generations, ids, strict=True)), args.budget_per_generation)
        )
        stream_arn = args.registry.stream_arn
        if stream_arn is None:
            raise ValueError(
                "the claim breaker follows the registry's stream: declare it in the registry region"
            )
        function = create_function(
            f"{name}-function",
            FunctionArgs(
                function_name=f"{args.name_prefix}-claim-breaker",
                role=Role.CLAIM_BREAKER,
                code=CLAIM_BREAKER,
                description="Counts approvals per claim certificate and trips its breaker past the budget",
                statements=pulumi.Output.all(args.registry.table_arn, stream_arn).apply(
                    lambda values: breaker_statements(values[0], values[1])
                ),
                environment={**args.registry.environment(), CLAIM_BUDGETS_ENV: budgets},
                timeout=BREAKER_TIMEOUT_SECONDS,
                memory_size=256,
            ),
            args.defaults,
            parent=self,
        )
        create_stream_mapping(
            f"{name}-stream",
            stream_arn,
            function,
            breaker_filter_patterns(),
            tags=args.defaults.tags,
            parent=self,
            # LATEST: approvals older than the mapping are not this breaker's to count; a replaced mapping
            # misses the approvals made while it was gone (the trip comes later, never falsely).
            starting_position="LATEST",
            batch_size=BREAKER_BATCH_SIZE,
            maximum_retry_attempts=BREAKER_MAXIMUM_RETRY_ATTEMPTS,
        )
        self.function_name = function.name
        self.register_outputs({"function_name": self.function_name})
