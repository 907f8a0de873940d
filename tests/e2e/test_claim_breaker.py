"""The claim circuit breaker on the emulator: a burst through one claim certificate past its budget trips its
breaker within :data:`TRIP_BOUND_SECONDS`; the next devices through it are denied as ``ClaimSuspended`` and
leave nothing behind; a device through another claim certificate still provisions; ``fleetctl claim
resume`` lets the first provision again.

The budget is lowered by updating the claim-breaker function's ``CLAIM_BUDGETS``, as ``pulumi up`` with a
generation's ``maxProvisioningPerHour`` would; the other claim certificate stands for a second generation
(the emulated stack exports the private key of its current generation only).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Final

import pytest

from hook.claim_breaker import CLAIM_BUDGETS_ENV
from hook.contract import RejectionReason, certificate_binding_key, claim_policy_name
from local.devices.firmware import Identity
from local.devices.fleet_runner import HOOK_DENIED, FleetTarget
from local.devices.mqtt_session import Credentials, Rejected
from local.scenario.deployment import eventually
from local.scenario.sandbox import Sandbox
from program.outputs import StackOutput
from tests.e2e.conftest import Fleetctl

pytestmark = pytest.mark.e2e

BUDGET: Final = 3
TRIP_BOUND_SECONDS: Final = 30.0
"""On the emulator: the stream record of the approval past the budget reaches the claim-breaker function,
which opens the breaker (docs/claim-certificate.md states AWS's bound)."""


def _identity(number: int) -> Identity:
    return Identity(f"HS-95{number:04d}", "humidity-sensor", "AcmeIoT", "1.0.0", "breaker-lab")


def _set_budgets(box: Sandbox, budgets: dict[str, int] | None, saved: dict[str, str]) -> None:
    """Give the claim-breaker function these budgets (``None``: back to ``saved``), and wait for the
    update to be in place."""
    client = box.inspector.client("lambda")
    name = f"{box.settings.base_name}-claim-breaker"
    variables = dict(saved)
    if budgets is not None:
        variables[CLAIM_BUDGETS_ENV] = json.dumps(budgets)
    client.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
    client.get_waiter("function_updated_v2").wait(FunctionName=name)


@pytest.fixture
def low_budget(box: Sandbox, fleetctl: Fleetctl) -> Iterator[str]:
    """The current claim certificate with a budget of :data:`BUDGET`, its count of the hour cleared; the
    stack's budgets and a closed breaker are put back afterwards."""
    claim = str(box.outputs[StackOutput.CLAIM_CERTIFICATE_ID])
    function = box.inspector.client("lambda").get_function_configuration(
        FunctionName=f"{box.settings.base_name}-claim-breaker"
    )
    saved: dict[str, str] = function["Environment"]["Variables"]
    fleetctl("claim", "resume", claim, "--reason", "e2e: count from zero")
    _set_budgets(box, {claim: BUDGET}, saved)
    try:
        yield claim
    finally:
        _set_budgets(box, None, saved)
        fleetctl("claim", "resume", claim, "--reason", "e2e: done")


@pytest.fixture
def second_generation(box: Sandbox) -> Iterator[FleetTarget]:
    """Devices of another claim certificate carrying the stack's claim policy (a second generation)."""
    iot = box.inspector.client("iot")
    made = iot.create_keys_and_certificate(setAsActive=True)
    policy = claim_policy_name(box.settings.base_name)
    iot.attach_policy(policyName=policy, target=made["certificateArn"])
    credentials = Credentials(made["certificatePem"], made["keyPair"]["PrivateKey"])
    try:
        yield replace(box.target, claim=credentials)
    finally:
        iot.detach_policy(policyName=policy, target=made["certificateArn"])
        iot.update_certificate(certificateId=made["certificateId"], newStatus="INACTIVE")
        iot.delete_certificate(certificateId=made["certificateId"])


def _breaker(fleetctl: Fleetctl, claim: str) -> dict[str, Any]:
    rows: Any = fleetctl("claim", "status", "--all")
    [row] = [row for row in rows if row["certificateId"] == claim]
    return dict(row)


def _raw_item(box: Sandbox, key: str) -> dict[str, Any] | None:
    answer = box.inspector.client("dynamodb").get_item(
        TableName=box.registry_table, Key={"serialNumber": {"S": key}}, ConsistentRead=True
    )
    item: dict[str, Any] | None = answer.get("Item")
    return item


def test_a_burst_trips_the_breaker_of_its_claim_certificate_only_until_resumed(
    box: Sandbox, fleetctl: Fleetctl, low_budget: str, second_generation: FleetTarget
) -> None:
    claim = low_budget
    for number in range(BUDGET + 1):  # the last one passes the budget
        box.target.provision(_identity(number))
    crossed = time.monotonic()

    tripped = eventually(
        lambda: _breaker(fleetctl, claim),
        lambda row: row["breaker"] == "TRIPPED",
        TRIP_BOUND_SECONDS,
        box.patience.interval,
    )
    assert tripped["breaker"] == "TRIPPED", f"not tripped within {TRIP_BOUND_SECONDS} s"
    assert time.monotonic() - crossed <= TRIP_BOUND_SECONDS
    assert (tripped["breakerChangedBy"], f"budget {BUDGET}" in tripped["breakerReason"]) == (
        "claim-breaker",
        True,
    )

    denied = _identity(100)
    with pytest.raises(Rejected) as rejected:
        box.target.provision(denied)
    assert (rejected.value.operation, rejected.value.error_code) == ("RegisterThing", HOOK_DENIED)
    denial = box.hook_denial(denied.serial_number)
    assert denial is not None and denial.reason == RejectionReason.CLAIM_SUSPENDED
    certificate_id = rejected.value.certificate_id
    assert certificate_id is not None
    assert _raw_item(box, denied.serial_number) is None
    assert _raw_item(box, certificate_binding_key(certificate_id)) is None
    assert box.inspector.thing(f"{box.settings.base_name}_{denied.serial_number}") is None
    claim_certificate = box.inspector.certificate(claim)
    assert claim_certificate is not None and claim_certificate.status == "ACTIVE"

    other = second_generation.provision(_identity(200))
    assert box.inspector.thing(other.thing_name) is not None

    resumed = fleetctl("claim", "resume", claim, "--reason", "e2e: the burst was ours")
    assert resumed["breaker"] == "CLOSED"
    again = box.target.provision(_identity(101))
    assert box.inspector.thing(again.thing_name) is not None
