"""DeviceLifecycle: after the hook approves: activation, shadow initialisation, stale approvals."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import documents
from components.device_registry import RegistryReference
from components.documents import AccountScope
from components.function import FunctionArgs, FunctionDefaults, create_function
from components.function_archives import ACTIVATION, STALE_APPROVALS
from components.names import Role
from components.rule_logs import FunctionRule, create_function_rule
from hook.contract import IOT_DATA_ENDPOINT_ENV, STATUS_INDEX, thing_name

STALE_APPROVALS_SCHEDULE = "rate(15 minutes)"


@dataclass(frozen=True)
class DeviceLifecycleArgs:
    """Arguments of :class:`DeviceLifecycle`."""

    name_prefix: str
    """This stack's things are named ``<name_prefix>_<serial>``."""
    registry: RegistryReference
    """The table whose approvals become ``ACTIVE``."""
    iot_endpoint: pulumi.Input[str]
    """The account's ``iot:Data-ATS`` endpoint address, for the shadow API."""
    defaults: FunctionDefaults
    """The functions' code (its ``activation.json`` holds the initial shadows), layer, log retention and
    metrics namespace; the retention of the rule's error log and the tags of every resource."""


class DeviceLifecycle(pulumi.ComponentResource):
    """Moves approved devices to ``ACTIVE`` when their thing exists, writes their initial shadow, and
    counts approvals that never became things."""

    activation_function_name: pulumi.Output[str]
    stale_approvals_function_name: pulumi.Output[str]
    thing_created_rule_name: pulumi.Output[str]
    """The topic rule on ``$aws/events/thing/+/created`` that invokes the activation function."""

    def __init__(
        self,
        name: str,
        args: DeviceLifecycleArgs,
        scope: pulumi.Output[AccountScope],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("iot-fleet-provisioning:index:DeviceLifecycle", name, None, opts)
        self._args = args
        self._scope = scope
        # The rule needs the account's THING registry events, which components.account switches on (in
        # one stack per account and region); the stale-approvals function reports when they are off.
        activation = self._create_activation(name)
        rule = self._create_thing_created_rule(name, activation)
        stale = self._create_stale_approvals(name)
        self.activation_function_name = activation.name
        self.stale_approvals_function_name = stale.name
        self.thing_created_rule_name = rule.name
        self.register_outputs(
            {
                "activation_function_name": self.activation_function_name,
                "stale_approvals_function_name": self.stale_approvals_function_name,
                "thing_created_rule_name": self.thing_created_rule_name,
            }
        )

    def _create_activation(self, name: str) -> aws.lambda_.Function:
        """Reads and activates registry items and writes the shadows of this stack's things only; it reads
        no certificate (``hook/activation.py``: AWS IoT's certificates all expire 2049-12-31)."""
        args = self._args
        statements = pulumi.Output.all(args.registry.table_arn, self._scope).apply(
            lambda values: [
                documents.allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [values[0]]),
                documents.allow(
                    ["iot:UpdateThingShadow"],
                    [values[1].iot_arn(f"thing/{thing_name(args.name_prefix, '*')}")],
                ),
            ]
        )
        return create_function(
            f"{name}-activation",
            FunctionArgs(
                function_name=f"{args.name_prefix}-device-activation",
                role=Role.ACTIVATION,
                code=ACTIVATION,
                description="Marks provisioned devices ACTIVE and writes their initial shadow",
                statements=statements,
                environment={
                    **args.registry.environment(),
                    IOT_DATA_ENDPOINT_ENV: pulumi.Output.concat("https://", args.iot_endpoint),
                },
                timeout=30,
                memory_size=256,
            ),
            args.defaults,
            parent=self,
        )

    def _create_thing_created_rule(self, name: str, activation: aws.lambda_.Function) -> aws.iot.TopicRule:
        """The rule that calls the activation function for this stack's new things; failures are logged."""
        args = self._args
        rule = FunctionRule(
            rule_name=documents.thing_created_rule_name(args.name_prefix),
            resource_name=f"{name}-thing-created",
            permission_name=f"{name}-activation-invoke",
            errors_name=f"{name}-rule-errors",
            description="New things of this stack: activate them in the registry and initialise their shadow",
            sql=documents.thing_created_sql(args.name_prefix),
            tags=args.defaults.tags,
        )
        return create_function_rule(
            rule, activation, retention_days=args.defaults.log_retention_days, scope=self._scope, parent=self
        )

    def _create_stale_approvals(self, name: str) -> aws.lambda_.Function:
        """A function on a schedule that counts PENDING approvals older than an hour, by the status index,
        and reports whether the account's THING registry events are on."""
        args = self._args
        function = create_function(
            f"{name}-stale-approvals",
            FunctionArgs(
                function_name=f"{args.name_prefix}-stale-approvals",
                role=Role.STALE_APPROVALS,
                code=STALE_APPROVALS,
                description="Publishes the number of PENDING approvals older than an hour",
                statements=args.registry.table_arn.apply(
                    lambda table_arn: [
                        documents.allow(["dynamodb:Query"], [f"{table_arn}/index/{STATUS_INDEX}"]),
                        # IAM lists no resource type for this action: it takes only "*".
                        documents.allow(["iot:DescribeEventConfigurations"], ["*"]),
                    ]
                ),
                environment=args.registry.environment(),
                timeout=60,
                memory_size=256,
            ),
            args.defaults,
            parent=self,
        )
        schedule = aws.cloudwatch.EventRule(
            f"{name}-stale-approvals-schedule",
            name=f"{args.name_prefix}-stale-approvals",
            schedule_expression=STALE_APPROVALS_SCHEDULE,
            tags=args.defaults.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.lambda_.Permission(
            f"{name}-stale-approvals-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=schedule.arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-stale-approvals-target",
            rule=schedule.name,
            arn=function.arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return function
