"""Pacing bulk work to AWS IoT's API rates: a token bucket per operation, shared by the worker threads and
taken before every request a client sends (each retry included), so a bulk command keeps to each API's
default rate instead of leaning on throttling and retries. Throttling that happens anyway (another tool
of the account using the same quota) is retried by botocore (``fleetctl.context``: ``standard`` retry
mode, 8 attempts)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Rate:
    """An API's default rate quota (requests a second, per account and Region) and where it is written."""

    per_second: float
    source: str


QUOTAS_PAGE: Final = "https://docs.aws.amazon.com/general/latest/gr/iot-core.html#throttling-limits"
"""AWS General Reference, "AWS IoT Core endpoints and quotas", API throttling limits (also in the Service
Quotas console, service ``iotcore``, each as "<API> API TPS" with the quota code named below: compare
an account's own values with ``aws service-quotas get-service-quota --service-code iotcore
--quota-code <code>`` before a large run)."""
_LISTED: Final = f"{QUOTAS_PAGE}; Service Quotas default"
_NOT_FOUND: Final = "not found in the copy of the quotas table checked"
_OLDER_TABLE: Final = (
    "the developer guide's older throttling limits table (awsdocs/aws-iot-docs "
    "developerguide/limits-iot.md); not found in the copy of the current page checked"
)

IOT_RATES: Final[Mapping[str, Rate]] = {
    "UpdateCertificate": Rate(10, f"{_LISTED} (L-77B523DC), 10/s as bench/capacity.py cites it"),
    "DescribeCertificate": Rate(
        10,
        f"{_LISTED} (L-FC864907); 10/s per aws-iot-builder-tools/thingpress doc/aws-api-limits.md, "
        "a list of that page's defaults checked 2025-06-13",
    ),
    "ListThingPrincipals": Rate(10, f"{_LISTED} (L-FC3EF4D9), 10/s"),
    "DescribeThing": Rate(350, f"{_LISTED} (L-0EF0F5EE), 350/s"),
    "DetachThingPrincipal": Rate(100, f"{_LISTED} (L-B5EE4A16), 100/s"),
    "DeleteThing": Rate(100, f"{_LISTED} (L-889800F7), 100/s"),
    "DetachPolicy": Rate(
        10,
        f"{_LISTED} (L-EC88D510): {_NOT_FOUND}; 10/s chosen, below AttachPolicy's published 15/s",
    ),
    "ListAttachedPolicies": Rate(
        10,
        f"{_LISTED} (L-B2DA2A45): {_NOT_FOUND}; 10/s chosen, the default of every List* API in the table",
    ),
    "ListJobs": Rate(10, f"10/s in {_OLDER_TABLE}"),
    "ListJobExecutionsForJob": Rate(10, f"10/s in {_OLDER_TABLE}"),
    "ListThings": Rate(
        10, f"{_LISTED}: {_NOT_FOUND}; 10/s chosen, the default of every List* API in the table"
    ),
    "ListTargetsForPolicy": Rate(
        10, f"{_LISTED}: {_NOT_FOUND}; 10/s chosen, the default of every List* API in the table"
    ),
    "ListThingGroups": Rate(
        10, f"{_LISTED}: {_NOT_FOUND}; 10/s chosen, the default of every List* API in the table"
    ),
    "CancelJob": Rate(1, f"{_NOT_FOUND}; 1/s chosen: a stack has few rotation jobs open at once"),
    "CreateJob": Rate(
        1,
        f"10/s in {_OLDER_TABLE}; 1/s chosen: a job carries 100 devices, and AWS IoT's limit on jobs in "
        "progress, not this rate, bounds a rotation (--rate CreateJob=10 goes faster)",
    ),
}
"""The AWS IoT operations the bulk commands call, each with its default rate. ``revoke`` and
``decommission`` call ``ListThingPrincipals``, ``DescribeCertificate``, ``UpdateCertificate``,
``ListAttachedPolicies``, ``DetachPolicy``, ``DetachThingPrincipal`` and ``DeleteThing``; ``rotate start``
and ``rotate resume`` call ``ListJobs`` and ``ListJobExecutionsForJob`` (the devices its unfinished jobs
asked) and ``CreateJob``; ``teardown`` a decommission's, ``ListJobs``, ``CancelJob``, ``ListThings``,
``ListTargetsForPolicy`` and ``ListThingGroups``. ``DescribeThing`` is for ``show``. Where a default was
not found, the rate chosen is at or below the lowest published default of the table's neighbouring APIs,
and says so."""
LIFECYCLE_APIS: Final = frozenset(
    {
        "ListThingPrincipals",
        "DescribeCertificate",
        "UpdateCertificate",
        "ListAttachedPolicies",
        "DetachPolicy",
        "DetachThingPrincipal",
        "DeleteThing",
    }
)
"""The AWS IoT operations a bulk ``revoke`` or ``decommission`` paces."""
ROTATION_APIS: Final = frozenset({"ListJobs", "ListJobExecutionsForJob", "CreateJob"})
"""The AWS IoT operations ``rotate start`` and ``rotate resume`` pace."""
TEARDOWN_APIS: Final = LIFECYCLE_APIS | {
    "ListJobs",
    "CancelJob",
    "ListThings",
    "ListTargetsForPolicy",
    "ListThingGroups",
}
"""The AWS IoT operations ``teardown`` paces: a decommissioning's, and the listings and cancellations of
the stack's rotation jobs, things and device policies' targets."""
COMMAND_APIS: Final[Mapping[str, frozenset[str]]] = {
    "revoke": LIFECYCLE_APIS,
    "decommission": LIFECYCLE_APIS,
    "teardown": TEARDOWN_APIS,
    "rotate start": ROTATION_APIS,
    "rotate resume": ROTATION_APIS,
}
"""What each command that takes ``--rate`` paces, by the command's name as typed (sub-command included)."""
MIN_RATE: Final = 0.1
"""The lowest ``--rate`` taken (a request every 10 s): anything lower is more likely a typing slip."""
UNLISTED_RATE: Final = Rate(1, f"an operation without an entry in IOT_RATES: {_NOT_FOUND}; 1/s chosen")


class TokenBucket:
    """At most ``rate`` takes a second on average, and ``burst`` at once: a take finds a token, or reserves
    the next one and sleeps until it is due. Safe to share between threads; the lock is held only to count,
    never while sleeping. Over any interval of ``t`` seconds, takes return at most ``burst + rate * t``
    times."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(
                f"rate {rate} and burst {burst}: expected a rate above 0 and a burst of 1 or more"
            )
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = burst
        self._updated = clock()

    def take(self) -> float:
        """Take a token, sleeping until one is due; returns how long it slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            self._tokens -= 1  # below zero: a reservation, repaid by the refill while the taker sleeps
            wait = max(0.0, -self._tokens / self._rate)
        if wait:
            self._sleep(wait)
        return wait


class Pacer:
    """A :class:`TokenBucket` per operation, at its rate in ``rates`` (``default`` for the others), taken
    before every request a client sends while :meth:`pacing` it."""

    def __init__(
        self,
        rates: Mapping[str, float],
        *,
        default: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rates = dict(rates)
        self._default = default
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, operation: str) -> float:
        """Wait for ``operation``'s next token; returns how long it waited."""
        with self._lock:
            bucket = self._buckets.get(operation)
            if bucket is None:
                rate = self._rates.get(operation, self._default)
                bucket = TokenBucket(rate, clock=self._clock, sleep=self._sleep)
                self._buckets[operation] = bucket
        return bucket.take()

    def alike(self) -> Pacer:
        """A pacer of the same rates with buckets of its own, for another region: AWS IoT's quotas are per
        account and Region (:data:`QUOTAS_PAGE`)."""
        return Pacer(self._rates, default=self._default, clock=self._clock, sleep=self._sleep)

    @contextmanager
    def pacing(self, client: Any) -> Iterator[None]:
        """Pace every request ``client`` sends meanwhile: botocore emits ``before-send.<service>.<operation>``
        for each attempt, retries included (botocore ``endpoint.py``), and the handler takes a token there."""

        def before_send(event_name: str, **_: Any) -> None:
            self.take(event_name.rsplit(".", 1)[-1])

        events = client.meta.events
        service = client.meta.service_model.service_id.hyphenize()
        unique = f"fleetctl-pacing-{id(self)}"
        events.register(f"before-send.{service}", before_send, unique_id=unique)
        try:
            yield
        finally:
            events.unregister(f"before-send.{service}", unique_id=unique)


def aws_iot_pacer(own_rates: Mapping[str, float] | None = None) -> Pacer:
    """A pacer at :data:`IOT_RATES`, with ``own_rates`` (:func:`own_rates`) in their place, and
    :data:`UNLISTED_RATE` for any other operation."""
    rates = {name: rate.per_second for name, rate in IOT_RATES.items()}
    return Pacer({**rates, **(own_rates or {})}, default=UNLISTED_RATE.per_second)


def own_rates(assignments: Sequence[str], apis: Collection[str]) -> dict[str, float]:
    """An account's own rates for some of ``apis`` (what the command calls), given as ``API=PER_SECOND``
    (``--rate``) where its quotas differ from the defaults (raised by a quota increase, or shared with
    other tools). Raises :class:`ValueError` naming the assignment and the form expected."""
    rates: dict[str, float] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        name = name.strip()
        if not equals or name not in apis:
            raise ValueError(f"{assignment!r}: expected API=PER_SECOND, API one of {', '.join(sorted(apis))}")
        try:
            per_second = float(value)
        except ValueError:
            per_second = math.nan
        if not math.isfinite(per_second) or per_second < MIN_RATE:
            raise ValueError(
                f"{assignment!r}: PER_SECOND must be a number of at least {MIN_RATE}, as in {name}=20"
            )
        if name in rates:
            raise ValueError(f"{assignment!r}: {name} is given twice")
        rates[name] = per_second
    return rates


def paced_seconds(requests: Mapping[str, float], rates: Mapping[str, Rate] = IOT_RATES) -> float:
    """How long ``requests`` (operation -> count) take at least when each operation keeps to its rate and
    the operations run side by side: the slowest operation's count over its rate."""
    return max(
        (count / rates.get(name, UNLISTED_RATE).per_second for name, count in requests.items()), default=0.0
    )
