"""FleetProvisioning: claim certificate, per-type device policies, the hook and the provisioning template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from components import documents
from components.device_registry import RegistryReference
from components.documents import AccountScope
from components.function import FunctionArgs, FunctionDefaults, create_function
from components.function_archives import PRE_PROVISIONING
from components.names import Role
from hook.contract import Attr, claim_policy_name, device_type_resource_name

SEARCHABLE_ATTRIBUTES = (Attr.MANUFACTURER.value, Attr.FIRMWARE_VERSION.value, Attr.LOCATION.value)
"""Thing attributes that fleet indexing and ListThings can filter on (AWS allows three per thing type)."""


@dataclass(frozen=True)
class ClaimGeneration:
    """One claim certificate: its generation name, the factory's CSR (empty: AWS makes the key pair), and
    whether it may connect; or, in a global fleet's other regions, the registry region's certificate to
    register as it is."""

    name: str
    csr: str = ""
    active: bool = True
    certificate_pem: str = ""


@dataclass(frozen=True)
class FleetProvisioningArgs:
    """Arguments of :class:`FleetProvisioning`."""

    name_prefix: str
    """Start of every resource name; per-type resources are ``<name_prefix>_<type>``."""
    template_name: str
    """Name of the provisioning template (at most 36 characters)."""
    device_types: tuple[str, ...]
    """Device types with resources: those that may provision, and the retired ones."""
    retired_device_types: frozenset[str]
    """Device types whose existing devices keep working but that no new device may take: their thing
    types are deprecated."""
    registry: RegistryReference
    """The table the hook records its approvals in."""
    defaults: FunctionDefaults
    """The hook's code, layer, log retention and metrics namespace; the tags of every resource."""
    hook_timeout: int = 5
    hook_memory_size: int = 256
    claim_generations: tuple[ClaimGeneration, ...] = (ClaimGeneration("1"),)
    """Claim certificate generations, oldest first; the last is the current one."""
    role_policy: Literal["managed", "scoped"] = "managed"
    """The provisioning role's permissions: AWS's managed policy, or this stack's scoped derivation of it."""
    aws_keys: bool = True
    """The claim certificate may ask AWS IoT to make key pairs (``CreateKeysAndCertificate``); without it,
    only ``CreateCertificateFromCsr``."""
    payload_formats: tuple[str, ...] = ("json",)
    """Payload formats of the provisioning topics the claim certificate may use (``json``, ``cbor``)."""


def provisioning_template_body(args: FleetProvisioningArgs) -> str:
    """The template body the stack declares: a function of the name prefix alone, so no other setting
    (device types, claim generations, role policy, payload formats, tags...) changes it. Each change of
    the body is a new template version, AWS keeps at most 5, and the provider never deletes old ones
    (terraform-provider-aws #35392, iot/provisioning_template.go update): docs/deploying.md says what to do
    when the body must change."""
    return documents.template_body(args.name_prefix)


class FleetProvisioning(pulumi.ComponentResource):
    """Everything a device needs to provision by claim, and nothing it does not."""

    template_name: pulumi.Output[str]
    """Name of the fleet provisioning template devices call RegisterThing with."""
    template_arn: pulumi.Output[str]
    claim_certificate_ids: dict[str, pulumi.Output[str]]
    """Every claim certificate's id, by generation."""
    claim_certificate_id: pulumi.Output[str]
    """The current claim certificate (the last generation)."""
    claim_certificate_pems: dict[str, pulumi.Output[str]]
    """Each generation's certificate, for the global fleet's other regions to register."""
    claim_certificate_pem: pulumi.Output[str]
    claim_private_key: pulumi.Output[str] | None
    """The current claim certificate's private key (a secret), or ``None`` when the factory supplied a CSR."""
    claim_client_id_prefix: str
    """Client ids devices use while provisioning: this prefix and something unique, such as the serial."""
    hook_function_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: FleetProvisioningArgs,
        scope: pulumi.Output[AccountScope],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("iot-fleet-provisioning:index:FleetProvisioning", name, None, opts)
        self._args = args
        self._scope = scope
        self._tags = args.defaults.tags
        self._child = pulumi.ResourceOptions(parent=self)
        template_name = args.template_name
        self.claim_client_id_prefix = f"{args.name_prefix}-claim-"

        self._create_device_types()
        hook = self._create_hook(name)
        self._create_claim_certificate(name, template_name)
        template = self._create_template(name, template_name, hook)

        self.template_name = template.name
        self.template_arn = template.arn
        self.hook_function_name = hook.name
        self.register_outputs(
            {
                "template_name": self.template_name,
                "template_arn": self.template_arn,
                "claim_certificate_id": self.claim_certificate_id,
                "hook_function_name": self.hook_function_name,
            }
        )

    def _create_device_types(self) -> None:
        """Per device type: the device policy, the thing type and a thing group under the fleet group."""
        args = self._args
        fleet_group = aws.iot.ThingGroup(
            f"{args.name_prefix}-fleet-group",
            name=documents.fleet_group_name(args.name_prefix),
            tags=self._tags,
            opts=self._child,
        )
        for device_type in args.device_types:
            name = device_type_resource_name(args.name_prefix, device_type)
            # An edited document becomes the policy's new default version, in place; at AWS IoT's limit of
            # five versions the provider deletes the oldest non-default one (terraform-provider-aws
            # iot/policy.go), so certificates keep their attachment.
            aws.iot.Policy(
                f"{name}-policy",
                name=name,
                policy=self._device_policy(device_type),
                tags=self._tags,
                opts=self._child,
            )
            aws.iot.ThingType(
                f"{name}-thing-type",
                name=name,
                properties=aws.iot.ThingTypePropertiesArgs(
                    description=f"{device_type} devices", searchable_attributes=list(SEARCHABLE_ATTRIBUTES)
                ),
                # A deprecated type takes no new things; AWS refuses to delete a type that is not
                # deprecated or still has things (terraform-provider-aws iot/thing_type.go deprecates,
                # waits 5 minutes, deletes).
                deprecated=device_type in args.retired_device_types,
                tags=self._tags,
                opts=self._child,
            )
            aws.iot.ThingGroup(
                f"{name}-thing-group",
                name=name,
                parent_group_name=fleet_group.name,
                tags=self._tags,
                opts=self._child,
            )

    def _device_policy(self, device_type: str) -> pulumi.Output[str]:
        return self._scope.apply(lambda scope: documents.device_policy(scope, device_type))

    def _create_hook(self, name: str) -> aws.lambda_.Function:
        """The pre-provisioning hook: may only write its logs and update items of the registry table."""
        args = self._args
        return create_function(
            f"{name}-hook",
            FunctionArgs(
                function_name=f"{args.name_prefix}-provisioning-hook",
                role=Role.HOOK,
                code=PRE_PROVISIONING,
                description="AWS IoT pre-provisioning hook: validates devices against rules and the registry",
                # The hook's one request is a TransactWriteItems of two Update members (the serial's item
                # and the certificate's binding, both in this table). TransactWriteItems is no IAM action:
                # "Permissions for Put, Update, Delete, and Get actions are governed by the permissions
                # used for the underlying PutItem, UpdateItem, DeleteItem, and GetItem operations"
                # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html),
                # so UpdateItem on the table is all it needs.
                statements=args.registry.table_arn.apply(
                    lambda table_arn: [documents.allow(["dynamodb:UpdateItem"], [table_arn])]
                ),
                environment=args.registry.environment(),
                timeout=args.hook_timeout,
                memory_size=args.hook_memory_size,
            ),
            args.defaults,
            parent=self,
        )

    def _create_claim_certificate(self, name: str, template_name: str) -> None:
        """The claim certificates (one per generation), allowed to provision through this template only."""
        args = self._args
        prefix = self.claim_client_id_prefix
        policy = aws.iot.Policy(
            f"{name}-claim-policy",
            name=claim_policy_name(args.name_prefix),
            policy=self._scope.apply(
                lambda scope: documents.claim_policy(
                    scope,
                    template_name,
                    prefix,
                    aws_keys=args.aws_keys,
                    payload_formats=args.payload_formats,
                )
            ),
            tags=self._tags,
            opts=self._child,
        )
        certificates = {}
        for generation in args.claim_generations:
            # With certificate_pem and no CA, the provider calls RegisterCertificateWithoutCA
            # (terraform-provider-aws iot/certificate.go): the same certificate, id and key in this region.
            certificate = aws.iot.Certificate(
                f"{name}-claim-certificate-{generation.name}",
                active=generation.active,
                csr=(generation.csr or None) if not generation.certificate_pem else None,
                certificate_pem=generation.certificate_pem or None,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    additional_secret_outputs=["privateKey"],
                    ignore_changes=_claim_certificate_ignored(generation),
                ),
            )
            aws.iot.PolicyAttachment(
                f"{name}-claim-policy-attachment-{generation.name}",
                policy=policy.name,
                target=certificate.arn,
                opts=self._child,
            )
            certificates[generation.name] = certificate
        current_generation = args.claim_generations[-1]
        current = certificates[current_generation.name]
        self.claim_certificate_ids = {generation: cert.id for generation, cert in certificates.items()}
        self.claim_certificate_pems = {
            generation: cert.certificate_pem for generation, cert in certificates.items()
        }
        self.claim_certificate_id = current.id
        self.claim_certificate_pem = current.certificate_pem
        made_here = not (current_generation.csr or current_generation.certificate_pem)
        self.claim_private_key = pulumi.Output.secret(current.private_key) if made_here else None

    def _create_template(
        self, name: str, template_name: str, hook: aws.lambda_.Function
    ) -> aws.iot.ProvisioningTemplate:
        """The provisioning role, the hook's invoke permission and the template itself, enabled."""
        args = self._args
        role = aws.iam.Role(
            f"{name}-provisioning-role",
            name=args.defaults.account_wide_names.role(Role.PROVISIONING),
            assume_role_policy=self._scope.apply(
                lambda scope: documents.service_trust_policy("iot.amazonaws.com", scope.account_id)
            ),
            tags=self._tags,
            opts=self._child,
        )
        role_policy: pulumi.Resource
        if args.role_policy == "managed":
            # The policy AWS documents for a fleet provisioning template's role (AWS IoT developer guide,
            # "Provisioning devices that don't have device certificates using fleet provisioning").
            role_policy = aws.iam.RolePolicyAttachment(
                f"{name}-provisioning-policy",
                role=role.name,
                policy_arn=self._scope.apply(
                    lambda scope: f"arn:{scope.partition}:iam::aws:{documents.THINGS_REGISTRATION_POLICY}"
                ),
                opts=self._child,
            )
        else:
            role_policy = aws.iam.RolePolicy(
                f"{name}-provisioning-policy",
                role=role.id,
                policy=self._scope.apply(
                    lambda scope: documents.provisioning_role_policy(scope, args.name_prefix)
                ),
                opts=self._child,
            )
        # The pre-provisioning hook page asks for "source-arn or source-account"; AWS documents no SourceArn
        # for a hook's invocation and public deployments set none, so a SourceArn condition could refuse
        # every RegisterThing: the account is the confused-deputy protection.
        permission = aws.lambda_.Permission(
            f"{name}-hook-invoke",
            action="lambda:InvokeFunction",
            function=hook.name,
            principal="iot.amazonaws.com",
            source_account=self._scope.account_id,
            opts=self._child,
        )
        # The provider retries InvalidRequestException for 2 minutes while a new role propagates through
        # IAM (terraform-provider-aws iot/provisioning_template.go); changing the name replaces the template.
        return aws.iot.ProvisioningTemplate(
            f"{name}-template",
            name=template_name,
            description="Fleet provisioning by claim, validated by the pre-provisioning hook",
            type="FLEET_PROVISIONING",
            enabled=True,  # the provider's default is false: a template that refuses every device
            provisioning_role_arn=role.arn,
            template_body=provisioning_template_body(args),
            pre_provisioning_hook=aws.iot.ProvisioningTemplatePreProvisioningHookArgs(
                target_arn=hook.arn, payload_version="2020-04-01"
            ),
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permission, role_policy]),
        )


def _claim_certificate_ignored(generation: ClaimGeneration) -> list[str]:
    """Inputs the program never pushes to an existing claim certificate.

    The CSR and a registered PEM force a replacement (terraform-provider-aws iot/certificate.go: ``csr`` and
    ``certificate_pem`` are ForceNew), and a replaced claim certificate breaks every factory image that
    carries it: a new CSR is a new generation.
    While config says active, ``active`` is ignored too: the provider reads the status back on refresh and
    would re-activate a certificate that ``fleetctl claim deactivate`` closed. Config can deactivate; nothing
    in the program re-activates.
    """
    pinned = ["csr", "certificatePem"]
    return [*pinned, "active"] if generation.active else pinned
