"""The scenario the e2e suite checks on the emulator and ``local/acceptance.py`` checks on AWS, each a
:class:`~local.deployment.Deployment`.

The sample fleet provisions as its entries expect: approved devices are ``ACTIVE`` with their thing,
certificate and shadow; rejected devices, a clone among them, leave nothing behind; a revoked device
cannot open a new connection. Checks raise :class:`ScenarioFailure` (an ``AssertionError``) saying what
was found and what was expected.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from hook.contract import (
    PARAMETER_ATTRIBUTES,
    Attr,
    DeviceStatus,
    Parameter,
    RejectionReason,
    device_type_resource_name,
    thing_name,
)
from local.deployer import local_config
from local.deployment import Deployment, eventually
from local.device import (
    AwsKeys,
    ConnectRefused,
    DeviceKeys,
    Identity,
    ProvisionedDevice,
    Session,
    certificate_matches_key,
    get_shadow,
    key_algorithm,
    telemetry_topic,
)
from local.factory import write_manifest
from local.fleet import HOOK_DENIED, Outcome, provision_fleet, with_hook_reasons
from local.report import outcome_result
from local.sample_fleet import APPROVED, FleetDevice, load_fleet, preregistered
from local.secure_element import SecureElement
from program.outputs import StackOutput
from program.settings import PROJECT

T = TypeVar("T")
R = TypeVar("R")

FLEET_CONCURRENCY: Final = 4
"""Devices provisioning at once. Each concurrent hook invocation may start a new Lambda worker in the
emulator (a Python process importing Powertools and boto3); 4 keeps that burst well inside the emulator's
6-second hook deadline on a 2-core runner. The benchmark measures 8 at a time."""

REVOKED_DEVICE: Final = Identity("TS-910001", "temperature-sensor", "AcmeIoT", "1.4.2", "ops-lab/revoke")
REVOCATION_REASON: Final = "key extracted in the field"


class ScenarioFailure(AssertionError):
    """A check of the scenario failed."""


def expect(condition: object, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ScenarioFailure(message)


def expect_equal(actual: object, expected: object, what: str) -> None:
    """Fail unless ``actual == expected``, naming ``what`` and both values."""
    if actual != expected:
        raise ScenarioFailure(f"{what}: got {actual!r}, expected {expected!r}")


def present(value: T | None, what: str) -> T:
    """``value``; fail naming ``what`` when it is ``None``."""
    if value is None:
        raise ScenarioFailure(f"{what} does not exist")
    return value


def scenario_config() -> dict[str, str]:
    """The stack config the scenario's expectations rest on: the local stack's device types and their
    rules, which the sample fleet's rejections depend on."""
    key = f"{PROJECT}:deviceTypes"
    return {key: local_config()[key]}


@dataclass(frozen=True)
class Fleet:
    """The outcomes of a provisioned fleet, with the hook's reasons for the rejected devices."""

    outcomes: list[Outcome]

    @property
    def approved(self) -> list[Outcome]:
        """The devices that provisioned."""
        return [outcome for outcome in self.outcomes if outcome.approved]

    @property
    def rejected(self) -> list[Outcome]:
        """The devices that did not."""
        return [outcome for outcome in self.outcomes if not outcome.approved]


def preregister_fleet(deployment: Deployment, devices: Iterable[FleetDevice]) -> dict[str, Any] | None:
    """Import the factory manifest of the devices marked ``preregister``, each secure element's public key
    in it, with ``fleetctl preregister``; fleetctl's report (``None`` when no device is marked). Fails
    unless every row was created or was there already, unchanged."""
    listed = preregistered(devices)
    if not listed:
        return None
    with tempfile.TemporaryDirectory() as directory:
        manifest = Path(directory) / "factory-manifest.csv"
        write_manifest(manifest, [(device.identity, device.element) for device in listed])
        report: dict[str, Any] = deployment.fleetctl("preregister", str(manifest))
    expect(
        not report["conflicts"] and not report["skipped"],
        f"fleetctl preregister left rows out of the factory manifest: {report}",
    )
    return report


def provision_devices(
    deployment: Deployment,
    devices: Iterable[FleetDevice],
    *,
    concurrency: int = FLEET_CONCURRENCY,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
) -> Fleet:
    """Pre-register the devices of the factory manifest (:func:`preregister_fleet`), provision ``devices``,
    wait for the hook's reasons to be logged and for approved devices to be ``ACTIVE`` (up to the
    deployment's patience), and return the fleet."""
    devices = list(devices)
    preregister_fleet(deployment, devices)
    outcomes = provision_fleet(deployment.target, devices, concurrency=concurrency, on_outcome=on_outcome)
    logs = deployment.inspector.client("logs")
    outcomes = eventually(
        lambda: with_hook_reasons(outcomes, logs, deployment.outputs[StackOutput.HOOK_FUNCTION]),
        lambda found: all(outcome.reason for outcome in found if outcome.error_code == HOOK_DENIED),
        deployment.patience.logs,
        deployment.patience.interval,
    )
    fleet = Fleet(outcomes)
    deployment.wait_for_status([o.device.identity.serial_number for o in fleet.approved], DeviceStatus.ACTIVE)
    return fleet


# --- checks of a provisioned fleet ---------------------------------------------------------------------


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


# --- revocation ----------------------------------------------------------------------------------------


def provision_and_connect(deployment: Deployment, identity: Identity) -> ProvisionedDevice:
    """Provision a fresh device by claim, wait until the registry has it ``ACTIVE``, and show that it
    connects as its thing and publishes its telemetry (the connection is closed on return)."""
    target = deployment.target
    device = target.provision(identity)
    registry = deployment.wait_for_status([identity.serial_number], DeviceStatus.ACTIVE)
    item = present(registry.get(identity.serial_number), f"registry item {identity.serial_number}")
    expect_equal(item[Attr.STATUS], DeviceStatus.ACTIVE, f"{identity.serial_number} status")
    with Session(target.broker, device.credentials, device.thing_name) as session:
        session.publish(
            telemetry_topic(identity.device_type, device.thing_name),
            {"serialNumber": identity.serial_number, "temperature": 20.0, "at": time.time()},
        )
    return device


def expect_new_connection_refused(deployment: Deployment, device: ProvisionedDevice) -> ConnectRefused:
    """A new MQTT connection with the device's certificate is refused; returns the refusal.

    Every attempt is a new connection, never a session opened before. Attempts repeat for the
    deployment's ``patience.revocation`` (AWS IoT may accept a revoked certificate for a moment)."""
    deadline = time.monotonic() + deployment.patience.revocation
    while True:
        try:
            with Session(deployment.target.broker, device.credentials, device.thing_name):
                pass
        except ConnectRefused as refused:
            return refused
        if time.monotonic() >= deadline:
            raise ScenarioFailure(
                f"{device.thing_name} still connects with certificate {device.certificate_id}"
            )
        time.sleep(deployment.patience.interval)


def expect_revoked(deployment: Deployment, device: ProvisionedDevice, reason: str) -> None:
    """The registry has the device ``REVOKED`` with ``reason``; its certificate is ``REVOKED`` without
    policy or thing; its thing is kept, without a certificate."""
    serial = device.identity.serial_number
    inspector = deployment.inspector
    item = present(inspector.registry(deployment.registry_table).get(serial), f"registry item {serial}")
    expect_equal(item[Attr.STATUS], DeviceStatus.REVOKED, f"{serial} status")
    expect_equal(item.get(Attr.REVOCATION_REASON), reason, f"{serial} revocationReason")
    expect(item.get(Attr.REVOKED_AT), f"{serial}: no revokedAt")
    expect_equal(item[Attr.CERTIFICATE_ID], device.certificate_id, f"{serial} certificateId")
    certificate = present(
        inspector.certificate(device.certificate_id), f"certificate {device.certificate_id}"
    )
    expect_equal(certificate.status, "REVOKED", f"{serial}: certificate status")
    expect_equal(certificate.policies, [], f"{serial}: certificate policies")
    expect_equal(certificate.things, [], f"{serial}: certificate things")
    thing = present(inspector.thing(device.thing_name), f"thing {device.thing_name}")
    expect_equal(thing.principals, [], f"{device.thing_name} principals")


@dataclass(frozen=True)
class Revocation(Generic[R]):
    """A device revoked by the scenario: the device, what ``revoke`` returned, and the refusal."""

    device: ProvisionedDevice
    result: R
    refusal: ConnectRefused


def a_revoked_device_cannot_connect(deployment: Deployment, revoke: Callable[[str, str], R]) -> Revocation[R]:
    """Provision and connect :data:`REVOKED_DEVICE`, revoke it with ``revoke(serial, reason)`` (fleetctl),
    then expect a new connection to be refused and the registry, certificate and thing revoked."""
    device = provision_and_connect(deployment, REVOKED_DEVICE)
    result = revoke(REVOKED_DEVICE.serial_number, REVOCATION_REASON)
    refusal = expect_new_connection_refused(deployment, device)
    expect_revoked(deployment, device, REVOCATION_REASON)
    return Revocation(device, result, refusal)


# --- the whole scenario, for a report ------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, and why not."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class ScenarioResult:
    """The devices' outcomes and every check's result."""

    outcomes: list[Outcome]
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        """Every check passed."""
        return all(check.passed for check in self.checks)


def run_check(name: str, action: Callable[[], object]) -> CheckResult:
    """Run one check; any error fails it (``KeyboardInterrupt`` is not caught)."""
    try:
        action()
    except ScenarioFailure as failure:
        return CheckResult(name, passed=False, detail=str(failure))
    except Exception as error:
        return CheckResult(name, passed=False, detail=f"{type(error).__name__}: {error}")
    return CheckResult(name, passed=True)


def run(
    deployment: Deployment,
    revoke: Callable[[str, str], object],
    *,
    on_certificate: Callable[[str], None],
    checks: Collection[FleetCheck] = FLEET_CHECKS,
) -> ScenarioResult:
    """The whole scenario: provision the sample fleet, run ``checks`` on it, then revoke a device.
    ``on_certificate`` receives the id of every certificate a device of the fleet was issued."""

    def record(outcome: Outcome) -> None:
        issued = (
            outcome.provisioned.certificate_id if outcome.provisioned else outcome.rejected_certificate_id
        )
        if issued:
            on_certificate(issued)

    fleet = provision_devices(deployment, load_fleet(), on_outcome=record)
    results = [run_check(_name(check), partial(check, deployment, fleet)) for check in checks]
    results.append(
        run_check(
            _name(a_revoked_device_cannot_connect),
            partial(a_revoked_device_cannot_connect, deployment, revoke),
        )
    )
    return ScenarioResult(fleet.outcomes, results)


def _name(check: Callable[..., object]) -> str:
    return check.__name__.replace("_", " ")
