"""A device, as firmware built on the AWS IoT Device SDK v2 would behave: provision by claim over MQTT
(``CreateCertificateFromCsr`` with a key made on the device or held by its secure element, or
``CreateKeysAndCertificate`` with a key made by AWS IoT; then ``RegisterThing``), then work as its thing
(telemetry, shadow).

Nothing here is specific to the emulator: :class:`Broker` holds the endpoint, port and CA, so the same
code provisions against AWS IoT with the stack's ``iotEndpoint``, port 8883 and Amazon Root CA 1.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, NamedTuple, Protocol

from awscrt import mqtt5, mqtt_request_response
from awsiot import V2ServiceException, iotidentity, iotshadow, mqtt5_client_builder
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from hook.rules import DeviceRequest

TIMEOUT_SECONDS: Final = 10.0
"""How long any one MQTT step may take (the hook alone may take up to 5 seconds)."""
X509_COMMON_NAME_MAX_LENGTH: Final = 64


class DeviceError(RuntimeError):
    """An MQTT step failed: the connection was refused or lost, or a request was rejected."""


class ConnectRefused(DeviceError):
    """The broker refused the connection (for instance ``NOT_AUTHORIZED`` for the client id)."""


class PublishRefused(DeviceError):
    """The broker acknowledged a publish with a failure reason code (``NOT_AUTHORIZED``, ...)."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"publish to {topic} refused: {reason}")


class SubscribeRefused(DeviceError):
    """The broker refused a subscription (``NOT_AUTHORIZED``, ...)."""

    def __init__(self, topic_filter: str, reason: str) -> None:
        super().__init__(f"subscribe to {topic_filter} refused: {reason}")


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
    """A ``PENDING_ACTIVATION`` certificate with its private key, and the token ``RegisterThing`` takes."""

    certificate_id: str
    credentials: Credentials
    ownership_token: str


class KeyAlgorithm(StrEnum):
    """Key pairs a device makes for ``CreateCertificateFromCsr`` (AWS IoT also takes P-384, P-521 and
    larger RSA keys)."""

    EC_P256 = "ec-p256"
    RSA_2048 = "rsa-2048"


class KeyAndCsr(NamedTuple):
    """A device's private key and a certificate signing request for it, both PEM."""

    private_key_pem: str
    csr_pem: str


class KeySource(Protocol):
    """Who makes a device's key pair, and so which request gets its certificate: :class:`DeviceKeys`,
    :class:`AwsKeys`, or a secure element (``local/secure_element.py``)."""

    @property
    def label(self) -> str:
        """Who made the key, and what key (``device ec-p256``, ``aws``)."""
        ...

    def key_and_csr(self, common_name: str) -> KeyAndCsr | None:
        """The device's key and a CSR for it with subject ``CN=<common_name>``, for
        ``CreateCertificateFromCsr``; ``None`` when AWS IoT makes the key pair
        (``CreateKeysAndCertificate``)."""
        ...


@dataclass(frozen=True)
class DeviceKeys:
    """The device makes a new key pair and sends only a CSR (``CreateCertificateFromCsr``): the private key
    never leaves it."""

    algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256

    @property
    def label(self) -> str:
        """``device ec-p256``: who made the key, and what key."""
        return f"device {self.algorithm}"

    def key_and_csr(self, common_name: str) -> KeyAndCsr:
        """A new key pair of :attr:`algorithm` and its CSR (:func:`new_key_and_csr`)."""
        return new_key_and_csr(self.algorithm, common_name)


@dataclass(frozen=True)
class AwsKeys:
    """AWS IoT makes the key pair and sends the private key to the device (``CreateKeysAndCertificate``)."""

    @property
    def label(self) -> str:
        """``aws``: who made the key."""
        return "aws"

    def key_and_csr(self, common_name: str) -> None:
        """None: the device makes no key."""
        return None


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""The private keys a device may hold: EC P-256 or RSA 2048 (:class:`KeyAlgorithm`)."""


def new_private_key(algorithm: KeyAlgorithm) -> PrivateKey:
    """A new private key of ``algorithm``."""
    if algorithm is KeyAlgorithm.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_key_and_csr(algorithm: KeyAlgorithm, common_name: str) -> KeyAndCsr:
    """A new key pair of ``algorithm`` and a CSR for it with subject ``CN=<common_name>`` (1-64
    characters), signed with SHA-256: ``(private_key_pem, csr_pem)``, the key as unencrypted PKCS #8.

    Only the CSR is meant to leave the device (``CreateCertificateFromCsr``, or a certificate rotation);
    the key stays with it. AWS IoT issues the certificate for the CSR's public key whatever the subject
    says."""
    return key_and_csr(new_private_key(algorithm), common_name)


def key_and_csr(key: PrivateKey, common_name: str) -> KeyAndCsr:
    """``key`` as unencrypted PKCS #8 PEM, and a CSR for it with subject ``CN=<common_name>`` signed with
    SHA-256."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    private_key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return KeyAndCsr(private_key_pem, csr.public_bytes(serialization.Encoding.PEM).decode())


def certificate_matches_key(certificate_pem: str, private_key_pem: str) -> bool:
    """Whether the certificate is for the public key of ``private_key_pem``."""
    certificate_key = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    own_key = serialization.load_pem_private_key(private_key_pem.encode(), password=None).public_key()
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return certificate_key.public_bytes(*spki) == own_key.public_bytes(*spki)


def key_algorithm(private_key_pem: str) -> KeyAlgorithm | None:
    """The :class:`KeyAlgorithm` of a PEM private key, ``None`` for any other kind of key."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return KeyAlgorithm.EC_P256
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048:
        return KeyAlgorithm.RSA_2048
    return None


class Session:
    """One MQTT 5 connection over mutual TLS; a context manager that disconnects on exit."""

    def __init__(self, broker: Broker, credentials: Credentials, client_id: str) -> None:
        self.client_id = client_id
        self._connected: Future[None] = Future()
        self._disconnected: Future[str] = Future()
        self._stopped: Future[None] = Future()
        self._awaited: dict[str, Future[tuple[str, bytes]]] = {}
        """Reply topics a :meth:`request` waits on, each with the future its first reply settles."""
        self._awaited_lock = threading.Lock()
        try:
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
                on_publish_received=self._on_publish_received,
            )
        except (
            RuntimeError
        ) as error:  # awscrt could not make a TLS context of them (a key not the certificate's)
            raise DeviceError(f"connect as {client_id}: unusable certificate or key: {error}") from error

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

    def subscribe(self, *topic_filters: str) -> None:
        """Subscribe at QoS 1 and wait for the broker's acknowledgement; raises :class:`SubscribeRefused`
        naming the first filter the broker refused."""
        subscribed = self._client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[
                    mqtt5.Subscription(topic_filter=topic_filter, qos=mqtt5.QoS.AT_LEAST_ONCE)
                    for topic_filter in topic_filters
                ]
            )
        )
        try:
            suback = subscribed.result(TIMEOUT_SECONDS)
        except Exception as error:
            raise DeviceError(f"subscribe to {', '.join(topic_filters)} failed: {error}") from error
        for topic_filter, code in zip(topic_filters, suback.reason_codes, strict=False):
            if code.value >= mqtt5.SubackReasonCode.UNSPECIFIED_ERROR.value:
                raise SubscribeRefused(topic_filter, code.name)

    def request(
        self, topic: str, payload: dict[str, Any], timeout: float = TIMEOUT_SECONDS
    ) -> tuple[str, dict[str, Any]] | None:
        """One request of an AWS IoT MQTT API, without the SDK's service client: subscribe to
        ``<topic>/accepted`` and ``<topic>/rejected``, publish ``payload`` on ``topic`` and return the
        first answer as ``("accepted" or "rejected", document)``, every field as sent; ``None`` when
        nothing answers within ``timeout`` seconds. The subscriptions stay until the session ends."""
        answer: Future[tuple[str, bytes]] = Future()
        replies = [f"{topic}/accepted", f"{topic}/rejected"]
        with self._awaited_lock:
            self._awaited.update(dict.fromkeys(replies, answer))
        try:
            self.subscribe(*replies)
            self.publish(topic, payload)
            try:
                reply_topic, body = answer.result(timeout)
            except TimeoutError:
                return None
        finally:
            with self._awaited_lock:
                for reply in replies:
                    self._awaited.pop(reply, None)
        document: dict[str, Any] = json.loads(body)
        return reply_topic.rsplit("/", 1)[-1], document

    def _on_publish_received(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        with self._awaited_lock:
            answer = self._awaited.get(packet.topic)
        if answer is not None:
            _settle(answer, (packet.topic, bytes(packet.payload or b"")))

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
) -> ProvisionedDevice:
    """Provision by claim: connect with the claim certificate, get a certificate, register the thing.

    ``keys`` chooses the request: :class:`DeviceKeys` makes a key pair here, a secure element
    (``local/secure_element.py``) holds one from the factory, and either way the device sends a CSR whose
    subject is the serial number (``CreateCertificateFromCsr``); :class:`AwsKeys` has AWS IoT make the key
    pair (``CreateKeysAndCertificate``). Step ``create certificate`` of the timings includes making the
    key."""
    timings = Timings()
    started = time.perf_counter()
    with Session(broker, claim, claim_client_id) as session:
        timings.measure("connect", started)
        provisioning = Provisioning(session)
        started = time.perf_counter()
        issued = provisioning.create_certificate(keys, identity.serial_number)
        timings.measure("create certificate", started)
        started = time.perf_counter()
        try:
            thing_name = provisioning.register_thing(
                template_name, issued.ownership_token, identity.parameters()
            )
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


def await_result(operation: str, future: Future[Any]) -> Any:
    """The result of an SDK request future; :class:`Rejected` when AWS IoT rejected ``operation`` with an
    error code, :class:`DeviceError` when it failed or timed out otherwise."""
    try:
        return future.result(TIMEOUT_SECONDS + 1)
    except TimeoutError as error:
        raise DeviceError(f"{operation}: no answer within {TIMEOUT_SECONDS + 1:.0f} s") from error
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
