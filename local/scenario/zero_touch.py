"""Zero-touch devices of the local stack: made by the simulated vendor whose root the deployment pinned
(``local/deploy/vendor_roots.py``), so they cannot live in the sample fleet file. The genuine element
provisions with no pre-registration; a counterfeit vendor's chain, and a genuine chain sent with another key,
are denied."""

from __future__ import annotations

from local.devices.firmware import Identity
from local.devices.sample_fleet import APPROVED, FleetDevice
from local.devices.secure_element import SecureElement
from local.devices.vendor import Vendor, VendorElement
from local.scenario.expectations import present
from program.device_types import DeviceTypeSettings
from program.settings import Settings

COUNTERFEIT_VENDOR = "Counterfeit Chips Ltd"


def zero_touch_type(settings: Settings) -> DeviceTypeSettings:
    """The stack's first zero-touch device type (``smart-meter`` in the local stack)."""
    found = next((device_type for device_type in settings.device_types if device_type.zero_touch), None)
    return present(found, "a zero-touch device type in the stack config")


def zero_touch_devices(vendor: Vendor, settings: Settings) -> list[FleetDevice]:
    """A genuine element of ``vendor`` (approved), a counterfeit vendor's element with its own self-made
    chain (``VendorChainUntrusted``), and a genuine element's chain sent by a device whose key is another
    (``VendorKeyMismatch``): someone who copied a chain, holding the claim certificate."""
    device_type = zero_touch_type(settings)
    genuine, counterfeit, copied = (
        vendor.make_element(),
        Vendor(COUNTERFEIT_VENDOR).make_element(),
        vendor.make_element(),
    )
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
