"""The provision-once model (``tests/fleet_model.py``): a clone racing the genuine device in another region
is refused by the one registry whatever the latencies, a registry outage or a late answer denies rather than
approves, and an eventually consistent global table approves both within its replication lag. The model's
condition is the hook's: the same races through ``DeviceRecords.approve`` on a table give the same answers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hook.contract import ProvisioningDenied
from hook.registry_decisions import Provenance
from tests.fleet_model import (
    APPROVED,
    REFUSED,
    TIMED_OUT,
    UNAVAILABLE,
    Registry,
    RegistryLinks,
    Request,
    eventually_consistent,
    single_registry,
    violations,
)
from tests.support import CLAIM_CERTIFICATE_ID, TEMPLATE_ARN, certificate_id
from tests.unit.test_registry_transitions import REQUEST

LINKS = RegistryLinks(latency={"eu-west-1": 0.0, "us-east-1": 0.04, "ap-southeast-1": 0.09})
GENUINE = Request("eu-west-1", "TS-1", "genuine", sent_at=0.0)
CLONE = Request("ap-southeast-1", "TS-1", "clone", sent_at=0.0)


def outcomes(decisions: list[Any]) -> dict[str, str]:
    return {decision.request.certificate: decision.outcome for decision in decisions}


def test_the_one_registry_approves_the_first_arrival_and_refuses_the_clone_racing_it() -> None:
    decisions = single_registry([CLONE, GENUINE], LINKS)
    assert outcomes(decisions) == {"genuine": APPROVED, "clone": REFUSED}
    assert violations(decisions) == []


def test_arrival_order_not_sending_order_decides_so_a_far_region_can_lose_a_race_it_started_first() -> None:
    early_but_far = replace(CLONE, sent_at=0.0)
    late_but_near = replace(GENUINE, sent_at=0.05)  # arrives at 0.05, before the clone's 0.09
    assert outcomes(single_registry([early_but_far, late_but_near], LINKS)) == {
        "genuine": APPROVED,
        "clone": REFUSED,
    }


def test_a_retry_by_the_approved_certificate_is_approved_again_and_is_no_second_device() -> None:
    retry = replace(GENUINE, region="us-east-1", sent_at=1.0)
    decisions = single_registry([GENUINE, retry], LINKS)
    assert [decision.outcome for decision in decisions] == [APPROVED, APPROVED]
    assert violations(decisions) == []


def test_a_certificate_is_never_approved_for_a_second_serial() -> None:
    other_serial = Request("us-east-1", "TS-2", "genuine", sent_at=1.0)
    decisions = single_registry([GENUINE, other_serial], LINKS)
    assert [(d.request.serial, d.outcome) for d in decisions] == [("TS-1", APPROVED), ("TS-2", REFUSED)]


def test_while_the_registry_region_is_out_every_region_denies_and_nothing_is_recorded() -> None:
    links = replace(LINKS, outages=[(0.0, 60.0)])
    decisions = single_registry([GENUINE, CLONE, replace(GENUINE, sent_at=61.0)], links)
    assert [(d.outcome, d.committed) for d in decisions] == [
        (UNAVAILABLE, False),
        (UNAVAILABLE, False),
        (APPROVED, True),
    ]


def test_an_answer_later_than_the_hooks_deadline_is_a_denial_even_when_the_write_committed() -> None:
    links = replace(LINKS, latency={**LINKS.latency, "ap-southeast-1": 2.5})  # 5 s round trip > 4 s
    [late] = single_registry([CLONE], links)
    assert (late.outcome, late.committed, late.allowed) == (TIMED_OUT, True, False)
    # The committed approval holds the serial for that certificate: the genuine device is refused, never
    # approved beside it; only the same certificate can use the serial again.
    decisions = single_registry([CLONE, replace(GENUINE, sent_at=10.0)], links)
    assert outcomes(decisions) == {"clone": TIMED_OUT, "genuine": REFUSED}
    assert violations(decisions) == []


def test_an_eventually_consistent_global_table_approves_both_within_its_replication_lag() -> None:
    decisions = eventually_consistent([GENUINE, replace(CLONE, sent_at=0.5)], lag=1.0)
    assert outcomes(decisions) == {"genuine": APPROVED, "clone": APPROVED}
    assert violations(decisions) == ["serial TS-1: ['clone', 'genuine']"]


def test_an_eventually_consistent_global_table_refuses_the_clone_once_the_write_has_replicated() -> None:
    decisions = eventually_consistent([GENUINE, replace(CLONE, sent_at=1.5)], lag=1.0)
    assert outcomes(decisions) == {"genuine": APPROVED, "clone": REFUSED}


def test_the_models_condition_decides_as_the_hooks_transaction_does(registry: Any) -> None:
    """The same sequence through the model's registry and through ``DeviceRecords.approve`` (moto)."""
    sequence = [
        ("TS-1", "a"),  # new serial
        ("TS-1", "b"),  # a clone of it: another certificate
        ("TS-1", "a"),  # the retry of the approved certificate
        ("TS-2", "a"),  # the approved certificate for another serial
        ("TS-2", "c"),
        ("TS-3", "c"),
    ]
    model = Registry()
    for serial, certificate in sequence:
        request = Request("eu-west-1", serial, certificate, 0.0)
        expected = model.admits(request)
        if expected:
            model.record(request)
        provenance = Provenance(certificate_id(certificate), CLAIM_CERTIFICATE_ID, TEMPLATE_ARN, "client")
        try:
            registry.approve(
                replace(REQUEST, serial_number=serial), provenance, require_preregistration=False
            )
            approved = True
        except ProvisioningDenied:
            approved = False
        assert approved == expected, (serial, certificate)
