"""Property tests of "provisioned once, fleet-wide" (``tests/fleet_model.py``): whatever the interleaving of
approvals in several regions, the latencies to the registry region and its outages, the one registry never
lets AWS IoT provision a serial with two certificates or a certificate for two serials; an eventually
consistent global table does, as soon as two regions race within its replication lag."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fleet_model import (
    RegistryLinks,
    Request,
    eventually_consistent,
    single_registry,
    violations,
)

REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-1")
seconds = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
requests = st.lists(
    st.builds(
        Request,
        region=st.sampled_from(REGIONS),
        serial=st.sampled_from(["TS-1", "TS-2"]),
        certificate=st.sampled_from(["genuine-1", "genuine-2", "clone"]),
        sent_at=seconds,
    ),
    max_size=12,
)
links = st.builds(
    RegistryLinks,
    latency=st.fixed_dictionaries(
        {
            "eu-west-1": st.just(0.0),
            "us-east-1": st.floats(min_value=0.0, max_value=3.0),
            "ap-southeast-1": st.floats(min_value=0.0, max_value=3.0),
        }
    ),
    outages=st.lists(st.tuples(seconds, seconds).map(sorted).map(tuple), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(requests, links)
def test_the_one_registry_keeps_the_invariant_under_any_interleaving_latency_and_outage(
    sent: list[Request], registry_links: RegistryLinks
) -> None:
    decisions = single_registry(sent, registry_links)
    assert violations(decisions) == []
    # Fails closed: nothing is allowed that the registry did not record.
    assert all(decision.committed for decision in decisions if decision.allowed)
    # Only an answer within the deadline is allowed.
    assert all(
        2 * registry_links.latency[decision.request.region] <= registry_links.deadline
        for decision in decisions
        if decision.allowed
    )


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(REGIONS[1:]),
    st.floats(min_value=0.01, max_value=5.0),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=10.0),
)
def test_an_eventually_consistent_table_approves_a_clone_racing_within_the_replication_lag(
    clone_region: str, lag: float, fraction: float, start: float
) -> None:
    genuine = Request("eu-west-1", "TS-1", "genuine-1", start)
    clone = Request(clone_region, "TS-1", "clone", start + fraction * lag * 0.999)
    decisions = eventually_consistent([genuine, clone], lag)
    assert violations(decisions) == ["serial TS-1: ['clone', 'genuine-1']"]
    # The same race through the one registry: exactly one of them is allowed.
    links = RegistryLinks(latency={region: 0.05 for region in REGIONS} | {"eu-west-1": 0.0})
    assert sum(decision.allowed for decision in single_registry([genuine, clone], links)) == 1
