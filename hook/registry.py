"""The registry table's items and the lifecycle rules: which state a device may move to, from which.

Every read and write of the table, by the functions and by ``fleetctl``, goes through
:class:`DeviceRecords`, so a state transition is written down once:

- ``approve``: a new serial (unless pre-registration is required) or a ``PREREGISTERED`` one of the same
  type and manufacturer becomes ``PENDING``; a retry by the certificate on record is allowed again. In
  the same transaction the certificate is bound to the serial (an item keyed
  ``certificate#<certificateId>``); a certificate already bound to another serial is denied
  (``CertificateInUse``), whatever that serial's state: one certificate, one device, for good.
- ``activate``: ``PENDING`` becomes ``ACTIVE``, with the expiry of its certificate (``certificateNotAfter``,
  which ``complete_rotation`` rewrites for the new certificate and a re-provisioning removes).
- ``preregister``: an unknown serial becomes ``PREREGISTERED``, with its device's key if given, bound to it
  (an item keyed ``publicKey#<fingerprint>``): no key on two serials (``PublicKeyInUse``).
- ``rebind_key``: an operator moves a ``PREREGISTERED`` or ``ACTIVE`` serial to another key.
- ``revoke``: anything but ``REVOKED`` and ``DECOMMISSIONED`` (or an unknown serial) becomes ``REVOKED``.
- ``decommission``: anything but ``DECOMMISSIONED`` (or an unknown serial) becomes ``DECOMMISSIONED``.
- ``release``: a ``PENDING`` approval goes back to ``PREREGISTERED``, or away when nothing was before it.
- ``begin_rotation``: an ``ACTIVE`` serial, asked by its current certificate, gets a pending certificate
  (bound to it like an approved one); ``complete_rotation`` makes the pending certificate current and
  records the one it replaced; ``abandon_rotation`` drops the pending certificate with the reason.
- ``grant_reprovision``: an ``ACTIVE`` serial may provision once more, with a new certificate, until a
  deadline; ``approve`` consumes the grant and records the certificate it replaced.

Certificates leave a serial only through these transitions, and the registry table's stream carries each
change to :mod:`hook.certificate_retirement`, which revokes and detaches every certificate that stopped
being the serial's current or pending one. The registry is the record; the retirement follows it.

No transition removes a certificate binding. Revoking or decommissioning a serial keeps it, so the revoked
certificate can never be approved for another serial. Releasing keeps it too: ``fleetctl release`` revokes
the released certificate, and its ownership token has expired anyway; should that revocation fail, the
certificate may still only be approved again for the serial it was bound to, never for another. A
released serial provisions again with a new certificate, which gets its own binding. A key binding
moves only with ``rebind_key``; a revoked or decommissioned serial keeps its key for good.

Every transition writes the index keys of the status it leaves the item in, and of the type when it writes
one (``statusShard``, ``typeShard``: :func:`shard_attributes`), in its own request, so the sharded indexes
follow the items (``components/registry.py`` explains the indexes); those that keep a serial ``ACTIVE``
(rotation, re-provisioning grant, key rebinding) rewrite ``ACTIVE``'s key too, so an item that missed it
gets it with its next change. ``abandon_rotation``, conditional on a certificate rather than a state,
writes none. Certificate and key binding items never get them.

It stays on the low-level DynamoDB client (the ``Table`` resource costs the hook's cold start more):
conditions are built by boto3's expression builder, the one behind ``Table``, and values pass through
boto3's ``TypeSerializer`` and ``TypeDeserializer``.
"""

from __future__ import annotations

import heapq
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count, islice
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import boto3
from boto3.dynamodb.conditions import Attr as Attribute
from boto3.dynamodb.conditions import ConditionBase, ConditionExpressionBuilder, Key
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hook.contract import (
    DEVICE_TYPE_INDEX,
    PARAMETER_ATTRIBUTES,
    REGISTRY_PARTITION_KEY,
    REGISTRY_TABLE_ENV,
    STATUS_INDEX,
    Attr,
    DeviceStatus,
    Parameter,
    ProvisioningDenied,
    RejectionReason,
    certificate_binding_key,
    is_binding_key,
    is_certificate_binding_key,
    public_key_binding_key,
    shard_key,
    shard_keys,
    shard_of,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from hook.rules import DeviceRequest

Item = dict[str, str]
"""A registry item's string attributes by name (every registry attribute is a string)."""

_DENIED_STATES = {
    DeviceStatus.REVOKED: RejectionReason.DEVICE_REVOKED,
    DeviceStatus.DECOMMISSIONED: RejectionReason.DEVICE_DECOMMISSIONED,
}
_PROVISIONED_STATES = {DeviceStatus.PENDING, DeviceStatus.ACTIVE}
_BOUND_STATES = frozenset({DeviceStatus.PREREGISTERED, *_PROVISIONED_STATES})
_REBINDABLE_STATES = frozenset({DeviceStatus.PREREGISTERED, DeviceStatus.ACTIVE})
_APPROVAL_ATTRIBUTES = (
    Attr.CERTIFICATE_ID,
    Attr.CLAIM_CERTIFICATE_ID,
    Attr.TEMPLATE_ARN,
    Attr.CLIENT_ID,
    Attr.APPROVED_AT,
)
"""What the hook's approval adds to a pre-registered item."""

REPLACED_CERTIFICATES_KEPT: Final = 20
"""How many replaced certificates an item lists; older ones were retired long since."""

_PASSED: Final = "None"
"""A transaction member's cancellation reason code when its own condition held."""
_CONDITION_FAILED: Final = "ConditionalCheckFailed"

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

BATCH_GET_MAX: Final = 100
"""Keys per ``BatchGetItem``: DynamoDB's maximum (API reference, BatchGetItem)."""
BATCH_GET_BACKOFF_SECONDS: Final = 0.05
BATCH_GET_BACKOFF_MAX_SECONDS: Final = 5.0

SCAN_SEGMENTS: Final = 8
"""Segments (and threads) of a parallel Scan of the whole registry."""

_BULK_STATES: Final = frozenset({DeviceStatus.PREREGISTERED, DeviceStatus.ACTIVE})
"""The states most of a fleet is in. A list of one type in one of these reads that type's items (the type
index, the state as a filter) rather than every device in the state; in the rare states it is the other way
round."""

_SCAN_DONE: Final = object()
"""What a parallel scan's segment reader puts on the queue when its segment is read."""


class PublicKeyInUse(Exception):
    """The key is bound to another serial."""

    def __init__(self, public_key_sha256: str, serial_number: str) -> None:
        super().__init__(f"key sha256:{public_key_sha256} is registered for serial {serial_number!r}")
        self.public_key_sha256 = public_key_sha256
        self.serial_number = serial_number
        """The serial the key is bound to."""


class TransitionRefused(Exception):
    """The registry refused a transition: the serial is absent or in a state that does not allow it."""

    def __init__(self, serial_number: str, stored: Item | None) -> None:
        status = (stored or {}).get(Attr.STATUS, "not in the registry")
        super().__init__(f"serial {serial_number!r} is {status}")
        self.stored = stored


@dataclass(frozen=True)
class BackfillReport:
    """What :meth:`DeviceRecords.backfill_shards` did."""

    scanned: int
    """Device items read."""
    updated: int
    """Items given the index keys of their status and type (missing or stale before)."""
    skipped: int
    """Items a transition changed between the read and the write: that transition wrote its own keys."""


@dataclass(frozen=True)
class Provenance:
    """Who asked: the identifiers AWS IoT passes to the hook with every request."""

    certificate_id: str
    claim_certificate_id: str
    template_arn: str
    client_id: str
    certificate_pem: str | None = None
    """The event's ``certificatePem``: read only to check its key."""


class DeviceRecords:
    """The devices' records in the registry table: reads through the key, the sharded indexes, or a parallel
    Scan where the whole registry is read anyway, and every lifecycle transition, each one conditional
    request.

    Not ``DeviceRegistry``: that is the Pulumi component that creates the table.
    """

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table_name = table_name

    def approve(
        self,
        request: DeviceRequest,
        provenance: Provenance,
        *,
        require_preregistration: bool,
        key_binding: bool = False,
    ) -> None:
        """Mark the serial ``PENDING`` for this certificate and bind the certificate to the serial, or raise
        :class:`ProvisioningDenied`.

        One ``TransactWriteItems`` of two conditional updates: the serial's item, whose condition admits a
        new serial (unless pre-registration is required) or a ``PREREGISTERED`` one with the same type and
        manufacturer, and the certificate's binding, whose condition admits a certificate not yet bound
        or bound to this serial. When a condition fails, DynamoDB cancels both and returns the stored
        items with the reasons, and the decision is made from them without a second request: a retry by
        the same certificate, for the same type and manufacturer, is allowed again; anything else is
        denied.

        With ``key_binding``, the certificate's key is read before any request, and the condition admits
        only a ``PREREGISTERED`` serial registered with that key; the refused item tells
        ``PublicKeyMismatch`` from ``PublicKeyNotRegistered``.
        """
        public_key = _certificate_key(provenance) if key_binding else None
        now = timestamp()
        values: dict[str, str] = {
            Attr.STATUS: DeviceStatus.PENDING,
            Attr.CERTIFICATE_ID: provenance.certificate_id,
            Attr.CLAIM_CERTIFICATE_ID: provenance.claim_certificate_id,
            Attr.TEMPLATE_ARN: provenance.template_arn,
            Attr.CLIENT_ID: provenance.client_id,
            Attr.UPDATED_AT: now,
            Attr.APPROVED_AT: now,
        }
        values.update(request_attributes(request))
        del values[Attr.SERIAL_NUMBER]
        values.update(
            shard_attributes(
                request.serial_number, status=DeviceStatus.PENDING, device_type=request.device_type
            )
        )
        preregistered = (
            Attribute(Attr.STATUS).eq(DeviceStatus.PREREGISTERED)
            & Attribute(Attr.DEVICE_TYPE).eq(request.device_type)
            & Attribute(Attr.MANUFACTURER).eq(request.manufacturer)
        )
        condition: ConditionBase = preregistered
        if public_key is not None:
            condition = preregistered & Attribute(Attr.PUBLIC_KEY_SHA256).eq(public_key)
        elif not require_preregistration:
            condition = _absent() | preregistered
        granted: Item | None = None
        try:
            self._client.transact_write_items(
                TransactItems=[
                    self._update(
                        _key(request.serial_number),
                        condition,
                        assign=values,
                        assign_if_absent={Attr.CREATED_AT: now},
                    ),
                    self._binding(provenance.certificate_id, request.serial_number, now),
                ]
            )
        except self._client.exceptions.TransactionCanceledException as cancelled:
            granted = _decide_from_cancellation(cancelled, request, provenance, public_key)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        if granted is not None:
            self._reprovision(granted, request, provenance, public_key)

    def _reprovision(
        self, granted: Item, request: DeviceRequest, provenance: Provenance, public_key: str | None
    ) -> None:
        """Consume an operator's re-provisioning grant: the serial stays ``ACTIVE`` with the new certificate,
        and the old one joins the replaced certificates. A second request, made only when the approval's
        own transaction found the grant; conditional on the grant, the old certificate and the serial's key
        being the ones read, so one grant admits one certificate, of the registered key if there is one."""
        bound = granted.get(Attr.PUBLIC_KEY_SHA256)
        if bound:
            _require_bound_key(granted, public_key or _certificate_key(provenance))
        now = timestamp()
        old_certificate = granted.get(Attr.CERTIFICATE_ID, "")
        values: Item = {
            **request_attributes(request),
            Attr.CERTIFICATE_ID: provenance.certificate_id,
            Attr.CLAIM_CERTIFICATE_ID: provenance.claim_certificate_id,
            Attr.TEMPLATE_ARN: provenance.template_arn,
            Attr.CLIENT_ID: provenance.client_id,
            Attr.REPROVISIONED_AT: now,
            Attr.UPDATED_AT: now,
            Attr.REPLACED_CERTIFICATE_IDS: _replaced(granted, old_certificate),
            **shard_attributes(
                request.serial_number, status=DeviceStatus.ACTIVE, device_type=request.device_type
            ),
        }
        del values[Attr.SERIAL_NUMBER]
        still_granted = (
            Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE)
            & Attribute(Attr.CERTIFICATE_ID).eq(old_certificate)
            & Attribute(Attr.REPROVISION_ALLOWED_UNTIL).eq(granted[Attr.REPROVISION_ALLOWED_UNTIL])
            & _key_unchanged(bound)
        )
        try:
            self._client.transact_write_items(
                TransactItems=[
                    self._update(
                        _key(request.serial_number),
                        still_granted,
                        assign=values,
                        # The hook does not read the new certificate's expiry: the old one's goes, and
                        # `fleetctl registry backfill` records the new one's.
                        remove=(
                            Attr.REPROVISION_ALLOWED_UNTIL,
                            Attr.PENDING_CERTIFICATE_ID,
                            Attr.CERTIFICATE_NOT_AFTER,
                        ),
                    ),
                    self._binding(provenance.certificate_id, request.serial_number, now),
                ]
            )
        except self._client.exceptions.TransactionCanceledException as cancelled:
            reasons = cast(Mapping[str, Any], cancelled.response).get("CancellationReasons") or []
            codes = [reason.get("Code") for reason in reasons if isinstance(reason, dict)]
            if codes[1:2] == [_CONDITION_FAILED]:
                raise ProvisioningDenied(
                    RejectionReason.CERTIFICATE_IN_USE, "certificate is already approved for another serial"
                ) from cancelled
            raise ProvisioningDenied(
                RejectionReason.REPROVISION_GRANT_USED,
                "the re-provisioning grant was used by another request meanwhile",
            ) from cancelled
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error

    def begin_rotation(self, item: Item, new_certificate_id: str, job_id: str | None) -> bool:
        """Give the ``ACTIVE`` serial of ``item`` a pending certificate, bound to the serial; ``False`` when
        the serial changed since ``item`` was read (another certificate, another state).

        One transaction: the serial's item, conditional on it still having the certificate and key of
        ``item``, and the new certificate's binding. A pending certificate of an earlier attempt is replaced
        (and so retired). A transaction cancelled for another reason than a condition (a conflicting write,
        throttling) is raised: it says nothing about the serial, and a retry may succeed."""
        serial = item[Attr.SERIAL_NUMBER]
        now = timestamp()
        pending: Item = {
            Attr.PENDING_CERTIFICATE_ID: new_certificate_id,
            Attr.ROTATION_REQUESTED_AT: now,
            Attr.UPDATED_AT: now,
            **({Attr.ROTATION_JOB_ID: job_id} if job_id else {}),
            **shard_attributes(serial, status=DeviceStatus.ACTIVE),
        }
        unchanged = (
            Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE)
            & Attribute(Attr.CERTIFICATE_ID).eq(item.get(Attr.CERTIFICATE_ID, ""))
            & _key_unchanged(item.get(Attr.PUBLIC_KEY_SHA256))
        )
        try:
            self._client.transact_write_items(
                TransactItems=[
                    self._update(
                        _key(serial),
                        unchanged,
                        assign=pending,
                        remove=(Attr.ROTATION_FAILED_AT, Attr.ROTATION_FAILURE_REASON),
                    ),
                    self._binding(new_certificate_id, serial, now),
                ]
            )
        except self._client.exceptions.TransactionCanceledException as cancelled:
            if _cancelled_by_conditions(cancelled):
                return False
            raise
        return True

    def complete_rotation(self, item: Item, certificate_not_after: str | None = None) -> Item | None:
        """Make the pending certificate of ``item`` current, with its expiry (when known; else none is
        kept), and record the one it replaces, with ``rotatedAt``; the item as written, or ``None`` when the
        serial changed since ``item`` was read."""
        pending = item.get(Attr.PENDING_CERTIFICATE_ID)
        if not pending:
            return None
        current = item.get(Attr.CERTIFICATE_ID, "")
        now = timestamp()
        expiry, no_expiry = _certificate_expiry(certificate_not_after)
        assign: Item = {
            Attr.CERTIFICATE_ID: pending,
            Attr.REPLACED_CERTIFICATE_IDS: _replaced(item, current),
            Attr.ROTATED_AT: now,
            Attr.UPDATED_AT: now,
            **expiry,
            **shard_attributes(item[Attr.SERIAL_NUMBER], status=DeviceStatus.ACTIVE),
        }
        unchanged = (
            Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE)
            & Attribute(Attr.CERTIFICATE_ID).eq(current)
            & Attribute(Attr.PENDING_CERTIFICATE_ID).eq(pending)
        )
        return self._conditional_update(
            item, unchanged, assign, remove=(Attr.PENDING_CERTIFICATE_ID, *no_expiry)
        )

    def abandon_rotation(self, item: Item, reason: str) -> Item | None:
        """Drop the pending certificate of ``item`` (which retires it) and record why the rotation failed;
        the device keeps its current certificate. The item as written, or ``None`` when the serial changed
        since ``item`` was read."""
        now = timestamp()
        assign: Item = {
            Attr.ROTATION_FAILED_AT: now,
            Attr.ROTATION_FAILURE_REASON: reason,
            Attr.UPDATED_AT: now,
        }
        pending = item.get(Attr.PENDING_CERTIFICATE_ID)
        unchanged = (
            Attribute(Attr.PENDING_CERTIFICATE_ID).eq(pending)
            if pending
            else Attribute(Attr.PENDING_CERTIFICATE_ID).not_exists()
            & Attribute(Attr.CERTIFICATE_ID).eq(item.get(Attr.CERTIFICATE_ID, ""))
        )
        return self._conditional_update(item, unchanged, assign, remove=(Attr.PENDING_CERTIFICATE_ID,))

    def grant_reprovision(self, serial_number: str, reason: str, granted_by: str, until: str) -> Item:
        """Allow the ``ACTIVE`` serial one next provisioning with a new certificate until ``until`` (ISO
        8601), recording who allowed it and why; returns the item as written. Raises
        :class:`TransitionRefused` with the stored item when the serial is absent or not ``ACTIVE``."""
        now = timestamp()
        grant: Item = {
            Attr.REPROVISION_ALLOWED_UNTIL: until,
            Attr.REPROVISION_GRANTED_BY: granted_by,
            Attr.REPROVISION_GRANTED_AT: now,
            Attr.REPROVISION_REASON: reason,
            Attr.UPDATED_AT: now,
            **shard_attributes(serial_number, status=DeviceStatus.ACTIVE),
        }
        try:
            written = self._client.update_item(
                TableName=self._table_name,
                Key=_key(serial_number),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **_expressions(Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE), assign=grant),
            )
        except self._client.exceptions.ConditionalCheckFailedException as refused:
            raise TransitionRefused(serial_number, _refused_item(refused)) from refused
        return string_attributes(written.get("Attributes", {}))

    def rebind_key(self, item: Item, public_key_sha256: str, reason: str, rebound_by: str) -> Item | None:
        """Move the ``PREREGISTERED`` or ``ACTIVE`` serial of ``item`` to another key, recording who, when,
        why and the previous key; the item as written, ``None`` when it changed since read. One transaction:
        the item (conditional on its state and key), the new key's binding (free or ours) and the previous
        one's deletion (ours or gone); :class:`PublicKeyInUse` otherwise. A rotation in progress is dropped:
        its certificate has the previous key."""
        serial = item[Attr.SERIAL_NUMBER]
        status = item.get(Attr.STATUS, "")
        if status not in _REBINDABLE_STATES:
            raise TransitionRefused(serial, item)
        previous = item.get(Attr.PUBLIC_KEY_SHA256)
        now = timestamp()
        rebound: Item = {
            Attr.PUBLIC_KEY_SHA256: public_key_sha256,
            Attr.KEY_REBOUND_AT: now,
            Attr.KEY_REBOUND_BY: rebound_by,
            Attr.KEY_REBOUND_REASON: reason,
            Attr.UPDATED_AT: now,
            **({Attr.PREVIOUS_PUBLIC_KEY_SHA256: previous} if previous else {}),
            **shard_attributes(serial, status=status),
        }
        members = [
            self._update(
                _key(serial),
                Attribute(Attr.STATUS).eq(status) & _key_unchanged(previous),
                assign=rebound,
                remove=(Attr.PENDING_CERTIFICATE_ID,),
            ),
            self._key_binding(public_key_sha256, serial, now),
        ]
        if previous:
            members.append(self._unbind_key(previous, serial))
        try:
            self._client.transact_write_items(TransactItems=members)
        except self._client.exceptions.TransactionCanceledException as cancelled:
            if not _cancelled_by_conditions(cancelled):
                raise
            _, *bindings = _cancellation_reasons(cancelled, len(members))
            for binding, key in zip(bindings, (public_key_sha256, previous), strict=False):
                if binding.get("Code") == _CONDITION_FAILED and key:
                    bound_to = (_stored(binding) or {}).get(Attr.DEVICE_SERIAL_NUMBER, "")
                    raise PublicKeyInUse(key, bound_to) from cancelled
            return None
        written = {**item, **rebound}
        written.pop(Attr.PENDING_CERTIFICATE_ID, None)
        return written

    def _unbind_key(self, public_key_sha256: str, serial_number: str) -> TransactWriteItemTypeDef:
        """The transaction member deleting a key's binding if it is this serial's (or gone)."""
        delete = {
            "TableName": self._table_name,
            "Key": _binding_key(public_key_binding_key(public_key_sha256)),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **_expressions(_absent() | Attribute(Attr.DEVICE_SERIAL_NUMBER).eq(serial_number)),
        }
        return cast("TransactWriteItemTypeDef", {"Delete": delete})

    def _conditional_update(
        self, item: Item, condition: ConditionBase, assign: Item, *, remove: Collection[str] = ()
    ) -> Item | None:
        """Update the serial of ``item`` if ``condition`` holds: the item as written, else ``None``."""
        try:
            written = self._client.update_item(
                TableName=self._table_name,
                Key=_key(item[Attr.SERIAL_NUMBER]),
                ReturnValues="ALL_NEW",
                **_expressions(condition, assign=assign, remove=remove),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        return string_attributes(written.get("Attributes", {}))

    def _binding(self, certificate_id: str, serial_number: str, now: str) -> TransactWriteItemTypeDef:
        """The transaction member binding a certificate to a serial (:meth:`_bind`)."""
        held: Item = {Attr.CERTIFICATE_ID: certificate_id}
        return self._bind(certificate_binding_key(certificate_id), held, serial_number, now)

    def _key_binding(self, public_key_sha256: str, serial_number: str, now: str) -> TransactWriteItemTypeDef:
        """The transaction member binding a device key to a serial (:meth:`_bind`)."""
        held: Item = {Attr.PUBLIC_KEY_SHA256: public_key_sha256}
        return self._bind(public_key_binding_key(public_key_sha256), held, serial_number, now)

    def _bind(self, binding_key: str, held: Item, serial_number: str, now: str) -> TransactWriteItemTypeDef:
        """The transaction member writing binding item ``binding_key`` (``held`` and the serial): it holds
        when the item is not bound yet or bound to this serial already."""
        unbound_or_ours = _absent() | Attribute(Attr.DEVICE_SERIAL_NUMBER).eq(serial_number)
        return self._update(
            _binding_key(binding_key),
            unbound_or_ours,
            assign={**held, Attr.DEVICE_SERIAL_NUMBER: serial_number},
            assign_if_absent={Attr.CREATED_AT: now},
        )

    def _update(
        self,
        key: dict[str, Any],
        condition: ConditionBase,
        *,
        assign: Mapping[str, str],
        assign_if_absent: Mapping[str, str] | None = None,
        remove: Collection[str] = (),
    ) -> TransactWriteItemTypeDef:
        """A conditional update as a transaction member that returns the stored item when refused."""
        update = {
            "TableName": self._table_name,
            "Key": key,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **_expressions(condition, assign=assign, assign_if_absent=assign_if_absent, remove=remove),
        }
        return cast("TransactWriteItemTypeDef", {"Update": update})

    def get(self, serial_number: str) -> Item | None:
        """The registry item of a serial, read consistently; ``None`` if absent."""
        item = self._client.get_item(
            TableName=self._table_name, Key=_key(serial_number), ConsistentRead=True
        ).get("Item")
        return None if item is None else string_attributes(item)

    def get_many(self, serial_numbers: Iterable[str], *, attributes: Collection[str] = ()) -> Iterator[Item]:
        """The registry items of ``serial_numbers`` that exist, read consistently with ``BatchGetItem``,
        :data:`BATCH_GET_MAX` keys a request; only ``attributes`` (and the serial) of each when given. A key
        repeated within a request is asked once (DynamoDB refuses a request naming a key twice), and keys a
        request left unprocessed are asked again after an exponential back-off (API reference,
        BatchGetItem). Items come in no particular order."""
        serials = iter(serial_numbers)
        shown = list(dict.fromkeys([REGISTRY_PARTITION_KEY, *attributes])) if attributes else []
        while batch := list(dict.fromkeys(islice(serials, BATCH_GET_MAX))):
            keys = {"Keys": [_key(serial) for serial in batch], "ConsistentRead": True}
            request: dict[str, Any] = {self._table_name: keys | _expressions(projection=shown)}
            for attempt in count():
                response = self._client.batch_get_item(RequestItems=request)
                yield from map(string_attributes, response.get("Responses", {}).get(self._table_name, []))
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    break
                time.sleep(min(BATCH_GET_BACKOFF_SECONDS * 2**attempt, BATCH_GET_BACKOFF_MAX_SECONDS))

    def activate(
        self, serial_number: str, thing_name: str, certificate_not_after: str | None = None
    ) -> Item | None:
        """Move a ``PENDING`` serial to ``ACTIVE`` with its thing name and its certificate's expiry (when
        known; else none is kept); return ``None`` when done, or the stored item when it was not
        ``PENDING`` (a redelivered event or an unexpected state)."""
        now = timestamp()
        expiry, no_expiry = _certificate_expiry(certificate_not_after)
        assign: Item = {
            Attr.STATUS: DeviceStatus.ACTIVE,
            Attr.THING_NAME: thing_name,
            Attr.ACTIVATED_AT: now,
            Attr.UPDATED_AT: now,
            **expiry,
            **shard_attributes(serial_number, status=DeviceStatus.ACTIVE),
        }
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key=_key(serial_number),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **_expressions(
                    Attribute(Attr.STATUS).eq(DeviceStatus.PENDING), assign=assign, remove=no_expiry
                ),
            )
        except self._client.exceptions.ConditionalCheckFailedException as refused:
            return _refused_item(refused) or {}
        return None

    def record_certificate_expiry(self, serial_number: str, certificate_id: str, not_after: str) -> bool:
        """Record when the serial's current certificate expires, on an item that lacks it (written before
        the registry kept it, or re-provisioned since); conditional on ``certificate_id`` still being the
        current certificate, ``False`` when it no longer is. Not a transition: ``updatedAt`` and the index
        keys are left alone."""
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key=_key(serial_number),
                **_expressions(
                    Attribute(Attr.CERTIFICATE_ID).eq(certificate_id),
                    assign={Attr.CERTIFICATE_NOT_AFTER: not_after},
                ),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def preregister(
        self, request: DeviceRequest, now: str, public_key_sha256: str | None = None
    ) -> Item | None:
        """Store the request as ``PREREGISTERED`` unless its serial exists; ``None`` when stored, else the
        item already there (returned by the refused write, without another read). With the device's key, one
        ``TransactWriteItems`` also binds it (free or already ours); a key bound to another serial raises
        :class:`PublicKeyInUse` naming that serial."""
        item = {
            **request_attributes(request),
            Attr.STATUS: DeviceStatus.PREREGISTERED,
            Attr.CREATED_AT: now,
            Attr.UPDATED_AT: now,
            **shard_attributes(
                request.serial_number, status=DeviceStatus.PREREGISTERED, device_type=request.device_type
            ),
            **({Attr.PUBLIC_KEY_SHA256: public_key_sha256} if public_key_sha256 else {}),
        }
        put: dict[str, Any] = {
            "TableName": self._table_name,
            "Item": {name: _SERIALIZER.serialize(value) for name, value in item.items()},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **_expressions(_absent()),
        }
        if not public_key_sha256:
            try:
                self._client.put_item(**put)
            except self._client.exceptions.ConditionalCheckFailedException as refused:
                return _refused_item(refused) or {}
            return None
        binding = self._key_binding(public_key_sha256, request.serial_number, now)
        try:
            self._client.transact_write_items(
                TransactItems=[cast("TransactWriteItemTypeDef", {"Put": put}), binding]
            )
        except self._client.exceptions.TransactionCanceledException as cancelled:
            if not _cancelled_by_conditions(cancelled):
                raise
            device, key = _cancellation_reasons(cancelled, 2)
            if key.get("Code") == _CONDITION_FAILED:
                bound_to = (_stored(key) or {}).get(Attr.DEVICE_SERIAL_NUMBER, "")
                raise PublicKeyInUse(public_key_sha256, bound_to) from cancelled
            return _stored(device) or {}
        return None

    def revoke(self, serial_number: str, reason: str) -> Item | None:
        """Mark the serial ``REVOKED`` with ``reason``, creating the item if absent, unless it is already
        ``REVOKED`` or ``DECOMMISSIONED``; returns the item as written, or ``None`` if unchanged."""
        return self._enter(
            serial_number,
            DeviceStatus.REVOKED,
            unless=[DeviceStatus.REVOKED, DeviceStatus.DECOMMISSIONED],
            extra={Attr.REVOCATION_REASON: reason, Attr.REVOKED_AT: timestamp()},
        )

    def decommission(self, serial_number: str) -> Item | None:
        """Mark the serial ``DECOMMISSIONED`` for good, creating the item if absent, unless it already is;
        returns the item as written, or ``None`` if unchanged."""
        return self._enter(
            serial_number,
            DeviceStatus.DECOMMISSIONED,
            unless=[DeviceStatus.DECOMMISSIONED],
            extra={Attr.DECOMMISSIONED_AT: timestamp()},
        )

    def record_certificates_revoked(self, serial_number: str) -> bool:
        """Note on a ``REVOKED`` or ``DECOMMISSIONED`` serial that every certificate it had was revoked and
        detached (``certificatesRevokedAt``), once: ``False`` when the serial is in another state or noted
        already. Not a transition: ``updatedAt`` and the index keys stay as they are."""
        done = [DeviceStatus.REVOKED, DeviceStatus.DECOMMISSIONED]
        condition = Attribute(Attr.STATUS).is_in(done) & Attribute(Attr.CERTIFICATES_REVOKED_AT).not_exists()
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key=_key(serial_number),
                **_expressions(condition, assign={Attr.CERTIFICATES_REVOKED_AT: timestamp()}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, approval: Item) -> Literal["restored", "deleted"] | None:
        """Undo a ``PENDING`` approval: back to ``PREREGISTERED`` when a manifest had pre-registered the
        serial (its item was created before the approval), else delete the item. Conditional on the item
        still being this approval: ``None`` when it changed meanwhile."""
        key = _key(approval[Attr.SERIAL_NUMBER])
        pending = Attribute(Attr.STATUS).eq(DeviceStatus.PENDING)
        still_this_approval = pending & Attribute(Attr.APPROVED_AT).eq(approval[Attr.APPROVED_AT])
        preregistered = approval.get(Attr.CREATED_AT, "") < approval[Attr.APPROVED_AT]
        try:
            if not preregistered:
                self._client.delete_item(
                    TableName=self._table_name, Key=key, **_expressions(still_this_approval)
                )
                return "deleted"
            restored: Item = {
                Attr.STATUS: DeviceStatus.PREREGISTERED,
                Attr.UPDATED_AT: timestamp(),
                **shard_attributes(approval[Attr.SERIAL_NUMBER], status=DeviceStatus.PREREGISTERED),
            }
            self._client.update_item(
                TableName=self._table_name,
                Key=key,
                **_expressions(still_this_approval, assign=restored, remove=_APPROVAL_ATTRIBUTES),
            )
            return "restored"
        except self._client.exceptions.ConditionalCheckFailedException:
            return None

    def devices(
        self,
        status: DeviceStatus | None = None,
        device_type: str | None = None,
        *,
        attributes: Collection[Attr] = (),
        filter_by: ConditionBase | None = None,
        limit: int | None = None,
    ) -> Iterator[Item]:
        """Devices in ``status`` and/or of ``device_type`` that ``filter_by`` (a filter: the items are read
        anyway) admits, page by page, at most ``limit``; only ``attributes`` of each when given (with the
        serial and the attribute they are ordered by).

        - a status alone, or a rare status (``PENDING``, ``REVOKED``, ``DECOMMISSIONED``) with a type: the
          status index, ordered by ``updatedAt`` (the type a filter);
        - a type alone, or a type with ``PREREGISTERED`` or ``ACTIVE``: the type index, ordered by serial
          (the status a filter), so a bulk selection reads that type's items rather than the whole state;
        - neither: :meth:`scan_devices` (a parallel Scan), in no particular order.

        An index is read shard by shard (:data:`~hook.contract.REGISTRY_SHARDS` queries) and the shards are
        merged in order; with ``limit`` no shard is read further than ``limit`` items."""
        if status is None and device_type is None:
            yield from self.scan_devices(attributes=attributes, filter_by=filter_by, limit=limit)
            return
        if status is None or (device_type is not None and status in _BULK_STATES):
            index, by, value, order_by = DEVICE_TYPE_INDEX, Attr.TYPE_SHARD, device_type, Attr.SERIAL_NUMBER
            other = None if status is None else Attribute(Attr.STATUS).eq(status)
        else:
            index, by, value, order_by = STATUS_INDEX, Attr.STATUS_SHARD, status, Attr.UPDATED_AT
            other = None if device_type is None else Attribute(Attr.DEVICE_TYPE).eq(device_type)
        if other is not None:
            filter_by = other if filter_by is None else other & filter_by
        found = self._merged(
            index,
            by,
            cast(str, value),  # not None: a status or a type was given
            order_by=order_by,
            filter_by=filter_by,
            attributes=attributes,
            page_size=limit,
        )
        yield from islice(found, limit)

    def count_pending_before(self, cutoff: str) -> int:
        """How many ``PENDING`` items were last updated before ``cutoff`` (ISO 8601): a ``Select=COUNT``
        query of each ``PENDING`` shard of the status index, its sort key below ``cutoff``, so only stale
        approvals are read."""
        return sum(
            page["Count"]
            for key in shard_keys(DeviceStatus.PENDING)
            for page in self._pages(
                STATUS_INDEX,
                Key(Attr.STATUS_SHARD).eq(key) & Key(Attr.UPDATED_AT).lt(cutoff),
                Select="COUNT",
            )
        )

    def scan_devices(
        self,
        *,
        attributes: Collection[str] = (),
        having: Collection[str] = (),
        filter_by: ConditionBase | None = None,
        segments: int = SCAN_SEGMENTS,
        limit: int | None = None,
    ) -> Generator[Item, None, None]:
        """Every device item, for reports that read the whole registry anyway: a parallel Scan of
        ``segments`` segments, one thread each, pages handed over as they arrive (so memory stays at a few
        pages however large the table). Certificate bindings are left out (they have no ``status``), and so
        are items without every attribute in ``having`` and items ``filter_by`` refuses (a filter: DynamoDB
        still reads every item); only ``attributes`` (and the serial) of each when given. In no particular
        order; at most ``limit`` items, and with ``limit`` no segment reads pages of more than ``limit``
        items. Closing the iterator early stops the readers."""
        present: ConditionBase = Attribute(Attr.STATUS).exists()
        for name in having:
            present = present & Attribute(name).exists()
        if filter_by is not None:
            present = present & filter_by
        shown = list(dict.fromkeys([REGISTRY_PARTITION_KEY, *attributes])) if attributes else []
        arguments: dict[str, Any] = {
            "TableName": self._table_name,
            **_expressions(filter_by=present, projection=shown),
        }
        if limit is not None:
            arguments["PaginationConfig"] = {"PageSize": limit}
        pages = self._scanned_pages(arguments, segments)
        items = (string_attributes(raw) for page in pages for raw in page)
        yield from islice((item for item in items if not is_binding_key(item[REGISTRY_PARTITION_KEY])), limit)

    def backfill_shards(
        self,
        *,
        segments: int = SCAN_SEGMENTS,
        concurrency: int = SCAN_SEGMENTS,
        on_item: Callable[[], None] | None = None,
    ) -> BackfillReport:
        """Give every device item the index keys of its status and type (:func:`shard_attributes`) where
        they are missing or stale: items written before the indexes were sharded, or moved by a version
        that did not write the keys. Reads the registry with :meth:`scan_devices`; writes only the items
        that need it, one conditional ``UpdateItem`` each (``concurrency`` at a time), conditional on the
        status and type being the ones read: an item a transition changed meanwhile is skipped, that
        transition wrote its own keys. ``updatedAt`` is left alone (this is not a transition). Safe to
        interrupt and re-run; a second run writes nothing. ``on_item`` is called per item read."""
        read = [Attr.STATUS, Attr.DEVICE_TYPE, Attr.STATUS_SHARD, Attr.TYPE_SHARD]
        scanned = updated = skipped = 0

        def tally(written: Future[bool]) -> None:
            nonlocal updated, skipped
            if written.result():
                updated += 1
            else:
                skipped += 1

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            in_flight: deque[Future[bool]] = deque()
            for item in self.scan_devices(attributes=read, segments=segments):
                scanned += 1
                if on_item is not None:
                    on_item()
                keys = _stale_shard_attributes(item)
                if keys:
                    in_flight.append(pool.submit(self._write_shard_attributes, item, keys))
                while len(in_flight) > 4 * concurrency or (in_flight and in_flight[0].done()):
                    tally(in_flight.popleft())
            while in_flight:
                tally(in_flight.popleft())
        return BackfillReport(scanned=scanned, updated=updated, skipped=skipped)

    def _write_shard_attributes(self, item: Item, keys: Item) -> bool:
        """Set ``keys`` on the serial of ``item`` if its status and type are still the ones read."""
        device_type = item.get(Attr.DEVICE_TYPE)
        unchanged = Attribute(Attr.STATUS).eq(item[Attr.STATUS]) & (
            Attribute(Attr.DEVICE_TYPE).not_exists()
            if device_type is None
            else Attribute(Attr.DEVICE_TYPE).eq(device_type)
        )
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key=_key(item[Attr.SERIAL_NUMBER]),
                **_expressions(unchanged, assign=keys),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _merged(
        self,
        index: str,
        hash_key: Attr,
        value: str,
        *,
        order_by: Attr,
        filter_by: ConditionBase | None,
        attributes: Collection[Attr],
        page_size: int | None,
    ) -> Iterator[Item]:
        """The items of every shard of ``value`` in ``index``, merged in ``order_by`` order, then by serial
        (each shard's query returns its items in that order: ``order_by`` is the index's sort key)."""
        shown = list(dict.fromkeys([*attributes, order_by, REGISTRY_PARTITION_KEY])) if attributes else []
        paging = {} if page_size is None else {"PaginationConfig": {"PageSize": page_size}}
        shards = [
            (
                string_attributes(raw)
                for page in self._pages(index, Key(hash_key).eq(key), filter_by, attributes=shown, **paging)
                for raw in page.get("Items", [])
            )
            for key in shard_keys(value)
        ]
        return heapq.merge(*shards, key=lambda item: (item[order_by], item[REGISTRY_PARTITION_KEY]))

    def _scanned_pages(self, arguments: Mapping[str, Any], segments: int) -> Iterator[list[dict[str, Any]]]:
        """The pages of a Scan in ``segments`` parallel segments, each read by its own thread and handed over
        through a queue of a few pages; closing the iterator (or an error in a segment) stops them all."""
        handed: queue.Queue[object] = queue.Queue(maxsize=2 * segments)
        stop = threading.Event()

        def hand_over(what: object) -> bool:
            while not stop.is_set():
                try:
                    handed.put(what, timeout=0.1)
                except queue.Full:
                    continue
                return True
            return False

        def read(segment: int) -> None:
            try:
                paginator = self._client.get_paginator("scan")
                for page in paginator.paginate(**arguments, Segment=segment, TotalSegments=segments):
                    if not hand_over(page.get("Items", [])):
                        return
            except Exception as error:  # handed to the reader, which raises it
                hand_over(error)
            hand_over(_SCAN_DONE)

        readers = [threading.Thread(target=read, args=(segment,), daemon=True) for segment in range(segments)]
        for reader in readers:
            reader.start()
        try:
            done = 0
            while done < segments:
                got = handed.get()
                if got is _SCAN_DONE:
                    done += 1
                elif isinstance(got, Exception):
                    raise got
                else:
                    yield cast("list[dict[str, Any]]", got)
        finally:
            stop.set()
            for reader in readers:
                reader.join()

    def _enter(
        self, serial_number: str, status: DeviceStatus, *, unless: Collection[DeviceStatus], extra: Item
    ) -> Item | None:
        """Move ``serial_number`` to ``status`` with ``extra`` attributes, creating the item if absent,
        unless it already is in one of the ``unless`` states."""
        condition = _absent() | ~Attribute(Attr.STATUS).is_in(list(unless))
        assign: Item = {
            Attr.STATUS: status,
            Attr.UPDATED_AT: timestamp(),
            **shard_attributes(serial_number, status=status),
            **extra,
        }
        try:
            written = self._client.update_item(
                TableName=self._table_name,
                Key=_key(serial_number),
                ReturnValues="ALL_NEW",
                **_expressions(condition, assign=assign),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        return string_attributes(written.get("Attributes", {}))

    def _pages(
        self,
        index: str,
        key: ConditionBase,
        filter_by: ConditionBase | None = None,
        *,
        attributes: Collection[Attr] = (),
        **arguments: Any,
    ) -> Iterator[Mapping[str, Any]]:
        """The query's pages: the items of ``index`` that match ``key`` and ``filter_by``."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table_name,
            IndexName=index,
            **_expressions(key=key, filter_by=filter_by, projection=attributes),
            **arguments,
        )
        yield from pages


def registry_from_environment(config: Config) -> DeviceRecords:
    """The records of the table named by ``REGISTRY_TABLE_NAME``, through a DynamoDB client built with
    ``config``."""
    table_name = os.environ.get(REGISTRY_TABLE_ENV)
    if not table_name:
        raise RuntimeError(f"{REGISTRY_TABLE_ENV} is not set")
    return DeviceRecords(boto3.client("dynamodb", config=config), table_name)


def timestamp(moment: datetime | None = None) -> str:
    """A registry timestamp: ISO 8601 in UTC with milliseconds, which sorts as text."""
    return (moment or datetime.now(UTC)).isoformat(timespec="milliseconds")


def shard_attributes(
    serial_number: str, *, status: str | None = None, device_type: str | None = None
) -> Item:
    """The index keys of a device item in ``status`` and/or of ``device_type``: ``statusShard`` and
    ``typeShard``, both in the serial's shard (:func:`~hook.contract.shard_of`). Every write of a status or
    a type writes these with it; a certificate binding never has them."""
    shard = shard_of(serial_number)
    keys: Item = {}
    if status is not None:
        keys[Attr.STATUS_SHARD] = shard_key(status, shard)
    if device_type is not None:
        keys[Attr.TYPE_SHARD] = shard_key(device_type, shard)
    return keys


def _stale_shard_attributes(item: Item) -> Item:
    """The index keys ``item`` lacks or has wrong for its status and type (empty when it is right)."""
    expected = shard_attributes(
        item[Attr.SERIAL_NUMBER], status=item.get(Attr.STATUS), device_type=item.get(Attr.DEVICE_TYPE)
    )
    return {name: value for name, value in expected.items() if item.get(name) != value}


def request_attributes(request: DeviceRequest) -> Item:
    """The request's normalised values under their registry attribute names."""
    return {PARAMETER_ATTRIBUTES[Parameter(name)]: value for name, value in request.parameters().items()}


def string_attributes(item: Mapping[str, Any]) -> Item:
    """A DynamoDB item's string attributes as plain values (every registry attribute is a string)."""
    plain = {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
    return {name: value for name, value in plain.items() if isinstance(value, str)}


def devices_and_bindings(
    items: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, Item], dict[str, str]]:
    """Raw registry items (a scan's) split into the devices' items by serial number and the certificate
    bindings as certificate id -> serial number; key bindings are neither."""
    devices: dict[str, Item] = {}
    bindings: dict[str, str] = {}
    for raw in items:
        item = string_attributes(raw)
        key = item[REGISTRY_PARTITION_KEY]
        if is_certificate_binding_key(key):
            bindings[item[Attr.CERTIFICATE_ID]] = item[Attr.DEVICE_SERIAL_NUMBER]
        elif not is_binding_key(key):
            devices[key] = item
    return devices, bindings


def _key(serial_number: str) -> dict[str, Any]:
    """A device's key. A binding's key is refused: no device operation may touch a binding."""
    if is_binding_key(serial_number):
        kind = "certificate binding" if is_certificate_binding_key(serial_number) else "key binding"
        raise ValueError(f"{serial_number!r} is a {kind}'s key, not a serial number")
    return {REGISTRY_PARTITION_KEY: _SERIALIZER.serialize(serial_number)}


def _binding_key(binding_key: str) -> dict[str, Any]:
    """A binding item's key (:func:`~hook.contract.certificate_binding_key`,
    :func:`~hook.contract.public_key_binding_key`)."""
    return {REGISTRY_PARTITION_KEY: _SERIALIZER.serialize(binding_key)}


def _absent() -> ConditionBase:
    """The item does not exist yet."""
    return Attribute(REGISTRY_PARTITION_KEY).not_exists()


def _expressions(
    condition: ConditionBase | None = None,
    *,
    key: ConditionBase | None = None,
    filter_by: ConditionBase | None = None,
    assign: Mapping[str, str] | None = None,
    assign_if_absent: Mapping[str, str] | None = None,
    remove: Collection[str] = (),
    projection: Collection[str] = (),
) -> dict[str, Any]:
    """The expression arguments of one request. Conditions are built by boto3's builder (placeholders
    ``#n0``, ``:v0``...); boto3 has no builder for updates and projections, so their placeholders are
    numbered here (``#u0``, ``:u0``, ``#r0``, ``#p0``...). Every value goes through ``TypeSerializer``."""
    builder = ConditionExpressionBuilder()
    arguments: dict[str, Any] = {}
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for argument, built_from, is_key in (
        ("ConditionExpression", condition, False),
        ("KeyConditionExpression", key, True),
        ("FilterExpression", filter_by, False),
    ):
        if built_from is not None:
            built = builder.build_expression(built_from, is_key_condition=is_key)
            arguments[argument] = built.condition_expression
            names.update(built.attribute_name_placeholders)
            values.update(built.attribute_value_placeholders)
    keep = assign_if_absent or {}
    assignments = []
    for number, (name, value) in enumerate({**(assign or {}), **keep}.items()):
        target, names[f"#u{number}"], values[f":u{number}"] = f"#u{number}", name, value
        assignments.append(
            f"{target} = if_not_exists({target}, :u{number})" if name in keep else f"{target} = :u{number}"
        )
    removed = {f"#r{number}": name for number, name in enumerate(remove)}
    shown = {f"#p{number}": name for number, name in enumerate(projection)}
    names.update(removed | shown)
    update = ([f"SET {', '.join(assignments)}"] if assignments else []) + (
        [f"REMOVE {', '.join(removed)}"] if removed else []
    )
    if update:
        arguments["UpdateExpression"] = " ".join(update)
    if shown:
        arguments["ProjectionExpression"] = ", ".join(shown)
    if names:
        arguments["ExpressionAttributeNames"] = names
    if values:
        arguments["ExpressionAttributeValues"] = {
            placeholder: _SERIALIZER.serialize(value) for placeholder, value in values.items()
        }
    return arguments


def _refused_item(refused: ClientError) -> Item | None:
    """The stored item a refused conditional write returns (ReturnValuesOnConditionCheckFailure=ALL_OLD);
    ``None`` when there was none. botocore's error type does not declare the ``Item`` key."""
    item = cast(Mapping[str, Any], refused.response).get("Item")
    return None if item is None else string_attributes(item)


def _decide_from_cancellation(
    cancelled: ClientError, request: DeviceRequest, provenance: Provenance, public_key: str | None
) -> Item | None:
    """Decide from a cancelled approval transaction's reasons, one per member (the serial's item, then the
    certificate's binding), each with the stored item when its condition failed. Allow a retry by the
    certificate on record that is bound to this serial (``None``), and return the stored item when an
    operator's re-provisioning grant admits a new certificate; anything unexpected denies. ``public_key``:
    the certificate's key, when the device type binds keys."""
    reasons = cast(Mapping[str, Any], cancelled.response).get("CancellationReasons")
    if not (isinstance(reasons, list) and len(reasons) == 2 and all(isinstance(r, dict) for r in reasons)):
        raise ProvisioningDenied(
            RejectionReason.REGISTRY_UNAVAILABLE, "registry transaction cancelled without its two reasons"
        )
    codes = [reason.get("Code") for reason in reasons]
    unexpected = [str(code) for code in codes if code not in (_PASSED, _CONDITION_FAILED)]
    if unexpected or codes == [_PASSED, _PASSED]:
        raise ProvisioningDenied(
            RejectionReason.REGISTRY_UNAVAILABLE,
            f"registry transaction cancelled: {', '.join(unexpected) or 'no reason given'}",
        )
    device, binding = reasons
    granted = None
    if device["Code"] == _CONDITION_FAILED:
        granted = _decide_from_stored(_stored(device), request, provenance, public_key)  # retry or grant
    if binding["Code"] == _CONDITION_FAILED:
        bound_to = (_stored(binding) or {}).get(Attr.DEVICE_SERIAL_NUMBER)
        raise ProvisioningDenied(
            RejectionReason.CERTIFICATE_IN_USE,
            f"certificate is already approved for serial {bound_to!r}",
        )
    return granted


def _cancelled_by_conditions(cancelled: ClientError) -> bool:
    """Whether a transaction was cancelled only because a member's condition did not hold."""
    reasons = cast(Mapping[str, Any], cancelled.response).get("CancellationReasons")
    codes = {r.get("Code") for r in reasons if isinstance(r, dict)} if isinstance(reasons, list) else set()
    return _CONDITION_FAILED in codes and codes <= {_PASSED, _CONDITION_FAILED}


def _stored(reason: Mapping[str, Any]) -> Item | None:
    """The stored item a cancellation reason carries (``ReturnValuesOnConditionCheckFailure=ALL_OLD``)."""
    item = reason.get("Item")
    return None if item is None else string_attributes(item)


def _decide_from_stored(
    item: Item | None, request: DeviceRequest, provenance: Provenance, public_key: str | None
) -> Item | None:
    """Allow a retry by the certificate already on record (``None``) or, with an operator's unexpired
    re-provisioning grant, a new certificate (the stored item); deny everything else the condition
    refused. With key binding (``public_key``), a serial of the request's type and maker admits only its
    registered key."""
    if item is None:
        raise ProvisioningDenied(RejectionReason.NOT_PREREGISTERED, "serial is not pre-registered")
    status = item.get(Attr.STATUS)
    same_identity = (item.get(Attr.DEVICE_TYPE), item.get(Attr.MANUFACTURER)) == (
        request.device_type,
        request.manufacturer,
    )
    if public_key is not None and same_identity and status in _BOUND_STATES:
        _require_bound_key(item, public_key)
    if status in _PROVISIONED_STATES:
        if item.get(Attr.CERTIFICATE_ID) != provenance.certificate_id:
            if _reprovision_granted(item, request):
                return item
            raise ProvisioningDenied(
                RejectionReason.DUPLICATE_SERIAL,
                f"serial is already {status} with another certificate (a cloned or replayed serial)",
            )
        if not same_identity:
            raise ProvisioningDenied(
                RejectionReason.DUPLICATE_SERIAL,
                f"serial is already {status} as {_identity(item)}; "
                "a retry must repeat DeviceType and Manufacturer",
            )
        return None
    if status in _DENIED_STATES:
        raise ProvisioningDenied(_DENIED_STATES[DeviceStatus(status)], f"serial is {status}")
    if status == DeviceStatus.PREREGISTERED:
        raise ProvisioningDenied(
            RejectionReason.PREREGISTRATION_MISMATCH,
            f"serial was pre-registered as {_identity(item)}, the request says "
            f"{request.device_type!r} by {request.manufacturer!r}",
        )
    raise ProvisioningDenied(
        RejectionReason.UNKNOWN_REGISTRY_STATE, f"registry status {status!r} is not known"
    )


def _certificate_key(provenance: Provenance) -> str:
    """The fingerprint of the certificate being registered, else ``CertificateUnreadable``; imports
    :mod:`hook.public_keys` only when a key is checked."""
    from hook.public_keys import PublicKeyError, certificate_key_sha256  # noqa: PLC0415 (key binding only)

    if provenance.certificate_pem is None:
        raise ProvisioningDenied(
            RejectionReason.CERTIFICATE_UNREADABLE,
            "certificatePem is missing or not a string; expected one PEM certificate",
        )
    try:
        return certificate_key_sha256(provenance.certificate_pem)
    except PublicKeyError as error:
        raise ProvisioningDenied(RejectionReason.CERTIFICATE_UNREADABLE, f"certificatePem: {error}") from None


def _require_bound_key(item: Item, public_key: str) -> None:
    """Deny unless ``public_key`` is the serial's registered key."""
    bound = item.get(Attr.PUBLIC_KEY_SHA256)
    if not bound:
        raise ProvisioningDenied(
            RejectionReason.PUBLIC_KEY_NOT_REGISTERED,
            f"serial is {item.get(Attr.STATUS)} without a registered key; its device type binds keys "
            "(pre-register it with its public_key, or `fleetctl rebind` it)",
        )
    if bound != public_key:
        raise ProvisioningDenied(
            RejectionReason.PUBLIC_KEY_MISMATCH,
            f"the certificate's key sha256:{public_key[:16]}... is not the serial's registered key "
            f"sha256:{bound[:16]}... (another device, a clone, or a wrong manifest)",
        )


def _key_unchanged(public_key: str | None) -> ConditionBase:
    """The serial's registered key is still ``public_key`` (still none when ``None``)."""
    if public_key:
        return Attribute(Attr.PUBLIC_KEY_SHA256).eq(public_key)
    return Attribute(Attr.PUBLIC_KEY_SHA256).not_exists()


def _cancellation_reasons(cancelled: ClientError, members: int) -> list[Mapping[str, Any]]:
    """The reasons of a cancelled transaction of ``members`` members, one per member in order; a
    cancellation that does not give them all is raised as it is."""
    reasons = cast(Mapping[str, Any], cancelled.response).get("CancellationReasons")
    if not (
        isinstance(reasons, list) and len(reasons) == members and all(isinstance(r, dict) for r in reasons)
    ):
        raise cancelled
    return reasons


def _reprovision_granted(item: Item, request: DeviceRequest) -> bool:
    """Whether an ``ACTIVE`` serial holds an unexpired grant for a request of its own type and maker."""
    return (
        item.get(Attr.STATUS) == DeviceStatus.ACTIVE
        and item.get(Attr.REPROVISION_ALLOWED_UNTIL, "") > timestamp()
        and (item.get(Attr.DEVICE_TYPE), item.get(Attr.MANUFACTURER))
        == (request.device_type, request.manufacturer)
    )


def _replaced(item: Item, certificate_id: str) -> str:
    """The replaced certificates of ``item`` with ``certificate_id`` added in front, the newest
    :data:`REPLACED_CERTIFICATES_KEPT` only (an item must stay far below DynamoDB's 400 KB)."""
    replaced = [certificate_id, *item.get(Attr.REPLACED_CERTIFICATE_IDS, "").split()]
    return " ".join(replaced[:REPLACED_CERTIFICATES_KEPT]).strip()


def _certificate_expiry(not_after: str | None) -> tuple[Item, tuple[str, ...]]:
    """What a write that changes the current certificate sets and removes: its expiry when known, else the
    previous certificate's is removed (``certificateNotAfter`` never names another certificate's)."""
    if not_after:
        return {Attr.CERTIFICATE_NOT_AFTER: not_after}, ()
    return {}, (Attr.CERTIFICATE_NOT_AFTER,)


def _identity(item: Item) -> str:
    return f"{item.get(Attr.DEVICE_TYPE)!r} by {item.get(Attr.MANUFACTURER)!r}"


def _unavailable(error: ClientError | BotoCoreError) -> ProvisioningDenied:
    code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
    return ProvisioningDenied(RejectionReason.REGISTRY_UNAVAILABLE, f"registry request failed: {code}")
