"""The functions' shared runtime: client configs that end by their deadline, made-once clients and their
reset, and the environment the program configures them through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff

from hook import runtime
from hook.contract import IOT_DATA_ENDPOINT_ENV, REGISTRY_REGION_ENV


class _Throttled:
    """A throttling error on every attempt: botocore's longest back-offs (a 1-second base, not 50 ms)."""

    def is_throttling_error_from_context(self, context: object) -> bool:
        return True


def worst_case_seconds(config: Config) -> float:
    """Every attempt times out, and before each retry botocore's standard mode waits its longest for a
    throttled request without a ``x-amz-retry-after`` header (its ``ExponentialBackoff``, jitter at 1)."""
    attempts = config.retries["total_max_attempts"]  # type: ignore[attr-defined]
    longest = ExponentialBackoff(random=lambda: 1.0, throttling_detector=_Throttled())  # type: ignore[arg-type]
    backoffs = [
        float(longest.delay_amount(SimpleNamespace(attempt_number=number, http_response=None)))  # type: ignore[arg-type]
        for number in range(1, attempts)
    ]
    per_attempt = config.connect_timeout + config.read_timeout  # type: ignore[attr-defined]
    return float(attempts * per_attempt + sum(backoffs))


def test_the_hook_answers_aws_iot_within_its_five_seconds_with_two_attempts() -> None:
    config = runtime.HOOK_CLIENT_CONFIG

    assert (config.connect_timeout, config.read_timeout) == (0.75, 0.75)  # type: ignore[attr-defined]
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}  # type: ignore[attr-defined]
    assert worst_case_seconds(config) == runtime.HOOK_CALL_DEADLINE_SECONDS <= 5 - 1


def test_the_hooks_connect_timeout_admits_a_new_connection_to_a_distant_registry_region() -> None:
    """A global fleet's hook calls the registry region (docs/global-fleet.md): a new connection (each cold
    start) costs a TCP and a TLS 1.2 handshake, 3 round trips, before the request; an answer, 1 more.
    Between regions a round trip is up to a couple of hundred milliseconds (0.25 s)."""
    config = runtime.HOOK_CLIENT_CONFIG
    round_trip = 0.25

    assert config.connect_timeout >= 3 * round_trip  # type: ignore[attr-defined]
    assert config.read_timeout >= 2 * round_trip  # type: ignore[attr-defined]


def test_the_other_functions_calls_end_well_within_their_shortest_timeout() -> None:
    config = runtime.FUNCTION_CLIENT_CONFIG

    assert (config.connect_timeout, config.read_timeout) == (2.0, 5.0)  # type: ignore[attr-defined]
    assert worst_case_seconds(config) == runtime.FUNCTION_CALL_DEADLINE_SECONDS < 30


@pytest.mark.parametrize(
    ("deadline", "attempts", "connect"), [(3.0, 2, 0.25), (10.0, 4, 0.5), (60.0, 3, 2.0)]
)
def test_a_derived_config_ends_exactly_by_its_deadline(
    deadline: float, attempts: int, connect: float
) -> None:
    config = runtime.client_config(deadline=deadline, attempts=attempts, connect_timeout=connect)

    assert worst_case_seconds(config) == pytest.approx(deadline)


def test_a_deadline_that_leaves_no_read_time_is_refused() -> None:
    with pytest.raises(ValueError, match=r"a deadline of 2\.0 s leaves no read time for 3 attempts"):
        runtime.client_config(deadline=2.0, attempts=3, connect_timeout=0.5)


def test_what_is_made_once_is_reused_until_reset() -> None:
    made: list[object] = []

    @runtime.once
    def thing() -> object:
        made.append(object())
        return made[-1]

    first = thing()
    assert thing() is first
    runtime.reset()
    assert thing() is not first
    assert len(made) == 2


def test_a_missing_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACK_BASE_NAME", raising=False)

    with pytest.raises(RuntimeError, match="STACK_BASE_NAME is not set"):
        runtime.required_env("STACK_BASE_NAME")


def test_the_data_plane_client_uses_the_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(IOT_DATA_ENDPOINT_ENV, "https://example-ats.iot.us-east-1.amazonaws.com")

    data = runtime.client("iot-data", runtime.FUNCTION_CLIENT_CONFIG)
    control = runtime.client("iot", runtime.FUNCTION_CLIENT_CONFIG)

    assert data.meta.endpoint_url == "https://example-ats.iot.us-east-1.amazonaws.com"
    assert control.meta.endpoint_url == "https://iot.us-east-1.amazonaws.com"


def test_the_registry_client_is_in_the_registry_region_and_the_others_in_the_functions_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(REGISTRY_REGION_ENV, "eu-west-1")

    registry = runtime.client("dynamodb", runtime.HOOK_CLIENT_CONFIG)
    control = runtime.client("iot", runtime.FUNCTION_CLIENT_CONFIG)

    assert registry.meta.endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com"
    assert control.meta.endpoint_url == "https://iot.us-east-1.amazonaws.com"
    monkeypatch.delenv(REGISTRY_REGION_ENV)
    assert runtime.client("dynamodb", runtime.HOOK_CLIENT_CONFIG).meta.region_name == "us-east-1"


def test_a_packaged_file_is_found_beside_the_code_unless_the_environment_names_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RULES_FILE", raising=False)
    assert runtime.packaged_file("RULES_FILE", "rules.json") == Path(runtime.__file__).with_name("rules.json")
    monkeypatch.setenv("RULES_FILE", "/elsewhere/rules.json")
    assert str(runtime.packaged_file("RULES_FILE", "rules.json")) == "/elsewhere/rules.json"


class _Body:
    """A response body as botocore reads one (``AWSResponse.content`` joins ``stream()``)."""

    def stream(self, **_: object) -> Iterator[bytes]:
        yield b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}'


def _throttled_asking_for_five_seconds(request: AWSPreparedRequest, **_: object) -> AWSResponse:
    """A ``before-send`` handler: DynamoDB throttles every attempt and asks for a 5-second wait."""
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers[runtime.RETRY_AFTER_HEADER] = "5000"
    return AWSResponse(request.url, 400, headers, _Body())


def test_a_retry_waits_the_back_off_the_deadline_allows_not_what_the_response_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """botocore 1.43.3 and later would wait the 5 s the header asks before the hook's second attempt, after
    which AWS IoT has stopped waiting (``retries/standard.py``, ``ExponentialBackoff.delay_amount``)."""
    waits: list[float] = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", waits.append)  # type: ignore[attr-defined]
    dynamodb = runtime.client("dynamodb", runtime.HOOK_CLIENT_CONFIG)
    dynamodb.meta.events.register("before-send.dynamodb.*", _throttled_asking_for_five_seconds)

    with pytest.raises(ClientError, match="ThrottlingException"):
        dynamodb.get_item(TableName="registry", Key={"serialNumber": {"S": "SN-1"}})

    assert len(waits) == 1  # two attempts
    assert 0 <= waits[0] <= 1.0  # the throttling back-off before a second attempt, jitter at most 1
