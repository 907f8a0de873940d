"""Zero-touch on the emulator: the local stack's ``smart-meter`` type trusts the simulated vendor whose root
the deployment pinned (``local/deploy/vendor_roots.py``); the session's fleet holds its devices
(``local/scenario/zero_touch.py``).

- a genuine element provisions with no manifest: its registry item records the vendor signer's thumbprint,
  the element's unique id and key, and becomes ``ACTIVE``;
- a device holding the claim certificate and a self-made chain, or a genuine chain with another key, is
  denied with its reason and leaves nothing behind: no registry item, no certificate binding, no thing, and
  its certificate still ``PENDING_ACTIVATION`` with no policy.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from hook.contract import Attr, DeviceStatus, certificate_binding_key, thing_name
from local.devices.fleet_runner import Outcome
from local.devices.sample_fleet import APPROVED
from local.scenario.provisioned_fleet import Fleet
from local.scenario.result_tables import outcome_result
from local.scenario.sandbox import Sandbox
from tests.e2e.test_key_binding import _items_naming, _raw_item

pytestmark = pytest.mark.e2e


def _zero_touch(box: Sandbox, fleet: Fleet) -> list[Outcome]:
    types = {device_type.name for device_type in box.settings.device_types if device_type.zero_touch}
    return [outcome for outcome in fleet.outcomes if outcome.device.identity.device_type in types]


def test_a_genuine_element_provisions_with_no_manifest_and_records_its_attestation(
    box: Sandbox, fleet: Fleet
) -> None:
    [genuine] = [outcome for outcome in _zero_touch(box, fleet) if outcome.approved]
    serial = genuine.device.identity.serial_number
    item = box.wait_for_status([serial], DeviceStatus.ACTIVE)[serial]
    signer = box.stack.vendor.device_signer.certificate.public_bytes(serialization.Encoding.DER)
    element = genuine.device.element
    assert element is not None
    assert item[Attr.STATUS] == DeviceStatus.ACTIVE
    assert item[Attr.ATTESTED_BY] == hashlib.sha256(signer).hexdigest()
    assert serial == f"SM-{item[Attr.UNIQUE_ID]}"
    assert item[Attr.PUBLIC_KEY_SHA256] == element.public_key_sha256()


def test_a_self_made_chain_or_a_genuine_chain_with_another_key_is_denied_and_leaves_nothing(
    box: Sandbox, fleet: Fleet
) -> None:
    forged = [outcome for outcome in _zero_touch(box, fleet) if not outcome.approved]
    assert sorted(outcome_result(outcome) for outcome in forged) == [
        "VendorChainUntrusted",
        "VendorKeyMismatch",
    ]
    assert [outcome_result(o) for o in _zero_touch(box, fleet)].count(APPROVED) == 1
    for outcome in forged:
        serial = outcome.device.identity.serial_number
        certificate_id = outcome.rejected_certificate_id
        assert certificate_id is not None
        assert _raw_item(box, serial) is None
        assert _raw_item(box, certificate_binding_key(certificate_id)) is None
        assert _items_naming(box, certificate_id) == []
        assert box.inspector.thing(thing_name(box.settings.base_name, serial)) is None
        certificate = box.inspector.certificate(certificate_id)
        assert certificate is not None
        assert (certificate.status, certificate.policies, certificate.things) == (
            "PENDING_ACTIVATION",
            [],
            [],
        )
