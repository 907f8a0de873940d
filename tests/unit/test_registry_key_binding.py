"""Key binding in the registry: a key registered with its serial in one transaction and never on two
serials; an approval of a binding type conditional on the certificate's key, still one request; the
re-provisioning grant and the rotation bound by the key too; an operator moving a key."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fleetctl.operator_transitions import OperatorRecords, PublicKeyInUse, TransitionRefused
from fleetctl.registry_reads import devices_and_bindings
from hook.contract import (
    Attr,
    DeviceStatus,
    ProvisioningDenied,
    RejectionReason,
    public_key_binding_key,
    shard_of,
)
from hook.public_keys import PEM_MAX_LENGTH
from hook.registry_decisions import Provenance
from hook.registry_items import Item
from hook.registry_transitions import DeviceRecords
from hook.rules import DeviceRequest
from tests.support import (
    CLAIM_CERTIFICATE_ID,
    TABLE_NAME,
    TEMPLATE_ARN,
    DeviceKey,
    certificate_id,
    device_certificate,
    device_key,
    in_hours,
    key_fingerprint,
)

SERIAL = "TS-000123"
OTHER_SERIAL = "TS-000456"
THING = f"fleet-test_{SERIAL}"
NOW = "2026-01-01T00:00:00.000+00:00"
GENUINE = device_key()
"""The device's secure element: its key was exported at the factory."""
ATTACKER = device_key()
"""Whoever holds the leaked claim certificate: any key but the device's."""


def request(serial: str = SERIAL, device_type: str = "temperature-sensor") -> DeviceRequest:
    return DeviceRequest(serial, device_type, "AcmeIoT", "1.4.2", "Factory-Floor-A")


def provenance(
    certificate: str = "device-1", key: DeviceKey | None = GENUINE, pem: str | None = None
) -> Provenance:
    """A RegisterThing of certificate ``certificate``, whose PEM carries ``key`` (or is ``pem``)."""
    return Provenance(
        certificate_id(certificate),
        CLAIM_CERTIFICATE_ID,
        TEMPLATE_ARN,
        "client-1",
        certificate_pem=pem if key is None else device_certificate(key),
    )


def count_requests(client: Any) -> list[str]:
    sent: list[str] = []
    client.meta.events.register(
        "before-send.dynamodb.*", lambda request, **_: sent.append(request.headers["X-Amz-Target"].decode())
    )
    return sent


def everything(dynamodb: Any) -> dict[str, dict[str, Any]]:
    """Every item of the table by key, bindings included: what "untouched" is checked against."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAME, ConsistentRead=True)
    return {item["serialNumber"]["S"]: item for page in pages for item in page["Items"]}


def approve(registry: OperatorRecords, who: Provenance, *, key_binding: bool = True, **changes: str) -> None:
    registry.approve(request(**changes), who, require_preregistration=False, key_binding=key_binding)


def denial(registry: OperatorRecords, who: Provenance, *, key_binding: bool = True) -> RejectionReason:
    with pytest.raises(ProvisioningDenied) as denied:
        approve(registry, who, key_binding=key_binding)
    assert "BEGIN" not in denied.value.detail  # a certificate is never repeated in a logged detail
    return denied.value.reason


@pytest.fixture
def bound(registry: OperatorRecords) -> Item:
    """The serial pre-registered with its device's key, as a factory manifest with ``public_key`` does."""
    assert registry.preregister(request(), NOW, key_fingerprint(GENUINE)) is None
    stored = registry.get(SERIAL)
    assert stored is not None
    return stored


@pytest.fixture
def active(registry: OperatorRecords, bound: Item) -> Item:
    """The genuine device provisioned and activated."""
    approve(registry, provenance("device-1"))
    assert registry.activate(SERIAL, THING) is None
    stored = registry.get(SERIAL)
    assert stored is not None
    return stored


# --- pre-registration -------------------------------------------------------------------------------------


def test_a_key_is_registered_with_its_serial_in_one_transaction_and_is_never_a_device(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    fingerprint = key_fingerprint(GENUINE)
    sent = count_requests(dynamodb)

    assert registry.preregister(request(), NOW, fingerprint) is None

    assert sent == ["DynamoDB_20120810.TransactWriteItems"]
    stored = registry.get(SERIAL)
    assert stored is not None
    assert (stored[Attr.STATUS], stored[Attr.PUBLIC_KEY_SHA256]) == (DeviceStatus.PREREGISTERED, fingerprint)
    binding = everything(dynamodb)[public_key_binding_key(fingerprint)]
    assert {name: value["S"] for name, value in binding.items()} == {
        "serialNumber": f"publicKey#{fingerprint}",
        "publicKeySha256": fingerprint,
        "deviceSerialNumber": SERIAL,
        "createdAt": NOW,
    }
    # Lists, scans and the split of a scan see the device only.
    assert [item[Attr.SERIAL_NUMBER] for item in registry.devices(DeviceStatus.PREREGISTERED)] == [SERIAL]
    assert [item[Attr.SERIAL_NUMBER] for item in registry.devices(device_type="temperature-sensor")] == [
        SERIAL
    ]
    assert [item[Attr.SERIAL_NUMBER] for item in registry.scan_devices()] == [SERIAL]
    devices, certificate_bindings = devices_and_bindings(everything(dynamodb).values())
    assert (list(devices), certificate_bindings) == ([SERIAL], {})


def test_a_key_registered_for_another_serial_is_refused_naming_it_and_nothing_is_written(
    dynamodb: Any, registry: OperatorRecords, bound: Item
) -> None:
    before = everything(dynamodb)

    with pytest.raises(PublicKeyInUse) as in_use:
        registry.preregister(request(OTHER_SERIAL), NOW, key_fingerprint(GENUINE))

    assert in_use.value.serial_number == SERIAL
    assert in_use.value.public_key_sha256 == key_fingerprint(GENUINE)
    assert repr(SERIAL) in str(in_use.value)
    assert everything(dynamodb) == before


def test_a_key_in_use_is_reported_even_for_a_serial_that_exists(
    registry: OperatorRecords, bound: Item
) -> None:
    registry.preregister(request(OTHER_SERIAL), NOW, key_fingerprint(device_key()))
    with pytest.raises(PublicKeyInUse) as in_use:
        registry.preregister(request(OTHER_SERIAL), NOW, key_fingerprint(GENUINE))
    assert in_use.value.serial_number == SERIAL


def test_reimporting_a_row_with_its_key_returns_the_stored_item_and_changes_nothing(
    dynamodb: Any, registry: OperatorRecords, bound: Item
) -> None:
    before = everything(dynamodb)
    assert registry.preregister(request(), "2026-02-02T00:00:00.000+00:00", key_fingerprint(GENUINE)) == bound
    assert everything(dynamodb) == before


def test_an_existing_serial_given_a_new_key_keeps_its_own_and_binds_nothing(
    dynamodb: Any, registry: OperatorRecords, bound: Item
) -> None:
    before = everything(dynamodb)
    assert registry.preregister(request(), NOW, key_fingerprint(device_key())) == bound
    assert everything(dynamodb) == before


def test_no_device_operation_accepts_a_key_bindings_key(registry: OperatorRecords, bound: Item) -> None:
    key = public_key_binding_key(key_fingerprint(GENUINE))
    for operation in (registry.get, registry.decommission, lambda key: registry.revoke(key, "x")):
        with pytest.raises(ValueError, match="key binding"):
            operation(key)


# --- approval -----------------------------------------------------------------------------------------------


def test_the_genuine_device_is_approved_in_one_request(
    dynamodb: Any, registry: OperatorRecords, bound: Item
) -> None:
    sent = count_requests(dynamodb)
    approve(registry, provenance())
    assert sent == ["DynamoDB_20120810.TransactWriteItems"]
    stored = registry.get(SERIAL)
    assert stored is not None
    assert (stored[Attr.STATUS], stored[Attr.CERTIFICATE_ID]) == (
        DeviceStatus.PENDING,
        certificate_id("device-1"),
    )
    assert stored[Attr.PUBLIC_KEY_SHA256] == key_fingerprint(GENUINE)


def test_a_certificate_for_another_key_is_denied_in_one_request_and_leaves_the_registry_untouched(
    dynamodb: Any, registry: OperatorRecords, bound: Item
) -> None:
    before = everything(dynamodb)
    sent = count_requests(dynamodb)

    assert denial(registry, provenance("attacker", ATTACKER)) == RejectionReason.PUBLIC_KEY_MISMATCH

    assert len(sent) == 1
    assert everything(dynamodb) == before


def test_a_binding_type_implies_pre_registration(dynamodb: Any, registry: OperatorRecords) -> None:
    assert denial(registry, provenance()) == RejectionReason.NOT_PREREGISTERED
    assert everything(dynamodb) == {}


def test_a_serial_registered_without_a_key_is_denied_as_such(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    registry.preregister(request(), NOW)
    before = everything(dynamodb)
    assert denial(registry, provenance()) == RejectionReason.PUBLIC_KEY_NOT_REGISTERED
    assert everything(dynamodb) == before


def test_a_serial_pre_registered_as_another_type_is_a_preregistration_mismatch(
    registry: OperatorRecords,
) -> None:
    registry.preregister(request(device_type="humidity-sensor"), NOW)
    assert denial(registry, provenance()) == RejectionReason.PREREGISTRATION_MISMATCH


@pytest.mark.parametrize("status", [DeviceStatus.PENDING, DeviceStatus.ACTIVE])
def test_a_clone_of_a_bound_serial_with_another_key_is_a_key_mismatch(
    dynamodb: Any, registry: OperatorRecords, bound: Item, status: DeviceStatus
) -> None:
    approve(registry, provenance("device-1"))
    if status is DeviceStatus.ACTIVE:
        registry.activate(SERIAL, THING)
    before = everything(dynamodb)

    assert denial(registry, provenance("clone", ATTACKER)) == RejectionReason.PUBLIC_KEY_MISMATCH
    # The genuine key with a second certificate is still one device twice: a duplicate, as without binding.
    assert denial(registry, provenance("second-csr", GENUINE)) == RejectionReason.DUPLICATE_SERIAL
    assert everything(dynamodb) == before


def test_a_retry_by_the_genuine_certificate_is_approved_again_in_one_request(
    dynamodb: Any, registry: OperatorRecords, bound: Item
) -> None:
    approve(registry, provenance())
    before = everything(dynamodb)
    sent = count_requests(dynamodb)
    approve(registry, provenance())
    assert len(sent) == 1
    assert everything(dynamodb) == before


@pytest.mark.parametrize(
    "pem",
    [
        None,
        "",
        "garbage",
        "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\n" + "A" * (PEM_MAX_LENGTH * 4) + "\n-----END CERTIFICATE-----\n",
        "\x00" * 100,
    ],
    ids=lambda pem: repr(pem)[:30],
)
def test_a_certificate_that_cannot_be_read_is_denied_before_any_request(
    dynamodb: Any, registry: OperatorRecords, bound: Item, pem: str | None
) -> None:
    sent = count_requests(dynamodb)
    assert denial(registry, provenance(key=None, pem=pem)) == RejectionReason.CERTIFICATE_UNREADABLE
    assert sent == []


def test_a_certificate_of_a_key_aws_iot_would_not_issue_is_unreadable(
    registry: OperatorRecords, bound: Item
) -> None:
    weak = provenance(key=ec.generate_private_key(ec.SECP256K1()))
    assert denial(registry, weak) == RejectionReason.CERTIFICATE_UNREADABLE


# --- the re-provisioning grant --------------------------------------------------------------------------


@pytest.mark.parametrize("key_binding", [True, False], ids=["binding type", "type without binding"])
def test_a_grant_for_a_bound_serial_admits_only_the_bound_key(
    dynamodb: Any, registry: OperatorRecords, active: Item, key_binding: bool
) -> None:
    registry.grant_reprovision(SERIAL, "board repaired", "alice", in_hours(1))
    before = everything(dynamodb)

    assert (
        denial(registry, provenance("attacker", ATTACKER), key_binding=key_binding)
        == RejectionReason.PUBLIC_KEY_MISMATCH
    )
    assert everything(dynamodb) == before
    unreadable = provenance("attacker", key=None, pem="garbage")
    assert denial(registry, unreadable, key_binding=key_binding) == RejectionReason.CERTIFICATE_UNREADABLE

    approve(registry, provenance("recertified", GENUINE), key_binding=key_binding)
    stored = registry.get(SERIAL)
    assert stored is not None
    assert (stored[Attr.STATUS], stored[Attr.CERTIFICATE_ID]) == (
        DeviceStatus.ACTIVE,
        certificate_id("recertified"),
    )
    assert Attr.REPROVISION_ALLOWED_UNTIL not in stored


def test_a_grant_is_not_consumed_by_a_key_rebound_meanwhile(
    registry: OperatorRecords, active: Item, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grant's consumption is conditional on the key read with it: an operator's rebinding between the
    approval's transaction and the consumption cancels it."""
    registry.grant_reprovision(SERIAL, "board repaired", "alice", in_hours(1))
    reprovision = DeviceRecords._reprovision

    def rebound_meanwhile(self: DeviceRecords, granted: Item, *args: Any) -> None:
        current = registry.get(SERIAL)
        assert current is not None
        assert registry.rebind_key(current, key_fingerprint(device_key()), "new element", "bob") is not None
        reprovision(self, granted, *args)

    monkeypatch.setattr(DeviceRecords, "_reprovision", rebound_meanwhile)
    assert denial(registry, provenance("recertified", GENUINE)) == RejectionReason.REPROVISION_GRANT_USED
    stored = registry.get(SERIAL)
    assert stored is not None
    assert stored[Attr.CERTIFICATE_ID] == certificate_id("device-1")


# --- rotation ------------------------------------------------------------------------------------------------


def test_a_rotation_does_not_begin_when_the_key_was_rebound_since_it_was_read(
    registry: OperatorRecords, active: Item
) -> None:
    assert registry.rebind_key(active, key_fingerprint(device_key()), "new element", "bob") is not None
    assert registry.begin_rotation(active, certificate_id("rotated"), "job-1") is False


# --- rebinding ------------------------------------------------------------------------------------------------


def test_rebinding_moves_the_key_and_its_binding_and_records_who_why_and_the_previous_key(
    dynamodb: Any, registry: OperatorRecords, bound: Item
) -> None:
    replacement = device_key()
    sent = count_requests(dynamodb)

    written = registry.rebind_key(bound, key_fingerprint(replacement), "secure element replaced", "bob")

    assert sent == ["DynamoDB_20120810.TransactWriteItems"]
    assert written == registry.get(SERIAL)
    assert written is not None
    assert written[Attr.PUBLIC_KEY_SHA256] == key_fingerprint(replacement)
    assert written[Attr.PREVIOUS_PUBLIC_KEY_SHA256] == key_fingerprint(GENUINE)
    assert (written[Attr.KEY_REBOUND_BY], written[Attr.KEY_REBOUND_REASON]) == (
        "bob",
        "secure element replaced",
    )
    assert written[Attr.KEY_REBOUND_AT] == written[Attr.UPDATED_AT]
    assert (written[Attr.STATUS], written[Attr.STATUS_SHARD]) == (
        DeviceStatus.PREREGISTERED,
        f"PREREGISTERED#{shard_of(SERIAL)}",
    )
    items = everything(dynamodb)
    assert public_key_binding_key(key_fingerprint(GENUINE)) not in items
    assert items[public_key_binding_key(key_fingerprint(replacement))]["deviceSerialNumber"]["S"] == SERIAL
    # The old key is free for another serial; the new one provisions, the old one no longer does.
    assert registry.preregister(request(OTHER_SERIAL), NOW, key_fingerprint(GENUINE)) is None
    assert denial(registry, provenance("old-element", GENUINE)) == RejectionReason.PUBLIC_KEY_MISMATCH
    approve(registry, provenance("new-element", replacement))


def test_rebinding_an_active_serial_without_a_key_drops_its_rotation_in_progress(
    registry: OperatorRecords,
) -> None:
    registry.approve(request(), provenance(), require_preregistration=False)
    registry.activate(SERIAL, THING)
    item = registry.get(SERIAL)
    assert item is not None
    assert registry.begin_rotation(item, certificate_id("pending"), "job-1")
    item = registry.get(SERIAL)
    assert item is not None

    written = registry.rebind_key(item, key_fingerprint(GENUINE), "keys now registered", "bob")

    assert written == registry.get(SERIAL)
    assert written is not None
    assert Attr.PREVIOUS_PUBLIC_KEY_SHA256 not in written
    assert Attr.PENDING_CERTIFICATE_ID not in written  # issued for a key that is not the device's now
    assert (written[Attr.STATUS], written[Attr.CERTIFICATE_ID]) == (
        DeviceStatus.ACTIVE,
        certificate_id("device-1"),
    )


def test_rebinding_to_a_key_of_another_serial_is_refused_and_changes_nothing(
    dynamodb: Any, registry: OperatorRecords, bound: Item
) -> None:
    other = device_key()
    registry.preregister(request(OTHER_SERIAL), NOW, key_fingerprint(other))
    before = everything(dynamodb)

    with pytest.raises(PublicKeyInUse) as in_use:
        registry.rebind_key(bound, key_fingerprint(other), "typo", "bob")

    assert in_use.value.serial_number == OTHER_SERIAL
    assert everything(dynamodb) == before


def test_rebinding_a_serial_that_changed_since_it_was_read_writes_nothing(
    dynamodb: Any, registry: OperatorRecords, bound: Item
) -> None:
    approve(registry, provenance())
    before = everything(dynamodb)
    assert registry.rebind_key(bound, key_fingerprint(device_key()), "why", "bob") is None
    assert everything(dynamodb) == before


@pytest.mark.parametrize("status", [DeviceStatus.PENDING, DeviceStatus.REVOKED, DeviceStatus.DECOMMISSIONED])
def test_only_a_preregistered_or_active_serial_may_be_rebound(
    registry: OperatorRecords, bound: Item, status: DeviceStatus
) -> None:
    approve(registry, provenance())
    if status is DeviceStatus.REVOKED:
        registry.revoke(SERIAL, "stolen")
    elif status is DeviceStatus.DECOMMISSIONED:
        registry.decommission(SERIAL)
    item = registry.get(SERIAL)
    assert item is not None
    with pytest.raises(TransitionRefused):
        registry.rebind_key(item, key_fingerprint(device_key()), "why", "bob")
    assert registry.get(SERIAL) == item
