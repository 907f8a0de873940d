"""The stack outputs' names: what ``pulumi stack output --json`` holds, for the tools that read it."""

from enum import StrEnum


class StackOutput(StrEnum):
    """Every output the program exports."""

    TEMPLATE_NAME = "provisioningTemplateName"
    TEMPLATE_ARN = "provisioningTemplateArn"
    CLAIM_CERTIFICATE_ID = "claimCertificateId"
    """The current claim certificate (the last generation)."""
    CLAIM_CERTIFICATE_IDS = "claimCertificateIds"
    CLAIM_CERTIFICATE_PEM = "claimCertificatePem"
    CLAIM_PRIVATE_KEY = "claimCertificatePrivateKey"
    """A secret; only when AWS generated the claim key pair."""
    CLAIM_CLIENT_ID_PREFIX = "claimClientIdPrefix"
    REGISTRY_TABLE = "deviceRegistryTableName"
    HOOK_FUNCTION = "provisioningHookFunctionName"
    IOT_ENDPOINT = "iotEndpoint"
    REGION = "region"
    HOOK_RULES = "hookRules"
    BASE_NAME = "baseName"
    DEPLOYMENT_INSTRUCTIONS = "deploymentInstructions"
