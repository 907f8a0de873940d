"""Stack settings: read from Pulumi config once, validated, frozen, handed to the components.

Components never read config; they receive a :class:`Settings`. Every problem is reported before any
resource is declared, naming the key, the value and the expected form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import pulumi
from pulumi.runtime import config as pulumi_config
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components.powertools import LayerUnavailable, powertools_layer_arn
from hook.contract import template_name
from hook.rules import RulesError, parse_rules

PROJECT: Final = "iot-fleet-provisioning"
DEFAULT_DEVICE_TYPES: Final = ("temperature-sensor", "humidity-sensor", "pressure-sensor", "gateway")
IOT_HOOK_DEADLINE_SECONDS: Final = 5
LOG_RETENTION_DAYS_DEFAULT: Final = 30
PROD_LOG_RETENTION_DAYS: Final = 365
TEMPLATE_NAME_MAX_LENGTH: Final = 36
"""AWS IoT's limit on a provisioning template name; it also keeps ``<base name>-<serial>`` within a thing
name's 128 characters."""
LOG_RETENTION_DAYS: Final = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
"""The retention periods CloudWatch Logs accepts."""

_NAME_PART = re.compile(r"[a-z0-9][a-z0-9-]*")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TAG_KEY = re.compile(r"[\w .:/=+\-@]{1,128}")
_TAG_VALUE = re.compile(r"[\w .:/=+\-@]{0,256}")
_RESERVED_TAG_KEYS: Final = frozenset({"Project", "Environment", "ManagedBy"})
DEFAULT_INITIAL_SHADOW: Final = {"telemetryIntervalSeconds": 300}
SHADOW_DOCUMENT_MAX_BYTES: Final = 4096
"""Half of AWS IoT's 8 KB shadow document limit, leaving room for what devices report."""


def _shadow_document(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value).encode())
    if size > SHADOW_DOCUMENT_MAX_BYTES:
        raise ValueError(
            f"expected a desired-state object of at most {SHADOW_DOCUMENT_MAX_BYTES} bytes, got {size}"
        )
    return value


EventType = Literal[
    "CA_CERTIFICATE",
    "CERTIFICATE",
    "JOB",
    "JOB_EXECUTION",
    "POLICY",
    "THING",
    "THING_GROUP",
    "THING_GROUP_HIERARCHY",
    "THING_GROUP_MEMBERSHIP",
    "THING_TYPE",
    "THING_TYPE_ASSOCIATION",
]
"""AWS IoT's registry event types (API UpdateEventConfigurations)."""


class SettingsError(ValueError):
    """Stack config is invalid; the message lists every problem, one per line."""


class DeviceTypeSettings(BaseModel):
    """One device type and the hook rules for it."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str
    serial_pattern: str | None = Field(default=None, alias="serialPattern")
    """Regular expression the whole serial number must match; ``None`` for any serial."""
    manufacturers: tuple[str, ...] | None = None
    """Manufacturers allowed to make this type; ``None`` for any."""
    min_firmware_version: str | None = Field(default=None, alias="minFirmwareVersion")
    """Oldest firmware (``x.y.z``) allowed to provision; ``None`` for any."""
    initial_shadow: dict[str, Any] | None = Field(default=None, alias="initialShadow")
    """Desired state this type's shadow starts with; ``None`` for the stack's ``initialShadow``."""
    retired: bool = False
    """No new device of this type may provision; its policy, thing type and group stay for the devices
    that have it. Remove the type from config once no device has it."""

    @field_validator("initial_shadow")
    @classmethod
    def _initial_shadow(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _shadow_document(value)

    def rule(self) -> dict[str, Any]:
        """This type's entry in the hook's rules file."""
        return {
            "serialPattern": self.serial_pattern,
            "manufacturers": list(self.manufacturers) if self.manufacturers is not None else None,
            "minFirmwareVersion": self.min_firmware_version,
            "retired": self.retired,
        }


class ClaimGenerationSettings(BaseModel):
    """One generation of the claim certificate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """Names the generation's resources and alarm: 1-16 of a-z 0-9 -."""
    csr: str = ""
    """PEM CSR of this generation, so its private key never enters Pulumi state; empty to let AWS generate
    the key pair (the private key of the current generation is then a secret stack output)."""
    active: bool = True
    """False deactivates the certificate. Nothing in the program ever re-activates one."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not (_NAME_PART.fullmatch(value) and len(value) <= 16):
            raise ValueError(f"generation {value!r}: expected 1-16 characters of a-z 0-9 -")
        return value

    @field_validator("csr")
    @classmethod
    def _csr(cls, value: str) -> str:
        if value and "-----BEGIN CERTIFICATE REQUEST-----" not in value:
            raise ValueError("expected a PEM certificate signing request, or empty for an AWS-made key")
        return value


class Settings(BaseModel):
    """Everything the program needs, validated. Field aliases are the Pulumi config keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, alias_generator=to_camel)

    stack: str = Field(exclude=True)
    region: str = Field(alias="aws:region")
    """AWS region of the stack."""
    environment: str = Field(default="", validate_default=True)
    """Environment name used in resource names and tags; empty means the stack name."""
    resource_prefix: str = "iot-provisioning"
    """First part of every resource name."""
    device_types: tuple[DeviceTypeSettings, ...] = Field(default=DEFAULT_DEVICE_TYPES, validate_default=True)
    """Device types that may provision: names, or objects with the type's hook rules."""
    enable_monitoring: bool = True
    enable_audit_logging: bool = True
    lambda_timeout: int = 5
    """Hook timeout in seconds, 1-5: AWS IoT stops waiting for the hook after 5 seconds."""
    lambda_memory_size: Annotated[int, Field(ge=128, le=10240)] = 256
    dynamodb_billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = "PAY_PER_REQUEST"
    dynamodb_read_capacity: Annotated[int, Field(ge=1, le=40000)] = 5
    """Read capacity units of the table and each index, with ``PROVISIONED`` billing."""
    dynamodb_write_capacity: Annotated[int, Field(ge=1, le=40000)] = 5
    """Write capacity units of the table and each index, with ``PROVISIONED`` billing."""
    alarm_threshold: Annotated[int, Field(ge=1)] = 5
    alert_email: str = ""
    """Address subscribed to alarms; empty for none."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Extra tags on every taggable resource."""
    require_preregistration: bool = False
    """Deny serials that no factory manifest pre-registered."""
    protect_data: bool = Field(default="auto", validate_default=True)
    """Deletion protection and Pulumi ``protect`` on stored data; ``auto`` means true in ``prod``."""
    claim_certificates: tuple[ClaimGenerationSettings, ...] = Field(default=("1",), validate_default=True)
    """Generations of the claim certificate, oldest first; the last is the one to ship. Each is a name or
    ``{name, csr, active}``. Append one to rotate; deactivate the old one, then drop it."""
    log_retention_days: int = Field(default="auto", validate_default=True)
    """Retention of the log groups; ``auto`` means 365 days in ``prod``, 30 elsewhere."""
    audit_log_retention_days: int = 365
    """Retention of the audit log group (registry and lifecycle events)."""
    initial_shadow: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_INITIAL_SHADOW))
    """Desired state every new device's shadow starts with, unless its type sets ``initialShadow``."""
    max_provisioning_per_hour: Annotated[int, Field(ge=1)] = 100
    """Things registered through the claim certificate per hour above which claim abuse is alarmed."""
    powertools_layer_version: Annotated[int, Field(ge=1)] = 27
    """Version of the AWS-managed Powertools for AWS Lambda (Python) v3 layer."""
    account_event_types: tuple[EventType, ...] = ("THING",)
    """Registry event types the account-settings owner switches on; the others it switches off."""
    account_settings: bool = True
    """This stack owns the account-wide AWS IoT settings of its account and region (registry events,
    logging, the audit rule). Exactly one stack per account and region may; the others set false."""
    provisioning_role_policy: Literal["managed", "scoped"] = "managed"
    """``managed``: the provisioning role gets AWS's ``AWSIoTThingsRegistration`` policy, as AWS documents;
    ``scoped``: the same actions, limited to this stack's resources where IAM allows."""

    # --- derived names --------------------------------------------------------------------------------

    @property
    def base_name(self) -> str:
        """``<resourcePrefix>-<environment>``: the start of every resource name."""
        return f"{self.resource_prefix}-{self.environment}"

    @property
    def template_name(self) -> str:
        """Name of the fleet provisioning template."""
        return template_name(self.base_name)

    def hook_rules(self) -> dict[str, Any]:
        """The hook's rules document for these settings."""
        return {
            "deviceTypes": {device_type.name: device_type.rule() for device_type in self.device_types},
            "requirePreregistration": self.require_preregistration,
        }

    def initial_shadows(self) -> dict[str, dict[str, Any]]:
        """The desired state each device type's shadow starts with."""
        return {
            device_type.name: device_type.initial_shadow
            if device_type.initial_shadow is not None
            else self.initial_shadow
            for device_type in self.device_types
        }

    def tags_for_resources(self) -> dict[str, str]:
        """Tags every taggable resource carries: project, environment and the extra tags."""
        return {"Project": PROJECT, "Environment": self.environment, "ManagedBy": "pulumi", **self.tags}

    # --- validation -----------------------------------------------------------------------------------

    @property
    def layer_arn(self) -> str:
        """The Powertools layer the functions use, in this stack's region and partition."""
        return powertools_layer_arn(self.region, self.powertools_layer_version)

    @property
    def current_claim_generation(self) -> ClaimGenerationSettings:
        """The generation factories ship: the last one."""
        return self.claim_certificates[-1]

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError("expected an AWS region such as us-east-1")
        try:
            powertools_layer_arn(value, 1)
        except LayerUnavailable as error:
            raise ValueError(f"{error}; choose another region") from error
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str, info: ValidationInfo) -> str:
        value = value or info.data.get("stack", "")
        if not (_NAME_PART.fullmatch(value) and len(value) <= 16):
            raise ValueError("expected 1-16 characters of a-z 0-9 -, starting with a letter or digit")
        return value

    @field_validator("resource_prefix")
    @classmethod
    def _resource_prefix(cls, value: str) -> str:
        if not (_NAME_PART.fullmatch(value) and len(value) <= 32):
            raise ValueError("expected 1-32 characters of a-z 0-9 -, starting with a letter or digit")
        return value

    @field_validator("device_types", mode="before")
    @classmethod
    def _device_type_items(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("expected a non-empty list of names or {name, serialPattern, ...} objects")
        return [{"name": item} if isinstance(item, str) else item for item in value]

    @field_validator("device_types")
    @classmethod
    def _device_types(cls, value: tuple[DeviceTypeSettings, ...]) -> tuple[DeviceTypeSettings, ...]:
        names = [device_type.name for device_type in value]
        with_colon = [name for name in names if ":" in name]
        if with_colon:
            raise ValueError(f"{', '.join(with_colon)}: ':' is not allowed in IoT policy names")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"device type(s) listed twice: {', '.join(duplicates)}")
        try:
            parse_rules({"deviceTypes": {device_type.name: device_type.rule() for device_type in value}})
        except RulesError as error:
            raise ValueError(str(error)) from error
        return value

    @field_validator("account_event_types")
    @classmethod
    def _account_event_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "THING" not in value:
            raise ValueError(
                "THING events must stay on: activation of every stack in the region runs on them"
            )
        return tuple(sorted(set(value)))

    @field_validator("lambda_timeout")
    @classmethod
    def _lambda_timeout(cls, value: int) -> int:
        if not 1 <= value <= IOT_HOOK_DEADLINE_SECONDS:
            raise ValueError(
                f"expected 1-{IOT_HOOK_DEADLINE_SECONDS} seconds: AWS IoT stops waiting for the "
                f"pre-provisioning hook after {IOT_HOOK_DEADLINE_SECONDS} seconds and denies the device"
            )
        return value

    @field_validator("alert_email")
    @classmethod
    def _alert_email(cls, value: str) -> str:
        if value and not _EMAIL.fullmatch(value):
            raise ValueError("expected an e-mail address such as alerts@example.com, or empty for none")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tag_value in value.items():
            if key in _RESERVED_TAG_KEYS:
                raise ValueError(f"tag {key!r} is set by the program; choose another key")
            if key.startswith("aws:") or not _TAG_KEY.fullmatch(key) or not _TAG_VALUE.fullmatch(tag_value):
                raise ValueError(f"tag {key!r}: keys 1-128, values 0-256 letters, digits, spaces or _.:/=+-@")
        return value

    @field_validator("protect_data", mode="before")
    @classmethod
    def _protect_data(cls, value: Any, info: ValidationInfo) -> Any:
        return info.data.get("environment") == "prod" if value == "auto" else value

    @field_validator("claim_certificates", mode="before")
    @classmethod
    def _claim_generation_items(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or not value:
            raise ValueError(
                'expected a non-empty list of generation names or {name, csr, active}, e.g. ["1"]'
            )
        return [{"name": item} if isinstance(item, str) else item for item in value]

    @field_validator("claim_certificates")
    @classmethod
    def _claim_certificates(
        cls, value: tuple[ClaimGenerationSettings, ...]
    ) -> tuple[ClaimGenerationSettings, ...]:
        names = [generation.name for generation in value]
        if len(set(names)) != len(names):
            raise ValueError("a generation is listed twice")
        if not value[-1].active:
            raise ValueError(
                f"the last generation ({value[-1].name}) is the one factories ship and must be active; "
                "append a new generation before deactivating it"
            )
        return value

    @field_validator("initial_shadow")
    @classmethod
    def _initial_shadow(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _shadow_document(value)

    @field_validator("log_retention_days", mode="before")
    @classmethod
    def _log_retention_auto(cls, value: Any, info: ValidationInfo) -> Any:
        if value != "auto":
            return value
        return (
            PROD_LOG_RETENTION_DAYS if info.data.get("environment") == "prod" else LOG_RETENTION_DAYS_DEFAULT
        )

    @field_validator("log_retention_days", "audit_log_retention_days")
    @classmethod
    def _log_retention_days(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"expected one of CloudWatch's retention periods: {sorted(LOG_RETENTION_DAYS)}")
        return value

    @model_validator(mode="after")
    def _names_fit(self) -> Settings:
        if len(self.template_name) > TEMPLATE_NAME_MAX_LENGTH:
            raise ValueError(
                f"resourcePrefix and environment make the provisioning template name {self.template_name!r} "
                f"longer than the {TEMPLATE_NAME_MAX_LENGTH} characters AWS IoT allows; shorten one of them"
            )
        return self


# --- reading Pulumi config ----------------------------------------------------------------------------


CONFIG_KEYS: Final = tuple(
    str(field.alias) for name, field in Settings.model_fields.items() if name not in {"stack", "region"}
)
"""Project config keys, as declared in ``Pulumi.yaml``."""
_TEXT_KEYS: Final = frozenset(
    str(field.alias) for field in Settings.model_fields.values() if field.annotation is str
)
"""Keys whose values are used as text; the others are parsed as JSON, as Pulumi stores structured values."""


_MOVED_KEYS: Final = {
    "claimCsr": "moved: give each generation its own CSR, e.g. claimCertificates: [{name: '1', csr: ...}]"
}
"""Keys of earlier versions, with where their setting went."""


def parse_settings(values: Mapping[str, str], stack: str) -> Settings:
    """Validate raw config values (``{"aws:region": ..., "<key>": ...}``, as Pulumi stores them: strings,
    structured values as JSON). Raises :class:`SettingsError` listing every problem."""
    raw: dict[str, Any] = {"stack": stack}
    problems: list[str] = []
    for key, text in values.items():
        raw[key] = text if key in _TEXT_KEYS else _json_or_text(text)
    if "aws:region" not in values:
        problems.append("aws:region is not set; set it with `pulumi config set aws:region us-east-1`")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        problems.extend(_describe(problem, values) for problem in error.errors())
    if problems:
        raise SettingsError("invalid stack config:\n  " + "\n  ".join(problems))
    return settings


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _describe(problem: Any, values: Mapping[str, str]) -> str:
    location = [str(part) for part in problem["loc"]]
    key = location[0] if location else "config"
    where = ".".join(location) if key == "aws:region" else f"{PROJECT}:{'.'.join(location)}"
    message = str(problem["msg"]).removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message = f"not a known setting (a typo?); known settings: {', '.join(CONFIG_KEYS)}"
        if key in _MOVED_KEYS:
            message = _MOVED_KEYS[key]
    return f"{where} = {values.get(key, '(unset)')}: {message}" if location else message


def load_settings() -> Settings:
    """Read this stack's config once and validate it; raises :class:`SettingsError` before any resource."""
    everything = {**pulumi_config.get_config_env(), **pulumi_config.CONFIG.get()}  # CLI env, or mocks
    values = {
        key.removeprefix(f"{PROJECT}:"): str(value)
        for key, value in everything.items()
        if key.startswith(f"{PROJECT}:") or key == "aws:region"
    }
    return parse_settings(values, pulumi.get_stack())
