"""A global fleet of two regions on two emulator instances (``local/scenario/global_fleet.py``): one claim
certificate provisions in both, a serial is provisioned once across both however clones race, and
``fleetctl`` revokes a device in the region it lives in.

What the emulator cannot show (``docs/global-fleet.md``, "What only AWS can show"): the real latency of
the other region's call to the registry, an outage of the registry region, ``RegisterCertificateWithoutCA``
of one PEM in two regions as AWS applies it (the emulator trusts any registered certificate, and never
requires SNI), and the registry's IAM check of the other region's role (the router signs as the registry
emulator's root)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from hook.contract import Attr, DeviceStatus
from local.devices.firmware import Identity, ProvisionedDevice
from local.devices.fleet_runner import HOOK_DENIED
from local.devices.mqtt_session import Rejected
from local.scenario.deployment import Deployment
from local.scenario.global_fleet import OTHER_REGION, REGISTRY_REGION, GlobalFleet, global_fleet
from local.scenario.revocation_checks import expect_new_connection_refused
from program.outputs import StackOutput

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GlobalFleet]:
    """Both regions' emulators with the fleet's stacks deployed."""
    with global_fleet(tmp_path_factory.mktemp("global-fleet")) as running:
        yield running


def _identity(serial: str) -> Identity:
    return Identity(serial, "temperature-sensor", "AcmeIoT", "2.0.0", "global-lab")


def _attempt(deployment: Deployment, identity: Identity) -> ProvisionedDevice | Rejected:
    try:
        return deployment.target.provision(identity)
    except Rejected as rejected:
        return rejected


def test_one_claim_certificate_provisions_devices_in_both_regions(fleet: GlobalFleet) -> None:
    here = fleet.registry.target.provision(_identity("TS-710001"))
    there = fleet.other.target.provision(_identity("TS-710002"))

    registry = fleet.registry.wait_for_status(["TS-710001", "TS-710002"], DeviceStatus.ACTIVE)

    claim = StackOutput.CLAIM_CERTIFICATE_ID
    assert fleet.registry.outputs[claim] == fleet.other.outputs[claim]
    assert (registry["TS-710001"][Attr.STATUS], registry["TS-710002"][Attr.STATUS]) == ("ACTIVE", "ACTIVE")
    assert registry["TS-710001"][Attr.REGION] == REGISTRY_REGION
    assert registry["TS-710002"][Attr.REGION] == OTHER_REGION
    assert registry["TS-710002"][Attr.CERTIFICATE_ID] == there.certificate_id
    assert fleet.other.inspector.thing(there.thing_name) is not None
    assert fleet.registry.inspector.thing(there.thing_name) is None
    assert fleet.registry.inspector.thing(here.thing_name) is not None


def test_a_clone_racing_the_genuine_device_in_the_other_region_is_denied_and_leaves_nothing(
    fleet: GlobalFleet,
) -> None:
    identity = _identity("TS-710003")

    with ThreadPoolExecutor(max_workers=2) as pool:
        racing = {region: pool.submit(_attempt, each, identity) for region, each in fleet.regions.items()}
    outcomes = {region: attempt.result() for region, attempt in racing.items()}

    approvals = [region for region, outcome in outcomes.items() if isinstance(outcome, ProvisionedDevice)]
    assert len(approvals) <= 1, "one serial approved in both regions"
    if not approvals:  # both refused while racing (a registry conflict fails closed): the genuine one retries
        outcomes[REGISTRY_REGION] = fleet.registry.target.provision(identity)
    [winner] = [region for region, outcome in outcomes.items() if isinstance(outcome, ProvisionedDevice)]
    [loser] = [region for region in outcomes if region != winner]
    approved, denied = outcomes[winner], outcomes[loser]
    assert isinstance(approved, ProvisionedDevice)
    assert isinstance(denied, Rejected)
    assert (denied.operation, denied.error_code) == ("RegisterThing", HOOK_DENIED)
    assert fleet.regions[loser].hook_denial(identity.serial_number) is not None
    registry = fleet.registry.wait_for_status([identity.serial_number], DeviceStatus.ACTIVE)
    item = registry[identity.serial_number]
    assert (item[Attr.REGION], item[Attr.CERTIFICATE_ID]) == (winner, approved.certificate_id)
    _, bindings = fleet.registry.inspector.registry_contents(fleet.registry.registry_table)
    assert bindings.get(denied.certificate_id or "") is None
    assert fleet.regions[loser].inspector.thing(approved.thing_name) is None
    assert fleet.regions[winner].inspector.thing(approved.thing_name) is not None
    assert denied.certificate_id is not None
    certificate = fleet.regions[loser].inspector.certificate(denied.certificate_id)
    assert certificate is not None
    assert (certificate.status, certificate.policies, certificate.things) == ("PENDING_ACTIVATION", [], [])
    assert fleet.regions[winner].inspector.certificate(denied.certificate_id) is None


def test_a_device_revoked_through_fleetctl_is_refused_in_its_region(fleet: GlobalFleet) -> None:
    device = fleet.other.target.provision(_identity("TS-710004"))
    fleet.registry.wait_for_status(["TS-710004"], DeviceStatus.ACTIVE)

    result = fleet.fleetctl("revoke", "TS-710004", "--reason", "stolen")

    assert result["serial"] == "TS-710004"
    certificate = fleet.other.inspector.certificate(device.certificate_id)
    assert certificate is not None
    assert (certificate.status, certificate.things) == ("REVOKED", [])
    assert fleet.registry.inspector.registry(fleet.registry.registry_table)["TS-710004"][Attr.STATUS] == (
        DeviceStatus.REVOKED
    )
    expect_new_connection_refused(fleet.other, device)
    with pytest.raises(Rejected) as again:  # the same serial with new keys, in the same region
        fleet.other.target.provision(_identity("TS-710004"))
    assert again.value.error_code == HOOK_DENIED
