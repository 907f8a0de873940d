"""Stack settings: the validated, frozen values the components receive.

Each field declares its form (pattern, length, range, choices); validators remain only for rules that take
code: defaults that depend on other settings, the hook's rules, and the limits AWS puts on the names and
the region. :mod:`program.config` reads the config into a :class:`Settings` and reports every problem with
the key, the value and the expected form.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components.account import EventType
from components.names import IAM_ROLE_NAME_MAX_LENGTH, AccountWideNames
from components.powertools import LayerUnavailable, powertools_layer_arn
from hook.contract import template_name
from hook.rules import RulesError, parse_rules
from program.claim_generations import ClaimGenerationSettings
from program.defender import defender_audit_problem
from program.device_types import (
    DEFAULT_DEVICE_TYPES,
    DEFAULT_INITIAL_SHADOW,
    DeviceTypeSettings,
    ShadowDocument,
)
from program.environments import is_production
from program.fleet import DeviceDomainSettings, FleetSettings, Region
from program.setting_forms import (
    PAYLOAD_FORMATS,
    ClaimGenerations,
    DeviceKeys,
    DeviceTypes,
    EmailOrEmpty,
    Environment,
    HookTimeout,
    PayloadFormat,
    PayloadFormats,
    ResourcePrefix,
    RetentionDays,
    TagKey,
    TagValue,
)

PROJECT: Final = "iot-fleet-provisioning"
LOG_RETENTION_DAYS_DEFAULT: Final = 30
PROD_LOG_RETENTION_DAYS: Final = 365
TEMPLATE_NAME_MAX_LENGTH: Final = 36
"""AWS IoT's limit on a provisioning template name; it also keeps ``<base name>-<serial>`` within a thing
name's 128 characters."""
_RESERVED_TAG_KEYS: Final = frozenset({"Project", "Environment", "ManagedBy"})


class SettingsError(ValueError):
    """Stack config is invalid; the message lists every problem, one per line."""


class Settings(BaseModel):
    """Everything the program needs, validated. Field aliases are the Pulumi config keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, alias_generator=to_camel)

    stack: str = Field(exclude=True)
    region: Region = Field(alias="aws:region")
    """AWS region of the stack."""
    environment: Environment = Field(default="", validate_default=True)
    """Environment name used in resource names and tags; empty means the stack name."""
    resource_prefix: ResourcePrefix = "iot-provisioning"
    """First part of every resource name."""
    device_types: DeviceTypes = Field(default=DEFAULT_DEVICE_TYPES, validate_default=True)
    """Device types that may provision: names, or objects with the type's hook rules."""
    enable_monitoring: bool = True
    enable_audit_logging: bool = True
    lambda_timeout: HookTimeout = 5
    """Hook timeout in seconds, 1-5: AWS IoT stops waiting for the hook after 5 seconds."""
    lambda_memory_size: Annotated[int, Field(ge=128, le=10240)] = 256
    dynamodb_billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = "PAY_PER_REQUEST"
    dynamodb_read_capacity: Annotated[int, Field(ge=1, le=40000)] = 5
    """Read capacity units of the table and each index, with ``PROVISIONED`` billing."""
    dynamodb_write_capacity: Annotated[int, Field(ge=1, le=40000)] = 5
    """Write capacity units of the table and each index, with ``PROVISIONED`` billing."""
    alarm_threshold: Annotated[int, Field(ge=1)] = 5
    alert_email: EmailOrEmpty = ""
    """Address subscribed to alarms; empty for none."""
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    """Extra tags on every taggable resource."""
    require_preregistration: bool = False
    """Deny serials that no factory manifest pre-registered."""
    require_key_binding: bool = False
    """Every device type binds keys (``keyBinding``): a serial provisions only with a certificate of the key
    registered for it, so the stack is CSR-only (:attr:`claim_allows_aws_keys`)."""
    protect_data: bool = Field(default="auto", validate_default=True)
    """Deletion protection and Pulumi ``protect`` on stored data; ``auto`` means true in production
    (:func:`program.environments.is_production`)."""
    claim_certificates: ClaimGenerations = Field(default=("1",), validate_default=True)
    """Generations of the claim certificate, oldest first; the last is the one to ship. Each is a name or
    ``{name, csr, active}``. Append one to rotate; deactivate the old one, then drop it."""
    log_retention_days: RetentionDays = Field(default="auto", validate_default=True)
    """Retention of the log groups; ``auto`` means 365 days in production
    (:func:`program.environments.is_production`), 30 elsewhere."""
    audit_log_retention_days: RetentionDays = 365
    """Retention of the audit log group (registry and lifecycle events)."""
    initial_shadow: ShadowDocument = Field(default_factory=lambda: dict(DEFAULT_INITIAL_SHADOW))
    """Desired state every new device's shadow starts with, unless its type sets ``initialShadow``."""
    max_provisioning_per_hour: Annotated[int, Field(ge=1)] = 100
    """Approvals through one claim certificate per hour above which its breaker trips and claim abuse is
    alarmed, unless its generation sets its own (:meth:`claim_budgets`)."""
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
    device_keys: DeviceKeys = "device-or-aws"
    """Who may make a device's key pair: ``device`` lets the claim certificate ask only for
    ``CreateCertificateFromCsr`` (a leaked claim certificate cannot have AWS IoT make keys and send them
    back); ``device-or-aws`` also allows ``CreateKeysAndCertificate``."""
    provisioning_payload_formats: PayloadFormats = ("json",)
    """Payload formats of the fleet provisioning topics the claim certificate may use: ``json``, and
    ``cbor`` for constrained devices."""
    defender_audit: bool = False
    """Device Defender audit (docs/defender-audit.md): the account-settings owner configures the account's
    audit and a daily scheduled audit; every stack suppresses the shared-certificate finding of its claim
    certificates."""
    defender_suppression_expires: date | None = Field(default="", validate_default=True)
    """The day the claim certificates' suppressions expire, within a year: required with
    ``defenderAudit``; empty (``None``) for none."""
    fleet: FleetSettings | None = None
    """The global fleet this stack is one region of (:mod:`program.fleet`); none for a one-region fleet."""
    device_domain: DeviceDomainSettings | None = None
    """A custom domain for the devices' endpoint (``{name, hostedZoneId, certificateArn}``); none: devices
    use the region's ``iot:Data-ATS`` endpoint."""

    # --- derived values -------------------------------------------------------------------------------

    @property
    def base_name(self) -> str:
        """``<resourcePrefix>-<environment>``: the start of every resource name."""
        return f"{self.resource_prefix}-{self.environment}"

    @property
    def account_wide_names(self) -> AccountWideNames:
        """Names of the IAM roles and the dashboard: account-wide, so they carry the region."""
        return AccountWideNames(self.base_name, self.region)

    @property
    def template_name(self) -> str:
        """Name of the fleet provisioning template."""
        return template_name(self.base_name)

    @property
    def registry_table_name(self) -> str:
        """Name of the device registry's DynamoDB table."""
        return f"{self.base_name}-device-registry"

    @property
    def registry_region(self) -> str:
        """The region of the fleet's registry table: this stack's own without a ``fleet``."""
        return self.fleet.registry_region if self.fleet else self.region

    @property
    def holds_registry(self) -> bool:
        """Whether this stack declares the registry table (and the fleet's claim certificates)."""
        return self.registry_region == self.region

    @property
    def fleet_regions(self) -> tuple[str, ...]:
        """Every region of the fleet: this stack's own alone without a ``fleet``."""
        return self.fleet.regions if self.fleet else (self.region,)

    @property
    def fleet_name(self) -> str:
        """The fleet's name: the base name without a ``fleet``."""
        return self.fleet.name if self.fleet else self.base_name

    def hook_rules(self) -> dict[str, Any]:
        """The hook's rules document for these settings: ``requireKeyBinding`` makes every type bind keys."""
        return {
            "deviceTypes": {
                device_type.name: device_type.rule() | {"keyBinding": self.binds_keys(device_type)}
                for device_type in self.device_types
            },
            "requirePreregistration": self.require_preregistration,
        }

    def binds_keys(self, device_type: DeviceTypeSettings) -> bool:
        """Whether a device type binds keys: its own ``keyBinding``, a ``vendor`` without ``zeroTouch`` (its
        keys come from the vendor's signed manifests), or the stack's ``requireKeyBinding``."""
        manifests = device_type.vendor is not None and not device_type.zero_touch
        return device_type.key_binding or manifests or self.require_key_binding

    def vendor_trust(self) -> dict[str, Any]:
        """The ``vendorTrust`` stack output: each type with a ``vendor``, its roots and serial rule."""
        return {
            device_type.name: device_type.vendor.trust()
            for device_type in self.device_types
            if device_type.vendor is not None
        }

    @property
    def claim_allows_aws_keys(self) -> bool:
        """Whether the claim policy allows ``CreateKeysAndCertificate``: ``deviceKeys: device-or-aws``, unless
        every device type that may provision binds keys. A key pair AWS IoT makes is never a device's
        registered key, so the hook would deny every such device; the stack is then CSR-only whatever the
        default of ``deviceKeys`` says (an explicit ``device-or-aws`` is refused)."""
        return self.device_keys == "device-or-aws" and not _every_type_binds_keys(
            self.device_types, self.require_key_binding
        )

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

    @property
    def layer_arn(self) -> str:
        """The Powertools layer the functions use, in this stack's region and partition."""
        return powertools_layer_arn(self.region, self.powertools_layer_version)

    def claim_budgets(self) -> dict[str, int]:
        """Each generation's approvals per hour: its own ``maxProvisioningPerHour``, else the stack's."""
        return {
            generation.name: generation.max_provisioning_per_hour or self.max_provisioning_per_hour
            for generation in self.claim_certificates
        }

    @property
    def current_claim_generation(self) -> ClaimGenerationSettings:
        """The generation factories ship: the last one."""
        return self.claim_certificates[-1]

    # --- rules that take code -------------------------------------------------------------------------

    @field_validator("region")
    @classmethod
    def _powertools_published(cls, value: str) -> str:
        try:
            powertools_layer_arn(value, 1)
        except LayerUnavailable as error:
            raise ValueError(f"{error}; choose another region") from error
        return value

    @field_validator("environment", mode="before")
    @classmethod
    def _environment_defaults_to_the_stack(cls, value: Any, info: ValidationInfo) -> Any:
        return value or info.data.get("stack", "")

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

    @field_validator("device_keys")
    @classmethod
    def _device_keys(cls, value: str, info: ValidationInfo) -> str:
        """Runs only for a ``deviceKeys`` the config sets (the default is not validated)."""
        binds = _every_type_binds_keys(
            info.data.get("device_types", ()), bool(info.data.get("require_key_binding"))
        )
        if value == "device-or-aws" and binds:
            raise ValueError(
                "every device type binds keys (requireKeyBinding, or keyBinding or vendor on each), so a "
                'key pair AWS IoT makes could never pass the hook: expected "device", or leave '
                "deviceKeys unset (the stack is then CSR-only)"
            )
        return value

    @field_validator("account_event_types")
    @classmethod
    def _account_event_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "THING" not in value:
            raise ValueError(
                "THING events must stay on: activation of every stack in the region runs on them"
            )
        return tuple(sorted(set(value)))

    @field_validator("defender_suppression_expires", mode="before")
    @classmethod
    def _a_day(cls, value: Any) -> Any:
        if value == "":
            return None
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ValueError("expected a day as YYYY-MM-DD, e.g. 2027-06-30") from None
        return value

    @field_validator("provisioning_payload_formats")
    @classmethod
    def _payload_formats(cls, value: tuple[PayloadFormat, ...]) -> tuple[PayloadFormat, ...]:
        return tuple(payload_format for payload_format in PAYLOAD_FORMATS if payload_format in value)

    @field_validator("tags")
    @classmethod
    def _tags_left_to_the_user(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key in _RESERVED_TAG_KEYS:
                raise ValueError(f"tag {key!r} is set by the program; choose another key")
            if key.startswith("aws:"):
                raise ValueError(f"tag {key!r}: the aws: prefix is reserved for AWS's own tags")
        return value

    @field_validator("protect_data", mode="before")
    @classmethod
    def _protect_data_auto(cls, value: Any, info: ValidationInfo) -> Any:
        return is_production(info.data.get("environment", "")) if value == "auto" else value

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

    @field_validator("fleet")
    @classmethod
    def _fleet_has_this_region(
        cls, value: FleetSettings | None, info: ValidationInfo
    ) -> FleetSettings | None:
        region = info.data.get("region")
        if value is not None and region is not None and region not in value.regions:
            raise ValueError(
                f"aws:region {region} is not one of regions ({', '.join(value.regions)}); expected the "
                "fleet's regions to list every region with a stack of the fleet"
            )
        return value

    @field_validator("device_domain")
    @classmethod
    def _domain_certificate_here(
        cls, value: DeviceDomainSettings | None, info: ValidationInfo
    ) -> DeviceDomainSettings | None:
        region = info.data.get("region")
        if value is not None and region is not None and value.certificate_region != region:
            raise ValueError(
                f"certificateArn is in {value.certificate_region}: expected an ACM certificate in this "
                f"stack's region {region} (AWS IoT uses a server certificate of its own region)"
            )
        return value

    @field_validator("log_retention_days", mode="before")
    @classmethod
    def _log_retention_auto(cls, value: Any, info: ValidationInfo) -> Any:
        if value != "auto":
            return value
        production = is_production(info.data.get("environment", ""))
        return PROD_LOG_RETENTION_DAYS if production else LOG_RETENTION_DAYS_DEFAULT

    @model_validator(mode="after")
    def _defender_audit(self) -> Settings:
        problem = defender_audit_problem(
            self.defender_audit,
            self.defender_suppression_expires,
            owner_without_monitoring=self.account_settings and not self.enable_monitoring,
        )
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _claim_certificates_of_the_fleet(self) -> Settings:
        """The registry region's stack makes the claim certificates; the other regions register them."""
        for index, generation in enumerate(self.claim_certificates):
            where = f"claimCertificates[{index}] ({generation.name}).certificatePem"
            if self.holds_registry and generation.certificate_pem:
                raise ValueError(
                    f"{where}: the registry region's stack makes the fleet's claim certificates; expected no "
                    "certificatePem here"
                )
            if not self.holds_registry and not generation.certificate_pem:
                raise ValueError(
                    f"{where} is not set: expected the PEM of generation {generation.name} from the stack of "
                    f"the registry region {self.registry_region} (pulumi stack output claimCertificatePems)"
                )
        return self

    @model_validator(mode="after")
    def _names_fit(self) -> Settings:
        if len(self.template_name) > TEMPLATE_NAME_MAX_LENGTH:
            raise ValueError(
                f"resourcePrefix and environment make the provisioning template name {self.template_name!r} "
                f"longer than the {TEMPLATE_NAME_MAX_LENGTH} characters AWS IoT allows; shorten one of them"
            )
        oversized = self.account_wide_names.oversized_roles()
        if oversized:
            raise ValueError(
                "resourcePrefix, environment and aws:region make the IAM role name(s) "
                f"{', '.join(oversized)} longer than the {IAM_ROLE_NAME_MAX_LENGTH} characters IAM allows; "
                "shorten resourcePrefix or environment"
            )
        return self


def _every_type_binds_keys(device_types: tuple[DeviceTypeSettings, ...], require_key_binding: bool) -> bool:
    """Whether every device type that may provision (one at least) binds keys: by key binding, by a vendor's
    signed manifests, or by zero-touch (the certificate must carry the vendor certificate's key)."""
    provisioning = [device_type for device_type in device_types if not device_type.retired]
    return bool(provisioning) and all(
        require_key_binding or device_type.key_binding or device_type.vendor is not None
        for device_type in provisioning
    )
