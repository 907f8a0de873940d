"""The lifecycle transitions the functions make in the registry table, each one conditional request.

The registry's state machine, transition by transition (each written once; those only an operator makes
are ``fleetctl``'s, in :mod:`fleetctl.operator_transitions`, built from the same items and decisions):

- ``approve`` (hook): a new serial (unless pre-registration is required) or a ``PREREGISTERED`` one of the
  same type and manufacturer becomes ``PENDING``; a retry by the certificate on record is allowed again. In
  the same transaction the certificate is bound to the serial (an item keyed
  ``certificate#<certificateId>``); a certificate already bound to another serial is denied
  (``CertificateInUse``), whatever that serial's state: one certificate, one device, for good. An
  operator's re-provisioning grant (``grant_reprovision``) lets an ``ACTIVE`` serial provision once more,
  with a new certificate, until a deadline; ``approve`` consumes it and records the certificate it replaced.
- ``activate`` (activation): ``PENDING`` becomes ``ACTIVE``, with the expiry of its certificate
  (``certificateNotAfter``, which ``complete_rotation`` rewrites for the new certificate and a
  re-provisioning removes).
- ``begin_rotation`` (rotation): an ``ACTIVE`` serial, asked by its current certificate, gets a pending
  certificate (bound to it like an approved one); ``complete_rotation`` makes the pending certificate
  current and records the one it replaced and the job that rotated it; ``abandon_rotation`` drops the
  pending certificate with the reason (the device's, or ``fleetctl rotate resume``'s for a certificate its
  job's in-progress timeout left unconfirmed). Each rotation job gets one attempt per serial, reserved
  before its certificate is issued (:mod:`hook.rotation_attempts`).
- Operators' (``fleetctl``): ``preregister`` (an unknown serial becomes ``PREREGISTERED``, with its
  device's key bound to it if given: no key on two serials), ``rebind_key``, ``revoke``, ``decommission``,
  ``release`` (a ``PENDING`` approval goes back to ``PREREGISTERED``, or away when nothing was before it)
  and ``grant_reprovision``.

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
one (:func:`~hook.registry_items.shard_attributes`), in its own request, so the sharded indexes follow the
items; those that keep a serial ``ACTIVE`` (rotation, re-provisioning grant, key rebinding) rewrite
``ACTIVE``'s key too, so an item that missed it gets it with its next change. ``abandon_rotation``,
conditional on a certificate rather than a state, writes none.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr as Attribute
from boto3.dynamodb.conditions import ConditionBase, Key
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hook import runtime
from hook.claim_breaker import breaker_check_member
from hook.contract import REGISTRY_TABLE_ENV, STATUS_INDEX, Attr, DeviceStatus, shard_keys
from hook.registry_decisions import (
    EXPIRY_OF_THE_REPLACED,
    Attestation,
    Provenance,
    approval_decision,
    cancelled_by_conditions,
    certificate_key,
    completed_rotation_jobs,
    reasons_of,
    refused_item,
    registry_unavailable,
    replaced_certificates,
    reprovision_refusal,
    require_bound_key,
)
from hook.registry_items import (
    Item,
    absent,
    certificate_binding_member,
    conditional_update,
    device_key,
    expressions,
    key_unchanged,
    request_attributes,
    shard_attributes,
    string_attributes,
    timestamp,
    update_member,
)
from hook.rotation_attempts import attempts_unchanged, with_attempt

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from hook.rules import DeviceRequest


class DeviceRecords:
    """The devices' records in the registry table: a serial's item read by its key, the functions'
    transitions, and the stale-approvals count.

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
        attestation: Attestation | None = None,
    ) -> None:
        """Mark the serial ``PENDING`` for this certificate and bind the certificate to the serial, or raise
        :class:`~hook.contract.ProvisioningDenied`.

        One ``TransactWriteItems`` of two conditional updates and a check: the serial's item, whose condition
        admits a new serial (unless pre-registration is required) or a ``PREREGISTERED`` one with the same
        type and manufacturer; the certificate's binding, whose condition admits a certificate not yet bound
        or bound to this serial; and the claim certificate's breaker item of the serial's shard, which must
        be closed (:mod:`hook.claim_breaker`). When a condition fails, DynamoDB cancels them all and returns
        the stored items with the reasons, and the decision is made from them without a second request
        (:func:`~hook.registry_decisions.approval_decision`).

        With ``key_binding``, the certificate's key is read before any request, and the condition admits
        only a ``PREREGISTERED`` serial registered with that key; the refused item tells
        ``PublicKeyMismatch`` from ``PublicKeyNotRegistered``.

        With an ``attestation`` (a zero-touch type: the vendor chain proved the certificate's key), a new
        serial needs no pre-registration whatever ``require_preregistration`` says, and the item records the
        attestation and the attested key (so a retry, a re-provisioning and a rotation keep to that key; no
        ``publicKey#`` binding item is written: the vendor's unique id already gives the key one serial); a
        ``PREREGISTERED`` serial is admitted with the attested key only. A serial approved before is refused
        as any other (provision-once, one certificate).
        """
        if attestation is not None:
            public_key: str | None = attestation.public_key
        else:
            public_key = certificate_key(provenance) if key_binding else None
        now = timestamp()
        values: dict[str, str] = {
            Attr.STATUS: DeviceStatus.PENDING,
            Attr.CERTIFICATE_ID: provenance.certificate_id,
            Attr.CLAIM_CERTIFICATE_ID: provenance.claim_certificate_id,
            Attr.TEMPLATE_ARN: provenance.template_arn,
            Attr.REGION: provenance.region,
            Attr.CLIENT_ID: provenance.client_id,
            Attr.UPDATED_AT: now,
            Attr.APPROVED_AT: now,
        }
        values.update(request_attributes(request))
        del values[Attr.SERIAL_NUMBER]
        if attestation is not None:
            values.update({**attestation.attributes, Attr.PUBLIC_KEY_SHA256: attestation.public_key})
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
            if attestation is not None:
                condition = absent() | condition
        elif not require_preregistration:
            condition = absent() | preregistered
        granted: Item | None = None
        try:
            self._update_and_bind(
                request.serial_number,
                condition,
                provenance.certificate_id,
                now,
                assign=values,
                assign_if_absent={Attr.CREATED_AT: now},
                breaker=provenance.claim_certificate_id,
            )
        except self._client.exceptions.TransactionCanceledException as cancelled:
            granted = approval_decision(reasons_of(cancelled), request, provenance, public_key, timestamp())
        except (ClientError, BotoCoreError) as error:
            raise registry_unavailable(error) from error
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
            require_bound_key(granted, public_key or certificate_key(provenance))
        now = timestamp()
        old_certificate = granted.get(Attr.CERTIFICATE_ID, "")
        values: Item = {
            **request_attributes(request),
            Attr.CERTIFICATE_ID: provenance.certificate_id,
            Attr.CLAIM_CERTIFICATE_ID: provenance.claim_certificate_id,
            Attr.TEMPLATE_ARN: provenance.template_arn,
            Attr.REGION: provenance.region,
            Attr.CLIENT_ID: provenance.client_id,
            Attr.REPROVISIONED_AT: now,
            Attr.UPDATED_AT: now,
            Attr.REPLACED_CERTIFICATE_IDS: replaced_certificates(granted, old_certificate),
            **shard_attributes(
                request.serial_number, status=DeviceStatus.ACTIVE, device_type=request.device_type
            ),
        }
        del values[Attr.SERIAL_NUMBER]
        still_granted = (
            Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE)
            & Attribute(Attr.CERTIFICATE_ID).eq(old_certificate)
            & Attribute(Attr.REPROVISION_ALLOWED_UNTIL).eq(granted[Attr.REPROVISION_ALLOWED_UNTIL])
            & key_unchanged(bound)
        )
        try:
            self._update_and_bind(
                request.serial_number,
                still_granted,
                provenance.certificate_id,
                now,
                assign=values,
                remove=(
                    Attr.REPROVISION_ALLOWED_UNTIL,
                    Attr.REPROVISION_ALLOWS_DOWNGRADE,
                    Attr.PENDING_CERTIFICATE_ID,
                    *EXPIRY_OF_THE_REPLACED,
                ),
                breaker=provenance.claim_certificate_id,
            )
        except self._client.exceptions.TransactionCanceledException as cancelled:
            raise reprovision_refusal(reasons_of(cancelled)) from cancelled
        except (ClientError, BotoCoreError) as error:
            raise registry_unavailable(error) from error

    def begin_rotation(self, item: Item, new_certificate_id: str, job_id: str | None) -> bool:
        """Give the ``ACTIVE`` serial of ``item`` a pending certificate, bound to the serial; ``False`` when
        the serial changed since ``item`` was read (another certificate, another state).

        One transaction: the serial's item, conditional on it still having the certificate, key and attempted
        rotation jobs (:mod:`hook.rotation_attempts`) of ``item``, and the new certificate's binding. A
        pending certificate of an earlier attempt is replaced (and so retired). A transaction cancelled for
        another reason than a condition (a conflicting write, throttling) is raised: it says nothing about
        the serial, and a retry may succeed."""
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
            & key_unchanged(item.get(Attr.PUBLIC_KEY_SHA256))
            & attempts_unchanged(item)
        )
        try:
            self._update_and_bind(
                serial,
                unchanged,
                new_certificate_id,
                now,
                assign=pending,
                remove=(Attr.ROTATION_FAILED_AT, Attr.ROTATION_FAILURE_REASON),
            )
        except self._client.exceptions.TransactionCanceledException as cancelled:
            if cancelled_by_conditions(reasons_of(cancelled)):
                return False
            raise
        return True

    def complete_rotation(self, item: Item) -> Item | None:
        """Make the pending certificate of ``item`` current (without the old one's expiry:
        :data:`EXPIRY_OF_THE_REPLACED`), and record the one it replaces, with ``rotatedAt``, and its job
        among the completed rotation jobs; the item as written, or ``None`` when the serial changed since
        ``item`` was read."""
        pending = item.get(Attr.PENDING_CERTIFICATE_ID)
        if not pending:
            return None
        current = item.get(Attr.CERTIFICATE_ID, "")
        job_id = item.get(Attr.ROTATION_JOB_ID)
        now = timestamp()
        assign: Item = {
            Attr.CERTIFICATE_ID: pending,
            Attr.REPLACED_CERTIFICATE_IDS: replaced_certificates(item, current),
            Attr.ROTATED_AT: now,
            Attr.UPDATED_AT: now,
            **({Attr.COMPLETED_ROTATION_JOB_IDS: completed_rotation_jobs(item)} if job_id else {}),
            **shard_attributes(item[Attr.SERIAL_NUMBER], status=DeviceStatus.ACTIVE),
        }
        unchanged = (
            Attribute(Attr.STATUS).eq(DeviceStatus.ACTIVE)
            & Attribute(Attr.CERTIFICATE_ID).eq(current)
            & Attribute(Attr.PENDING_CERTIFICATE_ID).eq(pending)
        )
        return self._conditional_update(
            item, unchanged, assign, remove=(Attr.PENDING_CERTIFICATE_ID, *EXPIRY_OF_THE_REPLACED)
        )

    def abandon_rotation(self, item: Item, reason: str, job_id: str | None = None) -> Item | None:
        """Drop the pending certificate of ``item`` (which retires it) and record why the rotation failed;
        the device keeps its current certificate. With ``job_id`` and no pending certificate, the failure
        is that job's attempt: the job joins the attempted ones, conditional on them being as read, so it is
        recorded once. The item as written, or ``None`` when the serial changed since ``item`` was read."""
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
        if job_id and not pending:
            unchanged &= attempts_unchanged(item)
            assign[Attr.ATTEMPTED_ROTATION_JOB_IDS] = with_attempt(item, job_id)
        return self._conditional_update(item, unchanged, assign, remove=(Attr.PENDING_CERTIFICATE_ID,))

    def get(self, serial_number: str) -> Item | None:
        """The registry item of a serial, read consistently; ``None`` if absent."""
        item = self._client.get_item(
            TableName=self._table_name, Key=device_key(serial_number), ConsistentRead=True
        ).get("Item")
        return None if item is None else string_attributes(item)

    def activate(self, serial_number: str, thing_name: str) -> Item | None:
        """Move a ``PENDING`` serial to ``ACTIVE`` with its thing name (without an earlier certificate's
        expiry: :data:`EXPIRY_OF_THE_REPLACED`); return ``None`` when done, or the stored item when it was
        not ``PENDING`` (a redelivered event or an unexpected state)."""
        now = timestamp()
        assign: Item = {
            Attr.STATUS: DeviceStatus.ACTIVE,
            Attr.THING_NAME: thing_name,
            Attr.ACTIVATED_AT: now,
            Attr.UPDATED_AT: now,
            **shard_attributes(serial_number, status=DeviceStatus.ACTIVE),
        }
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key=device_key(serial_number),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **expressions(
                    Attribute(Attr.STATUS).eq(DeviceStatus.PENDING),
                    assign=assign,
                    remove=EXPIRY_OF_THE_REPLACED,
                ),
            )
        except self._client.exceptions.ConditionalCheckFailedException as refused:
            return refused_item(refused) or {}
        return None

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

    def _update_and_bind(
        self,
        serial_number: str,
        condition: ConditionBase,
        certificate_id: str,
        now: str,
        *,
        assign: Mapping[str, str],
        assign_if_absent: Mapping[str, str] | None = None,
        remove: Collection[str] = (),
        breaker: str | None = None,
    ) -> None:
        """One ``TransactWriteItems``: the serial's item updated if ``condition`` holds, and the
        certificate bound to the serial (free, or the serial's already); with ``breaker`` (a claim
        certificate id), a third member checks that its breaker is closed. Each member returns its stored
        item when refused."""
        self._client.transact_write_items(
            TransactItems=[
                update_member(
                    self._table_name,
                    device_key(serial_number),
                    condition,
                    assign=assign,
                    assign_if_absent=assign_if_absent,
                    remove=remove,
                ),
                certificate_binding_member(self._table_name, certificate_id, serial_number, now),
                *([breaker_check_member(self._table_name, breaker, serial_number)] if breaker else []),
            ]
        )

    def _conditional_update(
        self, item: Item, condition: ConditionBase, assign: Item, *, remove: Collection[str] = ()
    ) -> Item | None:
        """Update the serial of ``item`` if ``condition`` holds: the item as written, else ``None``."""
        return conditional_update(
            self._client, self._table_name, item, condition, assign=assign, remove=remove
        )

    def _pages(
        self,
        index: str,
        key: ConditionBase,
        filter_by: ConditionBase | None = None,
        *,
        attributes: Collection[str] = (),
        **arguments: Any,
    ) -> Iterator[Mapping[str, Any]]:
        """The query's pages: the items of ``index`` that match ``key`` and ``filter_by``."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table_name,
            IndexName=index,
            **expressions(key=key, filter_by=filter_by, projection=attributes),
            **arguments,
        )
        yield from pages


def registry_from_environment(config: Config) -> DeviceRecords:
    """The records of the table named by ``REGISTRY_TABLE_NAME``, through a DynamoDB client built with
    ``config``."""
    return DeviceRecords(runtime.client("dynamodb", config), runtime.required_env(REGISTRY_TABLE_ENV))


@runtime.once
def function_records() -> DeviceRecords:
    """The asynchronous functions' records (:data:`~hook.runtime.FUNCTION_CLIENT_CONFIG`), made once."""
    return registry_from_environment(runtime.FUNCTION_CLIENT_CONFIG)
