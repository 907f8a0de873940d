"""Which stack ``fleetctl`` works on: names from ``pulumi stack output --json`` or from flags, and clients."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config

from fleetctl.errors import UsageProblem
from fleetctl.fleet_outputs import read_fleet
from fleetctl.operator_transitions import OperatorRecords
from hook.claim_breakers import ClaimBreakers
from hook.contract import TEMPLATE_NAME_SUFFIX, Attr, claim_policy_name, thing_name
from hook.rules import RulesError, RuleSet, load_rules, parse_rules
from program.outputs import StackOutput

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

    from hook.registry_items import Item

AWS_CONCURRENCY: Final = 16
"""Requests in flight at once for bulk work; each client's connection pool is as large."""

_FLAGS: Final[dict[StackOutput, str]] = {
    StackOutput.REGISTRY_TABLE: "--table NAME",
    StackOutput.TEMPLATE_NAME: "--template NAME",
    StackOutput.REGION: "--region NAME",
}
_SHARED: Final = (StackOutput.REGISTRY_TABLE, StackOutput.REGISTRY_REGION)
"""What a region's view takes from the main outputs (flags included): the one registry."""
_CLIENT_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=AWS_CONCURRENCY
)
# Bulk writes back off as a whole when DynamoDB throttles: botocore's adaptive retry mode is the standard mode
# plus client-side rate limiting, a token bucket whose rate is updated with each attempt (boto3 guide,
# "Retries": https://docs.aws.amazon.com/boto3/latest/guide/retries.html). The guide calls it experimental
# and its limit is per client, so only the client a bulk import writes with uses it.
_BULK_CLIENT_CONFIG: Final = Config(
    retries={"mode": "adaptive", "max_attempts": 10}, max_pool_connections=AWS_CONCURRENCY
)


class Clients:
    """boto3 clients by service, region and configuration, each built once and shared by every region's
    view of a fleet. A client is thread-safe, building one from the default session is not (boto3 guide,
    "Multithreading or multiprocessing with clients"), hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[tuple[str, str, int], Any] = {}
        self.views: dict[str, StackContext] = {}
        """The view of each other region of a fleet (:meth:`StackContext.in_region`), made once."""

    def get(self, service: str, region: str, config: Config = _CLIENT_CONFIG) -> Any:
        """The client of ``service`` in ``region``."""
        with self._lock:
            key = (service, region, id(config))
            if key not in self._built:
                self._built[key] = boto3.client(service, region_name=region, config=config)  # type: ignore[call-overload]
            return self._built[key]


@dataclass(frozen=True)
class CallerIdentity:
    """The AWS account and principal of the credentials fleetctl runs with."""

    account: str
    arn: str
    """The caller's ARN, ``arn:<partition>:sts::<account>:assumed-role/<role>/<session>`` or similar."""

    @property
    def partition(self) -> str:
        """``aws``, ``aws-cn``, ``aws-us-gov``...: the second field of the caller's ARN."""
        return self.arn.split(":")[1]


@dataclass(frozen=True)
class StackContext:
    """The stack outputs, with flags applied over them. Each name is demanded only by the commands that
    need it, and a missing one is a :class:`UsageProblem` naming both ways to supply it."""

    outputs: Mapping[str, object]
    rules_file: Path | None = None
    fleet: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    """Every given region's outputs by region (:mod:`fleetctl.fleet_outputs`); empty when flags alone
    name the stack."""
    clients: Clients = field(default_factory=Clients, compare=False, repr=False)

    @classmethod
    def resolve(
        cls,
        outputs_files: Path | Sequence[Path] | None,
        *,
        table: str | None = None,
        template: str | None = None,
        region: str | None = None,
        rules_file: Path | None = None,
    ) -> StackContext:
        """Read the outputs (one stack's, or a fleet's: one per region, the registry region's the main
        ones) and let the flags that were given override the main ones."""
        paths = [outputs_files] if isinstance(outputs_files, Path) else list(outputs_files or [])
        main, fleet = read_fleet(paths) if paths else ({}, {})
        if region is not None and len(fleet) > 1:
            raise UsageProblem("--region: not with the outputs of several regions, which name their own")
        outputs = dict(main)
        flags = {
            StackOutput.REGISTRY_TABLE: table,
            StackOutput.TEMPLATE_NAME: template,
            StackOutput.REGION: region,
        }
        outputs.update({name: value for name, value in flags.items() if value is not None})
        return cls(outputs, rules_file, fleet)

    @property
    def table(self) -> str:
        """The registry table's name."""
        return self._required(StackOutput.REGISTRY_TABLE)

    @property
    def region(self) -> str:
        """The stack's AWS region."""
        return self._required(StackOutput.REGION)

    @property
    def registry_region(self) -> str:
        """The region of the registry table: the outputs' ``registryRegion``, else the stack's own."""
        value = self.outputs.get(StackOutput.REGISTRY_REGION)
        return value if isinstance(value, str) and value else self.region

    def in_region(self, region: str) -> StackContext:
        """The view of the fleet's stack in ``region``: its AWS IoT, the same registry and clients."""
        if region == self.outputs.get(StackOutput.REGION):
            return self
        if region not in self.fleet:
            given = ", ".join(sorted(self.fleet)) or "none"
            raise UsageProblem(
                f"region {region}: no stack outputs of it were given (regions given: {given}); pass "
                "--outputs FILE once for each region of the fleet, or --outputs DIR of them"
            )
        view = self.clients.views.get(region)
        if view is None:
            shared: dict[str, object] = {name: self.outputs[name] for name in _SHARED if name in self.outputs}
            made = StackContext({**self.fleet[region], **shared}, self.rules_file, self.fleet, self.clients)
            view = self.clients.views.setdefault(region, made)
        return view

    def where(self, item: Item) -> StackContext:
        """The view of the region the device of ``item`` provisioned in (its ``provisionedRegion``; an item
        without one belongs to the registry region)."""
        return self.in_region(str(item.get(Attr.REGION) or self.registry_region))

    def for_serial(self, serial: str) -> StackContext:
        """The view of the region where ``serial`` lives, by its registry item (none: this one)."""
        item = self.records.get(serial)
        return self if item is None else self.where(item)

    def regional(self) -> list[StackContext]:
        """A view of every given region, this one first."""
        return [self, *(self.in_region(region) for region in sorted(self.fleet) if region != self.region)]

    def require_every_region(self, action: str) -> None:
        """Refuse ``action``, which must reach the whole fleet, unless the outputs of every region the
        fleet lists (``fleetRegions``) were given: a region left out would be silently passed over."""
        listed = self.outputs.get(StackOutput.FLEET_REGIONS)
        given = set(self.fleet) | {self.region}
        missing = sorted(set(listed) - given) if isinstance(listed, list) else []
        if missing:
            raise UsageProblem(
                f"{action} acts in every region of the fleet, but no stack outputs of {', '.join(missing)} "
                "were given; pass --outputs FILE once for each region of the fleet, or --outputs DIR of them"
            )

    @property
    def base_name(self) -> str:
        """``<prefix>-<env>``: the ``baseName`` output, else taken from the template name."""
        base = self.outputs.get(StackOutput.BASE_NAME)
        if isinstance(base, str) and base:
            return base
        template = self._required(StackOutput.TEMPLATE_NAME)
        if not template.endswith(TEMPLATE_NAME_SUFFIX) or template == TEMPLATE_NAME_SUFFIX:
            raise UsageProblem(
                f"template name {template!r} is not of the form <prefix>-<env>{TEMPLATE_NAME_SUFFIX}"
            )
        return template.removesuffix(TEMPLATE_NAME_SUFFIX)

    @property
    def claim_policy(self) -> str:
        """The IoT policy attached to the stack's claim certificate(s)."""
        return claim_policy_name(self.base_name)

    @property
    def claim_certificate_id(self) -> str | None:
        """The stack's current claim certificate, when the outputs name one."""
        value = self.outputs.get(StackOutput.CLAIM_CERTIFICATE_ID)
        return value if isinstance(value, str) and value else None

    def thing_name(self, serial: str) -> str:
        """The name the provisioning template gives the thing of ``serial``."""
        return thing_name(self.base_name, serial)

    @cached_property
    def rules(self) -> RuleSet:
        """The hook's rules: ``--rules FILE``, else the ``hookRules`` output."""
        try:
            if self.rules_file is not None:
                return load_rules(self.rules_file)
            if StackOutput.HOOK_RULES not in self.outputs:
                raise UsageProblem(
                    f"no hook rules: pass --outputs FILE (with {StackOutput.HOOK_RULES}) or --rules FILE"
                )
            return parse_rules(self.outputs[StackOutput.HOOK_RULES])
        except RulesError as error:
            raise UsageProblem(f"hook rules: {error}") from error

    @cached_property
    def records(self) -> OperatorRecords:
        """The devices' records in the registry table, through a DynamoDB client of the registry region."""
        table = self.table  # first: its error names both ways to supply the stack
        return OperatorRecords(self.clients.get("dynamodb", self.registry_region), table)

    @cached_property
    def claim_breakers(self) -> ClaimBreakers:
        """The claim certificates' breakers, in the registry table (:mod:`hook.claim_breaker`)."""
        table = self.table
        return ClaimBreakers(self.clients.get("dynamodb", self.registry_region), table)

    @cached_property
    def bulk_records(self) -> OperatorRecords:
        """The registry through a DynamoDB client of its own for bulk writes (a manifest's import): adaptive
        retries, so throttling slows the whole import down rather than failing rows."""
        table = self.table
        return OperatorRecords(self.clients.get("dynamodb", self.registry_region, _BULK_CLIENT_CONFIG), table)

    @property
    def iot(self) -> IoTClient:
        """An AWS IoT client of the stack's region."""
        return self.clients.get("iot", self.region)  # type: ignore[no-any-return]

    @cached_property
    def caller(self) -> CallerIdentity:
        """Who runs fleetctl: the identity of the credentials in use (``sts:GetCallerIdentity``)."""
        identity = self.clients.get("sts", self.region).get_caller_identity()
        return CallerIdentity(account=str(identity["Account"]), arn=str(identity["Arn"]))

    def thing_arn(self, name: str) -> str:
        """The ARN of a thing of the stack's account and region, built without a request
        (``arn:<partition>:iot:<region>:<account>:thing/<name>``, "AWS IoT Core action resources")."""
        return f"arn:{self.caller.partition}:iot:{self.region}:{self.caller.account}:thing/{name}"

    def _required(self, output: StackOutput) -> str:
        value = self.outputs.get(output)
        if not isinstance(value, str) or not value:
            raise UsageProblem(
                f"no {output}: pass --outputs FILE (the JSON of `pulumi stack output --json`) "
                f"or {_FLAGS[output]}"
            )
        return value
