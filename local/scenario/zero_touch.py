"""Zero-touch devices of the scenario: made by the simulated vendor whose root the deployment pinned
(``local/deploy/vendor_roots.py``), so they cannot live in the sample fleet file. The genuine element
provisions with no pre-registration; a counterfeit vendor's chain, and a genuine chain sent with another key,
are denied."""

from __future__ import annotations

from local.devices.firmware import Identity
from local.devices.sample_fleet import APPROVED, FleetDevice
from local.devices.secure_element import SecureElement
from local.devices.vendor import Vendor, VendorElement
from local.scenario.deployment import Deployment
from local.scenario.expectations import present
from program.device_types import DeviceTypeSettings

COUNTERFEIT_VENDOR = "Counterfeit Chips Ltd"


def zero_touch_devices(deployment: Deployment) -> list[FleetDevice]:
    """For the stack's first zero-touch type (``smart-meter`` in the local stack), none if it has none: a
    genuine element of the deployment's vendor (approved), a counterfeit vendor's element with its own
    self-made chain (``VendorChainUntrusted``), and a genuine element's chain sent by a device whose key is
    another (``VendorKeyMismatch``): someone who copied a chain, holding the claim certificate."""
    zero_touch = [device_type for device_type in deployment.settings.device_types if device_type.zero_touch]
    if not zero_touch:
        return []
    vendor = present(deployment.vendor, "the vendor whose root the zero-touch type pins")
    genuine, counterfeit, copied = (
        vendor.make_element(),
        Vendor(COUNTERFEIT_VENDOR).make_element(),
        vendor.make_element(),
    )
    device_type = zero_touch[0]
    return [
        _device(device_type, genuine, genuine.element, APPROVED, "plant-d/meter-1"),
        _device(device_type, counterfeit, counterfeit.element, "VendorChainUntrusted", "unknown"),
        _device(device_type, copied, SecureElement(), "VendorKeyMismatch", "unknown"),
    ]


def _device(
    device_type: DeviceTypeSettings, made: VendorElement, keys: SecureElement, expect: str, location: str
) -> FleetDevice:
    serial = device_type.serial_for_unique_id(made.unique_id)
    identity = Identity(serial, device_type.name, "AcmeIoT", "1.0.0", location)
    return FleetDevice(identity, expect, keys, vendor_chain=made.chain_parameter())
