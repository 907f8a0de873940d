"""Pure validation of provisioning requests against the configured rule set.

Nothing here does I/O except :func:`load_rules`, which reads the rules file once per cold start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hook.contract import (
    NAME_CHARSET,
    SERIAL_NUMBER_MAX_LENGTH,
    VENDOR_CHAIN_PARAMETER,
    Parameter,
    ProvisioningDenied,
    RejectionReason,
)
from hook.regex_safety import unsafe_construct
from hook.vendor_rules import (
    CERTIFICATE_SERIAL_FORM,
    ZeroTouchRule,
    certificate_serial,
    check_serial_rule,
)

DECLARED_PARAMETERS: Final = frozenset({*Parameter, VENDOR_CHAIN_PARAMETER})
"""The only keys a request's ``parameters`` may hold: those the template declares
(``components/documents.py``); the vendor chain is read for zero-touch types only (:mod:`hook.vendor_chain`).
AWS IoT adds none of its own: the hook's ``parameters`` are "the properties in the parameters argument passed
in the RegisterThing request payload" (developer guide, "Pre-provisioning hooks")."""
_LOGGED_NAME_MAX_LENGTH: Final = 64
RAW_VALUE_MAX_LENGTH: Final = 1024
"""Values longer than this are refused before any other work is done on them."""

MAX_LENGTHS: Final[Mapping[Parameter, int]] = {
    Parameter.SERIAL_NUMBER: SERIAL_NUMBER_MAX_LENGTH,
    Parameter.DEVICE_TYPE: 64,
    Parameter.MANUFACTURER: 64,
    Parameter.FIRMWARE_VERSION: 32,
    Parameter.LOCATION: 128,
}
"""Longest accepted value of each parameter, after trimming."""

_NAME = re.compile(f"{NAME_CHARSET}+")
_ATTRIBUTE_VALUE = re.compile(r"[A-Za-z0-9_.,@/:#=\[\]-]+")
"""AWS IoT thing attribute values: the template stores every parameter as one."""
_FIRMWARE = re.compile(r"v?([0-9]{1,9})\.([0-9]{1,9})\.([0-9]{1,9})")
_SERIAL_PATTERN_MAX_LENGTH: Final = 256

FirmwareVersion = tuple[int, int, int]


class RulesError(ValueError):
    """The rules document is unusable; the message names the field and the expected form."""


@dataclass(frozen=True)
class DeviceTypeRule:
    """What one device type accepts; ``None`` means no restriction."""

    serial_pattern: re.Pattern[str] | None = None
    manufacturers: frozenset[str] | None = None
    min_firmware_version: FirmwareVersion | None = None
    retired: bool = False
    """No new device of this type may provision; its devices and resources stay."""
    key_binding: bool = False
    """A serial of this type provisions only with a certificate of the key registered for it (exported from
    its secure element at the factory): pre-registration with the key is implied."""
    zero_touch: ZeroTouchRule | None = None
    """A device of this type provisions with its vendor certificate chain (:mod:`hook.vendor_chain`), no
    pre-registration needed; ``None`` for the other types."""


@dataclass(frozen=True)
class RuleSet:
    """The whole rule set of a deployment."""

    device_types: Mapping[str, DeviceTypeRule]
    require_preregistration: bool = False


@dataclass(frozen=True)
class DeviceRequest:
    """A validated, normalised provisioning request."""

    serial_number: str
    device_type: str
    manufacturer: str
    firmware_version: str
    location: str

    def parameters(self) -> dict[str, str]:
        """The normalised values keyed by provisioning parameter name."""
        return {
            Parameter.SERIAL_NUMBER.value: self.serial_number,
            Parameter.DEVICE_TYPE.value: self.device_type,
            Parameter.MANUFACTURER.value: self.manufacturer,
            Parameter.FIRMWARE_VERSION.value: self.firmware_version,
            Parameter.LOCATION.value: self.location,
        }

    def firmware_older_than(self, recorded: str) -> bool:
        """Whether this request's firmware is older than ``recorded``, both read by
        :func:`parse_firmware_version`; ``False`` when ``recorded`` is not a version (nothing to compare)."""
        mine, theirs = parse_firmware_version(self.firmware_version), parse_firmware_version(recorded)
        return mine is not None and theirs is not None and mine < theirs


def parse_firmware_version(text: str) -> FirmwareVersion | None:
    """``"1.2.3"`` or ``"v1.2.3"`` as a comparable tuple, or ``None`` when it is not of that form."""
    match = _FIRMWARE.fullmatch(text)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def format_firmware_version(version: FirmwareVersion) -> str:
    """The canonical ``x.y.z`` spelling of a firmware version."""
    return ".".join(str(part) for part in version)


def is_valid_name(text: str) -> bool:
    """Whether ``text`` can be used in a thing, thing type or thing group name."""
    return _NAME.fullmatch(text) is not None


# --- the rules document --------------------------------------------------------------------------------


def load_rules(path: Path) -> RuleSet:
    """Read and validate the rules JSON file at ``path``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RulesError(f"cannot read rules file {path}: {error.strerror or error}") from error
    except ValueError as error:
        raise RulesError(f"rules file {path} is not valid JSON: {error}") from error
    return parse_rules(document)


def parse_rules(document: object) -> RuleSet:
    """Validate a rules document of the form ``{"deviceTypes": {name: {serialPattern, manufacturers,
    minFirmwareVersion, retired, keyBinding, zeroTouch}}, "requirePreregistration": bool}``; unknown keys are
    errors.
    """
    root = _object(document, "rules", required={"deviceTypes"}, optional={"requirePreregistration"})
    device_types = _object(root["deviceTypes"], "deviceTypes")
    if not device_types:
        raise RulesError("deviceTypes: expected at least one device type, got none")
    require_preregistration = root.get("requirePreregistration", False)
    if not isinstance(require_preregistration, bool):
        raise RulesError(f"requirePreregistration: expected true or false, got {require_preregistration!r}")
    return RuleSet(
        device_types={name: _device_type_rule(name, rule) for name, rule in device_types.items()},
        require_preregistration=require_preregistration,
    )


def _device_type_rule(name: str, document: object) -> DeviceTypeRule:
    where = f"deviceTypes.{name}"
    if not (is_valid_name(name) and len(name) <= MAX_LENGTHS[Parameter.DEVICE_TYPE]):
        raise RulesError(
            f"{where}: a device type name must be 1-{MAX_LENGTHS[Parameter.DEVICE_TYPE]} characters "
            f"of A-Z a-z 0-9 : _ -"
        )
    rule = _object(
        document,
        where,
        optional={
            "serialPattern",
            "manufacturers",
            "minFirmwareVersion",
            "retired",
            "keyBinding",
            "zeroTouch",
        },
    )
    return DeviceTypeRule(
        serial_pattern=_serial_pattern(rule.get("serialPattern"), f"{where}.serialPattern"),
        manufacturers=_manufacturers(rule.get("manufacturers"), f"{where}.manufacturers"),
        min_firmware_version=_min_firmware(rule.get("minFirmwareVersion"), f"{where}.minFirmwareVersion"),
        retired=_flag(rule, "retired", where),
        key_binding=_flag(rule, "keyBinding", where),
        zero_touch=_zero_touch(rule.get("zeroTouch"), f"{where}.zeroTouch"),
    )


def _zero_touch(value: object, where: str) -> ZeroTouchRule | None:
    """``{"roots": [PEM...], "serial": "SL-{uniqueId}", "deniedCertificates": [hex...]}``, or null. The PEMs
    are only checked to be certificates' here; :mod:`hook.vendor_chain` reads them on first use."""
    if value is None:
        return None
    rule = _object(value, where, required={"roots", "serial"}, optional={"deniedCertificates"})
    roots, serial, denied = rule["roots"], rule["serial"], rule.get("deniedCertificates", [])
    if not (isinstance(roots, list) and roots and all(_is_pem_certificate(root) for root in roots)):
        raise RulesError(f"{where}.roots: expected a non-empty list of PEM certificates")
    try:
        check_serial_rule(serial if isinstance(serial, str) else repr(serial))
    except ValueError as error:
        raise RulesError(f"{where}.serial: {error}") from None
    try:
        if not isinstance(denied, list) or not all(isinstance(each, str) for each in denied):
            raise ValueError(f"expected a list of {CERTIFICATE_SERIAL_FORM}")
        denied_serials = frozenset(certificate_serial(each) for each in denied)
    except ValueError as error:
        raise RulesError(f"{where}.deniedCertificates: {error}") from None
    return ZeroTouchRule(tuple(roots), serial, denied_serials)


def _is_pem_certificate(text: object) -> bool:
    return (
        isinstance(text, str)
        and text.startswith("-----BEGIN CERTIFICATE-----")
        and text.rstrip().endswith("-----END CERTIFICATE-----")
    )


def _flag(rule: dict[str, Any], name: str, where: str) -> bool:
    value = rule.get(name, False)
    if not isinstance(value, bool):
        raise RulesError(f"{where}.{name}: expected true or false, got {value!r}")
    return value


def _serial_pattern(value: object, where: str) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _SERIAL_PATTERN_MAX_LENGTH:
        raise RulesError(
            f"{where}: expected a regular expression of 1-{_SERIAL_PATTERN_MAX_LENGTH} characters"
        )
    try:
        pattern = re.compile(value, re.ASCII)
    except re.error as error:
        raise RulesError(f"{where}: {value!r} is not a valid regular expression: {error}") from error
    problem = unsafe_construct(value)
    if problem:
        raise RulesError(f"{where}: {value!r} could make matching slow ({problem}); use character classes")
    return pattern


def _manufacturers(value: object, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise RulesError(f"{where}: expected a non-empty list of manufacturer names, or null")
    for item in value:
        if not (isinstance(item, str) and _is_attribute_value(item, Parameter.MANUFACTURER)):
            raise RulesError(
                f"{where}: {item!r} is not a valid manufacturer (1-{MAX_LENGTHS[Parameter.MANUFACTURER]} "
                "characters of A-Z a-z 0-9 _ . , @ / : # = [ ] -)"
            )
    return frozenset(value)


def _min_firmware(value: object, where: str) -> FirmwareVersion | None:
    if value is None:
        return None
    version = parse_firmware_version(value) if isinstance(value, str) else None
    if version is None:
        raise RulesError(f'{where}: expected "x.y.z" or "vx.y.z" (digits), or null; got {value!r}')
    return version


def _object(
    value: object,
    where: str,
    required: frozenset[str] | set[str] = frozenset(),
    optional: set[str] | None = None,
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RulesError(f"{where}: expected a JSON object, got {type(value).__name__}")
    missing = sorted(required - value.keys())
    if missing:
        raise RulesError(f"{where}: missing required key(s) {', '.join(missing)}")
    if optional is not None:
        unknown = sorted(value.keys() - required - optional)
        if unknown:
            allowed = ", ".join(sorted(required | optional))
            raise RulesError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
    return value


# --- requests ------------------------------------------------------------------------------------------


def validate_request(parameters: object, rules: RuleSet) -> DeviceRequest:
    """Check request parameters against ``rules``; raise :class:`ProvisioningDenied` at the first problem."""
    if not isinstance(parameters, dict):
        raise ProvisioningDenied(RejectionReason.MALFORMED_EVENT, "parameters must be a JSON object")
    _refuse_undeclared(parameters)
    values = {name: _clean(parameters, name) for name in Parameter}

    serial = values[Parameter.SERIAL_NUMBER]
    if not is_valid_name(serial):
        raise _invalid(Parameter.SERIAL_NUMBER, "may only contain A-Z a-z 0-9 : _ -")
    device_type = values[Parameter.DEVICE_TYPE]
    rule = rules.device_types.get(device_type)
    if rule is None:
        raise ProvisioningDenied(
            RejectionReason.UNKNOWN_DEVICE_TYPE,
            f"DeviceType {device_type!r} is not a configured device type",
            Parameter.DEVICE_TYPE,
        )
    if rule.retired:
        raise ProvisioningDenied(
            RejectionReason.DEVICE_TYPE_RETIRED,
            f"DeviceType {device_type!r} is retired: no new device of it may provision",
            Parameter.DEVICE_TYPE,
        )
    for name in (Parameter.MANUFACTURER, Parameter.LOCATION):
        if not _ATTRIBUTE_VALUE.fullmatch(values[name]):
            raise _invalid(name, "may only contain A-Z a-z 0-9 _ . , @ / : # = [ ] -")
    firmware = parse_firmware_version(values[Parameter.FIRMWARE_VERSION])
    if firmware is None:
        raise _invalid(Parameter.FIRMWARE_VERSION, 'must look like "1.2.3" or "v1.2.3"')

    if rule.serial_pattern is not None and not rule.serial_pattern.fullmatch(serial):
        raise ProvisioningDenied(
            RejectionReason.SERIAL_PATTERN_MISMATCH,
            f"SerialNumber does not match the pattern of device type {device_type!r}",
            Parameter.SERIAL_NUMBER,
        )
    manufacturer = values[Parameter.MANUFACTURER]
    if rule.manufacturers is not None and manufacturer not in rule.manufacturers:
        raise ProvisioningDenied(
            RejectionReason.MANUFACTURER_NOT_ALLOWED,
            f"Manufacturer {manufacturer!r} is not allowed for device type {device_type!r}",
            Parameter.MANUFACTURER,
        )
    if rule.min_firmware_version is not None and firmware < rule.min_firmware_version:
        raise ProvisioningDenied(
            RejectionReason.FIRMWARE_TOO_OLD,
            f"FirmwareVersion {format_firmware_version(firmware)} is older than the minimum "
            f"{format_firmware_version(rule.min_firmware_version)} for device type {device_type!r}",
            Parameter.FIRMWARE_VERSION,
        )
    return DeviceRequest(
        serial_number=serial,
        device_type=device_type,
        manufacturer=manufacturer,
        firmware_version=format_firmware_version(firmware),
        location=values[Parameter.LOCATION],
    )


def _refuse_undeclared(parameters: dict[Any, Any]) -> None:
    """Deny a request with any key the template does not declare, naming the first one, shortened and
    escaped (it is device input)."""
    undeclared = sorted(str(name) for name in parameters.keys() - DECLARED_PARAMETERS)
    if undeclared:
        first = ascii(undeclared[0][:_LOGGED_NAME_MAX_LENGTH])
        raise ProvisioningDenied(
            RejectionReason.UNKNOWN_PARAMETER,
            f"{len(undeclared)} parameter(s) the template does not declare, first {first}; "
            f"declared: {', '.join(Parameter)}",
        )


def _clean(parameters: dict[Any, Any], name: Parameter) -> str:
    """The parameter's trimmed value, refused when absent, not a string, empty or too long."""
    value = parameters.get(name)
    if value is None:
        raise ProvisioningDenied(RejectionReason.MISSING_PARAMETER, f"{name} is missing", name)
    if not isinstance(value, str):
        raise _invalid(name, f"must be a string, got {type(value).__name__}")
    if len(value) > RAW_VALUE_MAX_LENGTH:
        raise _invalid(name, f"is longer than {MAX_LENGTHS[name]} characters")
    value = value.strip()
    if not value:
        raise ProvisioningDenied(RejectionReason.MISSING_PARAMETER, f"{name} is empty", name)
    if len(value) > MAX_LENGTHS[name]:
        raise _invalid(name, f"is longer than {MAX_LENGTHS[name]} characters")
    return value


def _is_attribute_value(text: str, name: Parameter) -> bool:
    return len(text) <= MAX_LENGTHS[name] and _ATTRIBUTE_VALUE.fullmatch(text) is not None


def _invalid(name: Parameter, problem: str) -> ProvisioningDenied:
    return ProvisioningDenied(RejectionReason.INVALID_PARAMETER, f"{name} {problem}", name)
