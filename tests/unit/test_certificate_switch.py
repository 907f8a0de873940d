"""A device's switch to its new certificate (:mod:`local.devices.certificate_switch`), with fake
connections: AWS IoT applies a new certificate's activation and attachments after a delay, so the first
connections with it may be refused; the device retries within a bounded window before it falls back."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType

import pytest

from local.devices.certificate_switch import (
    NEW_CERTIFICATE_RETRY,
    Backoff,
    connect_first_accepted,
    switch_certificate,
)
from local.devices.mqtt_session import ConnectRefused, DeviceError


@dataclass
class Broker:
    """Refuses the first ``refusals`` connections with the new certificate, as AWS IoT does while the
    certificate's activation and attachments propagate; records what each session reported."""

    refusals: int
    unusable_key: bool = False
    attempts: int = 0
    reported: list[tuple[str, str]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def connect(self, certificate: str) -> Connection:
        if certificate == "new" and self.unusable_key:
            raise DeviceError("connect: unusable certificate or key")
        return Connection(self, certificate)

    def switch(self, backoff: Backoff = NEW_CERTIFICATE_RETRY) -> str | None:
        return switch_certificate(
            lambda: self.connect("new"),
            lambda: self.connect("old"),
            lambda session: self.reported.append((session.certificate, "SUCCEEDED")),
            lambda session, reason: self.reported.append((session.certificate, f"FAILED: {reason}")),
            backoff,
            sleep=self.waits.append,
            uniform=lambda low, high: high,  # the longest wait the jitter allows
        )


@dataclass
class Connection:
    broker: Broker
    certificate: str

    def __enter__(self) -> Connection:
        if self.certificate == "new":
            self.broker.attempts += 1
            if self.broker.attempts <= self.broker.refusals:
                raise ConnectRefused("connect refused: NOT_AUTHORIZED")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None


@pytest.mark.parametrize("refusals", [0, 1, NEW_CERTIFICATE_RETRY.attempts - 1])
def test_a_new_certificate_refused_while_aws_iot_propagates_it_is_retried_until_it_connects(
    refusals: int,
) -> None:
    broker = Broker(refusals)

    assert broker.switch() is None

    assert broker.attempts == refusals + 1
    assert broker.reported == [("new", "SUCCEEDED")]
    assert broker.waits == [4.0, 8.0, 16.0, 30.0][:refusals]


def test_a_new_certificate_still_refused_after_the_window_falls_back_to_the_old_one() -> None:
    broker = Broker(refusals=NEW_CERTIFICATE_RETRY.attempts)

    reason = broker.switch()

    assert reason is not None and "NOT_AUTHORIZED" in reason
    assert broker.attempts == NEW_CERTIFICATE_RETRY.attempts
    assert broker.reported == [("old", f"FAILED: {reason}")]
    assert sum(broker.waits) == NEW_CERTIFICATE_RETRY.window == 58.0


def test_an_unusable_key_is_not_retried() -> None:
    broker = Broker(refusals=0, unusable_key=True)

    reason = broker.switch()

    assert reason is not None and "unusable" in reason
    assert (broker.waits, broker.reported) == ([], [("old", f"FAILED: {reason}")])


def test_the_waits_grow_capped_with_jitter_between_half_and_the_whole_ceiling() -> None:
    backoff = Backoff(attempts=6, first_wait=4.0, max_wait=30.0)
    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return low

    assert list(backoff.waits(uniform)) == [2.0, 4.0, 8.0, 15.0, 15.0]
    assert draws == [(2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (15.0, 30.0), (15.0, 30.0)]
    assert backoff.window == 88.0


def test_a_device_whose_new_certificate_was_retired_connects_with_its_previous_one() -> None:
    # The confirmation never reached the registry; `fleetctl rotate resume` retired the new certificate.
    broker = Broker(refusals=1)

    with ExitStack() as stack:
        session = connect_first_accepted(
            stack, [lambda: broker.connect("new"), lambda: broker.connect("old")]
        )

    assert session.certificate == "old"
    refusing = Broker(refusals=9)
    with ExitStack() as stack, pytest.raises(ConnectRefused):
        connect_first_accepted(stack, [lambda: refusing.connect("new"), lambda: refusing.connect("new")])
    assert refusing.attempts == 2
