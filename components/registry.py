"""DeviceRegistry: the DynamoDB table that tracks every device's lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import pulumi
import pulumi_aws as aws

from hook.contract import REGISTRY_INDEXES, REGISTRY_PARTITION_KEY

STREAM_VIEW_TYPE: Final = "NEW_AND_OLD_IMAGES"
"""The table's stream carries each change's item before and after: the certificate-retirement function
compares the certificates an item held with those it holds now."""


@dataclass(frozen=True)
class DeviceRegistryArgs:
    """Arguments of :class:`DeviceRegistry`."""

    table_name: str
    """Name of the DynamoDB table."""
    billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = "PAY_PER_REQUEST"
    read_capacity: int = 5
    """Read capacity of the table and of each index, used with ``PROVISIONED``."""
    write_capacity: int = 5
    """Write capacity of the table and of each index, used with ``PROVISIONED``."""
    protect: bool = False
    """Deletion protection in DynamoDB and Pulumi ``protect``: the registry cannot be deleted by accident."""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegistryReference:
    """The registry table as the functions that read and write it need it."""

    table_name: pulumi.Output[str]
    table_arn: pulumi.Output[str]
    stream_arn: pulumi.Output[str]
    """The table's stream (:data:`STREAM_VIEW_TYPE`), for the functions that follow its changes."""


class DeviceRegistry(pulumi.ComponentResource):
    """Registry table keyed by serial number, with indexes to list devices by status and by type without a
    Scan, point-in-time recovery and server-side encryption."""

    table_name: pulumi.Output[str]
    """Name of the registry table."""
    table_arn: pulumi.Output[str]
    """ARN of the registry table."""
    stream_arn: pulumi.Output[str]
    """ARN of the table's stream."""
    reference: RegistryReference
    """Name, ARN and stream together, for the components whose functions use the table."""

    def __init__(
        self, name: str, args: DeviceRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("iot-fleet-provisioning:index:DeviceRegistry", name, None, opts)
        provisioned = args.billing_mode == "PROVISIONED"
        read_capacity = args.read_capacity if provisioned else None
        write_capacity = args.write_capacity if provisioned else None
        key_attributes = sorted(
            {REGISTRY_PARTITION_KEY, *(key for keys in REGISTRY_INDEXES.values() for key in keys)}
        )
        table = aws.dynamodb.Table(
            f"{name}-table",
            name=args.table_name,
            billing_mode=args.billing_mode,
            hash_key=REGISTRY_PARTITION_KEY,
            attributes=[
                aws.dynamodb.TableAttributeArgs(name=attribute, type="S") for attribute in key_attributes
            ],
            global_secondary_indexes=[
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=index,
                    # key_schemas needs pulumi-aws 7.17 or later (the pyproject floor).
                    key_schemas=[
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                            attribute_name=hash_key, key_type="HASH"
                        ),
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                            attribute_name=range_key, key_type="RANGE"
                        ),
                    ],
                    projection_type="ALL",
                    read_capacity=read_capacity,
                    write_capacity=write_capacity,
                )
                for index, (hash_key, range_key) in REGISTRY_INDEXES.items()
            ],
            # Switching the stream on is an UpdateTable of an existing table, not a replacement:
            # stream_enabled and stream_view_type are not ForceNew (terraform-provider-aws
            # internal/service/dynamodb/table.go, resourceTableUpdate; a new view type cycles the stream off
            # and on, which gives it a new ARN).
            stream_enabled=True,
            stream_view_type=STREAM_VIEW_TYPE,
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
            deletion_protection_enabled=args.protect,
            tags=args.tags,
            read_capacity=read_capacity,
            write_capacity=write_capacity,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.table_name = table.name
        self.table_arn = table.arn
        self.stream_arn = table.stream_arn
        self.reference = RegistryReference(
            table_name=table.name, table_arn=table.arn, stream_arn=table.stream_arn
        )
        self.register_outputs(
            {"table_name": self.table_name, "table_arn": self.table_arn, "stream_arn": self.stream_arn}
        )
