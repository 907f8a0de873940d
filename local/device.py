"""A device, as firmware built on the AWS IoT Device SDK v2 would behave: provision by claim over MQTT
(``CreateKeysAndCertificate``, ``RegisterThing``), then work as its thing (telemetry, shadow).

Nothing here is specific to the emulator: :class:`Broker` holds the endpoint, port and CA, so the same
code provisions against AWS IoT with the stack's ``iotEndpoint``, port 8883 and Amazon Root CA 1.
"""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from awscrt import mqtt5, mqtt_request_response
from awsiot import V2ServiceException, iotidentity, iotshadow, mqtt5_client_builder

from hook.rules import DeviceRequest

TIMEOUT_SECONDS: Final = 10.0
"""How long any one MQTT step may take (the hook alone may take up to 5 seconds)."""


class DeviceError(RuntimeError):
    """An MQTT step failed: the connection was refused or lost, or a request was rejected."""


class ConnectRefused(DeviceError):
    """The broker refused the connection (for instance ``NOT_AUTHORIZED`` for the client id)."""


class PublishRefused(DeviceError):
    """The broker acknowledged a publish with a failure reason code (``NOT_AUTHORIZED``, ...)."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"publish to {topic} refused: {reason}")


class Rejected(DeviceError):
    """AWS IoT rejected a request, with its error code and message."""

    def __init__(self, operation: str, error_code: str, message: str) -> None:
        super().__init__(f"{operation} rejected: {error_code}: {message}")
        self.operation = operation
        self.error_code = error_code
        self.certificate_id: str | None = None
        """The certificate the device got before ``RegisterThing`` was rejected, if it got one."""


@dataclass(frozen=True)
class Broker:
    """Where devices connect: host, port and the CA that signed the broker's certificate."""

    host: str
    port: int
    ca_pem: str


@dataclass(frozen=True)
class Credentials:
    """A certificate and its private key (PEM)."""

    certificate_pem: str
    private_key: str


Identity = DeviceRequest
"""What a device says about itself in ``RegisterThing``: the five provisioning parameters."""


@dataclass(frozen=True)
class IssuedCertificate:
    """The answer to ``CreateKeysAndCertificate``."""

    certificate_id: str
    credentials: Credentials
    ownership_token: str


class Session:
    """One MQTT 5 connection over mutual TLS; a context manager that disconnects on exit."""

    def __init__(self, broker: Broker, credentials: Credentials, client_id: str) -> None:
        self.client_id = client_id
        self._connected: Future[None] = Future()
        self._disconnected: Future[str] = Future()
        self._stopped: Future[None] = Future()
        self._client = mqtt5_client_builder.mtls_from_bytes(
            endpoint=broker.host,
            port=broker.port,
            cert_bytes=credentials.certificate_pem.encode(),
            pri_key_bytes=credentials.private_key.encode(),
            ca_bytes=broker.ca_pem.encode(),
            client_id=client_id,
            session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
            connack_timeout_ms=int(TIMEOUT_SECONDS * 1000),
            ack_timeout_sec=int(TIMEOUT_SECONDS),
            on_lifecycle_connection_success=lambda _: _settle(self._connected, None),
            on_lifecycle_connection_failure=self._on_connection_failure,
            on_lifecycle_disconnection=self._on_disconnection,
            on_lifecycle_stopped=lambda _: _settle(self._stopped, None),
        )

    @property
    def client(self) -> mqtt5.Client:
        """The SDK's MQTT 5 client, for the service clients (identity, shadow)."""
        return self._client

    def __enter__(self) -> Session:
        self._client.start()
        try:
            self._connected.result(TIMEOUT_SECONDS)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect and stop reconnecting."""
        self._client.stop()
        self._stopped.result(TIMEOUT_SECONDS)

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Publish at QoS 1 and wait for the broker's acknowledgement; raises :class:`PublishRefused` when
        the broker refuses the message (MQTT 5 ``PUBACK`` ``NOT_AUTHORIZED`` where the policy does not allow
        it), :class:`DeviceError` when the connection is lost instead."""
        packet = mqtt5.PublishPacket(
            topic=topic, payload=json.dumps(payload).encode(), qos=mqtt5.QoS.AT_LEAST_ONCE
        )
        published = self._client.publish(packet)
        done, _ = wait([published, self._disconnected], TIMEOUT_SECONDS, return_when=FIRST_COMPLETED)
        if not done:
            raise DeviceError(f"publish to {topic}: no acknowledgement within {TIMEOUT_SECONDS:.0f} s")
        if published.done() and published.exception() is None:
            puback = published.result().puback
            if puback is not None and puback.reason_code != mqtt5.PubackReasonCode.SUCCESS:
                raise PublishRefused(topic, puback.reason_code.name)
            return
        reason = self._disconnected.result() if self._disconnected.done() else str(published.exception())
        raise DeviceError(f"publish to {topic}: the connection was lost ({reason})")

    def _on_connection_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        connack = data.connack_packet
        reason = connack.reason_code.name if connack is not None else str(data.exception)
        _settle_error(self._connected, ConnectRefused(f"connect as {self.client_id} refused: {reason}"))
        self._client.stop()

    def _on_disconnection(self, data: mqtt5.LifecycleDisconnectData) -> None:
        packet = data.disconnect_packet
        _settle(self._disconnected, packet.reason_code.name if packet is not None else str(data.exception))


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

    def create_keys_and_certificate(self) -> IssuedCertificate:
        """A new key pair and a ``PENDING_ACTIVATION`` certificate for it."""
        response = _result(
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
        response = _result(
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


def provision(
    broker: Broker, claim: Credentials, claim_client_id: str, template_name: str, identity: Identity
) -> ProvisionedDevice:
    """Provision by claim: connect with the claim certificate, get a certificate, register the thing."""
    timings = Timings()
    started = time.perf_counter()
    with Session(broker, claim, claim_client_id) as session:
        timings.measure("connect", started)
        provisioning = Provisioning(session)
        started = time.perf_counter()
        issued = provisioning.create_keys_and_certificate()
        timings.measure("create keys", started)
        started = time.perf_counter()
        try:
            thing_name = provisioning.register_thing(
                template_name, issued.ownership_token, identity.parameters()
            )
        except Rejected as rejection:
            rejection.certificate_id = issued.certificate_id
            raise
        timings.measure("register", started)
    return ProvisionedDevice(identity, thing_name, issued.certificate_id, issued.credentials, timings)


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
    response = _result("GetShadow", shadows.get_shadow(iotshadow.GetShadowRequest(thing_name=thing_name)))
    state = response.state
    return {"desired": state.desired or {}, "reported": state.reported or {}} if state is not None else {}


def _result(operation: str, future: Future[Any]) -> Any:
    try:
        return future.result(TIMEOUT_SECONDS + 1)
    except V2ServiceException as error:
        modeled = error.modeled_error
        if modeled is not None:
            # Identity errors name their fields error_code and error_message, shadow errors code and message.
            code = getattr(modeled, "error_code", None) or getattr(modeled, "code", None)
            message = getattr(modeled, "error_message", None) or getattr(modeled, "message", None)
            raise Rejected(operation, str(code), str(message)) from error
        raise DeviceError(f"{operation} failed: {error.message}: {error.inner_error}") from error


def _settle(future: Future[Any], value: Any) -> None:
    with contextlib.suppress(InvalidStateError):  # settled already: only the first event counts
        future.set_result(value)


def _settle_error(future: Future[Any], error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_exception(error)
