"""A device's switch to its new certificate: the first connection with it is retried with back-off for a
bounded window before the device falls back to its old certificate.

AWS IoT applies ``AttachPolicy``, ``AttachThingPrincipal`` and ``UpdateCertificate`` after a delay: the
botocore model calls ``DetachThingPrincipal`` asynchronous ("It might take several seconds for the
detachment to propagate"), and terraform-provider-aws issue #48563 shows a principal missing right after
a successful attach. A certificate the rotation function has just activated and attached may therefore be
refused for a few seconds; one refusal is not a reason to roll the rotation back.

Generic over the session type, so the rule is tested with fake connections; ``local/devices/jobs_agent.py``
uses it with MQTT sessions.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Final, TypeVar

from local.devices.mqtt_session import ConnectRefused, DeviceError

_Session = TypeVar("_Session")


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off with jitter: ``attempts`` tries, the n-th wait drawn from
    ``[d/2, d]`` where ``d = min(first_wait * 2**n, max_wait)``."""

    attempts: int
    first_wait: float
    max_wait: float

    def waits(self, uniform: Callable[[float, float], float] = random.uniform) -> Iterator[float]:
        """The waits between the attempts (one fewer than the attempts)."""
        for number in range(self.attempts - 1):
            ceiling = min(self.first_wait * (1 << number), self.max_wait)
            yield uniform(ceiling / 2, ceiling)

    @property
    def window(self) -> float:
        """The longest the waits add up to, in seconds (each attempt's own connection time comes on top)."""
        return sum(min(self.first_wait * (1 << number), self.max_wait) for number in range(self.attempts - 1))


NEW_CERTIFICATE_RETRY: Final = Backoff(attempts=5, first_wait=4.0, max_wait=30.0)
"""Five connections with the new certificate, waiting 2-4, 4-8, 8-16 and 15-30 s between them: at most
58 s of waiting (29 s at least), long enough for AWS IoT's propagation of "several seconds" and short
against the rotation job's 30-minute in-progress timeout (``fleetctl.rotation_jobs``)."""


def connect_with_retry(
    stack: ExitStack,
    connect: Callable[[], AbstractContextManager[_Session]],
    backoff: Backoff,
    *,
    sleep: Callable[[float], None] = time.sleep,
    uniform: Callable[[float, float], float] = random.uniform,
) -> _Session:
    """A session entered on ``stack``, retried while the broker refuses it (:class:`ConnectRefused`) with
    ``backoff``; the last refusal is raised. Any other error (an unusable key) is raised at once."""
    for wait in backoff.waits(uniform):
        try:
            return stack.enter_context(connect())
        except ConnectRefused:
            sleep(wait)
    return stack.enter_context(connect())


def switch_certificate(
    connect_new: Callable[[], AbstractContextManager[_Session]],
    connect_old: Callable[[], AbstractContextManager[_Session]],
    succeed: Callable[[_Session], None],
    fail: Callable[[_Session, str], None],
    backoff: Backoff = NEW_CERTIFICATE_RETRY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    uniform: Callable[[float, float], float] = random.uniform,
) -> str | None:
    """Connect with the new certificate (retried with ``backoff``) and report success on that session;
    ``None`` then. When that fails, report the failure on a session of the old certificate, and return
    the reason."""
    try:
        with ExitStack() as stack:
            succeed(connect_with_retry(stack, connect_new, backoff, sleep=sleep, uniform=uniform))
        return None
    except DeviceError as failure:
        reason = f"the new certificate did not connect: {failure}"
        with connect_old() as session:
            fail(session, reason)
        return reason


def connect_first_accepted(
    stack: ExitStack, connects: Sequence[Callable[[], AbstractContextManager[_Session]]]
) -> _Session:
    """A session entered on ``stack`` with the first credentials the broker accepts, tried in order (the
    current certificate, then the one before the last rotation); the last refusal is raised."""
    for connect in connects[:-1]:
        try:
            return stack.enter_context(connect())
        except ConnectRefused:
            continue
    return stack.enter_context(connects[-1]())
