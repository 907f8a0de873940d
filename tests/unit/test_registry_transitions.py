"""The registry adapter: one conditional write per decision, through every lifecycle state, and one
certificate for one device."""

from __future__ import annotations

import socket
import threading
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError
from botocore.stub import Stubber
from moto.dynamodb.models import DynamoDBBackend

from fleetctl.operator_transitions import OperatorRecords
from hook.contract import (
    Attr,
    DeviceStatus,
    ProvisioningDenied,
    RejectionReason,
    certificate_binding_key,
)
from hook.registry_decisions import Provenance
from hook.rules import DeviceRequest
from tests.support import (
    CLAIM_CERTIFICATE_ID,
    TABLE_NAME,
    TEMPLATE_ARN,
    certificate_id,
    registry_contents,
)

REQUEST = DeviceRequest(
    serial_number="TS-000123",
    device_type="temperature-sensor",
    manufacturer="AcmeIoT",
    firmware_version="1.4.2",
    location="Factory-Floor-A",
)


def provenance(certificate: str = "device-1") -> Provenance:
    return Provenance(
        certificate_id=certificate_id(certificate),
        claim_certificate_id=CLAIM_CERTIFICATE_ID,
        template_arn=TEMPLATE_ARN,
        client_id="client-1",
    )


def stored(dynamodb: Any, serial: str = REQUEST.serial_number) -> dict[str, str] | None:
    item = dynamodb.get_item(
        TableName=TABLE_NAME, Key={"serialNumber": {"S": serial}}, ConsistentRead=True
    ).get("Item")
    return None if item is None else {name: value["S"] for name, value in item.items()}


def put_device(dynamodb: Any, status: DeviceStatus, **attributes: str) -> None:
    item = {"serialNumber": REQUEST.serial_number, "status": status, **attributes}
    dynamodb.put_item(TableName=TABLE_NAME, Item={name: {"S": value} for name, value in item.items()})


def count_requests(client: Any) -> list[str]:
    """Record the operation name of every HTTP request the client sends."""
    sent: list[str] = []
    client.meta.events.register("before-send.dynamodb.*", lambda request, **_: sent.append(request.url))
    return sent


def deny_reason(registry: OperatorRecords, certificate: str = "device-1", **kwargs: Any) -> RejectionReason:
    with pytest.raises(ProvisioningDenied) as caught:
        registry.approve(
            REQUEST, provenance(certificate), require_preregistration=kwargs.get("prereg", False)
        )
    return caught.value.reason


def test_new_serial_becomes_pending_with_its_provenance(dynamodb: Any, registry: OperatorRecords) -> None:
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    item = stored(dynamodb)
    assert item is not None
    assert item["status"] == DeviceStatus.PENDING
    assert item["certificateId"] == certificate_id("device-1")
    assert item["claimCertificateId"] == CLAIM_CERTIFICATE_ID
    assert item["templateArn"] == TEMPLATE_ARN
    assert item["clientId"] == "client-1"
    assert (item["deviceType"], item["manufacturer"], item["firmwareVersion"], item["location"]) == (
        "temperature-sensor",
        "AcmeIoT",
        "1.4.2",
        "Factory-Floor-A",
    )
    assert item["createdAt"] == item["approvedAt"] == item["updatedAt"]
    assert item["createdAt"].endswith("+00:00")


def test_approval_costs_exactly_one_request(dynamodb: Any, registry: OperatorRecords) -> None:
    sent = count_requests(dynamodb)
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    assert len(sent) == 1


def test_retry_with_the_same_certificate_is_allowed_without_a_second_record(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    first = stored(dynamodb)
    sent = count_requests(dynamodb)
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    assert len(sent) == 1
    assert stored(dynamodb) == first
    assert registry_contents(dynamodb) == (
        {REQUEST.serial_number: first},
        {certificate_id("device-1"): REQUEST.serial_number},
    )


@pytest.mark.parametrize("change", [{"device_type": "gateway"}, {"manufacturer": "SensorWorks"}])
def test_retry_with_the_same_certificate_but_another_identity_is_denied(
    dynamodb: Any, registry: OperatorRecords, change: dict[str, str]
) -> None:
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    before = stored(dynamodb)
    with pytest.raises(ProvisioningDenied) as caught:
        registry.approve(replace(REQUEST, **change), provenance(), require_preregistration=False)
    assert caught.value.reason is RejectionReason.DUPLICATE_SERIAL
    assert "a retry must repeat DeviceType and Manufacturer" in caught.value.detail
    assert stored(dynamodb) == before


def test_retry_of_an_active_device_with_its_certificate_is_allowed_and_stays_active(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    put_device(
        dynamodb,
        DeviceStatus.ACTIVE,
        certificateId=certificate_id("device-1"),
        thingName="TS-000123",
        deviceType="temperature-sensor",
        manufacturer="AcmeIoT",
    )
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    item = stored(dynamodb)
    assert item is not None and item["status"] == DeviceStatus.ACTIVE


@pytest.mark.parametrize("status", [DeviceStatus.PENDING, DeviceStatus.ACTIVE])
def test_same_serial_with_another_certificate_is_a_duplicate(
    dynamodb: Any, registry: OperatorRecords, status: DeviceStatus
) -> None:
    put_device(dynamodb, status, certificateId=certificate_id("device-1"))
    before = stored(dynamodb)
    assert deny_reason(registry, certificate="clone") is RejectionReason.DUPLICATE_SERIAL
    assert stored(dynamodb) == before


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (DeviceStatus.REVOKED, RejectionReason.DEVICE_REVOKED),
        (DeviceStatus.DECOMMISSIONED, RejectionReason.DEVICE_DECOMMISSIONED),
    ],
)
@pytest.mark.parametrize("certificate", ["device-1", "new-one"])
def test_revoked_and_decommissioned_serials_are_denied(
    dynamodb: Any, registry: OperatorRecords, status: DeviceStatus, reason: RejectionReason, certificate: str
) -> None:
    put_device(dynamodb, status, certificateId=certificate_id("device-1"))
    before = stored(dynamodb)
    assert deny_reason(registry, certificate=certificate) is reason
    assert stored(dynamodb) == before


@pytest.mark.parametrize("require_preregistration", [False, True])
def test_preregistered_serial_moves_to_pending(
    dynamodb: Any, registry: OperatorRecords, require_preregistration: bool
) -> None:
    put_device(
        dynamodb,
        DeviceStatus.PREREGISTERED,
        deviceType="temperature-sensor",
        manufacturer="AcmeIoT",
        createdAt="2026-01-01T00:00:00.000+00:00",
    )
    registry.approve(REQUEST, provenance(), require_preregistration=require_preregistration)
    item = stored(dynamodb)
    assert item is not None
    assert item["status"] == DeviceStatus.PENDING
    assert item["certificateId"] == certificate_id("device-1")
    assert item["createdAt"] == "2026-01-01T00:00:00.000+00:00"


def test_preregistered_serial_claimed_as_another_type_is_denied(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    put_device(dynamodb, DeviceStatus.PREREGISTERED, deviceType="gateway", manufacturer="AcmeIoT")
    before = stored(dynamodb)
    assert deny_reason(registry) is RejectionReason.PREREGISTRATION_MISMATCH
    assert stored(dynamodb) == before


def test_unknown_serial_is_denied_when_preregistration_is_required(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    assert deny_reason(registry, prereg=True) is RejectionReason.NOT_PREREGISTERED
    assert stored(dynamodb) is None


def test_unknown_status_fails_closed(dynamodb: Any, registry: OperatorRecords) -> None:
    put_device(dynamodb, "QUARANTINED", certificateId=certificate_id("device-1"))  # type: ignore[arg-type]
    assert deny_reason(registry) is RejectionReason.UNKNOWN_REGISTRY_STATE


# --- one certificate, one device -----------------------------------------------------------------------

OTHER = replace(REQUEST, serial_number="TS-000456")


def test_approval_binds_the_certificate_in_an_item_the_indexes_never_see(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    binding = stored(dynamodb, certificate_binding_key(certificate_id("device-1")))
    assert binding is not None
    assert binding == {
        "serialNumber": f"certificate#{certificate_id('device-1')}",
        "certificateId": certificate_id("device-1"),
        "deviceSerialNumber": REQUEST.serial_number,
        "createdAt": binding["createdAt"],
    }
    assert [item[Attr.SERIAL_NUMBER] for item in registry.devices()] == [REQUEST.serial_number]
    assert [item[Attr.SERIAL_NUMBER] for item in registry.devices(device_type="temperature-sensor")] == [
        REQUEST.serial_number
    ]
    assert registry.count_pending_before("9999") == 1


@pytest.mark.parametrize("status", [None, DeviceStatus.ACTIVE, DeviceStatus.REVOKED])
def test_a_certificate_approved_for_one_serial_is_denied_for_another_in_one_request(
    dynamodb: Any, registry: OperatorRecords, status: DeviceStatus | None
) -> None:
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    if status is DeviceStatus.ACTIVE:
        assert registry.activate(REQUEST.serial_number, "TS-000123") is None
    elif status is DeviceStatus.REVOKED:
        assert registry.revoke(REQUEST.serial_number, "stolen") is not None
    before = registry_contents(dynamodb)
    sent = count_requests(dynamodb)
    with pytest.raises(ProvisioningDenied) as caught:
        registry.approve(OTHER, provenance(), require_preregistration=False)
    assert len(sent) == 1
    assert caught.value.reason is RejectionReason.CERTIFICATE_IN_USE
    assert "TS-000123" in caught.value.detail
    assert registry_contents(dynamodb) == before
    assert stored(dynamodb, OTHER.serial_number) is None


def test_a_certificate_bound_to_another_serial_is_denied_for_a_preregistered_one(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    registry.preregister(OTHER, "2026-01-01T00:00:00.000+00:00")
    before = registry_contents(dynamodb)
    with pytest.raises(ProvisioningDenied) as caught:
        registry.approve(OTHER, provenance(), require_preregistration=True)
    assert caught.value.reason is RejectionReason.CERTIFICATE_IN_USE
    assert registry_contents(dynamodb) == before


def test_the_serials_own_denial_comes_before_the_certificates(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    registry.approve(OTHER, provenance("device-2"), require_preregistration=False)
    with pytest.raises(ProvisioningDenied) as caught:
        registry.approve(OTHER, provenance(), require_preregistration=False)
    assert caught.value.reason is RejectionReason.DUPLICATE_SERIAL


def test_a_retry_whose_certificate_is_bound_to_another_serial_is_denied(
    dynamodb: Any, registry: OperatorRecords
) -> None:
    # Not reachable through the adapter; a registry edited by hand must still fail closed.
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"serialNumber": {"S": certificate_binding_key(certificate_id("device-1"))}},
        UpdateExpression="SET deviceSerialNumber = :other",
        ExpressionAttributeValues={":other": {"S": OTHER.serial_number}},
    )
    assert deny_reason(registry) is RejectionReason.CERTIFICATE_IN_USE


@pytest.mark.parametrize("status", [DeviceStatus.PENDING, DeviceStatus.ACTIVE])
def test_retries_stay_approved_in_one_request_and_change_nothing(
    dynamodb: Any, registry: OperatorRecords, status: DeviceStatus
) -> None:
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    if status is DeviceStatus.ACTIVE:
        registry.activate(REQUEST.serial_number, "TS-000123")
    before = registry_contents(dynamodb)
    sent = count_requests(dynamodb)
    for _ in range(3):
        registry.approve(REQUEST, provenance(), require_preregistration=False)
    assert len(sent) == 3
    assert registry_contents(dynamodb) == before


@pytest.mark.parametrize("preregistered", [False, True])
def test_release_keeps_the_binding_so_the_certificate_serves_only_its_serial(
    dynamodb: Any, registry: OperatorRecords, preregistered: bool
) -> None:
    if preregistered:
        registry.preregister(REQUEST, "2026-01-01T00:00:00.000+00:00")
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    approval = registry.get(REQUEST.serial_number)
    assert approval is not None
    assert registry.release(approval) == ("restored" if preregistered else "deleted")
    assert registry_contents(dynamodb)[1] == {certificate_id("device-1"): REQUEST.serial_number}

    with pytest.raises(ProvisioningDenied) as caught:
        registry.approve(OTHER, provenance(), require_preregistration=False)
    assert caught.value.reason is RejectionReason.CERTIFICATE_IN_USE
    registry.approve(REQUEST, provenance("device-2"), require_preregistration=False)  # new keys
    assert registry_contents(dynamodb)[1] == {
        certificate_id("device-1"): REQUEST.serial_number,
        certificate_id("device-2"): REQUEST.serial_number,
    }


def test_decommission_keeps_the_binding(dynamodb: Any, registry: OperatorRecords) -> None:
    registry.approve(REQUEST, provenance(), require_preregistration=False)
    registry.decommission(REQUEST.serial_number)
    assert deny_reason(registry) is RejectionReason.DEVICE_DECOMMISSIONED
    with pytest.raises(ProvisioningDenied) as caught:
        registry.approve(OTHER, provenance(), require_preregistration=False)
    assert caught.value.reason is RejectionReason.CERTIFICATE_IN_USE
    assert registry_contents(dynamodb)[1] == {certificate_id("device-1"): REQUEST.serial_number}


def test_no_device_operation_accepts_a_bindings_key(registry: OperatorRecords) -> None:
    key = certificate_binding_key(certificate_id("device-1"))
    for operation in (registry.get, registry.decommission, lambda key: registry.revoke(key, "x")):
        with pytest.raises(ValueError, match="certificate binding"):
            operation(key)


def cancelled(*reasons: dict[str, Any]) -> dict[str, Any]:
    return {"CancellationReasons": list(reasons)}


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (cancelled({"Code": "None"}, {"Code": "TransactionConflict"}), "TransactionConflict"),
        (cancelled({"Code": "ThrottlingError"}, {"Code": "None"}), "ThrottlingError"),
        (cancelled({"Code": "None"}, {"Code": "None"}), "no reason given"),
        (cancelled({"Code": "ConditionalCheckFailed"}), "without its two reasons"),
        ({}, "without its two reasons"),
    ],
)
def test_a_transaction_cancelled_for_anything_but_the_conditions_denies(
    fields: dict[str, Any], detail: str
) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            http_status_code=400,
            modeled_fields=fields,
        )
        with pytest.raises(ProvisioningDenied) as caught:
            OperatorRecords(client, TABLE_NAME).approve(REQUEST, provenance(), require_preregistration=False)
    assert caught.value.reason is RejectionReason.REGISTRY_UNAVAILABLE
    assert detail in caught.value.detail


@pytest.fixture
def atomic_moto_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's writes atomic, as DynamoDB's are: moto serialises nothing between threads.

    Only each single request is made atomic, so an adapter that read first and wrote second would still
    race and approve both clones.
    """
    lock = threading.RLock()  # moto's transact_write_items calls its own get_item
    for operation in ("update_item", "put_item", "get_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, operation)

        def atomic(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, operation, atomic)


def race(asks: list[tuple[str, str]]) -> list[str]:
    """Let one hook instance per (serial, certificate seed), each with its own client, ask at the same
    moment; the outcomes in the order of ``asks``."""
    barrier = threading.Barrier(len(asks))
    outcomes: list[str] = [""] * len(asks)

    def provision(number: int) -> None:
        serial, certificate = asks[number]
        request = DeviceRequest(serial, "temperature-sensor", "AcmeIoT", "1.4.2", "Factory-Floor-A")
        registry = OperatorRecords(boto3.client("dynamodb", region_name="us-east-1"), TABLE_NAME)
        barrier.wait()
        try:
            registry.approve(request, provenance(certificate), require_preregistration=False)
            outcomes[number] = "approved"
        except ProvisioningDenied as denial:
            outcomes[number] = denial.reason

    threads = [threading.Thread(target=provision, args=(number,)) for number in range(len(asks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.usefixtures("atomic_moto_writes")
def test_two_clones_racing_for_one_serial_get_exactly_one_approval(dynamodb: Any) -> None:
    rounds = 20
    for round_number in range(rounds):
        serial = f"TS-{round_number:06d}"
        clones = [f"clone-{round_number}-0", f"clone-{round_number}-1"]
        outcomes = race([(serial, clone) for clone in clones])
        assert sorted(outcomes) == sorted(["approved", RejectionReason.DUPLICATE_SERIAL])
        item = stored(dynamodb, serial)
        assert item is not None
        assert item[Attr.CERTIFICATE_ID] == certificate_id(clones[outcomes.index("approved")])
    devices, bindings = registry_contents(dynamodb)
    assert len(devices) == rounds
    assert bindings == {item[Attr.CERTIFICATE_ID]: serial for serial, item in devices.items()}


@pytest.mark.usefixtures("atomic_moto_writes")
def test_two_serials_racing_with_one_certificate_get_exactly_one_approval(dynamodb: Any) -> None:
    rounds = 20
    for round_number in range(rounds):
        serials = [f"TS-{round_number:03d}001", f"TS-{round_number:03d}002"]
        certificate = f"shared-{round_number}"
        outcomes = race([(serial, certificate) for serial in serials])
        assert sorted(outcomes) == sorted(["approved", RejectionReason.CERTIFICATE_IN_USE])
        winner, loser = serials if outcomes[0] == "approved" else serials[::-1]
        assert stored(dynamodb, loser) is None
        devices, bindings = registry_contents(dynamodb)
        assert devices[winner][Attr.CERTIFICATE_ID] == certificate_id(certificate)
        assert bindings[certificate_id(certificate)] == winner
    devices, bindings = registry_contents(dynamodb)
    assert len(devices) == len(bindings) == rounds


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "AccessDeniedException",
        "ResourceNotFoundException",
    ],
)
def test_dynamodb_errors_deny_as_registry_unavailable(code: str) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error("transact_write_items", service_error_code=code, http_status_code=400)
        with pytest.raises(ProvisioningDenied) as caught:
            OperatorRecords(client, TABLE_NAME).approve(REQUEST, provenance(), require_preregistration=False)
    assert caught.value.reason is RejectionReason.REGISTRY_UNAVAILABLE
    assert code in caught.value.detail


def test_unreachable_registry_denies() -> None:
    with socket.socket() as unreachable:  # a port this test holds, bound but not listening: refused
        unreachable.bind(("127.0.0.1", 0))
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{unreachable.getsockname()[1]}",
            config=Config(connect_timeout=0.2, retries={"total_max_attempts": 1}),
        )
        with pytest.raises(ProvisioningDenied) as caught:
            OperatorRecords(client, TABLE_NAME).approve(REQUEST, provenance(), require_preregistration=False)
    assert caught.value.reason is RejectionReason.REGISTRY_UNAVAILABLE
    assert caught.value.detail.endswith(("EndpointConnectionError", ConnectTimeoutError.__name__))
