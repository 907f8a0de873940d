"""DeviceRegistry: the DynamoDB table that tracks every device's lifecycle.

Designed for a million devices, pre-registered in factory batches at 1,000 rows a second and provisioned in
bursts. Each query is given its own access path, from this guidance of the Amazon DynamoDB Developer Guide:

- "Best practices for designing and using partition keys effectively" (bp-partition-key-design.html): every
  partition delivers at most 3,000 read and 1,000 write units a second, and the application should be
  designed "for uniform activity across all partition keys in the table and its secondary indexes".
- "Understanding Global Secondary Index (GSI) write throttling and back pressure" (gsi-throttling.html): an
  index is partitioned by its own partition key, so a table whose writes are spread evenly can still
  concentrate them in an index keyed by a low-cardinality attribute ("a GSI that uses status as a partition
  key"), and when an index cannot absorb its updates "DynamoDB throttles writes to the base table". The
  old ``byStatus`` (five values) and ``byDeviceType`` (a handful) indexes were exactly that: a factory batch
  of one type put every one of its writes on one key value of each.
- "Using write sharding to distribute workloads evenly" (bp-partition-key-sharding.html), sharding with a
  calculated suffix, and "Using Global Secondary Index write sharding for selective table queries"
  (bp-indexes-gsi-sharding.html): an attribute holding ``0..N-1`` in the index partition key, read back by
  a query per shard ("scatter read") with a sort-key condition.
- "Take advantage of sparse indexes" (bp-indexes-general-sparse-indexes.html): an item is in an index only
  when it has the index's key attributes.
- Parallel scan ("Scan", section "Parallel scan", and the DynamoDB Labs exercise "Sequential and Parallel
  Table Scans"): a single Scan reads one partition at a time; ``Segment``/``TotalSegments`` lets several
  workers read a large table at once when every item is needed anyway.

The indexes (:data:`~hook.contract.REGISTRY_INDEXES`), both projecting every attribute:

- ``byStatusShard``: partition key ``statusShard`` = ``<status>#<shard>``, sort key ``updatedAt``.
- ``byTypeShard``: partition key ``typeShard`` = ``<deviceType>#<shard>``, sort key ``serialNumber``.

``<shard>`` is a hash of the serial modulo :data:`~hook.contract.REGISTRY_SHARDS` (16), so one device stays
in one shard for life and consecutive factory serials spread evenly. Every transition writes the keys of
the status and type it writes, in its one request (``hook.registry_transitions.DeviceRecords``). Binding items
(``certificate#<id>``, ``publicKey#<fingerprint>``) never carry them: both indexes are sparse and never
hold a binding.

Why 16 shards. The heaviest writer is a pre-registration of 1,000 rows a second, all ``PREREGISTERED`` and
typically of one type: unsharded, 1,000 index writes a second on one key value of each index, the whole of
one partition's 1,000 write units with no margin. With 16 shards each key value takes about 63 a second
(6 % of a partition), which leaves room for hash imbalance (the unit tests hold the fullest shard within
1.3 times the mean over 10,000 serials), for items above 1 KB (a long rotation history) and for rates ten
times the target. A provisioning burst moves items ``PREREGISTERED`` -> ``PENDING`` -> ``ACTIVE``: each
move is a delete under the old key value and a put under the new one, both spread the same way. More
shards would not help these rates and would cost every read: a list or count is one query per shard
(16 requests, at least 0.5 read units each), and the whole fleet could grow to 32 later (readers query
every shard; ``fleetctl registry backfill`` moves items to their new shard).

Projection ``ALL``: every caller of these indexes shows or uses whole items (``fleetctl list`` prints them,
``rotate`` reads certificate dates and the thing); ``KEYS_ONLY`` would need a ``BatchGetItem`` per page of
results, and every transition changes ``updatedAt``, the status index's sort key, so a narrower projection
would save no index writes.

Query plans (``fleetctl/registry_reads.py``):

- stale-approval count (``StalePendingApprovals``, every 15 minutes): a ``Select=COUNT`` query of each of
  the 16 ``PENDING#<n>`` key values of ``byStatusShard`` with ``updatedAt < cutoff``: it reads only stale
  approvals, never another state. A separate sparse index written only while ``PENDING`` would read the
  same items and cost every approval and activation one more index write.
- a list by status: the 16 key values of that status, each in ``updatedAt`` order, merged; pages are read
  lazily and ``--limit`` stops early. A rare status with a type (``PENDING``, ``REVOKED``,
  ``DECOMMISSIONED``) filters that status by type.
- a list by type, or a type in a bulk status (``ACTIVE``, ``PREREGISTERED``, e.g. ``fleetctl rotate
  --type``): the type's 16 key values of ``byTypeShard``, merged by serial, the status as a filter: it reads
  that type's devices rather than every ``ACTIVE`` device of the fleet.
- the whole fleet (``fleetctl list`` without a filter, ``fleetctl claim status``'s approvals per claim
  certificate, ``fleetctl registry backfill``): a parallel Scan (8 segments), bindings filtered out. These
  read (nearly) every device, where a Scan costs no more than querying every status, and bindings are a
  small share of the table.
- certificates about to expire (``fleetctl certs expiring``): the same Scan, with ``ACTIVE`` and the
  recorded ``certificateNotAfter`` within the window as a filter (a filter saves no reads, only the
  transfer). ``ACTIVE`` is nearly the whole fleet, and the report runs now and then; an index sorted by
  expiry would read only the expiring items, but would cost an index write on every transition of every
  device for good.

Changing the indexes of an existing table: DynamoDB creates or deletes one global secondary index per
``UpdateTable``; terraform-provider-aws (behind ``pulumi-aws``) updates the table in place, deleting the
removed indexes first and then creating the new ones, one ``UpdateTable`` each, waiting for each to finish.
README.md, "Migrating a registry to the sharded indexes", gives the order that keeps lists and counts
whole throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import pulumi
import pulumi_aws as aws

from hook.contract import REGISTRY_INDEXES, REGISTRY_PARTITION_KEY, REGISTRY_REGION_ENV, REGISTRY_TABLE_ENV

UPDATE_TIMEOUT: Final = "3h"
"""How long ``pulumi up`` waits for a table update: it includes building each new index."""

STREAM_VIEW_TYPE: Final = "NEW_AND_OLD_IMAGES"
"""The table's stream carries each change's item before and after: the certificate-retirement function
compares the certificates an item held with those it holds now."""


@dataclass(frozen=True)
class DeviceRegistryArgs:
    """Arguments of :class:`DeviceRegistry`."""

    table_name: str
    """Name of the DynamoDB table."""
    region: str
    """The stack's region, where the table is."""
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
    stream_arn: pulumi.Output[str] | None
    """The table's stream (:data:`STREAM_VIEW_TYPE`), for the functions that follow its changes; none
    outside the registry region (a stream's event source mapping is in the table's region)."""
    region: str
    """The table's region: a global fleet's registry region (``docs/global-fleet.md``)."""

    def environment(self) -> dict[str, pulumi.Input[str]]:
        """The environment variables through which a function finds the table."""
        return {REGISTRY_TABLE_ENV: self.table_name, REGISTRY_REGION_ENV: self.region}


class DeviceRegistry(pulumi.ComponentResource):
    """Registry table keyed by serial number, with sharded indexes to list and count devices by status and
    by type without hot partition keys (see the module's docstring), point-in-time recovery and server-side
    encryption."""

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
                    # key_schemas needs pulumi-aws 7.17; 7.24 (the pyproject floor) bundles the fixes of
                    # its perpetual diff and index rebuilds (docs/deploying.md).
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
            # Creating an index on a large table (DynamoDB fills it from every item) can outlast
            # terraform-provider-aws's 60-minute default for a table update (internal/service/dynamodb).
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect,
                custom_timeouts=pulumi.CustomTimeouts(update=UPDATE_TIMEOUT),
            ),
        )
        self.table_name = table.name
        self.table_arn = table.arn
        self.stream_arn = table.stream_arn
        self.reference = RegistryReference(
            table_name=table.name, table_arn=table.arn, stream_arn=table.stream_arn, region=args.region
        )
        self.register_outputs(
            {"table_name": self.table_name, "table_arn": self.table_arn, "stream_arn": self.stream_arn}
        )
