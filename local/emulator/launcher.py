"""Start and stop ministack, the local AWS emulator, as a subprocess listening on 127.0.0.1 only."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from local.emulator.ministack_venv import DEFAULT_VENV, emulator_python

HOST: Final = "127.0.0.1"
BOOTSTRAP: Final = Path(__file__).with_name("ministack_boot.py")
READY_TIMEOUT_SECONDS: Final = 30.0
STOP_TIMEOUT_SECONDS: Final = 10.0
CSR_SHIM_VARIABLE: Final = "MINISTACK_CSR_SHIM"
"""``0`` starts ministack without ``local/emulator/ministack_csr_shim.py`` (which runs in the emulator's
interpreter and cannot be imported here)."""
ACCESS_KEY: Final = "test"
"""ministack's root credentials: with ``AUTH=true`` every other principal is held to its IAM policies."""


class EmulatorError(RuntimeError):
    """The emulator could not be started or answered unexpectedly."""


@dataclass(frozen=True)
class EmulatorAddress:
    """Where the emulator listens: the AWS API gateway and the MQTT over mTLS broker."""

    gateway_port: int = 4566
    mqtt_port: int = 8883

    @property
    def endpoint_url(self) -> str:
        """The AWS API endpoint for boto3 (``endpoint_url``)."""
        return f"http://{HOST}:{self.gateway_port}"

    @property
    def mqtt_host(self) -> str:
        """Host name devices dial: the broker's certificate is issued for ``localhost``."""
        return "localhost"


class Emulator:
    """ministack as a context manager: started on enter, always stopped on exit (and at interpreter exit).

    Runs with ``AUTH=true`` so that IAM and IoT policies are enforced, and ``LAMBDA_EXECUTOR=local`` so that
    functions run with the emulator's interpreter (its venv stands in for the Powertools layer). With
    ``csr_shim`` (the default) it answers ``CreateCertificateFromCsr`` over MQTT, which ministack does not
    (``local/emulator/ministack_csr_shim.py``); ``csr_shim=False`` runs ministack as released.
    """

    def __init__(
        self,
        address: EmulatorAddress | None = None,
        *,
        venv: Path = DEFAULT_VENV,
        log_path: Path | None = None,
        csr_shim: bool = True,
    ) -> None:
        self.address = address or EmulatorAddress()
        self.csr_shim = csr_shim
        self._venv = venv
        self.log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / "ministack.log"  # noqa: S108
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the emulator and wait until its gateway and MQTT broker are ready."""
        for port in (self.address.gateway_port, self.address.mqtt_port):
            if listening(port):
                raise EmulatorError(f"{HOST}:{port} is already in use: is another emulator running?")
        python = emulator_python(self._venv)
        environment = {
            **{name: value for name, value in os.environ.items() if not name.startswith("AWS_")},
            "BIND_HOST": HOST,
            "GATEWAY_PORT": str(self.address.gateway_port),
            "IOT_MTLS_PORT": str(self.address.mqtt_port),
            "LAMBDA_EXECUTOR": "local",
            "AUTH": "true",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
            "SFTP_ENABLED": "0",
            CSR_SHIM_VARIABLE: "1" if self.csr_shim else "0",
        }
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(  # noqa: S603
            [str(python), str(BOOTSTRAP)],
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the Lambda workers with it
        )
        atexit.register(self.stop)
        self._wait_until_ready()

    def stop(self) -> None:
        """Stop the emulator and every process it started; safe to call more than once."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        if process is not None:
            _signal_group(process.pid, signal.SIGKILL)  # Lambda workers left behind by a clean exit
        if self._log is not None:
            self._log.close()
            self._log = None
        atexit.unregister(self.stop)

    def ca_pem(self) -> str:
        """The certificate of the CA that signs the broker's and the devices' certificates."""
        return self._request("GET", "/_ministack/iot/ca.pem").decode()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise EmulatorError(
                    f"the emulator exited with {self._process.returncode}; see {self.log_path}"
                )
            try:
                status = json.loads(self._request("GET", "/_ministack/ready"))
            except (OSError, ValueError):
                status = {}
            if status.get("status") == "completed" and status.get("iot_mtls") == "listening":
                return
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(
            f"the emulator was not ready within {READY_TIMEOUT_SECONDS:.0f} s; see {self.log_path}"
        )

    def _request(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(f"{self.address.endpoint_url}{path}", method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            body: Any = response.read()
        return bytes(body)


def listening(port: int) -> bool:
    """Whether something accepts connections on ``127.0.0.1:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((HOST, port)) == 0


def _signal_group(pid: int, signal_number: signal.Signals) -> None:
    """Signal the process group the emulator leads (its id is the emulator's pid)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal_number)
