"""A device, as firmware built on the AWS IoT Device SDK v2 would behave: provision by claim over MQTT
(``CreateCertificateFromCsr`` with a key made on the device or held by its secure element, or
``CreateKeysAndCertificate`` with a key made by AWS IoT; then ``RegisterThing``), then work as its thing
(telemetry, shadow).

The MQTT connection is ``local/devices/mqtt_session.py``'s, the key pairs ``local/devices/key_pairs.py``'s.
Nothing here is specific to the emulator: the session's ``Broker`` holds the endpoint, port and CA, so the
same code provisions against AWS IoT with the stack's ``iotEndpoint``, port 8883 and Amazon Root CA 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from awscrt import mqtt_request_response
from awsiot import iotidentity, iotshadow

from hook.contract import VENDOR_CHAIN_PARAMETER
from hook.rules import DeviceRequest
from local.devices.key_pairs import AwsKeys, KeyAndCsr, KeySource, certificate_matches_key
from local.devices.mqtt_session import (
    TIMEOUT_SECONDS,
    Broker,
    Credentials,
    DeviceError,
    Rejected,
    Session,
    await_result,
)

X509_COMMON_NAME_MAX_LENGTH: Final = 64

Identity = DeviceRequest
"""What a device says about itself in ``RegisterThing``: the five provisioning parameters."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A ``PENDING_ACTIVATION`` certificate with its private key, and the token ``RegisterThing`` takes."""

    certificate_id: str
    credentials: Credentials
    ownership_token: str


@dataclass
class Timings:
    """Seconds each step took, by step name, in order."""

    steps: dict[str, float] = field(default_factory=dict)

    def measure(self, step: str, started: float) -> None:
        """Record ``step`` as having started at ``started`` (``time.perf_counter()``) and ended now."""
        self.steps[step] = time.perf_counter() - started


class Provisioning:
    """Fleet provisioning requests on a session connected with the claim certificate."""

    def __init__(self, session: Session) -> None:
        self._identity = iotidentity.IotIdentityClientV2(
            session.client,
            mqtt_request_response.ClientOptions(
                max_request_response_subscriptions=4,
                max_streaming_subscriptions=1,
                operation_timeout_in_seconds=int(TIMEOUT_SECONDS),
            ),
        )

    def create_certificate(self, keys: KeySource, common_name: str) -> IssuedCertificate:
        """A ``PENDING_ACTIVATION`` certificate and its private key, made as ``keys`` says: the device's own
        key (the CSR's subject is ``CN=<common_name>``, cut to the 64 characters X.509 allows) or one made
        by AWS IoT."""
        key = keys.key_and_csr(common_name[:X509_COMMON_NAME_MAX_LENGTH] or "device")
        return self.create_keys_and_certificate() if key is None else self.create_certificate_from_csr(key)

    def create_certificate_from_csr(self, key: KeyAndCsr) -> IssuedCertificate:
        """A ``PENDING_ACTIVATION`` certificate for the CSR of the device's own key (:func:`new_key_and_csr`,
        or a secure element's). Only the CSR is sent; the key is returned with the certificate. Raises
        :class:`DeviceError` when the certificate is not for that key."""
        response = await_result(
            "CreateCertificateFromCsr",
            self._identity.create_certificate_from_csr(
                iotidentity.CreateCertificateFromCsrRequest(certificate_signing_request=key.csr_pem)
            ),
        )
        if not certificate_matches_key(response.certificate_pem, key.private_key_pem):
            raise DeviceError(
                f"CreateCertificateFromCsr: certificate {response.certificate_id} is for another key"
            )
        return IssuedCertificate(
            certificate_id=response.certificate_id,
            credentials=Credentials(response.certificate_pem, key.private_key_pem),
            ownership_token=response.certificate_ownership_token,
        )

    def create_keys_and_certificate(self) -> IssuedCertificate:
        """A new key pair made by AWS IoT, and a ``PENDING_ACTIVATION`` certificate for it."""
        response = await_result(
            "CreateKeysAndCertificate",
            self._identity.create_keys_and_certificate(iotidentity.CreateKeysAndCertificateRequest()),
        )
        return IssuedCertificate(
            certificate_id=response.certificate_id,
            credentials=Credentials(response.certificate_pem, response.private_key),
            ownership_token=response.certificate_ownership_token,
        )

    def register_thing(self, template_name: str, ownership_token: str, parameters: dict[str, str]) -> str:
        """Run the template (and its pre-provisioning hook); returns the thing name."""
        response = await_result(
            "RegisterThing",
            self._identity.register_thing(
                iotidentity.RegisterThingRequest(
                    template_name=template_name,
                    certificate_ownership_token=ownership_token,
                    parameters=parameters,
                )
            ),
        )
        return str(response.thing_name)


@dataclass(frozen=True)
class ProvisionedDevice:
    """A device that provisioned: its thing, its own certificate, and how long each step took."""

    identity: Identity
    thing_name: str
    certificate_id: str
    credentials: Credentials
    timings: Timings
    keys: KeySource = AwsKeys()
    """Who made the device's key pair."""


def provision(
    broker: Broker,
    claim: Credentials,
    claim_client_id: str,
    template_name: str,
    identity: Identity,
    *,
    keys: KeySource = AwsKeys(),
    on_certificate: Callable[[str], None] = lambda certificate_id: None,
    vendor_chain: str | None = None,
) -> ProvisionedDevice:
    """Provision by claim: connect with the claim certificate, get a certificate, register the thing.

    ``keys`` chooses the request: :class:`DeviceKeys` makes a key pair here, a secure element
    (``local/devices/secure_element.py``) holds one from the factory, and either way the device sends a CSR
    whose subject is the serial number (``CreateCertificateFromCsr``); :class:`AwsKeys` has AWS IoT make the
    key pair (``CreateKeysAndCertificate``). Step ``create certificate`` of the timings includes making the
    key. ``on_certificate`` is told the certificate's id as soon as it is issued. A zero-touch device sends
    its secure element's factory certificate chain (``vendor_chain``) beside its identity."""
    parameters = identity.parameters()
    if vendor_chain is not None:
        parameters[VENDOR_CHAIN_PARAMETER] = vendor_chain
    timings = Timings()
    started = time.perf_counter()
    with Session(broker, claim, claim_client_id) as session:
        timings.measure("connect", started)
        provisioning = Provisioning(session)
        started = time.perf_counter()
        issued = provisioning.create_certificate(keys, identity.serial_number)
        on_certificate(issued.certificate_id)
        timings.measure("create certificate", started)
        started = time.perf_counter()
        try:
            thing_name = provisioning.register_thing(template_name, issued.ownership_token, parameters)
        except Rejected as rejection:
            rejection.certificate_id = issued.certificate_id
            raise
        timings.measure("register", started)
    return ProvisionedDevice(identity, thing_name, issued.certificate_id, issued.credentials, timings, keys)


def telemetry_topic(device_type: str, thing_name: str) -> str:
    """The topic a device publishes its telemetry on."""
    return f"dt/{device_type}/{thing_name}/telemetry"


def get_shadow(session: Session, thing_name: str) -> dict[str, Any]:
    """The thing's classic shadow state (``desired``, ``reported``) as the device reads it over MQTT."""
    shadows = iotshadow.IotShadowClientV2(
        session.client,
        mqtt_request_response.ClientOptions(
            max_request_response_subscriptions=2,
            max_streaming_subscriptions=1,
            operation_timeout_in_seconds=int(TIMEOUT_SECONDS),
        ),
    )
    response = await_result(
        "GetShadow", shadows.get_shadow(iotshadow.GetShadowRequest(thing_name=thing_name))
    )
    state = response.state
    return {"desired": state.desired or {}, "reported": state.reported or {}} if state is not None else {}
