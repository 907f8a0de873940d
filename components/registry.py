"""DeviceRegistry: the DynamoDB table that tracks every device's lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

from hook.contract import REGISTRY_INDEXES, REGISTRY_PARTITION_KEY


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


class DeviceRegistry(pulumi.ComponentResource):
    """Registry table keyed by serial number, with indexes to list devices by status and by type without a
    Scan, point-in-time recovery and server-side encryption."""

    table_name: pulumi.Output[str]
    """Name of the registry table."""
    table_arn: pulumi.Output[str]
    """ARN of the registry table."""
    reference: RegistryReference
    """Name and ARN together, for the components whose functions use the table."""

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
        self.reference = RegistryReference(table_name=table.name, table_arn=table.arn)
        self.register_outputs({"table_name": self.table_name, "table_arn": self.table_arn})
