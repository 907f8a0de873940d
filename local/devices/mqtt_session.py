"""One device's MQTT 5 connection over mutual TLS, as the AWS IoT Device SDK v2 makes it: where it connects
(:class:`Broker`), with what (:class:`Credentials`), the requests of AWS IoT's MQTT APIs on it, and the errors
each step raises.

Nothing here is specific to the emulator: :class:`Broker` holds the endpoint, port and CA, so the same code
connects to AWS IoT with the stack's ``iotEndpoint``, port 8883 and Amazon Root CA 1.
"""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from awscrt import mqtt5
from awsiot import V2ServiceException, mqtt5_client_builder

TIMEOUT_SECONDS: Final = 10.0
"""How long any one MQTT step may take (the hook alone may take up to 5 seconds)."""


class DeviceError(RuntimeError):
    """An MQTT step failed: the connection was refused or lost, or a request was rejected."""


class ConnectRefused(DeviceError):
    """The broker refused the connection (for instance ``NOT_AUTHORIZED`` for the client id, or a TLS
    handshake it ended), or did not complete it within :data:`TIMEOUT_SECONDS`."""


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
        """Connect: :class:`ConnectRefused` when the broker refuses or does not answer in time (the session
        is then closed)."""
        self._client.start()
        try:
            self._connected.result(TIMEOUT_SECONDS)
        except TimeoutError:
            self.close()
            raise ConnectRefused(
                f"connect as {self.client_id}: no answer within {TIMEOUT_SECONDS:.0f} s"
            ) from None
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

    def wait_lost(self, seconds: float) -> str | None:
        """Wait up to ``seconds`` for the broker to drop the connection; why it did, or ``None``."""
        try:
            return self._disconnected.result(seconds)
        except TimeoutError:
            return None

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
