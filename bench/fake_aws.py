"""What the benchmarks run against instead of AWS: fake credentials in one region, and the body of a response
a ``before-send`` handler returns instead of sending the request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

REGION: Final = "us-east-1"
FAKE_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class StubBody:
    """A response body as botocore reads one from urllib3 (``AWSResponse.content`` joins ``stream()``)."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._payload
