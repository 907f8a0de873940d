"""The registry transitions only operators make: pre-registering, key rebinding, re-provisioning grants,
revoking, decommissioning, releasing an approval, and the records kept after them.

Each is one conditional request, written once, on the same items and decisions as the functions'
transitions (:mod:`hook.registry_transitions` lists the whole state machine).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from boto3.dynamodb.conditions import Attr as Attribute

from fleetctl.registry_reads import RegistryReads
from hook.contract import Attr, DeviceStatus, public_key_binding_key
from hook.registry_decisions import (
    CONDITION_FAILED,
    bound_serial,
    cancellation_reasons,
    cancelled_by_conditions,
    reasons_of,
    refused_item,
    stored_item,
)
from hook.registry_items import (
    Item,
    absent,
    binding_item_key,
    binding_member,
    device_key,
    expressions,
    key_unchanged,
    request_attributes,
    serialized,
    shard_attributes,
    string_attributes,
    timestamp,
    update_member,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from hook.rules import DeviceRequest

_REBINDABLE_STATES: Final = frozenset({DeviceStatus.PREREGISTERED, DeviceStatus.ACTIVE})
_APPROVAL_ATTRIBUTES: Final = (
    Attr.CERTIFICATE_ID,
    Attr.CLAIM_CERTIFICATE_ID,
    Attr.TEMPLATE_ARN,
    Attr.CLIENT_ID,
    Attr.APPROVED_AT,
)
"""What the hook's approval adds to a pre-registered item."""


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


class OperatorRecords(RegistryReads):
    """Everything ``fleetctl`` does with the registry: the functions' records, the operators' reads, and
    the transitions only operators make."""

    def preregister(
        self,
        request: DeviceRequest,
        now: str,
        public_key_sha256: str | None = None,
        provenance: Mapping[str, str] | None = None,
    ) -> Item | None:
        """Store the request as ``PREREGISTERED`` unless its serial exists; ``None`` when stored, else the
        item already there (returned by the refused write, without another read). With the device's key, one
        ``TransactWriteItems`` also binds it (free or already ours); a key bound to another serial raises
        :class:`PublicKeyInUse` naming that serial. ``provenance``: what attested the key (a signed
        manifest's entry), stored on the item."""
        item: Item = {
            **(provenance or {}),
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
            "Item": serialized(item),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **expressions(absent()),
        }
        if not public_key_sha256:
            try:
                self._client.put_item(**put)
            except self._client.exceptions.ConditionalCheckFailedException as refused:
                return refused_item(refused) or {}
            return None
        binding = self._key_binding(public_key_sha256, request.serial_number, now)
        try:
            self._client.transact_write_items(
                TransactItems=[cast("TransactWriteItemTypeDef", {"Put": put}), binding]
            )
        except self._client.exceptions.TransactionCanceledException as cancelled:
            if not cancelled_by_conditions(reasons_of(cancelled)):
                raise
            device, key = cancellation_reasons(cancelled, 2)
            if key.get("Code") == CONDITION_FAILED:
                raise PublicKeyInUse(public_key_sha256, bound_serial(key)) from cancelled
            return stored_item(device) or {}
        return None

    def grant_reprovision(
        self, serial_number: str, reason: str, granted_by: str, until: str, *, allow_downgrade: bool = False
    ) -> Item:
        """Allow the ``ACTIVE`` serial one next provisioning with a new certificate until ``until`` (ISO
        8601), of a firmware older than its recorded one only with ``allow_downgrade``, recording who
        allowed it and why; returns the item as written. Raises :class:`TransitionRefused` with the stored
        item when the serial is absent or not ``ACTIVE``."""
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
                Key=device_key(serial_number),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **expressions(
                    Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE),
                    assign=grant | ({Attr.REPROVISION_ALLOWS_DOWNGRADE: "true"} if allow_downgrade else {}),
                    remove=() if allow_downgrade else (Attr.REPROVISION_ALLOWS_DOWNGRADE,),
                ),
            )
        except self._client.exceptions.ConditionalCheckFailedException as refused:
            raise TransitionRefused(serial_number, refused_item(refused)) from refused
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
            update_member(
                self._table_name,
                device_key(serial),
                Attribute(Attr.STATUS).eq(status) & key_unchanged(previous),
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
            if not cancelled_by_conditions(reasons_of(cancelled)):
                raise
            _, *bindings = cancellation_reasons(cancelled, len(members))
            for binding, key in zip(bindings, (public_key_sha256, previous), strict=False):
                if binding.get("Code") == CONDITION_FAILED and key:
                    raise PublicKeyInUse(key, bound_serial(binding)) from cancelled
            return None
        written = {**item, **rebound}
        written.pop(Attr.PENDING_CERTIFICATE_ID, None)
        return written

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
                Key=device_key(serial_number),
                **expressions(condition, assign={Attr.CERTIFICATES_REVOKED_AT: timestamp()}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, approval: Item) -> Literal["restored", "deleted"] | None:
        """Undo a ``PENDING`` approval: back to ``PREREGISTERED`` when a manifest had pre-registered the
        serial (its item was created before the approval), else delete the item. Conditional on the item
        still being this approval: ``None`` when it changed meanwhile."""
        key = device_key(approval[Attr.SERIAL_NUMBER])
        pending = Attribute(Attr.STATUS).eq(DeviceStatus.PENDING)
        still_this_approval = pending & Attribute(Attr.APPROVED_AT).eq(approval[Attr.APPROVED_AT])
        preregistered = approval.get(Attr.CREATED_AT, "") < approval[Attr.APPROVED_AT]
        try:
            if not preregistered:
                self._client.delete_item(
                    TableName=self._table_name, Key=key, **expressions(still_this_approval)
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
                **expressions(still_this_approval, assign=restored, remove=_APPROVAL_ATTRIBUTES),
            )
            return "restored"
        except self._client.exceptions.ConditionalCheckFailedException:
            return None

    def _enter(
        self, serial_number: str, status: DeviceStatus, *, unless: Collection[DeviceStatus], extra: Item
    ) -> Item | None:
        """Move ``serial_number`` to ``status`` with ``extra`` attributes, creating the item if absent,
        unless it already is in one of the ``unless`` states."""
        condition = absent() | ~Attribute(Attr.STATUS).is_in(list(unless))
        assign: Item = {
            Attr.STATUS: status,
            Attr.UPDATED_AT: timestamp(),
            **shard_attributes(serial_number, status=status),
            **extra,
        }
        try:
            written = self._client.update_item(
                TableName=self._table_name,
                Key=device_key(serial_number),
                ReturnValues="ALL_NEW",
                **expressions(condition, assign=assign),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        return string_attributes(written.get("Attributes", {}))

    def _key_binding(self, public_key_sha256: str, serial_number: str, now: str) -> TransactWriteItemTypeDef:
        """The transaction member binding a device key to a serial (free, or this serial's already)."""
        held: Item = {Attr.PUBLIC_KEY_SHA256: public_key_sha256}
        key = public_key_binding_key(public_key_sha256)
        return binding_member(self._table_name, key, held, serial_number, now)

    def _unbind_key(self, public_key_sha256: str, serial_number: str) -> TransactWriteItemTypeDef:
        """The transaction member deleting a key's binding if it is this serial's (or gone)."""
        delete = {
            "TableName": self._table_name,
            "Key": binding_item_key(public_key_binding_key(public_key_sha256)),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **expressions(absent() | Attribute(Attr.DEVICE_SERIAL_NUMBER).eq(serial_number)),
        }
        return cast("TransactWriteItemTypeDef", {"Delete": delete})
