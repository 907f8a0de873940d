"""AccountSettings: the AWS IoT settings that exist once per account and region, owned by one stack.

AWS IoT keeps one set of registry-event switches (``UpdateEventConfigurations``), one v2 logging
configuration (``SetV2LoggingOptions``) and one ``AWSIotLogsV2`` log group per account and region. Declared by
several stacks they collide (the second stack cannot create the log group) and overwrite each other, and the
provider's delete of either setting does nothing (terraform-provider-aws iot/logging_options.go and
iot/event_configurations.go: ``DeleteWithoutTimeout: schema.NoopContext``). So exactly one stack per account
and region declares them (``accountSettings: true``); the others declare none. The owner marker, an SSM
parameter with one name per account and region, holds a second owner back before it changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, get_args

import pulumi
import pulumi_aws as aws

from components import documents
from components.documents import AccountScope
from components.names import AccountWideNames, Role
from components.rule_logs import create_rule_log_destination

IOT_LOG_GROUP: Final = "AWSIotLogsV2"
"""The log group AWS IoT v2 logging writes to (one per account and region)."""
IOT_LOG_LEVEL: Final = "ERROR"
"""Failures only: provisioning and policy errors with their reasons, without a line per MQTT message."""
IOT_LOGGING_POLICY: Final = "iot-logging"
"""The logging role's inline policy. Named, not auto-named: a re-created owner can import it by this name
(an imported auto-named resource gets a new name on the next update, pulumi/pulumi#12378)."""
OWNER_MARKER: Final = "/iot-fleet-provisioning/accountSettings/owner"
"""The SSM parameter (one per account and region) whose value names the stack owning the settings."""
EventType = Literal[
    "CA_CERTIFICATE",
    "CERTIFICATE",
    "JOB",
    "JOB_EXECUTION",
    "POLICY",
    "THING",
    "THING_GROUP",
    "THING_GROUP_HIERARCHY",
    "THING_GROUP_MEMBERSHIP",
    "THING_TYPE",
    "THING_TYPE_ASSOCIATION",
]
"""A registry event type of AWS IoT (API UpdateEventConfigurations)."""
EVENT_TYPES: Final = get_args(EventType)
"""Every registry event type AWS IoT has."""


def event_configurations(enabled: frozenset[str]) -> dict[str, bool]:
    """Every event type with its switch. All are declared: the provider reads all of them back
    (terraform-provider-aws iot/event_configurations.go), so an undeclared one would show as a change on
    every preview, and the owner sets each one explicitly."""
    return {event_type: event_type in enabled for event_type in EVENT_TYPES}


@dataclass(frozen=True)
class AccountSettingsArgs:
    """Arguments of :class:`AccountSettings`."""

    name_prefix: str
    owner: str
    """The stack owning the settings, ``<project>/<stack>``: the owner marker's value."""
    event_types: frozenset[str]
    """Registry event types to switch on (THING at least: activation runs on it); the others are off."""
    audit_logging: bool
    """AWS IoT v2 logging to ``AWSIotLogsV2`` and the audit rule over ``$aws/events/#``; without it, AWS IoT
    logging declared disabled."""
    log_retention_days: int
    """Retention of AWS IoT's logs and of the audit rule's error log."""
    audit_log_retention_days: int
    """Retention of the audit log of registry and lifecycle events."""
    tags: dict[str, str] = field(default_factory=dict)


class AccountSettings(pulumi.ComponentResource):
    """Registry events on, AWS IoT logging on or off, with ``audit_logging`` the account's audit trail; all
    behind the owner marker."""

    audit_log_group_name: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        args: AccountSettingsArgs,
        scope: pulumi.Output[AccountScope],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("iot-fleet-provisioning:index:AccountSettings", name, None, opts)
        self._args = args
        self._scope = scope
        self._marker = self._create_owner_marker(name)
        self.audit_log_group_name = None
        self._create_iot_logging(name)
        if args.audit_logging:
            self.audit_log_group_name = self._create_audit_rule(name)
        # Registry events are off by default; without THING events no thing-created event is published
        # and no device of any stack in the region becomes ACTIVE.
        aws.iot.EventConfigurations(
            f"{name}-registry-events",
            event_configurations=event_configurations(args.event_types),
            opts=self._after_marker(),
        )
        self.register_outputs({"audit_log_group_name": self.audit_log_group_name})

    def _create_owner_marker(self, name: str) -> aws.ssm.Parameter:
        """The SSM parameter :data:`OWNER_MARKER`, naming this stack; every other resource here waits for it.

        ``overwrite`` is left unset: the provider then creates it with ``Overwrite: false``, so a second
        owner's create fails with ``ParameterAlreadyExists`` naming the parameter, before any switch
        changes; this stack's own later updates (a renamed stack) overwrite it. ``overwrite=False`` would
        make those fail too (terraform-provider-aws ssm/parameter.go, ``shouldUpdateParameter``). Deleted
        with the stack, so that another stack can take over.
        """
        args = self._args
        return aws.ssm.Parameter(
            f"{name}-owner",
            name=OWNER_MARKER,
            type="String",
            tier="Standard",
            insecure_value=args.owner,
            description="The stack owning the account-wide AWS IoT settings of this region (accountSettings)",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _after_marker(
        self, *, retain: bool = False, depends_on: list[pulumi.Resource] | None = None
    ) -> pulumi.ResourceOptions:
        """Options of a child that waits for the owner marker (and ``depends_on``)."""
        return pulumi.ResourceOptions(
            parent=self, depends_on=[self._marker, *(depends_on or [])], retain_on_delete=retain
        )

    def _create_iot_logging(self, name: str) -> None:
        """AWS IoT v2 logging: at ``ERROR`` into ``AWSIotLogsV2`` with ``audit_logging``, else disabled.

        The provider requires a role either way (terraform-provider-aws iot/logging_options.go:
        ``role_arn`` is ``Required``), so the role and its policy, which may write only to ``AWSIotLogsV2``,
        are declared with the same names in both cases and switching logging off and on keeps them. With
        logging on, the group, the role and its policy are kept when the stack is destroyed
        (``retain_on_delete``): the logging setting outlives the stack (its delete is a no-op) and must
        not point at a deleted role. A re-created owner imports them (docs/account-settings.md).
        """
        args = self._args
        logging_on = args.audit_logging
        depends_on: list[pulumi.Resource] = []
        if logging_on:
            depends_on.append(
                aws.cloudwatch.LogGroup(
                    f"{name}-iot-logs",
                    name=IOT_LOG_GROUP,
                    retention_in_days=args.log_retention_days,
                    tags=args.tags,
                    opts=self._after_marker(retain=True),
                )
            )
        logging_role = aws.iam.Role(
            f"{name}-iot-logging-role",
            name=self._scope.apply(
                lambda scope: AccountWideNames(args.name_prefix, scope.region).role(Role.IOT_LOGGING)
            ),
            assume_role_policy=self._scope.apply(
                lambda account: documents.service_trust_policy("iot.amazonaws.com", account.account_id)
            ),
            tags=args.tags,
            opts=self._after_marker(retain=logging_on),
        )
        depends_on.append(
            aws.iam.RolePolicy(
                f"{name}-iot-logging-policy",
                name=IOT_LOGGING_POLICY,
                role=logging_role.id,
                policy=self._scope.apply(
                    lambda account: documents.iot_logging_policy(account.logs_arn(IOT_LOG_GROUP))
                ),
                opts=self._after_marker(retain=logging_on),
            )
        )
        # disableAllLogs: "If true all logs are disabled" (API SetV2LoggingOptions); DISABLED says the same.
        aws.iot.LoggingOptions(
            f"{name}-iot-logging",
            default_log_level=IOT_LOG_LEVEL if logging_on else "DISABLED",
            role_arn=logging_role.arn,
            disable_all_logs=not logging_on,
            opts=self._after_marker(depends_on=depends_on),
        )

    def _create_audit_rule(self, name: str) -> pulumi.Output[str]:
        """A rule copying every ``$aws/events/#`` event to an audit log group; returns the group's name.

        ``$aws/events/#`` carries the events of the whole account and region, not of one stack: the rule
        belongs with the other account-wide pieces, once per account and region.
        """
        args = self._args
        rule_name = documents.audit_rule_name(args.name_prefix)
        audit = create_rule_log_destination(
            f"{name}-audit",
            log_group_name=f"/aws/iot/{args.name_prefix}/audit",
            retention_days=args.audit_log_retention_days,
            scope=self._scope,
            tags=args.tags,
            parent=self,
            depends_on=[self._marker],
        )
        errors = create_rule_log_destination(
            f"{name}-audit-errors",
            log_group_name=documents.rule_errors_log_group_name(rule_name),
            retention_days=args.log_retention_days,
            scope=self._scope,
            tags=args.tags,
            parent=self,
            depends_on=[self._marker],
        )
        aws.iot.TopicRule(
            f"{name}-audit-rule",
            name=rule_name,
            description=(
                "Copies every registry and lifecycle event of the account and region to the audit log"
            ),
            enabled=True,
            sql=documents.AUDIT_SQL,
            sql_version=documents.IOT_SQL_VERSION,
            cloudwatch_logs=[
                aws.iot.TopicRuleCloudwatchLogArgs(
                    log_group_name=audit.log_group.name, role_arn=audit.role.arn
                )
            ],
            error_action=errors.error_action(),
            tags=args.tags,
            opts=self._after_marker(),
        )
        return audit.log_group.name
