"""What the acceptance run deploys, and the checks that refuse a run before anything is created: the stack
name, the region, the account's THING registry events and logging options, a same-named deployment, Amazon
Root CA 1."""

from __future__ import annotations

import json
import re
import secrets
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.x509.oid import NameOID

from components.documents import fleet_group_name
from hook.contract import template_name
from local.acceptance.event_switches import EventSwitches
from local.acceptance.logging_options import LoggingOptions
from local.scenario.full_run import scenario_config
from program.config import settings_from_config
from program.settings import PROJECT, TEMPLATE_NAME_MAX_LENGTH, Settings

MARKER_KEY: Final = "acceptance:runId"
"""Stack config the runner writes when it creates the stack; it deploys and destroys only while it holds
this run's value."""
AMAZON_ROOT_CA_URL: Final = "https://www.amazontrust.com/repository/AmazonRootCA1.pem"
AMAZON_ROOT_CA_NAME: Final = "Amazon Root CA 1"
_RESOURCE_PREFIX: Final[str] = Settings.model_fields["resource_prefix"].default
MAX_STACK_NAME: Final = TEMPLATE_NAME_MAX_LENGTH - len(template_name(f"{_RESOURCE_PREFIX}-"))
"""The stack name is the environment: it must keep ``<prefix>-<env>-fleet`` within AWS IoT's limit."""
_STACK_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]*")
_Found = TypeVar("_Found")


class Refused(Exception):
    """The run was refused before anything was deployed; the message says why and what to do."""


@dataclass(frozen=True)
class Plan:
    """The throwaway stack: its name (also its environment), region, and who owns the account settings."""

    stack: str
    region: str
    own_account_settings: bool
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))
    account_event_types: tuple[str, ...] = ("THING",)
    """With ``own_account_settings``: the registry event types the stack keeps on (the owner sets all)."""

    def config(self) -> dict[str, str]:
        """The stack config, as Pulumi stores it; the device types are the scenario's. No audit logging:
        what it creates in the account-settings owner outlives the stack."""
        return {
            "aws:region": self.region,
            f"{PROJECT}:environment": self.stack,
            f"{PROJECT}:protectData": "false",
            f"{PROJECT}:logRetentionDays": "1",
            f"{PROJECT}:enableMonitoring": "false",
            f"{PROJECT}:accountSettings": json.dumps(self.own_account_settings),
            **(
                {f"{PROJECT}:accountEventTypes": json.dumps(list(self.account_event_types))}
                if self.own_account_settings
                else {}
            ),
            # An owner's AWS IoT logging keeps AWSIotLogsV2, its role and policy when destroyed.
            f"{PROJECT}:enableAuditLogging": "false",
            **scenario_config(),
            MARKER_KEY: self.run_id,
        }


def make_plan(stack: str, region: str, own_account_settings: bool) -> Plan:
    """The plan, or :class:`Refused` when the stack name cannot be an environment or no region is given."""
    if not region:
        raise Refused("no AWS region: pass --region, set AWS_REGION, or give the AWS profile a region")
    if not (_STACK_NAME.fullmatch(stack) and len(stack) <= MAX_STACK_NAME):
        raise Refused(
            f"stack name {stack!r}: it is also the stack's environment, so 1-{MAX_STACK_NAME} characters "
            "of a-z 0-9 -, starting with a letter or digit"
        )
    return Plan(stack, region, own_account_settings)


def account_event_types(iot: Any, own_account_settings: bool) -> tuple[str, ...]:
    """The registry event types an owning stack must keep on: those on now, and THING. Refuse unless THING
    events are on, or this stack is to own the setting: without them no thing-created event fires, and no
    approved device could become ``ACTIVE``. An owner sets every event type, and deleting the setting
    does nothing on AWS, so it must not switch off what other workloads of the account use."""
    enabled = account_switches(iot).enabled
    if not own_account_settings and "THING" not in enabled:
        raise Refused(
            "AWS IoT THING registry events are off in this account and region, so no approved device could "
            "become ACTIVE. Turn them on in the stack that owns the account settings, or pass "
            "--own-account-settings to let this throwaway stack own them (logging options, the "
            "AWSIotLogsV2 log group, event configurations) for the run."
        )
    return tuple(sorted(enabled | {"THING"}))


def account_switches(iot: Any) -> EventSwitches:
    """The account's registry-event switches now; :class:`Refused` when they cannot be read."""
    return _read_or_refuse(EventSwitches.read, iot, "event configurations")


def account_logging(iot: Any) -> LoggingOptions:
    """The account's AWS IoT logging options now; :class:`Refused` when they cannot be read."""
    return _read_or_refuse(LoggingOptions.read, iot, "logging options")


def _read_or_refuse(read: Callable[[Any], _Found], iot: Any, what: str) -> _Found:
    try:
        return read(iot)
    except (BotoCoreError, ClientError) as error:
        raise Refused(f"cannot read the account's AWS IoT {what}: {error}") from error


def refuse_existing_deployment(plan: Plan, dynamodb: Any, iot: Any) -> None:
    """:class:`Refused` when the stack's registry table, provisioning template or fleet group already exists
    in the account and region: a deployment of the same name that is not this run's. ``up`` would adopt
    its groups (AWS IoT API Reference, CreateThingGroup: "If the ThingGroup that you create has the exact
    same attributes as an existing ThingGroup, you will get a 200 success response") and the teardown
    would delete them."""
    settings = settings_from_config(plan.config(), plan.stack)
    table, template = settings.registry_table_name, settings.template_name
    group = fleet_group_name(settings.base_name)
    probes: list[tuple[str, Callable[[], object], Any]] = [
        (f"DynamoDB table {table}", lambda: dynamodb.describe_table(TableName=table), dynamodb),
        (
            f"provisioning template {template}",
            lambda: iot.describe_provisioning_template(templateName=template),
            iot,
        ),
        (f"thing group {group}", lambda: iot.describe_thing_group(thingGroupName=group), iot),
    ]
    found = [name for name, probe, client in probes if _exists(name, probe, client)]
    if found:
        raise Refused(
            f"{', '.join(found)} already exist(s) in {plan.region}: another deployment named {plan.stack} "
            "(of this or another project) that the run would take over and then destroy; pick another "
            "stack name, or destroy that deployment first"
        )


def _exists(name: str, probe: Callable[[], object], client: Any) -> bool:
    try:
        probe()
    except client.exceptions.ResourceNotFoundException:
        return False
    except (BotoCoreError, ClientError) as error:
        raise Refused(f"cannot tell whether {name} exists: {error}") from error
    return True


def amazon_root_ca(ca_file: Path | None, fetch: Callable[[str], bytes]) -> str:
    """Amazon Root CA 1 (PEM), the CA of AWS IoT's ATS endpoint: read from ``ca_file``, else fetched from
    :data:`AMAZON_ROOT_CA_URL`; :class:`Refused` unless it is that certificate."""
    source = str(ca_file) if ca_file is not None else AMAZON_ROOT_CA_URL
    try:
        pem = ca_file.read_bytes() if ca_file is not None else fetch(AMAZON_ROOT_CA_URL)
        names = x509.load_pem_x509_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except (OSError, ValueError) as error:
        raise Refused(f"Amazon Root CA 1 from {source}: {error}") from error
    if [name.value for name in names] != [AMAZON_ROOT_CA_NAME]:
        raise Refused(f"{source} is not {AMAZON_ROOT_CA_NAME}")
    return pem.decode("ascii")


def fetch_url(url: str) -> bytes:
    """The body of an HTTPS GET."""
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (only AMAZON_ROOT_CA_URL)
        body: bytes = response.read()
    return body
