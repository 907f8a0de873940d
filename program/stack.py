"""Build the whole stack from validated settings and return its outputs.

``__main__.py`` exports what :func:`build_stack` returns; the tests and the local deployer call it
under Pulumi's mock engine.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pulumi
import pulumi_aws as aws

from components.account import AccountSettings, AccountSettingsArgs
from components.alarms import MonitoredNames
from components.certificate_lifecycle import CertificateLifecycle, CertificateLifecycleArgs
from components.claim_breaker import ClaimBreaker, ClaimBreakerArgs
from components.dashboard import FleetView
from components.defender import DefenderAudit, DefenderAuditArgs, suppress_claim_certificates
from components.device_domain import DeviceDomain, DeviceDomainArgs
from components.device_lifecycle import DeviceLifecycle, DeviceLifecycleArgs
from components.device_registry import DeviceRegistry, DeviceRegistryArgs, RegistryReference
from components.documents import AccountScope
from components.function import FunctionDefaults
from components.function_archives import config_json
from components.monitoring import Monitoring, MonitoringArgs
from components.provisioning import ClaimGeneration, FleetProvisioning, FleetProvisioningArgs
from hook.activation_config import ActivationConfig
from hook.contract import ACTIVATION_CONFIG_FILE_NAME, RULES_FILE_NAME, metrics_namespace
from program.outputs import StackOutput, deployment_instructions
from program.settings import Settings


def build_stack(settings: Settings) -> dict[str, Any]:
    """Declare every resource of one environment; returns the stack outputs by name."""
    tags = settings.tags_for_resources()
    scope = pulumi.Output.all(
        aws.get_partition_output().partition, aws.get_caller_identity_output().account_id
    ).apply(lambda values: AccountScope(partition=values[0], region=settings.region, account_id=values[1]))

    registry = registry_reference(settings, scope)
    functions = FunctionDefaults(
        config_files={
            RULES_FILE_NAME: config_json(settings.hook_rules()),
            ACTIVATION_CONFIG_FILE_NAME: config_json(
                ActivationConfig(settings.base_name, settings.initial_shadows()).document()
            ),
        },
        layer_arn=settings.layer_arn,
        log_retention_days=settings.log_retention_days,
        metrics_namespace=metrics_namespace(settings.base_name),
        account_wide_names=settings.account_wide_names,
        tags=tags,
    )
    iot_endpoint = aws.iot.get_endpoint_output(endpoint_type="iot:Data-ATS").endpoint_address
    provisioning = FleetProvisioning("provisioning", provisioning_args(settings, registry, functions), scope)
    lifecycle = DeviceLifecycle(
        "lifecycle",
        DeviceLifecycleArgs(
            name_prefix=settings.base_name,
            registry=registry,
            iot_endpoint=iot_endpoint,
            defaults=functions,
        ),
        scope,
    )
    certificates = CertificateLifecycle(
        "certificates",
        CertificateLifecycleArgs(
            name_prefix=settings.base_name,
            registry=registry,
            iot_endpoint=iot_endpoint,
            defaults=functions,
            fleet_regions=settings.fleet_regions,
        ),
        scope,
    )
    monitoring = None
    # The breaker counts on the registry's stream, so in the registry region only; its breakers, in the
    # one registry, hold in every region (a claim certificate has the same id wherever it is registered).
    breaker = (
        ClaimBreaker(
            "claim-breaker",
            ClaimBreakerArgs(
                name_prefix=settings.base_name,
                registry=registry,
                claim_certificates=provisioning.claim_certificate_ids,
                budget_per_generation=settings.claim_budgets(),
                defaults=functions,
            ),
        )
        if settings.holds_registry
        else None
    )
    if settings.device_domain is not None:
        DeviceDomain(
            "device-domain",
            DeviceDomainArgs(
                name_prefix=settings.base_name,
                domain_name=settings.device_domain.name,
                hosted_zone_id=settings.device_domain.hosted_zone_id,
                certificate_arn=settings.device_domain.certificate_arn,
                region=settings.region,
                iot_endpoint=iot_endpoint,
                tags=tags,
            ),
        )
    if settings.enable_monitoring:
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                name_prefix=settings.base_name,
                names=MonitoredNames(
                    hook_function=provisioning.hook_function_name,
                    activation_function=lifecycle.activation_function_name,
                    registry_table=registry.table_name if settings.holds_registry else None,
                    template=provisioning.template_name,
                    thing_created_rule=lifecycle.thing_created_rule_name,
                    retirement_function=certificates.retirement_function_name,
                    retirement_failures_queue=certificates.retirement_failures_queue_name,
                    claim_certificates=provisioning.claim_certificate_ids,
                    claim_breaker_function=breaker.function_name if breaker else None,
                    metrics_namespace=functions.metrics_namespace,
                ),
                fleet=FleetView(
                    registry_table=registry.table_name,
                    registry_region=settings.registry_region,
                    regions=settings.fleet_regions,
                ),
                alarm_threshold=settings.alarm_threshold,
                claim_budgets=settings.claim_budgets(),
                alert_email=settings.alert_email,
                tags=tags,
            ),
            scope,
        )
    if settings.account_settings:
        AccountSettings(
            "account",
            AccountSettingsArgs(
                name_prefix=settings.base_name,
                owner=f"{pulumi.get_project()}/{pulumi.get_stack()}",
                event_types=frozenset(settings.account_event_types),
                audit_logging=settings.enable_audit_logging,
                log_retention_days=settings.log_retention_days,
                audit_log_retention_days=settings.audit_log_retention_days,
                tags=tags,
            ),
            scope,
            # Its resources were the AuditTrail component's ("audit-..."): the alias keeps them, instead
            # of creating them again beside the old ones (whose names AWS holds) and then deleting those.
            opts=pulumi.ResourceOptions(
                aliases=[pulumi.Alias(name="audit", type_="iot-fleet-provisioning:index:AuditTrail")]
            ),
        )
    expires = settings.defender_suppression_expires  # set whenever defenderAudit is (the settings say so)
    if settings.defender_audit and expires is not None:
        declare_defender_audit(settings, expires, provisioning, monitoring, scope)

    outputs: dict[str, Any] = {
        StackOutput.TEMPLATE_NAME: provisioning.template_name,
        StackOutput.TEMPLATE_ARN: provisioning.template_arn,
        StackOutput.CLAIM_CERTIFICATE_ID: provisioning.claim_certificate_id,
        StackOutput.CLAIM_CERTIFICATE_IDS: provisioning.claim_certificate_ids,
        StackOutput.CLAIM_CERTIFICATE_PEM: provisioning.claim_certificate_pem,
        StackOutput.CLAIM_CERTIFICATE_PEMS: provisioning.claim_certificate_pems,
        StackOutput.CLAIM_CLIENT_ID_PREFIX: provisioning.claim_client_id_prefix,
        StackOutput.REGISTRY_TABLE: registry.table_name,
        StackOutput.HOOK_FUNCTION: provisioning.hook_function_name,
        StackOutput.IOT_ENDPOINT: iot_endpoint,
        StackOutput.REGION: settings.region,
        StackOutput.BASE_NAME: settings.base_name,
        StackOutput.FLEET_NAME: settings.fleet_name,
        StackOutput.FLEET_REGIONS: list(settings.fleet_regions),
        StackOutput.REGISTRY_REGION: settings.registry_region,
        StackOutput.HOOK_RULES: settings.hook_rules(),
        StackOutput.VENDOR_TRUST: settings.vendor_trust(),
        StackOutput.DEPLOYMENT_INSTRUCTIONS: pulumi.Output.all(
            template=provisioning.template_name,
            claim_certificate_id=provisioning.claim_certificate_id,
            # With a device domain, factories burn its one hostname (docs/global-fleet.md).
            endpoint=settings.device_domain.name if settings.device_domain else iot_endpoint,
            table=registry.table_name,
        ).apply(
            lambda names: deployment_instructions(
                settings, client_id_prefix=provisioning.claim_client_id_prefix, **names
            )
        ),
    }
    if provisioning.claim_private_key is not None:
        outputs[StackOutput.CLAIM_PRIVATE_KEY] = provisioning.claim_private_key
    return outputs


def declare_defender_audit(
    settings: Settings,
    expires: date,
    provisioning: FleetProvisioning,
    monitoring: Monitoring | None,
    scope: pulumi.Output[AccountScope],
) -> None:
    """The account's audit in the account-settings owner (the settings require its monitoring), and in
    every stack the suppressions of its own claim certificates, after the owner's audit when it is this
    stack."""
    audit: list[pulumi.Resource] = []
    if settings.account_settings and monitoring is not None:
        audit.append(
            DefenderAudit(
                "defender",
                DefenderAuditArgs(
                    name_prefix=settings.base_name,
                    region=settings.region,
                    alert_topic_arn=monitoring.alert_topic_arn,
                    alert_key_arn=monitoring.alert_key_arn,
                    tags=settings.tags_for_resources(),
                ),
                scope,
            )
        )
    suppress_claim_certificates(
        "defender-claim-suppression",
        name_prefix=settings.base_name,
        region=settings.region,
        claim_certificate_ids=provisioning.claim_certificate_ids,
        expires=expires.isoformat(),
        depends_on=audit,
    )


def registry_reference(settings: Settings, scope: pulumi.Output[AccountScope]) -> RegistryReference:
    """The registry table: declared by the stack of the fleet's registry region (a one-region fleet's own
    stack); every other region's functions use that table by name and ARN, which carries its region
    (``arn:<partition>:dynamodb:<registry region>:<account>:table/<name>``), and follow no stream."""
    if settings.holds_registry:
        return DeviceRegistry(
            "registry",
            DeviceRegistryArgs(
                table_name=settings.registry_table_name,
                region=settings.region,
                billing_mode=settings.dynamodb_billing_mode,
                read_capacity=settings.dynamodb_read_capacity,
                write_capacity=settings.dynamodb_write_capacity,
                protect=settings.protect_data,
                tags=settings.tags_for_resources(),
            ),
        ).reference
    name = settings.registry_table_name
    return RegistryReference(
        table_name=pulumi.Output.from_input(name),
        table_arn=scope.apply(
            lambda account: (
                f"arn:{account.partition}:dynamodb:{settings.registry_region}:{account.account_id}:table/{name}"
            )
        ),
        stream_arn=None,
        region=settings.registry_region,
    )


def provisioning_args(
    settings: Settings, registry: RegistryReference, functions: FunctionDefaults
) -> FleetProvisioningArgs:
    """What the stack gives its provisioning component, from the settings: declares nothing."""
    return FleetProvisioningArgs(
        name_prefix=settings.base_name,
        template_name=settings.template_name,
        device_types=tuple(device_type.name for device_type in settings.device_types),
        retired_device_types=frozenset(
            device_type.name for device_type in settings.device_types if device_type.retired
        ),
        registry=registry,
        defaults=functions,
        hook_timeout=settings.lambda_timeout,
        hook_memory_size=settings.lambda_memory_size,
        claim_generations=tuple(
            ClaimGeneration(
                name=generation.name,
                csr=generation.csr,
                active=generation.active,
                certificate_pem=generation.certificate_pem,
            )
            for generation in settings.claim_certificates
        ),
        role_policy=settings.provisioning_role_policy,
        aws_keys=settings.claim_allows_aws_keys,
        payload_formats=settings.provisioning_payload_formats,
    )
