"""AWS's published default quotas that bound provisioning and pre-registration, each with the page it comes
from and whether it can be raised (``bench/capacity.py`` does the arithmetic on them).

The defaults are account- and Region-wide and may differ in your account or Region: read your own in the
Service Quotas console before asking for an increase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TRANSACTIONS_PAGE: Final = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html"
    "#transaction-capacity-handling"
)
"""DynamoDB Developer Guide, "Capacity management for transactions": two underlying writes of every item in
a transaction, one to prepare it and one to commit it."""

IOT_QUOTAS_PAGE: Final = "https://docs.aws.amazon.com/general/latest/gr/iot-core.html"
"""AWS General Reference, "AWS IoT Core endpoints and quotas" (formerly the developer guide's "AWS IoT
Limits", awsdocs/aws-iot-docs ``developerguide/limits-iot.md``, whose tables are cited below)."""


@dataclass(frozen=True)
class Quota:
    """A published default quota: a rate per second or a concurrency, where it is written, and whether it
    can be raised."""

    name: str
    limit: float
    unit: str
    source: str
    adjustable: bool
    note: str = ""
    raised_by: str = "a quota increase request (Service Quotas console)"


REGISTER_THING: Final = Quota(
    "RegisterThing",
    10,
    "requests/s",
    f"{IOT_QUOTAS_PAGE}, AWS IoT Core throttling limits: RegisterThing, 10 transactions per second",
    adjustable=True,
)
CREATE_KEYS_AND_CERTIFICATE: Final = Quota(
    "CreateKeysAndCertificate",
    10,
    "requests/s",
    f"{IOT_QUOTAS_PAGE}, AWS IoT Core throttling limits",
    adjustable=True,
    note="not in the copy of the table this was checked against: confirm in Service Quotas",
)
CREATE_CERTIFICATE_FROM_CSR: Final = Quota(
    "CreateCertificateFromCsr",
    15,
    "requests/s",
    f"{IOT_QUOTAS_PAGE}, AWS IoT Core throttling limits: CreateCertificateFromCsr, 15 per second",
    adjustable=True,
    note="the API's row; confirm the fleet provisioning MQTT rate in Service Quotas",
)
_REGISTER_THING_CALLS: Final = (
    "RegisterThing calls other AWS IoT control plane APIs, which count against the account's throttling "
    "limits (API reference, RegisterThing)"
)
_THINGPRESS_LIST: Final = (
    "aws-iot-builder-tools/thingpress doc/aws-api-limits.md, a list of that page's defaults checked "
    "2025-06-13"
)
CREATE_THING: Final = Quota(
    "CreateThing (by RegisterThing)",
    100,
    "requests/s",
    f"{IOT_QUOTAS_PAGE}, AWS IoT Core throttling limits: CreateThing",
    adjustable=True,
    note=f"100 per {_THINGPRESS_LIST}; the older developer-guide table said 15. {_REGISTER_THING_CALLS}",
)
ATTACH_POLICY: Final = Quota(
    "AttachPolicy (by RegisterThing)",
    15,
    "requests/s",
    f"{IOT_QUOTAS_PAGE}, AWS IoT Core throttling limits: AttachPolicy, 15 transactions per second",
    adjustable=True,
    note=f"15 in the developer-guide table and in {_THINGPRESS_LIST}",
)
ATTACH_THING_PRINCIPAL: Final = Quota(
    "AttachThingPrincipal (by RegisterThing)",
    100,
    "requests/s",
    f"{IOT_QUOTAS_PAGE}, AWS IoT Core throttling limits: AttachThingPrincipal",
    adjustable=True,
    note=f"100 per {_THINGPRESS_LIST}; the older developer-guide table said 15",
)
ADD_THING_TO_THING_GROUP: Final = Quota(
    "AddThingToThingGroup (by RegisterThing)",
    100,
    "requests/s",
    f"{IOT_QUOTAS_PAGE}, AWS IoT Core throttling limits: AddThingToThingGroup",
    adjustable=True,
    note=f"100 per {_THINGPRESS_LIST}; the older developer-guide table said 60",
)
UPDATE_CERTIFICATE: Final = Quota(
    "UpdateCertificate (by RegisterThing)",
    10,
    "requests/s",
    f"{IOT_QUOTAS_PAGE}, AWS IoT Core throttling limits: UpdateCertificate, 10 transactions per second",
    adjustable=True,
    note="the template activates the certificate; whether that counts as UpdateCertificate is not "
    "documented: confirm before relying on it",
)
CONNECTS_PER_ACCOUNT: Final = Quota(
    "MQTT CONNECT per account",
    500,
    "requests/s",
    f"{IOT_QUOTAS_PAGE}, message broker limits: connect requests per second per account, 500",
    adjustable=True,
)
LAMBDA_CONCURRENCY: Final = Quota(
    "Lambda concurrent executions",
    1_000,
    "concurrent",
    "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html, compute and storage: "
    "concurrent executions, 1,000 per Region (can be increased to tens of thousands)",
    adjustable=True,
    note="shared by every function of the account and Region; new accounts start lower",
)
LAMBDA_SCALING_RATE: Final = Quota(
    "Lambda scaling rate",
    1_000 / 10,
    "environments/s",
    "https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html, concurrency scaling rate: "
    "1,000 execution environments every 10 seconds, per function",
    adjustable=False,
    note="how fast concurrency grows, not a steady rate: see the ramp",
)
DYNAMODB_PARTITION_WRITES: Final = Quota(
    "DynamoDB writes per partition",
    1_000,
    "WCU/s",
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html: "
    "every partition delivers at most 3,000 read units and 1,000 write units per second",
    adjustable=False,
)
DYNAMODB_PARTITION_READS: Final = Quota(
    "DynamoDB reads per partition",
    3_000,
    "RCU/s",
    DYNAMODB_PARTITION_WRITES.source,
    adjustable=False,
    note="the hook and preregister only write: listed for the reads a report or a list makes",
)
DYNAMODB_TABLE_WRITES: Final = Quota(
    "DynamoDB on-demand table writes",
    40_000,
    "WRU/s",
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html, throughput "
    "default quotas: on-demand, per table, 40,000 read and 40,000 write request units",
    adjustable=True,
)
DYNAMODB_NEW_TABLE_WRITES: Final = Quota(
    "DynamoDB new on-demand table writes",
    4_000,
    "WRU/s",
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode.html, "
    "initial throughput: a new on-demand table sustains up to 4,000 writes and 12,000 reads per second, "
    "then up to double its previous peak",
    adjustable=True,
    note="raised by pre-warming the table (warm throughput), not by a quota request",
    raised_by="pre-warming the table to that warm throughput",
)
QUOTAS: Final = (
    REGISTER_THING,
    CREATE_KEYS_AND_CERTIFICATE,
    CREATE_CERTIFICATE_FROM_CSR,
    CREATE_THING,
    ATTACH_POLICY,
    ATTACH_THING_PRINCIPAL,
    ADD_THING_TO_THING_GROUP,
    UPDATE_CERTIFICATE,
    CONNECTS_PER_ACCOUNT,
    LAMBDA_CONCURRENCY,
    LAMBDA_SCALING_RATE,
    DYNAMODB_PARTITION_WRITES,
    DYNAMODB_PARTITION_READS,
    DYNAMODB_TABLE_WRITES,
    DYNAMODB_NEW_TABLE_WRITES,
)
