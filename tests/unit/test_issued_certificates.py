"""A device's certificate is reported as soon as AWS IoT issues it, so that whoever cleans up finds it also
when the device fails afterwards (``RegisterThing`` timing out, the connection lost)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pytest

from local.devices import firmware
from local.devices.fleet_runner import FleetTarget
from local.devices.key_pairs import KeySource
from local.devices.mqtt_session import Broker, Credentials, DeviceError
from local.scenario.revocation_checks import REVOKED_DEVICE


class _Connected:
    """A claim session that connects (the MQTT connection is not what this test is about)."""

    def __init__(self, *args: Any) -> None:
        pass

    def __enter__(self) -> _Connected:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None


class _IssuesThenTimesOut:
    """AWS IoT's answers to a device: a certificate issued, then no answer to ``RegisterThing``."""

    def __init__(self, session: Any) -> None:
        pass

    def create_certificate(self, keys: KeySource, common_name: str) -> firmware.IssuedCertificate:
        return firmware.IssuedCertificate("c-issued", Credentials("", ""), "token")

    def register_thing(self, template_name: str, ownership_token: str, parameters: dict[str, str]) -> str:
        raise DeviceError("RegisterThing: no response in 5 s")


def test_a_certificate_is_reported_when_issued_even_if_the_device_fails_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(firmware, "Session", _Connected)
    monkeypatch.setattr(firmware, "Provisioning", _IssuesThenTimesOut)
    issued: list[str] = []
    target = FleetTarget(
        Broker("h", 8883, ""), Credentials("", ""), "claim-", "t", on_certificate=issued.append
    )

    with pytest.raises(DeviceError, match="RegisterThing: no response"):
        target.provision(REVOKED_DEVICE)

    assert issued == ["c-issued"]
