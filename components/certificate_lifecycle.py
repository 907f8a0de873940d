"""CertificateLifecycle: device certificates after provisioning: rotation by the device's own CSR, and
retirement of every certificate the registry stops holding."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from components import documents
from components.device_registry import RegistryReference
from components.documents import AccountScope
from components.function import FunctionArgs, FunctionDefaults, create_function, create_stream_mapping
from components.function_archives import CERTIFICATE_RETIREMENT, CERTIFICATE_ROTATION
from components.names import Role
from components.rule_logs import FunctionRule, create_function_rule
from hook.contract import IOT_DATA_ENDPOINT_ENV, STACK_BASE_NAME_ENV, Attr, thing_name
from hook.rotation_contract import RotationStep, rotation_job_id_prefix, rotation_topic

ROTATION_TIMEOUT_SECONDS: Final = 30
RETIREMENT_TIMEOUT_SECONDS: Final = 60
RETIREMENT_BATCH_SIZE: Final = 25
"""Stream records per invocation; each retirement is a few AWS IoT calls."""
RETIREMENT_MAXIMUM_RETRY_ATTEMPTS: Final = 5
"""Retries of a failing batch (from the first record the function reports failed, or halved when the
function itself fails) before Lambda moves past it: the default, retrying until the record expires
(24 hours), would hold every later change of its shard back."""
RETIRED_CERTIFICATE_ATTRIBUTES: Final = (Attr.CERTIFICATE_ID, Attr.PENDING_CERTIFICATE_ID)
"""The attributes of a registry item naming a certificate the serial holds: current and pending."""
RETIREMENT_FAILURES_RETENTION_SECONDS: Final = 14 * 24 * 3600
"""How long the on-failure queue keeps a record of a batch Lambda gave up on: SQS's maximum, 14 days
(SetQueueAttributes, MessageRetentionPeriod: 60 to 1,209,600 seconds)."""


def retirement_filter_patterns() -> list[str]:
    """The stream records the retirement function is given: those whose item held a certificate before the
    change (``OldImage``). That is every ``MODIFY`` and ``REMOVE`` that can drop one, and no ``INSERT``
    (which has no ``OldImage``). A revocation or a decommissioning of a device that had a certificate is
    among them (its ``OldImage`` names it); the function decides that such an item holds none any more.

    The filter is on the ``dynamodb`` key, not on ``eventName``: "DynamoDB event source mappings only
    support filtering on the dynamodb key" (AWS Lambda developer guide, "Using event filtering with a
    DynamoDB event source"), which also documents ``OldImage`` patterns and the ``exists`` operator (on
    leaf nodes only: the attribute's ``S``). Patterns are ORed."""
    return [
        json.dumps({"dynamodb": {"OldImage": {attribute.value: {"S": [{"exists": True}]}}}}, sort_keys=True)
        for attribute in RETIRED_CERTIFICATE_ATTRIBUTES
    ]


def on_own_things(actions: list[str], scope: AccountScope, name_prefix: str) -> dict[str, Any]:
    """Actions on a thing's certificates (``AttachThingPrincipal``, ``DetachThingPrincipal``) for this
    stack's things only. Their one resource type is ``cert``; the thing is named by the ``iot:thingArn``
    condition key (Service Authorization Reference, "Actions, resources, and condition keys for AWS IoT")."""
    statement = documents.allow(actions, [scope.iot_arn("cert/*")])
    statement["Condition"] = {
        "ArnLike": {"iot:thingArn": scope.iot_arn(f"thing/{thing_name(name_prefix, '*')}")}
    }
    return statement


def rotation_statements(scope: AccountScope, name_prefix: str, table_arn: str) -> list[dict[str, Any]]:
    """What the rotation function needs: read and update registry items (its two-update transaction is
    authorised as UpdateItem per member, AWS's "Using IAM with DynamoDB transactions"), check the CSR's
    rotation job execution, have AWS IoT sign a CSR, attach the new certificate to the device type's
    policy and to this stack's thing, activate or revoke it, read its expiry, and answer on this stack's
    things' ``certificate`` and ``rejected`` topics only."""
    answers = [
        scope.iot_arn(f"topic/{rotation_topic(thing_name(name_prefix, '*'), step)}")
        for step in (RotationStep.CERTIFICATE, RotationStep.REJECTED)
    ]
    return [
        documents.allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [table_arn]),
        # IAM lists no resource type for CreateCertificateFromCsr: it takes only "*".
        documents.allow(["iot:CreateCertificateFromCsr"], ["*"]),
        # AttachPolicy's resource is the target (cert or thinggroup), never the policy: IAM cannot limit
        # which policy is attached. The certificate is new, so its id cannot be named either.
        documents.allow(
            ["iot:AttachPolicy", "iot:UpdateCertificate"],
            [scope.iot_arn("cert/*")],
        ),
        on_own_things(["iot:AttachThingPrincipal"], scope, name_prefix),
        # DescribeJobExecution is authorised on the job and the thing (Service Authorization Reference):
        # this stack's rotation jobs, on this stack's things.
        documents.allow(
            ["iot:DescribeJobExecution"],
            [
                scope.iot_arn(f"job/{rotation_job_id_prefix(name_prefix)}*"),
                scope.iot_arn(f"thing/{thing_name(name_prefix, '*')}"),
            ],
        ),
        documents.allow(["iot:Publish"], answers),
    ]


def retirement_statements(
    scope: AccountScope,
    name_prefix: str,
    stream_arn: str,
    failures_queue_arn: str,
    regions: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """What the retirement function needs: its event source mapping reads the table's stream (AWS's
    example policy for a Lambda function on a DynamoDB stream: DescribeStream, GetRecords, GetShardIterator
    and ListStreams, DynamoDB developer guide) and sends a record of each batch it gives up on to the
    on-failure queue; the function reads a certificate's ARN and status, checks that a replacement is
    attached to the thing, revokes the old certificate and detaches it from the device type's policy and
    from this stack's things, in each of ``regions`` (a global fleet's: each device's certificates are in
    the region it provisioned in, ``provisionedRegion``), or in its own alone."""
    scopes = [replace(scope, region=region) for region in regions or (scope.region,)]
    return [
        documents.allow(
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"], [stream_arn]
        ),
        # ListStreams takes only "*" (it lists stream ARNs, no data). Lambda refuses a mapping whose role
        # lacks it: "Please ensure the role can perform the GetRecords, GetShardIterator, DescribeStream,
        # and ListStreams Actions on your stream".
        documents.allow(["dynamodb:ListStreams"], ["*"]),
        documents.allow(
            ["iot:DescribeCertificate", "iot:DetachPolicy", "iot:UpdateCertificate"],
            [each.iot_arn("cert/*") for each in scopes],
        ),
        *(on_own_things(["iot:DetachThingPrincipal"], each, name_prefix) for each in scopes),
        # ListThingPrincipals' one resource type is the thing (Service Authorization Reference).
        documents.allow(
            ["iot:ListThingPrincipals"],
            [each.iot_arn(f"thing/{thing_name(name_prefix, '*')}") for each in scopes],
        ),
        # For a stream source, Lambda sends to the on-failure destination with the function's execution
        # role: "Your execution role must have permissions for the destination: For SQS destinations:
        # sqs:SendMessage" (Lambda developer guide, "Retain discarded records for a DynamoDB event source").
        documents.allow(["sqs:SendMessage"], [failures_queue_arn]),
    ]


@dataclass(frozen=True)
class CertificateLifecycleArgs:
    """Arguments of :class:`CertificateLifecycle`."""

    name_prefix: str
    """This stack's things are ``<name_prefix>_<serial>``, its device policies ``<name_prefix>_<type>``."""
    registry: RegistryReference
    """The table whose items hold each serial's certificates, and its stream: without one (a global fleet's
    regions other than the registry's) the stack has no retirement function; the registry region's
    retires every region's certificates."""
    iot_endpoint: pulumi.Input[str]
    """The account's ``iot:Data-ATS`` endpoint address: the rotation function publishes its answers there."""
    defaults: FunctionDefaults
    """The functions' code, layer, log retention and metrics namespace; the retention of the rule's error
    log and the tags of every resource."""
    fleet_regions: tuple[str, ...] = ()
    """A global fleet's regions, where the retirement function acts; empty for the stack's own region."""


class CertificateLifecycle(pulumi.ComponentResource):
    """Rotates a device's certificate when the device asks with a CSR (a topic rule and a function), and
    revokes and detaches every certificate that stops being a serial's current or pending one (a function
    on the registry table's stream)."""

    rotation_function_name: pulumi.Output[str]
    retirement_function_name: pulumi.Output[str] | None
    retirement_failures_queue_name: pulumi.Output[str] | None
    """Where Lambda records each batch of registry changes whose certificates it gave up retiring."""
    rotation_rule_name: pulumi.Output[str]
    """The topic rule on ``rotation/+/+`` that invokes the rotation function for this stack's things."""

    def __init__(
        self,
        name: str,
        args: CertificateLifecycleArgs,
        scope: pulumi.Output[AccountScope],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("iot-fleet-provisioning:index:CertificateLifecycle", name, None, opts)
        self._args = args
        self._scope = scope
        rotation = self._create_rotation(name)
        rule = self._create_rotation_rule(name, rotation)
        self.rotation_function_name = rotation.name
        self.retirement_function_name = self.retirement_failures_queue_name = None
        if args.registry.stream_arn is not None:
            failures = self._create_retirement_failures_queue(name)
            retirement = self._create_retirement(name, failures, args.registry.stream_arn)
            self.retirement_function_name = retirement.name
            self.retirement_failures_queue_name = failures.name
        self.rotation_rule_name = rule.name
        self.register_outputs(
            {
                "rotation_function_name": self.rotation_function_name,
                "retirement_function_name": self.retirement_function_name,
                "retirement_failures_queue_name": self.retirement_failures_queue_name,
                "rotation_rule_name": self.rotation_rule_name,
            }
        )

    def _environment(self) -> dict[str, pulumi.Input[str]]:
        return {**self._args.registry.environment(), STACK_BASE_NAME_ENV: self._args.name_prefix}

    def _create_rotation(self, name: str) -> aws.lambda_.Function:
        args = self._args
        return create_function(
            f"{name}-rotation",
            FunctionArgs(
                function_name=f"{args.name_prefix}-certificate-rotation",
                role=Role.ROTATION,
                code=CERTIFICATE_ROTATION,
                description="Signs a device's CSR for its new certificate and records the rotation",
                statements=pulumi.Output.all(self._scope, args.registry.table_arn).apply(
                    lambda values: rotation_statements(values[0], args.name_prefix, values[1])
                ),
                environment={
                    **self._environment(),
                    IOT_DATA_ENDPOINT_ENV: pulumi.Output.concat("https://", args.iot_endpoint),
                },
                timeout=ROTATION_TIMEOUT_SECONDS,
                memory_size=256,
            ),
            args.defaults,
            parent=self,
        )

    def _create_rotation_rule(self, name: str, rotation: aws.lambda_.Function) -> aws.iot.TopicRule:
        """The rule that calls the rotation function for this stack's things' requests; failures are
        logged."""
        args = self._args
        rule = FunctionRule(
            rule_name=documents.rotation_rule_name(args.name_prefix),
            resource_name=f"{name}-rotation-rule",
            permission_name=f"{name}-rotation-invoke",
            errors_name=f"{name}-rule-errors",
            description="Certificate rotation requests of this stack's devices: sign the CSR, record results",
            sql=documents.rotation_sql(args.name_prefix),
            tags=args.defaults.tags,
        )
        return create_function_rule(
            rule, rotation, retention_days=args.defaults.log_retention_days, scope=self._scope, parent=self
        )

    def _create_retirement_failures_queue(self, name: str) -> aws.sqs.Queue:
        """The on-failure destination of the retirement mapping: a record (shard, sequence numbers, error)
        of each batch Lambda stopped retrying, kept 14 days. SQS-managed encryption (SSE-SQS) needs no key
        policy or KMS permission for Lambda to send to it."""
        args = self._args
        return aws.sqs.Queue(
            f"{name}-retirement-failures",
            name=f"{args.name_prefix}-certificate-retirement-failures",
            sqs_managed_sse_enabled=True,
            message_retention_seconds=RETIREMENT_FAILURES_RETENTION_SECONDS,
            tags=args.defaults.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_retirement(
        self, name: str, failures: aws.sqs.Queue, stream_arn: pulumi.Output[str]
    ) -> aws.lambda_.Function:
        """The retirement function and its mapping on the registry's stream: changes are delivered in
        order per item, failed records are reported one by one and retried a few times, and a batch still
        failing then is recorded in ``failures``."""
        args = self._args
        function = create_function(
            f"{name}-retirement",
            FunctionArgs(
                function_name=f"{args.name_prefix}-certificate-retirement",
                role=Role.RETIREMENT,
                code=CERTIFICATE_RETIREMENT,
                description="Revokes and detaches the certificates the device registry no longer holds",
                statements=pulumi.Output.all(self._scope, stream_arn, failures.arn).apply(
                    lambda values: retirement_statements(
                        values[0], args.name_prefix, values[1], values[2], args.fleet_regions
                    )
                ),
                environment=self._environment(),
                timeout=RETIREMENT_TIMEOUT_SECONDS,
                memory_size=256,
            ),
            args.defaults,
            parent=self,
        )
        create_stream_mapping(
            f"{name}-retirement-stream",
            stream_arn,
            function,
            retirement_filter_patterns(),
            tags=args.defaults.tags,
            parent=self,
            # From the oldest record the stream still holds (24 hours), not only from the mapping's
            # creation (LATEST): changes made between the table's stream and the mapping coming up, or
            # while a replaced mapping was gone, are retired too. Retirement is idempotent, so a change
            # whose certificates were already retired costs a few reads and changes nothing.
            starting_position="TRIM_HORIZON",
            batch_size=RETIREMENT_BATCH_SIZE,
            function_response_types=["ReportBatchItemFailures"],
            maximum_retry_attempts=RETIREMENT_MAXIMUM_RETRY_ATTEMPTS,
            destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
                on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                    destination_arn=failures.arn
                )
            ),
        )
        return function
