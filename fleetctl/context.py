"""Which stack ``fleetctl`` works on: names from ``pulumi stack output --json`` or from flags, and clients."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Final

import boto3
from botocore.config import Config

from fleetctl.errors import UsageProblem
from fleetctl.operator_transitions import OperatorRecords
from hook.claim_breakers import ClaimBreakers
from hook.contract import TEMPLATE_NAME_SUFFIX, claim_policy_name, thing_name
from hook.rules import RulesError, RuleSet, load_rules, parse_rules
from program.outputs import StackOutput

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

AWS_CONCURRENCY: Final = 16
"""Requests in flight at once for bulk work; each client's connection pool is as large."""

_FLAGS: Final[dict[StackOutput, str]] = {
    StackOutput.REGISTRY_TABLE: "--table NAME",
    StackOutput.TEMPLATE_NAME: "--template NAME",
    StackOutput.REGION: "--region NAME",
}
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

    @classmethod
    def resolve(
        cls,
        outputs_file: Path | None,
        *,
        table: str | None = None,
        template: str | None = None,
        region: str | None = None,
        rules_file: Path | None = None,
    ) -> StackContext:
        """Read ``outputs_file`` (if given) and let the flags that were given override its values."""
        outputs = dict(_read_outputs(outputs_file)) if outputs_file else {}
        flags = {
            StackOutput.REGISTRY_TABLE: table,
            StackOutput.TEMPLATE_NAME: template,
            StackOutput.REGION: region,
        }
        outputs.update({name: value for name, value in flags.items() if value is not None})
        return cls(outputs, rules_file)

    @property
    def table(self) -> str:
        """The registry table's name."""
        return self._required(StackOutput.REGISTRY_TABLE)

    @property
    def region(self) -> str:
        """The stack's AWS region."""
        return self._required(StackOutput.REGION)

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
        """The devices' records in the registry table, through a DynamoDB client of the stack's region."""
        table = self.table  # first: its error names both ways to supply the stack
        client = boto3.client("dynamodb", region_name=self.region, config=_CLIENT_CONFIG)
        return OperatorRecords(client, table)

    @cached_property
    def claim_breakers(self) -> ClaimBreakers:
        """The claim certificates' breakers, in the registry table (:mod:`hook.claim_breaker`)."""
        table = self.table
        client = boto3.client("dynamodb", region_name=self.region, config=_CLIENT_CONFIG)
        return ClaimBreakers(client, table)

    @cached_property
    def bulk_records(self) -> OperatorRecords:
        """The registry through a DynamoDB client of its own for bulk writes (a manifest's import): adaptive
        retries, so throttling slows the whole import down rather than failing rows."""
        table = self.table
        client = boto3.client("dynamodb", region_name=self.region, config=_BULK_CLIENT_CONFIG)
        return OperatorRecords(client, table)

    @cached_property
    def iot(self) -> IoTClient:
        """An AWS IoT client of the stack's region."""
        return boto3.client("iot", region_name=self.region, config=_CLIENT_CONFIG)

    @cached_property
    def caller(self) -> CallerIdentity:
        """Who runs fleetctl: the identity of the credentials in use (``sts:GetCallerIdentity``)."""
        identity = boto3.client("sts", region_name=self.region, config=_CLIENT_CONFIG).get_caller_identity()
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


def _read_outputs(path: Path) -> Mapping[str, object]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UsageProblem(f"cannot read stack outputs {path}: {error}") from error
    except ValueError as error:
        raise UsageProblem(
            f"stack outputs {path} are not JSON ({error}); expected `pulumi stack output --json`"
        ) from error
    if not isinstance(document, dict):
        raise UsageProblem(f"stack outputs {path}: expected a JSON object, got {type(document).__name__}")
    return document
