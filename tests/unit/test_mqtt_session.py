"""A device's MQTT session (:mod:`local.devices.mqtt_session`) with a fake SDK client: a connection the
broker never answers is a refusal the device can retry, not an error that escapes its fallback."""

from __future__ import annotations

from typing import Any

import pytest
from awsiot import mqtt5_client_builder

from local.devices import mqtt_session
from local.devices.mqtt_session import Broker, ConnectRefused, Credentials, Session


class SilentClient:
    """An SDK client whose broker never answers the connection; it stops when asked."""

    def __init__(self, callbacks: dict[str, Any]) -> None:
        self.callbacks = callbacks
        self.stopped = False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True
        self.callbacks["on_lifecycle_stopped"](None)


def test_a_connection_never_answered_is_refused_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[SilentClient] = []

    def builder(**options: Any) -> SilentClient:
        made.append(SilentClient(options))
        return made[-1]

    monkeypatch.setattr(mqtt5_client_builder, "mtls_from_bytes", builder)
    monkeypatch.setattr(mqtt_session, "TIMEOUT_SECONDS", 0.05)

    session = Session(Broker("broker", 8883, "ca"), Credentials("cert", "key"), "thing")
    with pytest.raises(ConnectRefused, match="no answer"):
        session.__enter__()
    assert made[0].stopped
