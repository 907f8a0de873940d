"""The stack outputs: their names (what ``pulumi stack output --json`` holds, for the tools that read it)
and the deployment instructions.

Imports nothing of Pulumi or the settings at run time: fleetctl and the local tools read the names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from program.settings import Settings


class StackOutput(StrEnum):
    """Every output the program exports."""

    TEMPLATE_NAME = "provisioningTemplateName"
    TEMPLATE_ARN = "provisioningTemplateArn"
    CLAIM_CERTIFICATE_ID = "claimCertificateId"
    """The current claim certificate (the last generation)."""
    CLAIM_CERTIFICATE_IDS = "claimCertificateIds"
    CLAIM_CERTIFICATE_PEM = "claimCertificatePem"
    CLAIM_CERTIFICATE_PEMS = "claimCertificatePems"
    """Every generation's certificate: what a global fleet's other regions register (``certificatePem``)."""
    CLAIM_PRIVATE_KEY = "claimCertificatePrivateKey"
    """A secret; only when AWS generated the claim key pair."""
    CLAIM_CLIENT_ID_PREFIX = "claimClientIdPrefix"
    REGISTRY_TABLE = "deviceRegistryTableName"
    """The registry table's name, in :attr:`REGISTRY_REGION`."""
    HOOK_FUNCTION = "provisioningHookFunctionName"
    IOT_ENDPOINT = "iotEndpoint"
    REGION = "region"
    HOOK_RULES = "hookRules"
    VENDOR_TRUST = "vendorTrust"
    """Per device type with a ``vendor``: its pinned roots (PEM) and serial rule, for signed manifests."""
    BASE_NAME = "baseName"
    DEPLOYMENT_INSTRUCTIONS = "deploymentInstructions"
    FLEET_NAME = "fleetName"
    FLEET_REGIONS = "fleetRegions"
    """Every region of the fleet (``docs/global-fleet.md``); this stack's own alone in a one-region fleet."""
    REGISTRY_REGION = "registryRegion"
    """The region of the registry table every region's functions use."""


def deployment_instructions(
    settings: Settings,
    *,
    client_id_prefix: str,
    template: str,
    claim_certificate_id: str,
    endpoint: str,
    table: str,
) -> str:
    """The next steps for a factory engineer, with this stack's real names filled in."""
    key_step = (
        "   The private key stays with the factory: the certificate was issued for its CSR."
        if settings.current_claim_generation.csr
        else "   pulumi stack output claimCertificatePrivateKey --show-secrets > claim.private.key\n"
        "   (keep it like any production secret: it lets anyone provision devices into this fleet)"
    )
    key_binding = any(settings.binds_keys(device_type) for device_type in settings.device_types)
    signed = any(each.vendor is not None and not each.zero_touch for each in settings.device_types)
    preregistration_step = (
        "5. Import every factory manifest first: serials that were not pre-registered are denied"
        + (
            ";\n   give each serial of a type that binds keys its device's public key (column public_key).\n"
            if key_binding
            else ".\n"
        )
        + (
            "   A type trusting a chip vendor takes its vendor's signed manifests instead:\n"
            "   fleetctl preregister MANIFEST.json --signer SIGNER.pem --device-type ...\n"
            if signed
            else ""
        )
        if settings.require_preregistration or key_binding
        else ""
    )
    types = ", ".join(device_type.name for device_type in settings.device_types)
    certificate_request = (
        "CreateCertificateFromCsr with a CSR of a key it made (the claim policy allows nothing else)"
        if not settings.claim_allows_aws_keys
        else "CreateCertificateFromCsr with a CSR of a key it made (or CreateKeysAndCertificate)"
    )
    return (
        f"Fleet provisioning for {settings.base_name} is deployed.\n\n"
        "1. Export the claim certificate for the factory image:\n"
        "   pulumi stack output claimCertificatePem > claim.cert.pem\n"
        f"{key_step}\n"
        "2. Put on every device: the claim certificate and key, the Amazon Root CA 1 certificate,\n"
        f"   the endpoint {endpoint} (port 8883) and the template name {template}.\n"
        f'3. On first boot the device connects with client id "{client_id_prefix}<serial>", calls\n'
        f"   {certificate_request},\n"
        f"   then RegisterThing on template {template} with the parameters\n"
        f"   SerialNumber, DeviceType ({types}), Manufacturer, FirmwareVersion and Location.\n"
        f"4. Watch decisions in registry table {table} (PENDING, then ACTIVE) and in the hook's logs.\n"
        f"{preregistration_step}"
        f"\nClaim certificate id: {claim_certificate_id}\n"
    )
