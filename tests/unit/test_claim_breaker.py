"""The claim circuit breaker in the hook's approval: one request per approval, its own denial that leaves
nothing behind, other claim certificates unaffected, resume, and approvals racing a trip."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fleetctl.operator_transitions import OperatorRecords
from fleetctl.registry_reads import devices_and_bindings
from hook.claim_breaker import (
    BREAKER_SHARDS,
    WINDOW,
    BreakerAttr,
    BreakerState,
    breaker_key,
    breaker_keys,
    estimated_approvals,
    over_budget,
    parse_budgets,
    window_start,
)
from hook.claim_breakers import ClaimBreakers
from hook.contract import Attr, ProvisioningDenied, RejectionReason, shard_of
from hook.registry_decisions import Provenance
from hook.registry_transitions import DeviceRecords
from hook.rules import DeviceRequest
from tests.support import CLAIM_CERTIFICATE_ID, TABLE_NAME, TEMPLATE_ARN, certificate_id, registry_contents

OTHER_CLAIM = "c" * 64


def request(serial: str) -> DeviceRequest:
    return DeviceRequest(
        serial_number=serial,
        device_type="temperature-sensor",
        manufacturer="AcmeIoT",
        firmware_version="1.4.2",
        location="Line-1",
    )


def provenance(serial: str, claim: str = CLAIM_CERTIFICATE_ID) -> Provenance:
    return Provenance(
        certificate_id=certificate_id(serial),
        claim_certificate_id=claim,
        template_arn=TEMPLATE_ARN,
        client_id=f"client-{serial}",
    )


def approve(records: DeviceRecords, serial: str, claim: str = CLAIM_CERTIFICATE_ID) -> None:
    records.approve(request(serial), provenance(serial, claim), require_preregistration=False)


def denial(records: DeviceRecords, serial: str, claim: str = CLAIM_CERTIFICATE_ID) -> ProvisioningDenied:
    with pytest.raises(ProvisioningDenied) as denied:
        approve(records, serial, claim)
    return denied.value


def test_an_approval_checks_the_breaker_in_its_one_transaction(dynamodb: Any) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    dynamodb.meta.events.register(
        "before-parameter-build.dynamodb", lambda params, model, **_: sent.append((model.name, params))
    )

    approve(DeviceRecords(dynamodb, TABLE_NAME), "TS-000001")

    assert [operation for operation, _ in sent] == ["TransactWriteItems"]
    check = sent[0][1]["TransactItems"][2]["ConditionCheck"]
    assert check["Key"]["serialNumber"]["S"] == breaker_key(CLAIM_CERTIFICATE_ID, shard_of("TS-000001"))


def test_an_open_breaker_denies_with_its_reason_and_leaves_the_registry_as_it_was(dynamodb: Any) -> None:
    records = DeviceRecords(dynamodb, TABLE_NAME)
    ClaimBreakers(dynamodb, TABLE_NAME).trip(
        CLAIM_CERTIFICATE_ID, "130 approvals, budget 100", "claim-breaker"
    )
    before = registry_contents(dynamodb)

    denied = denial(records, "TS-000002")

    assert denied.reason is RejectionReason.CLAIM_SUSPENDED
    assert "TRIPPED" in denied.detail and "claim-breaker" in denied.detail and "budget 100" in denied.detail
    assert registry_contents(dynamodb) == before


def test_a_retry_of_an_approved_device_is_denied_while_the_breaker_is_open(dynamodb: Any) -> None:
    records = DeviceRecords(dynamodb, TABLE_NAME)
    approve(records, "TS-000003")
    ClaimBreakers(dynamodb, TABLE_NAME).set_state(CLAIM_CERTIFICATE_ID, BreakerState.SUSPENDED, "ops", "leak")

    assert denial(records, "TS-000003").reason is RejectionReason.CLAIM_SUSPENDED


def test_another_claim_certificate_keeps_provisioning(dynamodb: Any) -> None:
    records = DeviceRecords(dynamodb, TABLE_NAME)
    ClaimBreakers(dynamodb, TABLE_NAME).trip(CLAIM_CERTIFICATE_ID, "over budget", "claim-breaker")

    approve(records, "TS-000004", claim=OTHER_CLAIM)

    assert records.get("TS-000004") is not None


def test_resume_closes_the_breaker_records_who_and_why_and_clears_the_counts(dynamodb: Any) -> None:
    records, breakers = DeviceRecords(dynamodb, TABLE_NAME), ClaimBreakers(dynamodb, TABLE_NAME)
    breakers.add_approvals(CLAIM_CERTIFICATE_ID, 120, datetime.now(UTC))
    breakers.trip(CLAIM_CERTIFICATE_ID, "120 approvals", "claim-breaker")
    assert denial(records, "TS-000005").reason is RejectionReason.CLAIM_SUSPENDED

    breakers.set_state(CLAIM_CERTIFICATE_ID, BreakerState.CLOSED, "arn:aws:iam::1:user/ops", "burst planned")
    approve(records, "TS-000005")

    state = breakers.state(CLAIM_CERTIFICATE_ID)
    assert state[BreakerAttr.STATE] == BreakerState.CLOSED
    assert (state[BreakerAttr.CHANGED_BY], state[BreakerAttr.REASON]) == (
        "arn:aws:iam::1:user/ops",
        "burst planned",
    )
    assert state[BreakerAttr.APPROVALS] == "0"


def test_a_trip_keeps_the_first_opening_and_a_suspension_is_not_overwritten_by_it(dynamodb: Any) -> None:
    breakers = ClaimBreakers(dynamodb, TABLE_NAME)
    breakers.set_state(CLAIM_CERTIFICATE_ID, BreakerState.SUSPENDED, "ops", "leaked on a forum")

    assert breakers.trip(CLAIM_CERTIFICATE_ID, "over budget", "claim-breaker") is False
    state = breakers.state(CLAIM_CERTIFICATE_ID)
    assert (state[BreakerAttr.STATE], state[BreakerAttr.REASON]) == (
        BreakerState.SUSPENDED,
        "leaked on a forum",
    )


def conflicting_once(client: Any, monkeypatch: pytest.MonkeyPatch, shard: int) -> None:
    """The next write of the breaker item of ``shard`` meets an approval's transaction in progress on it:
    DynamoDB rejects it with ``TransactionConflictException`` (developer guide, "Transaction conflict
    handling"), which botocore does not retry."""
    update, pending = client.update_item, [breaker_key(CLAIM_CERTIFICATE_ID, shard)]

    def update_item(**request: Any) -> Any:
        if request["Key"][Attr.SERIAL_NUMBER]["S"] in pending:
            pending.clear()
            error = {"Error": {"Code": "TransactionConflictException", "Message": "in a transaction"}}
            raise client.exceptions.TransactionConflictException(error, "UpdateItem")
        return update(**request)

    monkeypatch.setattr(client, "update_item", update_item)


@pytest.mark.parametrize("state", [BreakerState.TRIPPED, BreakerState.SUSPENDED])
def test_a_write_meeting_an_approvals_transaction_on_a_breaker_item_is_retried(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, state: BreakerState
) -> None:
    # Approvals check the breaker items in their transactions, most of them while it is under attack.
    breakers = ClaimBreakers(dynamodb, TABLE_NAME)
    conflicting_once(dynamodb, monkeypatch, shard=3)
    if state is BreakerState.TRIPPED:
        assert breakers.trip(CLAIM_CERTIFICATE_ID, "over budget", "claim-breaker") is True
    else:
        breakers.set_state(CLAIM_CERTIFICATE_ID, state, "ops", "leaked")
    states = [
        dynamodb.get_item(TableName=TABLE_NAME, Key={Attr.SERIAL_NUMBER: {"S": key}})["Item"][
            BreakerAttr.STATE
        ]
        for key in breaker_keys(CLAIM_CERTIFICATE_ID)
    ]
    assert states == [{"S": state}] * BREAKER_SHARDS


def test_approvals_racing_a_trip_pass_only_on_shards_it_has_not_reached(dynamodb: Any) -> None:
    """The trip opens the breaker's items one after the other while approvals go on: each approval is
    ordered before or after the write of its own shard's item (DynamoDB serialises a transaction with the
    writes of its items), never in between; once every item is open, every shard denies."""
    records = DeviceRecords(dynamodb, TABLE_NAME)
    serials = [f"TS-{number:06d}" for number in range(100, 164)]
    reached = set(range(BREAKER_SHARDS // 2))
    for shard in reached:
        dynamodb.put_item(
            TableName=TABLE_NAME,
            Item={
                "serialNumber": {"S": breaker_key(CLAIM_CERTIFICATE_ID, shard)},
                BreakerAttr.STATE: {"S": BreakerState.TRIPPED},
            },
        )

    outcomes = {}
    for serial in serials:
        try:
            approve(records, serial)
            outcomes[serial] = "approved"
        except ProvisioningDenied as denied:
            outcomes[serial] = denied.reason
    assert {s for s, o in outcomes.items() if o == "approved"} == {
        s for s in serials if shard_of(s) not in reached
    }
    assert {o for o in outcomes.values() if o != "approved"} == {RejectionReason.CLAIM_SUSPENDED}

    ClaimBreakers(dynamodb, TABLE_NAME).trip(CLAIM_CERTIFICATE_ID, "over budget", "claim-breaker")
    assert {denial(records, f"TS-{n:06d}").reason for n in range(200, 232)} == {
        RejectionReason.CLAIM_SUSPENDED
    }


def test_the_last_hour_estimate_weighs_the_previous_hour_by_what_is_left_of_it() -> None:
    quarter_past = datetime(2026, 12, 6, 13, 15, tzinfo=UTC)

    assert estimated_approvals(current=40, previous=80, now=quarter_past) == 100
    assert not over_budget(40, 80, quarter_past, budget=100)
    assert over_budget(41, 80, quarter_past, budget=100)
    assert over_budget(101, 0, datetime(2026, 12, 6, 13, 59, tzinfo=UTC), budget=100)


def first_trip(approvals: list[datetime], budget: int) -> datetime | None:
    """Replay approvals as the claim-breaker function counts them (one per stream batch, the count of its
    clock hour): the approval at which the breaker trips, or ``None``."""
    counts: Counter[datetime] = Counter()
    for at in sorted(approvals):
        counts[window_start(at)] += 1
        if over_budget(counts[window_start(at)], counts[window_start(at) - WINDOW], at, budget):
            return at
    return None


def burst(count: int, start: datetime, minutes: float) -> list[datetime]:
    """``count`` approvals spread evenly over ``minutes`` from ``start``."""
    return [start + timedelta(minutes=minutes * n / count) for n in range(count)]


NINE = datetime(2026, 12, 6, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "line",
    [
        burst(100, NINE, 120),  # the budget over two hours, evenly
        burst(50, NINE, 5) + burst(50, NINE + timedelta(minutes=115), 5),  # at the ends of both hours
        burst(100, NINE + timedelta(minutes=55), 10),  # across the hour's turn
    ],
)
def test_a_line_within_the_budget_in_any_two_clock_hours_never_trips(line: list[datetime]) -> None:
    assert first_trip(line, budget=100) is None


def test_a_line_within_the_budget_in_every_60_minutes_may_still_trip() -> None:
    # 90 in the first 5 minutes of two clock hours: no 60 minutes hold more than 90, but the estimate
    # counts the first hour as if spread evenly over it (docs/claim-certificate.md, "Budget").
    line = burst(90, NINE, 5) + burst(90, NINE + WINDOW, 5)
    assert max(sum(start <= at < start + WINDOW for at in line) for start in line) == 90
    assert first_trip(line, budget=100) is not None


def test_before_a_trip_60_minutes_may_hold_up_to_twice_the_budget() -> None:
    # The threat table's bound: the budget at the end of one clock hour, nearly as many at the end of the next.
    attack = burst(100, NINE + timedelta(minutes=59, seconds=59), 0.01)
    attack += burst(99, NINE + timedelta(minutes=119, seconds=58), 0.01)
    assert first_trip(attack, budget=100) is None
    assert max(sum(start <= at < start + WINDOW for at in attack) for start in attack) == 199
    assert first_trip([*attack, NINE + timedelta(minutes=119, seconds=59)], budget=100) is not None


@pytest.mark.parametrize("text", ["not json", "[]", '{"a": 0}', '{"a": "100"}', '{"a": true}'])
def test_budgets_that_are_not_positive_whole_numbers_by_certificate_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="CLAIM_BUDGETS must be a JSON object"):
        parse_budgets(text)


def test_breaker_and_count_items_are_never_listed_as_devices(dynamodb: Any) -> None:
    records, breakers = DeviceRecords(dynamodb, TABLE_NAME), ClaimBreakers(dynamodb, TABLE_NAME)
    approve(records, "TS-000006")
    breakers.add_approvals(CLAIM_CERTIFICATE_ID, 1, datetime.now(UTC))
    breakers.set_state(CLAIM_CERTIFICATE_ID, BreakerState.SUSPENDED, "ops", "leak")

    scan = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    devices, bindings = devices_and_bindings(scan)

    assert len(scan) == 1 + 1 + 1 + BREAKER_SHARDS  # the device, its binding, the count, the breaker
    assert list(devices) == ["TS-000006"] and list(bindings.values()) == ["TS-000006"]
    assert [item[Attr.SERIAL_NUMBER] for item in OperatorRecords(dynamodb, TABLE_NAME).scan_devices()] == [
        "TS-000006"
    ]
