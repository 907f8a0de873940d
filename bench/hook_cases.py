"""The hook benchmark's cases: a stack without key binding ("plain"), a device type that binds keys
("binding") and a zero-touch device type that trusts a vendor root ("zero-touch"), with the devices that
provision through each. All run with the claim breaker on: its check rides in every approval's transaction
(``hook/claim_breaker.py``); the open breaker's denials are counted by ``bench/hook_overhead.py``'s
``measure_requests``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from fleetctl.operator_transitions import OperatorRecords
from hook.contract import VENDOR_CHAIN_PARAMETER
from hook.registry_items import timestamp
from hook.rules import parse_rules, validate_request
from local.devices.vendor import Vendor
from tests.support import (
    RULES,
    device_certificate,
    device_key,
    element_certificate,
    hook_event,
    key_fingerprint,
    valid_parameters,
)

BINDING_TYPE: Final = "secure-sensor"
"""The bench's device type that binds keys; its serials are ``SS-<n>``."""
BINDING_RULES: Final[dict[str, Any]] = {
    **RULES,
    "deviceTypes": {**RULES["deviceTypes"], BINDING_TYPE: {"keyBinding": True}},
}

ZERO_TOUCH_TYPE: Final = "vendor-meter"
"""The bench's zero-touch device type; its serials are ``VM-<unique id>``."""
VENDOR: Final = Vendor("Bench Silicon")
"""The simulated vendor whose root the zero-touch type pins; made once per process."""
ZERO_TOUCH_SERIAL: Final = "VM-{uniqueId}"
ZERO_TOUCH_RULES: Final[dict[str, Any]] = {
    **RULES,
    "deviceTypes": {
        **RULES["deviceTypes"],
        ZERO_TOUCH_TYPE: {
            "zeroTouch": {"roots": [VENDOR.root.certificate_pem()], "serial": ZERO_TOUCH_SERIAL}
        },
    },
}


@dataclass(frozen=True)
class Device:
    """A device that may provision through the hook: its parameters and, for key binding, its certificate
    (issued for its own key) and that key's fingerprint as the factory registered it."""

    parameters: dict[str, Any]
    certificate_pem: str | None = None
    key_sha256: str | None = None

    def event(self, certificate: str) -> dict[str, Any]:
        """The hook event of this device registering the certificate ``certificate`` names."""
        event = hook_event(self.parameters, certificate=certificate)
        if self.certificate_pem is not None:
            event["certificatePem"] = self.certificate_pem
        return event


def plain_device(number: int) -> Device:
    """A temperature sensor: a type without key binding."""
    return Device(valid_parameters(SerialNumber=f"TS-{number:06d}"))


def binding_device(number: int) -> Device:
    """A device of :data:`BINDING_TYPE` with a new P-256 key and a certificate of it."""
    key = device_key()
    serial = f"SS-{number:06d}"
    return Device(
        valid_parameters(SerialNumber=serial, DeviceType=BINDING_TYPE),
        device_certificate(key, common_name=serial),
        key_fingerprint(key),
    )


def zero_touch_device(number: int) -> Device:
    """A device of :data:`ZERO_TOUCH_TYPE`: a new element of :data:`VENDOR` (its unique id makes the serial;
    ``number`` plays no part), its factory chain and a certificate of its key; no pre-registration."""
    del number
    made = VENDOR.make_element()
    parameters = valid_parameters(
        SerialNumber=ZERO_TOUCH_SERIAL.replace("{uniqueId}", made.unique_id),
        DeviceType=ZERO_TOUCH_TYPE,
        **{VENDOR_CHAIN_PARAMETER: made.chain_parameter()},
    )
    return Device(parameters, element_certificate(made.element))


def zero_touch_type_config(root_file: str) -> dict[str, Any]:
    """The stack config entry of :data:`ZERO_TOUCH_TYPE`, pinning the root written to ``root_file``."""
    vendor = {"roots": [root_file], "serial": ZERO_TOUCH_SERIAL, "zeroTouch": True}
    return {"name": ZERO_TOUCH_TYPE, "vendor": vendor}


def preregister(records: OperatorRecords, device: Device) -> None:
    """Pre-register ``device`` with its key, as ``fleetctl preregister`` does from a factory manifest."""
    request = validate_request(device.parameters, parse_rules(BINDING_RULES))
    if records.preregister(request, timestamp(), public_key_sha256=device.key_sha256) is not None:
        raise RuntimeError(f"{request.serial_number} was already in the registry")


@dataclass(frozen=True)
class Case:
    """One way of provisioning: the rules the hook is deployed with and the devices that provision."""

    name: str
    rules: dict[str, Any]
    device: Callable[[int], Device]


PLAIN: Final = Case("plain", RULES, plain_device)
BINDING: Final = Case("binding", BINDING_RULES, binding_device)
ZERO_TOUCH: Final = Case("zero-touch", ZERO_TOUCH_RULES, zero_touch_device)
CASES: Final = (PLAIN, BINDING, ZERO_TOUCH)
