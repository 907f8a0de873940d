"""The forms of single stack settings: each an annotated type with its constraint and the expected form
that :mod:`program.config` reports when a value does not fit."""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

from pydantic import Field, StringConstraints

from program.claim_generations import ClaimGenerationSettings
from program.constraints import expected, name_part
from program.device_types import DeviceTypeSettings

IOT_HOOK_DEADLINE_SECONDS: Final = 5
_TAG_CHARACTERS: Final = r"[\w .:/=+\-@]"

RetentionPeriod = Literal[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653
]
"""The retention periods CloudWatch Logs accepts."""
LOG_RETENTION_DAYS: Final = frozenset(get_args(RetentionPeriod))

Environment = Annotated[
    str, name_part(16), expected("expected 1-16 characters of a-z 0-9 -, starting with a letter or digit")
]
ResourcePrefix = Annotated[
    str, name_part(32), expected("expected 1-32 characters of a-z 0-9 -, starting with a letter or digit")
]
HookTimeout = Annotated[
    int,
    Field(ge=1, le=IOT_HOOK_DEADLINE_SECONDS),
    expected(
        f"expected 1-{IOT_HOOK_DEADLINE_SECONDS} seconds: AWS IoT stops waiting for the pre-provisioning "
        f"hook after {IOT_HOOK_DEADLINE_SECONDS} seconds and denies the device"
    ),
]
EmailOrEmpty = Annotated[
    str,
    StringConstraints(pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    expected("expected an e-mail address such as alerts@example.com, or empty for none"),
]
TagKey = Annotated[
    str,
    StringConstraints(pattern=f"^{_TAG_CHARACTERS}*$", min_length=1, max_length=128),
    expected("expected a tag key of 1-128 letters, digits, spaces or _.:/=+-@"),
]
TagValue = Annotated[
    str,
    StringConstraints(pattern=f"^{_TAG_CHARACTERS}*$", max_length=256),
    expected("expected a tag value of 0-256 letters, digits, spaces or _.:/=+-@"),
]
RetentionDays = Annotated[
    RetentionPeriod, expected(f"expected one of CloudWatch's retention periods: {sorted(LOG_RETENTION_DAYS)}")
]
DeviceTypes = Annotated[
    tuple[DeviceTypeSettings, ...],
    Field(min_length=1),
    expected("expected a non-empty list of names or {name, serialPattern, ...} objects"),
]
DeviceKeys = Annotated[
    Literal["device-or-aws", "device"],
    expected(
        'expected "device" (devices make their key pair and send a CSR: CreateCertificateFromCsr only) or '
        '"device-or-aws" (CreateKeysAndCertificate too)'
    ),
]
PayloadFormat = Literal["json", "cbor"]
PAYLOAD_FORMATS: Final[tuple[PayloadFormat, ...]] = get_args(PayloadFormat)
PayloadFormats = Annotated[
    tuple[PayloadFormat, ...],
    Field(min_length=1),
    expected('expected a non-empty list of "json" and "cbor", e.g. ["json"] or ["json", "cbor"]'),
]
ClaimGenerations = Annotated[
    tuple[ClaimGenerationSettings, ...],
    Field(min_length=1),
    expected(
        "expected a non-empty list of generation names or {name, csr, active, maxProvisioningPerHour}, "
        'e.g. ["1"]'
    ),
]
