"""The checks of a provisioned sample fleet (:data:`FLEET_CHECKS`), each a function of the deployment and the
fleet; a check's name is its function's name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from hook.contract import (
    PARAMETER_ATTRIBUTES,
    Attr,
    DeviceStatus,
    Parameter,
    RejectionReason,
    device_type_resource_name,
    thing_name,
)
from local.devices.firmware import get_shadow
from local.devices.fleet_runner import HOOK_DENIED
from local.devices.key_pairs import AwsKeys, DeviceKeys, certificate_matches_key, key_algorithm
from local.devices.mqtt_session import Session
from local.devices.sample_fleet import APPROVED
from local.devices.secure_element import SecureElement
from local.scenario.deployment import Deployment
from local.scenario.expectations import expect, expect_equal, present
from local.scenario.provisioned_fleet import Fleet
from local.scenario.result_tables import outcome_result
from program.outputs import StackOutput


def every_device_gets_the_outcome_its_fleet_entry_expects(deployment: Deployment, fleet: Fleet) -> None:
    """Each device's outcome is its fleet entry's ``expect``, and every device type provisions."""
    expect_equal(
        [(o.device.identity.serial_number, outcome_result(o)) for o in fleet.outcomes],
        [(o.device.identity.serial_number, o.device.expect) for o in fleet.outcomes],
        "(serial, outcome) of each device",
    )
    expect_equal(
        {o.device.identity.device_type for o in fleet.outcomes if o.approved},
        {device_type.name for device_type in deployment.settings.device_types},
        "device types that provisioned",
    )


def a_clone_of_a_provisioned_device_is_denied(deployment: Deployment, fleet: Fleet) -> None:
    """Another device with the serial of a device that provisioned is denied: ``DuplicateSerial``, or
    ``PublicKeyMismatch`` for a type that binds serials to their devices' keys (the other device's key is
    not the one registered), whether it came before the genuine device or after it."""
    settings = deployment.settings
    binding = {device_type.name for device_type in settings.device_types if settings.binds_keys(device_type)}
    approved = {o.device.identity.serial_number for o in fleet.approved}
    clones = [o for o in fleet.rejected if o.device.identity.serial_number in approved]
    expect(clones, "the fleet has no clone of a provisioned device")
    expect(
        {clone.device.identity.device_type in binding for clone in clones} == {True, False},
        "the fleet does not clone devices both of a type that binds keys and of one that does not",
    )
    for clone in clones:
        expect_equal(
            outcome_result(clone),
            RejectionReason.PUBLIC_KEY_MISMATCH
            if clone.device.identity.device_type in binding
            else RejectionReason.DUPLICATE_SERIAL,
            f"{clone.device.identity.serial_number} (clone)",
        )


def approved_devices_are_active_in_the_registry(deployment: Deployment, fleet: Fleet) -> None:
    """Registry items of approved devices: ``ACTIVE``, with thing, certificates, client id, parameters."""
    registry = deployment.inspector.registry(deployment.registry_table)
    for outcome in fleet.approved:
        device = present(outcome.provisioned, "the provisioned device")
        identity = outcome.device.identity
        serial = identity.serial_number
        item = present(registry.get(serial), f"registry item {serial}")
        expect_equal(item[Attr.STATUS], DeviceStatus.ACTIVE, f"{serial} status")
        expect_equal(item[Attr.THING_NAME], device.thing_name, f"{serial} thingName")
        expect_equal(item[Attr.CERTIFICATE_ID], device.certificate_id, f"{serial} certificateId")
        expect_equal(
            item[Attr.CLIENT_ID],
            f"{deployment.outputs[StackOutput.CLAIM_CLIENT_ID_PREFIX]}{serial}",
            f"{serial} clientId",
        )
        expect_equal(
            item[Attr.CLAIM_CERTIFICATE_ID],
            deployment.outputs[StackOutput.CLAIM_CERTIFICATE_ID],
            f"{serial} claimCertificateId",
        )
        for parameter, value in identity.parameters().items():
            attribute = PARAMETER_ATTRIBUTES[Parameter(parameter)]
            expect_equal(item[attribute], value, f"{serial} {attribute}")


def approved_devices_have_things_with_their_type_groups_and_attributes(
    deployment: Deployment, fleet: Fleet
) -> None:
    """Each approved device's thing: its name, its type's thing type and group, its parameters as
    attributes, and only its own certificate."""
    base_name = deployment.settings.base_name
    for outcome in fleet.approved:
        device = present(outcome.provisioned, "the provisioned device")
        identity = outcome.device.identity
        name = thing_name(base_name, identity.serial_number)
        expect_equal(device.thing_name, name, f"{identity.serial_number} thing name")
        thing = present(deployment.inspector.thing(name), f"thing {name}")
        per_type = device_type_resource_name(base_name, identity.device_type)
        expect_equal(thing.type_name, per_type, f"{name} thing type")
        expect_equal(thing.groups, [per_type], f"{name} thing groups")
        expect_equal(
            thing.attributes,
            {
                PARAMETER_ATTRIBUTES[Parameter(parameter)].value: value
                for parameter, value in identity.parameters().items()
            },
            f"{name} attributes",
        )
        certificate = present(
            deployment.inspector.certificate(device.certificate_id), f"certificate {device.certificate_id}"
        )
        expect_equal(thing.principals, [certificate.arn], f"{name} principals")


def approved_certificates_are_active_with_only_their_type_policy(
    deployment: Deployment, fleet: Fleet
) -> None:
    """Each approved device's certificate is ``ACTIVE``, with its type's policy and its thing only."""
    for outcome in fleet.approved:
        device = present(outcome.provisioned, "the provisioned device")
        certificate = present(
            deployment.inspector.certificate(device.certificate_id), f"certificate {device.certificate_id}"
        )
        what = f"certificate of {device.thing_name}"
        expect_equal(certificate.status, "ACTIVE", f"{what}: status")
        expect_equal(
            certificate.policies,
            [device_type_resource_name(deployment.settings.base_name, outcome.device.identity.device_type)],
            f"{what}: policies",
        )
        expect_equal(certificate.things, [device.thing_name], f"{what}: things")


def devices_of_every_key_flow_provision_with_keys_of_their_own(deployment: Deployment, fleet: Fleet) -> None:
    """Devices that made their key pair and sent only a CSR (``CreateCertificateFromCsr``), devices whose
    secure element holds their key and signed their CSR, and devices whose key pair AWS IoT made
    (``CreateKeysAndCertificate``) all provision; each certificate is for the key the device holds, a CSR
    device's key is of the algorithm it chose, and a secure element's key is the one its serial is bound to
    in the registry."""
    flows = {outcome.device.keys for outcome in fleet.outcomes if outcome.device.expect == APPROVED}
    expect(
        any(isinstance(keys, DeviceKeys) for keys in flows)
        and any(isinstance(keys, SecureElement) for keys in flows)
        and AwsKeys() in flows,
        f"the fleet's valid devices do not use every key flow: {sorted(keys.label for keys in flows)}",
    )
    registry = deployment.inspector.registry(deployment.registry_table)
    expect_equal(
        sorted(outcome.device.keys.label for outcome in fleet.approved),
        sorted(outcome.device.keys.label for outcome in fleet.outcomes if outcome.device.expect == APPROVED),
        "key flows of the devices that provisioned",
    )
    for outcome in fleet.approved:
        device = present(outcome.provisioned, "the provisioned device")
        what = f"{device.thing_name} ({device.keys.label})"
        expect_equal(device.keys, outcome.device.keys, f"{what}: key flow")
        expect(
            certificate_matches_key(device.credentials.certificate_pem, device.credentials.private_key),
            f"{what}: the certificate is not for the device's key",
        )
        if isinstance(device.keys, DeviceKeys | SecureElement):
            expect_equal(key_algorithm(device.credentials.private_key), device.keys.algorithm, f"{what}: key")
        if isinstance(device.keys, SecureElement):
            expect(
                device.keys.carries_key(device.credentials.certificate_pem), f"{what}: not the element's key"
            )
            expect_equal(
                registry[device.identity.serial_number].get(Attr.PUBLIC_KEY_SHA256),
                device.keys.public_key_sha256(),
                f"{what}: registered key",
            )


def approved_devices_have_their_initial_shadow(deployment: Deployment, fleet: Fleet) -> None:
    """Each approved device's shadow holds its type's initial desired state."""
    initial = deployment.settings.initial_shadows()
    for outcome in fleet.approved:
        device = present(outcome.provisioned, "the provisioned device")
        shadow = present(deployment.inspector.shadow(device.thing_name), f"shadow of {device.thing_name}")
        expect_equal(
            shadow["desired"],
            initial[outcome.device.identity.device_type],
            f"{device.thing_name} desired state",
        )


def a_device_reads_its_own_shadow_over_mqtt(deployment: Deployment, fleet: Fleet) -> None:
    """An approved device connects as its thing and reads its initial shadow over MQTT."""
    expect(fleet.approved, "no device provisioned")
    device = present(fleet.approved[0].provisioned, "the provisioned device")
    with Session(deployment.target.broker, device.credentials, device.thing_name) as session:
        shadow = get_shadow(session, device.thing_name)
    expect_equal(
        shadow["desired"],
        deployment.settings.initial_shadows()[device.identity.device_type],
        f"{device.thing_name} desired state read over MQTT",
    )


def rejected_devices_leave_no_thing_attached_certificate_or_registry_record(
    deployment: Deployment, fleet: Fleet
) -> None:
    """A rejected device's certificate stays ``PENDING_ACTIVATION`` without policy or thing; it has no
    thing and no registry item, or, for a clone, the original's are untouched."""
    inspector = deployment.inspector
    registry = inspector.registry(deployment.registry_table)
    approved_serials = {outcome.device.identity.serial_number for outcome in fleet.approved}
    for outcome in fleet.rejected:
        serial = outcome.device.identity.serial_number
        certificate_id = present(outcome.rejected_certificate_id, f"{serial}: the certificate it was issued")
        certificate = present(
            inspector.certificate(certificate_id), f"{serial}: certificate {certificate_id}"
        )
        expect_equal(certificate.status, "PENDING_ACTIVATION", f"{serial}: certificate status")
        expect_equal(certificate.policies, [], f"{serial}: certificate policies")
        expect_equal(certificate.things, [], f"{serial}: certificate things")
        thing = inspector.thing(thing_name(deployment.settings.base_name, serial))
        if serial in approved_serials:  # a clone of an approved device: the original is untouched
            original = present(thing, f"{serial}: the original's thing")
            expect(
                certificate.arn not in original.principals, f"{serial}: the clone's certificate is attached"
            )
            expect(
                registry[serial][Attr.CERTIFICATE_ID] != certificate_id,
                f"{serial}: the registry names the clone's certificate",
            )
        else:
            expect(thing is None, f"{serial}: a thing exists")
            expect(serial not in registry, f"{serial}: a registry item exists")


def the_reason_the_hook_logged_is_shown_for_each_rejected_device(
    deployment: Deployment, fleet: Fleet
) -> None:
    """Each rejected device was denied by the hook (``AccessDenied``) for its expected reason, with a
    detail."""
    expect(fleet.rejected, "no device was rejected")
    for outcome in fleet.rejected:
        serial = outcome.device.identity.serial_number
        expect(outcome.device.expect != APPROVED, f"{serial}: rejected, but expected to provision")
        expect_equal(outcome.error_code, HOOK_DENIED, f"{serial}: error code")
        reason, _, detail = outcome.reason.partition(": ")
        expect_equal(reason, outcome.device.expect, f"{serial}: reason the hook logged")
        expect(detail, f"{serial}: the hook logged no detail")


FleetCheck = Callable[[Deployment, Fleet], None]
FLEET_CHECKS: Final[tuple[FleetCheck, ...]] = (
    every_device_gets_the_outcome_its_fleet_entry_expects,
    a_clone_of_a_provisioned_device_is_denied,
    approved_devices_are_active_in_the_registry,
    approved_devices_have_things_with_their_type_groups_and_attributes,
    approved_certificates_are_active_with_only_their_type_policy,
    devices_of_every_key_flow_provision_with_keys_of_their_own,
    approved_devices_have_their_initial_shadow,
    a_device_reads_its_own_shadow_over_mqtt,
    rejected_devices_leave_no_thing_attached_certificate_or_registry_record,
    the_reason_the_hook_logged_is_shown_for_each_rejected_device,
)
"""What the sample fleet is checked for, in order; a check's name is its function's name."""
