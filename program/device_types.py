"""Device types in stack config: a name, or an object with the hook's rules for that type and the state its
devices' shadows start with."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hook.vendor_rules import serial_for
from program.vendors import VendorSettings

DEFAULT_DEVICE_TYPES: Final = ("temperature-sensor", "humidity-sensor", "pressure-sensor", "gateway")
DEFAULT_INITIAL_SHADOW: Final = {"telemetryIntervalSeconds": 300}
SHADOW_DOCUMENT_MAX_BYTES: Final = 4096
"""Half of AWS IoT's 8 KB shadow document limit, leaving room for what devices report."""


def _fits_a_shadow(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value).encode())
    if size > SHADOW_DOCUMENT_MAX_BYTES:
        raise ValueError(
            f"expected a desired-state object of at most {SHADOW_DOCUMENT_MAX_BYTES} bytes, got {size}"
        )
    return value


ShadowDocument = Annotated[dict[str, Any], AfterValidator(_fits_a_shadow)]
"""The desired state a new device's shadow starts with."""


class DeviceTypeSettings(BaseModel):
    """One device type and the hook rules for it; a bare name is a type without rules."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str
    serial_pattern: str | None = Field(default=None, alias="serialPattern")
    """Regular expression the whole serial number must match; ``None`` for any serial."""
    manufacturers: tuple[str, ...] | None = None
    """Manufacturers allowed to make this type; ``None`` for any."""
    min_firmware_version: str | None = Field(default=None, alias="minFirmwareVersion")
    """Oldest firmware (``x.y.z``) allowed to provision; ``None`` for any."""
    initial_shadow: ShadowDocument | None = Field(default=None, alias="initialShadow")
    """Desired state this type's shadow starts with; ``None`` for the stack's ``initialShadow``."""
    retired: bool = False
    """No new device of this type may provision; its policy, thing type and group stay for the devices
    that have it. Remove the type from config once no device has it."""
    key_binding: bool = Field(default=False, alias="keyBinding")
    """A serial of this type provisions only with a certificate of the key the factory registered for it
    (pre-registration with the key is implied); see also the stack-wide ``requireKeyBinding``."""
    vendor: VendorSettings | None = None
    """The chip vendor whose elements this type trusts: signed manifests, and with ``zeroTouch``
    provisioning from the vendor's device certificate alone."""

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def zero_touch(self) -> bool:
        """Whether this type provisions from a vendor certificate chain, with no pre-registration."""
        return self.vendor is not None and self.vendor.zero_touch

    def serial_for_unique_id(self, unique_id: str) -> str:
        """The serial the vendor's rule makes of an element's unique id; ``ValueError`` when this type has
        no vendor, or the id is not lowercase hex, or the serial does not match ``serialPattern``."""
        if self.vendor is None:
            raise ValueError(f"device type {self.name!r} names no vendor")
        pattern = re.compile(self.serial_pattern, re.ASCII) if self.serial_pattern else None
        return serial_for(self.vendor.serial, unique_id, pattern)

    def rule(self) -> dict[str, Any]:
        """This type's entry in the hook's rules file."""
        return {
            "serialPattern": self.serial_pattern,
            "manufacturers": list(self.manufacturers) if self.manufacturers is not None else None,
            "minFirmwareVersion": self.min_firmware_version,
            "retired": self.retired,
            "keyBinding": self.key_binding,
            "zeroTouch": self.vendor.zero_touch_rule() if self.vendor is not None else None,
        }
