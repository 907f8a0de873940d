"""What every function's runtime shares: AWS client configs derived from each function's deadline, the
environment it is configured through, and clients made once per cold start, with one reset for tests.

No function imports another function's module; each imports this one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast

import boto3
from botocore.config import Config

from hook.contract import IOT_DATA_ENDPOINT_ENV, REGISTRY_REGION_ENV

_Made = TypeVar("_Made")
_Arguments = ParamSpec("_Arguments")

MAX_BACKOFF_SECONDS: Final = 20.0
"""botocore's longest back-off between attempts in ``standard`` retry mode: before attempt ``n + 1`` it
waits at most ``min(2 ** (n - 1), 20)`` seconds (boto3 developer guide, "Retries", standard mode; botocore
``retries/standard.py`` ``ExponentialBackoff``; newer releases wait less for errors other than
throttling). The clients made here ignore ``x-amz-retry-after`` (:func:`ignore_retry_after`), so this
bound holds whichever botocore the Lambda runtime brings."""
RETRY_AFTER_HEADER: Final = "x-amz-retry-after"
"""A response header newer botocore releases honour before a retry, with up to 5 seconds more than the
back-off (``ExponentialBackoff._RETRY_AFTER_MAX_ADDITIONAL``)."""


def client_config(*, deadline: float, attempts: int, connect_timeout: float) -> Config:
    """A client config whose worst case ends by ``deadline`` seconds: ``attempts`` attempts, each taking
    ``connect_timeout`` to connect and the read timeout to answer, and the longest back-off before each
    retry. The read timeout is what the deadline leaves each attempt. (Each socket operation has its own
    timeout, so this is the usual worst case of one request, not a hard limit.)"""
    backoffs = sum(min(2.0**retry, MAX_BACKOFF_SECONDS) for retry in range(attempts - 1))
    read_timeout = (deadline - backoffs) / attempts - connect_timeout
    if read_timeout <= 0:
        raise ValueError(f"a deadline of {deadline} s leaves no read time for {attempts} attempts")
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": attempts, "mode": "standard"},
    )


HOOK_CALL_DEADLINE_SECONDS: Final = 4.0
"""AWS IoT waits 5 seconds for the pre-provisioning hook (developer guide, "Pre-provisioning hooks"); its
registry request must end within 4, leaving a second for the decision, its log line and metrics. (A
re-provisioning grant costs a second request with the same config: ``DeviceRecords.approve``.)"""
HOOK_CLIENT_CONFIG: Final = client_config(
    deadline=HOOK_CALL_DEADLINE_SECONDS, attempts=2, connect_timeout=0.75
)
"""Two attempts of 0.75 s to connect and 0.75 s to read, and one back-off of at most 1 s: 4 s. A global
fleet's hook calls the registry region: urllib3's connect timeout covers the TCP and TLS handshakes (3
round trips with TLS 1.2, 2 with 1.3, which every AWS API endpoint offers since April 2025: SDK for
JavaScript v3 developer guide, document history), 0.25 s each between distant regions; a read, 1 more."""

FUNCTION_CALL_DEADLINE_SECONDS: Final = 24.0
"""The other functions run asynchronously, with a Lambda timeout of 30 seconds or more
(``components/device_lifecycle.py``, ``components/certificate_lifecycle.py``). This bounds one AWS call of
theirs, not an invocation, which may make several: an invocation that times out is retried by Lambda."""
FUNCTION_CLIENT_CONFIG: Final = client_config(
    deadline=FUNCTION_CALL_DEADLINE_SECONDS, attempts=3, connect_timeout=2.0
)
"""Three attempts of 2 s to connect and 5 s to read, and back-offs of at most 1 and 2 s: 24 s."""

_made_once: list[Any] = []
"""What :func:`once` made: each a ``functools.cache`` wrapper."""


def once(make: Callable[_Arguments, _Made]) -> Callable[_Arguments, _Made]:
    """``make`` called on first use only (per distinct arguments), for the rest of the cold start
    (:func:`reset` forgets it)."""
    cached = functools.cache(make)
    _made_once.append(cached)
    return cast(Callable[_Arguments, _Made], cached)


def reset() -> None:
    """Forget every client, configuration and rule set made :func:`once`: for tests, which change the
    environment or start a new AWS mock between invocations."""
    for cached in _made_once:
        cached.cache_clear()


def required_env(name: str) -> str:
    """The value of environment variable ``name``, which the Pulumi program sets on the function."""
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set")
    return value


def packaged_file(env: str, file_name: str) -> Path:
    """A configuration file the Pulumi program packages beside the code (``hook/<file_name>``), or the
    file environment variable ``env`` names instead (the tests' and the local deployer's way)."""
    return Path(os.environ.get(env) or Path(__file__).with_name(file_name))


def ignore_retry_after(response: tuple[Any, Any] | None = None, **_: Any) -> None:
    """A ``needs-retry`` handler, run before botocore's own: drops a response's :data:`RETRY_AFTER_HEADER`,
    so that a retry waits botocore's back-off only. Honouring it could add 5 seconds per retry, which no
    deadline here leaves room for (the hook's whole answer must reach AWS IoT within 5); a request that
    still fails after its attempts fails the invocation, and the device or Lambda retries it."""
    if response is not None:
        response[0].headers.pop(RETRY_AFTER_HEADER, None)


def client(service: Literal["dynamodb", "iot", "iot-data"], config: Config, region: str | None = None) -> Any:
    """A boto3 client of ``service`` that ignores ``x-amz-retry-after`` (:func:`ignore_retry_after`);
    ``iot-data`` at the endpoint ``IOT_DATA_ENDPOINT`` names (the account's ``iot:Data-ATS`` endpoint),
    which AWS IoT's data plane needs; ``dynamodb`` (only ever the registry) in the region
    ``REGISTRY_REGION`` names, a global fleet's registry region, or the function's own when unset.
    (Locally boto3's ``AWS_ENDPOINT_URL_DYNAMODB`` can point it at another emulator.) ``region``, when
    given, wins."""
    endpoint = (os.environ.get(IOT_DATA_ENDPOINT_ENV) or None) if service == "iot-data" else None
    if region is None and service == "dynamodb":
        region = os.environ.get(REGISTRY_REGION_ENV) or None
    made = boto3.client(service, config=config, endpoint_url=endpoint, region_name=region)
    # Beside botocore's retry handler, on the same event name (needs-retry.<service id>), and before it.
    service_event = made.meta.service_model.service_id.hyphenize()
    made.meta.events.register_first(f"needs-retry.{service_event}", ignore_retry_after)
    return made


@once
def iot(region: str | None = None) -> Any:
    """The asynchronous functions' AWS IoT client (:data:`FUNCTION_CLIENT_CONFIG`), in ``region`` (where a
    global fleet's device provisioned, ``provisionedRegion``) or else the function's own."""
    return client("iot", FUNCTION_CLIENT_CONFIG, region)


@once
def iot_data() -> Any:
    """The asynchronous functions' AWS IoT data-plane client: shadows and publishing."""
    return client("iot-data", FUNCTION_CLIENT_CONFIG)
