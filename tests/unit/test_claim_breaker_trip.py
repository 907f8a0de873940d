"""The claim-breaker function on the registry's stream: what it counts as an approval, when it trips, and
what it tells the alarm."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

import pytest

from components.claim_breaker import breaker_statements
from hook import claim_breaker_trip, runtime
from hook.claim_breaker import CLAIM_BUDGETS_ENV, BreakerAttr, BreakerState, approvals_key, breaker_key
from hook.claim_breakers import ClaimBreakers
from hook.contract import (
    REGISTRY_TABLE_ENV,
    Attr,
    Metric,
    ProvisioningDenied,
    RejectionReason,
    certificate_binding_key,
)
from hook.registry_transitions import DeviceRecords
from tests.support import CLAIM_CERTIFICATE_ID, TABLE_NAME, FakeLambdaContext, output_lines
from tests.unit.test_claim_breaker import OTHER_CLAIM, approve

BUDGET = 5


def change(serial: str, new: dict[str, str] | None, old: dict[str, str] | None = None) -> dict[str, Any]:
    images = {"NewImage": new, "OldImage": old}
    return {
        "eventName": "MODIFY" if old else "INSERT",
        "dynamodb": {
            "Keys": {"serialNumber": {"S": serial}},
            **{name: {k: {"S": v} for k, v in image.items()} for name, image in images.items() if image},
        },
    }


def approved(
    serial: str, claim: str = CLAIM_CERTIFICATE_ID, at: str = "2026-12-06T13:00:00.000+00:00"
) -> dict[str, str]:
    return {
        Attr.SERIAL_NUMBER: serial,
        Attr.CLAIM_CERTIFICATE_ID: claim,
        Attr.APPROVED_AT: at,
        Attr.STATUS: "PENDING",
    }


@pytest.fixture
def breaker_function(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(REGISTRY_TABLE_ENV, TABLE_NAME)
    monkeypatch.setenv(CLAIM_BUDGETS_ENV, json.dumps({CLAIM_CERTIFICATE_ID: BUDGET, OTHER_CLAIM: 100}))
    runtime.reset()
    yield lambda records: claim_breaker_trip.lambda_handler({"Records": records}, FakeLambdaContext())
    runtime.reset()


def test_only_new_approvals_and_reprovisionings_count_per_claim_certificate() -> None:
    first = approved("TS-1")
    records = [
        change("TS-1", first),
        change("TS-1", {**first, Attr.STATUS: "ACTIVE", Attr.ACTIVATED_AT: "x"}, first),  # activation
        change("TS-2", approved("TS-2", OTHER_CLAIM)),
        change("TS-1", {**first, Attr.REPROVISIONED_AT: "y"}, first),
        change("TS-3", {Attr.SERIAL_NUMBER: "TS-3", Attr.STATUS: "PREREGISTERED"}),  # a manifest's import
        change("TS-4", None, approved("TS-4")),  # removed
    ]

    assert claim_breaker_trip.approvals_by_claim_certificate(records) == {
        CLAIM_CERTIFICATE_ID: 2,
        OTHER_CLAIM: 1,
    }


def test_a_burst_past_the_budget_trips_that_claim_certificate_only(
    dynamodb: Any, breaker_function: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    breaker_function([change(f"TS-{n}", approved(f"TS-{n}")) for n in range(BUDGET)])
    records = DeviceRecords(dynamodb, TABLE_NAME)
    approve(records, "TS-100000")  # at the budget: still closed

    breaker_function([change("TS-5", approved("TS-5")), change("TS-6", approved("TS-6", OTHER_CLAIM))])

    with pytest.raises(ProvisioningDenied) as denied:
        approve(records, "TS-100001")
    assert denied.value.reason is RejectionReason.CLAIM_SUSPENDED
    approve(records, "TS-100002", claim=OTHER_CLAIM)
    state = ClaimBreakers(dynamodb, TABLE_NAME).state(CLAIM_CERTIFICATE_ID)
    assert (state[BreakerAttr.STATE], state[BreakerAttr.CHANGED_BY]) == (
        BreakerState.TRIPPED,
        "claim-breaker",
    )
    assert "budget 5" in state[BreakerAttr.REASON]
    tripped = [line for line in output_lines(capsys) if Metric.CLAIM_BREAKER_TRIPPED in line]
    assert [line[Metric.CLAIM_BREAKER_TRIPPED] for line in tripped] == [[1.0]]


def test_a_claim_certificate_without_a_budget_is_not_counted(dynamodb: Any, breaker_function: Any) -> None:
    stranger = "d" * 64
    breaker_function([change(f"TS-{n}", approved(f"TS-{n}", stranger)) for n in range(50)])

    assert ClaimBreakers(dynamodb, TABLE_NAME).state(stranger)[BreakerAttr.APPROVALS] == "0"


def test_the_function_may_read_and_write_only_breaker_and_count_items() -> None:
    # IAM's StringLike: "*" any characters (IAM User Guide, "Condition operators"); fnmatch reads it alike.
    [_, _, registry] = breaker_statements("table-arn", "stream-arn")
    assert registry["Action"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    [(operator, keys)] = registry["Condition"].items()
    [(key, patterns)] = keys.items()
    assert (operator, key) == ("ForAllValues:StringLike", "dynamodb:LeadingKeys")
    hour = datetime(2026, 12, 6, 13, tzinfo=UTC)
    allowed = [breaker_key(CLAIM_CERTIFICATE_ID, 15), approvals_key(CLAIM_CERTIFICATE_ID, hour)]
    refused = ["TS-1", certificate_binding_key("c" * 64)]
    assert all(any(fnmatchcase(each, pattern) for pattern in patterns) for each in allowed)
    assert not any(fnmatchcase(each, pattern) for each in refused for pattern in patterns)
