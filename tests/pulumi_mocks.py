"""Run the Pulumi program under Pulumi's mock engine and record every resource it declares."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pulumi

from components.powertools import partition_of
from program.config import decode, load_settings, parse_settings, program_values, read_stack_file
from program.settings import PROJECT, Settings
from program.stack import build_stack

ACCOUNT_ID = "123456789012"
STREAM_LABEL = "2026-01-01T00:00:00.000"
"""The label AWS gives a table's stream (its creation time), as a table with a stream reports it."""
_ARN_FORMATS = {
    "aws:cloudwatch/logGroup:LogGroup": "arn:{partition}:logs:{scope}:log-group:{name}",
    "aws:lambda/function:Function": "arn:{partition}:lambda:{scope}:function:{name}",
    "aws:iam/role:Role": "arn:{partition}:iam::{account}:role/{name}",
    "aws:sns/topic:Topic": "arn:{partition}:sns:{scope}:{name}",
    "aws:cloudwatch/eventRule:EventRule": "arn:{partition}:events:{scope}:rule/{name}",
    "aws:sqs/queue:Queue": "arn:{partition}:sqs:{scope}:{name}",
}
"""ARNs as AWS forms them, for the types whose ARN the program puts into policies."""
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Declared:
    """One resource as the program declared it."""

    type: str
    name: str
    inputs: dict[str, Any]
    protect: bool
    ignore_changes: tuple[str, ...] = ()
    retain_on_delete: bool = False
    custom: bool = True
    """A provider's resource; ``False`` for a component, which creates nothing itself."""


class RecordingMocks(pulumi.runtime.Mocks):
    """Records each resource's inputs and answers with the outputs AWS would compute (ids and ARNs)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.resources: list[Declared] = []
        self.options: dict[str, pulumi.ResourceOptions] = {}
        """Resource options by resource name, seen by :meth:`record_options`."""

    def record_options(self, args: pulumi.ResourceTransformationArgs) -> None:
        """A stack transformation that notes resource options the mock engine does not pass on."""
        if args.opts is not None:
            self.options[args.name] = args.opts

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        options = self.options.get(args.name) or pulumi.ResourceOptions()
        self.resources.append(
            Declared(
                args.typ,
                args.name,
                inputs,
                protect=bool(options.protect),
                ignore_changes=tuple(options.ignore_changes or ()),
                retain_on_delete=bool(options.retain_on_delete),
                custom=bool(args.custom),
            )
        )
        name = inputs.get("name", args.name)
        outputs = {**inputs, "arn": self._arn(args.typ, name)}
        if args.typ == "aws:iot/certificate:Certificate":
            outputs["certificatePem"] = "-----BEGIN CERTIFICATE-----\nMOCK\n-----END CERTIFICATE-----\n"
            if not inputs.get("csr"):
                outputs["privateKey"] = (
                    "-----BEGIN RSA PRIVATE KEY-----\nMOCK\n-----END RSA PRIVATE KEY-----\n"
                )
            # Each certificate its own 64-hex-digit id, as AWS gives: ...01 for the first declared.
            certificates = len(self.of_type("aws:iot/certificate:Certificate"))
            return f"{certificates:064x}", outputs
        if args.typ == "aws:dynamodb/table:Table" and inputs.get("streamEnabled"):
            outputs["streamLabel"] = STREAM_LABEL
            outputs["streamArn"] = f"{outputs['arn']}/stream/{STREAM_LABEL}"
        return f"{name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        results: dict[str, dict[str, Any]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/test",
                "userId": "AIDATEST",
            },
            "aws:index/getPartition:getPartition": {
                "partition": partition_of(self.region),
                "dnsSuffix": self._dns_suffix(),
            },
            "aws:iot/getEndpoint:getEndpoint": {
                "endpointAddress": f"abc123-ats.iot.{self.region}.{self._dns_suffix()}"
            },
        }
        if args.token not in results:
            raise NotImplementedError(f"the program calls {args.token}, which the mocks do not answer")
        return results[args.token]

    def _dns_suffix(self) -> str:
        """The partition's domain: ``amazonaws.com.cn`` in China, ``amazonaws.com`` elsewhere."""
        return "amazonaws.com.cn" if partition_of(self.region) == "aws-cn" else "amazonaws.com"

    def _arn(self, typ: str, name: str) -> str:
        partition = partition_of(self.region)
        scope = f"{self.region}:{ACCOUNT_ID}"
        if typ in _ARN_FORMATS:
            return _ARN_FORMATS[typ].format(partition=partition, scope=scope, account=ACCOUNT_ID, name=name)
        service = typ.split(":")[1].split("/", maxsplit=1)[0]
        return f"arn:{partition}:{service}:{scope}:{typ.rsplit(':', maxsplit=1)[-1].lower()}/{name}"

    def of_type(self, typ: str) -> list[Declared]:
        """Declared resources of one Pulumi type token, e.g. ``aws:iot/policy:Policy``."""
        return [resource for resource in self.resources if resource.type == typ]

    def one(self, typ: str) -> Declared:
        """The only declared resource of a type."""
        [resource] = self.of_type(typ)
        return resource


@dataclass
class Deployment:
    """What one mock run of the program declared and exported."""

    mocks: RecordingMocks
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)


Build = Callable[..., Deployment]
"""``build(config, stack="dev")``: the :class:`Deployment` of ``config`` on ``stack`` (the ``build`` fixture of
``tests/stack``)."""


def stack_config(stack: str) -> dict[str, Any]:
    """The config of ``Pulumi.<stack>.yaml`` with the keys and values as the program sees them."""
    return decode(program_values(read_stack_file(stack)))


def _stored(config: Mapping[str, Any]) -> dict[str, str]:
    """``config`` as Pulumi stores it: every value a string, structured values as JSON."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def defender_config(days: int = 90) -> dict[str, Any]:
    """Config that turns the Device Defender audit on, its suppressions expiring ``days`` from today (UTC)."""
    expires = datetime.now(UTC).date() + timedelta(days=days)
    return {"defenderAudit": True, "defenderSuppressionExpires": expires.isoformat()}


def settings_for(config: Mapping[str, Any], stack: str = "dev") -> Settings:
    """The settings the program reads from ``config`` (as :func:`deploy` takes it) on ``stack``; raises
    :class:`~program.settings.SettingsError` as the program would."""
    return parse_settings(_stored(config), stack)


def deploy(config: Mapping[str, Any], stack: str = "dev") -> Deployment:
    """Run the program with ``config`` (project keys without namespace, plus ``aws:region``)."""
    region = str(config.get("aws:region", "us-east-1"))
    mocks = RecordingMocks(region)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(
        {key if ":" in key else f"{PROJECT}:{key}": value for key, value in _stored(config).items()}
    )
    deployment = Deployment(mocks, {})

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> pulumi.Output[Any]:
        pulumi.runtime.register_stack_transformation(mocks.record_options)
        outputs = build_stack(load_settings())
        secrecy: dict[str, pulumi.Output[bool]] = {
            name: pulumi.Output.from_input(value.is_secret())
            for name, value in outputs.items()
            if isinstance(value, pulumi.Output)
        }

        def collect(values: dict[str, Any]) -> None:
            deployment.outputs.update(values["outputs"])
            deployment.secret_outputs.update(name for name, secret in values["secrecy"].items() if secret)

        return pulumi.Output.all(
            outputs=pulumi.Output.all(**outputs), secrecy=pulumi.Output.all(**secrecy)
        ).apply(collect)

    run()
    return deployment


def comparable(inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs with asset archives replaced by their contents, so two runs can be compared with ``==``."""
    return {key: _contents(value) for key, value in inputs.items()}


def _contents(value: Any) -> Any:
    if isinstance(value, pulumi.AssetArchive):
        return {name: _contents(asset) for name, asset in value.assets.items()}
    if isinstance(value, pulumi.StringAsset):
        return value.text
    if isinstance(value, pulumi.FileAsset):
        return value.path
    return value
