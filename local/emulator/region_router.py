"""One local endpoint for a global fleet's emulator instances, one instance per region.

A request is passed on to the emulator of the region it was signed for (its credential scope), re-signed
with that emulator's root credentials. Two users need it: ``fleetctl`` and the tests, whose AWS SDK takes
one endpoint for every region (``AWS_ENDPOINT_URL``), and the functions of a region other than the
registry's, whose registry client (built for the registry region) must reach the registry's emulator. On
AWS every region of a fleet is one account and a role is valid in each (IAM is global); two emulator
instances are two separate worlds, so a function of one holds session credentials the other never issued.
The price, in ``docs/global-fleet.md``: the registry's emulator does not evaluate the other region's role
policies (it sees its own root).
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.emulator.launcher import ACCESS_KEY, HOST

_SCOPE: Final = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_NOT_PASSED_ON: Final = frozenset(
    {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "host", "connection"}
)
"""Headers of the incoming request that are made anew (the signature's) or belong to its connection."""


class RegionRouter:
    """Requests to ``127.0.0.1:<port>`` passed on to ``emulators[<region of the signature>]`` (a gateway
    URL); a context manager serving on a thread of its own."""

    def __init__(self, emulators: Mapping[str, str]) -> None:
        self.emulators = {region: url.rstrip("/") for region, url in emulators.items()}
        self._server = ThreadingHTTPServer((HOST, 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        """The one endpoint of every region."""
        return f"http://{HOST}:{self._server.server_address[1]}"

    def __enter__(self) -> RegionRouter:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forward(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """Pass one request on; the status, body and headers of the answer (an error is an answer too)."""
        scope = _SCOPE.search(headers.get("Authorization", ""))
        if scope is None or scope["region"] not in self.emulators:
            message = f"no emulator of the request's region (regions: {', '.join(self.emulators)})"
            return 400, message.encode(), [("Content-Type", "text/plain")]
        kept = {name: value for name, value in headers.items() if name.lower() not in _NOT_PASSED_ON}
        request = AWSRequest(method, f"{self.emulators[scope['region']]}{path}", data=body, headers=kept)
        SigV4Auth(Credentials(ACCESS_KEY, ACCESS_KEY), scope["service"], scope["region"]).add_auth(request)
        prepared = request.prepare()
        outgoing = urllib.request.Request(  # noqa: S310 - an emulator on 127.0.0.1
            prepared.url, data=body or None, headers=dict(prepared.headers.items()), method=method
        )
        try:
            with urllib.request.urlopen(outgoing, timeout=30) as answer:  # noqa: S310
                return answer.status, answer.read(), list(answer.headers.items())
        except urllib.error.HTTPError as error:
            return error.code, error.read(), list(error.headers.items())


def _handler(router: RegionRouter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer, headers = router.forward(
                self.command, self.path, body, dict(self.headers.items())
            )
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _relay

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the emulators log what they serve."""

    return Handler
