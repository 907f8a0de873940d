"""A provisioned device that lives on, as its firmware would: connected, publishing telemetry and its
reported shadow, taking rotation jobs; each change of its connection or certificate is told as a line."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from local.devices.firmware import ProvisionedDevice, telemetry_topic
from local.devices.jobs_agent import JobStatus, rotate_by_job
from local.devices.mqtt_session import Broker, ConnectRefused, DeviceError, PublishRefused, Session
from local.devices.secure_element import SecureElement


def interrupt_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C (``KeyboardInterrupt``), so every context manager stops what it
    started."""

    def interrupt(signal_number: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def shadow_update_topic(thing_name: str) -> str:
    """The classic shadow's update topic ("Device Shadow MQTT topics", AWS IoT developer guide)."""
    return f"$aws/things/{thing_name}/shadow/update"


@dataclass
class LiveDevice:
    """One device's loop: every ``interval`` seconds it takes its next rotation job, if any, then connects
    with its current certificate, publishes telemetry and its reported shadow, and holds the connection
    until the next round (or until the broker drops it)."""

    broker: Broker
    device: ProvisionedDevice
    tell: Callable[[str], None]
    interval: float = 5.0

    def __post_init__(self) -> None:
        self.credentials = self.device.credentials
        self.certificate_id = self.device.certificate_id
        self._state = ""

    @property
    def serial(self) -> str:
        """The device's serial number."""
        return self.device.identity.serial_number

    def run(self, stop: threading.Event) -> None:
        """Live until ``stop`` is set."""
        while not stop.is_set():
            self.round()
            stop.wait(0.5)  # a refused device does not hammer the broker

    def round(self) -> None:
        """One round: rotation job, connection, telemetry and shadow, then the connection held."""
        thing = self.device.thing_name
        element = self.device.keys if isinstance(self.device.keys, SecureElement) else None
        try:
            rotation = rotate_by_job(
                self.broker, thing, self.credentials, self.certificate_id, element=element
            )
            if rotation.status is JobStatus.SUCCEEDED:
                self.tell(
                    f"{self.serial}: rotated by job {rotation.job_id}: certificate "
                    f"{self.certificate_id[:12]} -> {rotation.certificate_id[:12]}"
                )
                self.credentials, self.certificate_id = rotation.credentials, rotation.certificate_id
            elif rotation.status is JobStatus.FAILED:
                self.tell(f"{self.serial}: rotation job {rotation.job_id} failed: {rotation.reason}")
            with Session(self.broker, self.credentials, thing) as session:
                session.publish(
                    telemetry_topic(self.device.identity.device_type, thing),
                    {"serialNumber": self.serial, "temperature": 21.5, "at": time.time()},
                )
                session.publish(
                    shadow_update_topic(thing),
                    {"state": {"reported": {"certificateId": self.certificate_id, "online": True}}},
                )
                self._change(f"connected as {thing} with certificate {self.certificate_id[:12]}")
                lost = session.wait_lost(self.interval)
            if lost is not None:
                self._change(f"session dropped by the broker ({lost})")
        except ConnectRefused as refused:
            self._change(f"connection refused: {refused}")
        except PublishRefused as refused:
            self._change(f"publish refused: {refused}")
        except DeviceError as error:
            self._change(f"offline: {error}")

    def _change(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.tell(f"{self.serial}: {state}")
