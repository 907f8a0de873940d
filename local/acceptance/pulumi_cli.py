"""The Pulumi CLI as the acceptance runner drives it, and what Ctrl-C and SIGTERM do to the run.

The Automation API's ``PulumiCommand.run`` starts the CLI in the runner's process group and waits for it
inside ``subprocess.Popen``: a terminal's Ctrl-C reaches the CLI as well as the runner, and the
``KeyboardInterrupt`` the runner gets closes the CLI's pipes, so that the CLI's next line of output kills
it with SIGPIPE (a Go program dies on a write to a closed stdout or stderr, ``os/signal``'s docs): the
stack stays locked and the resources it was creating are left outside the state. Here each CLI command
runs in its own session, so that only the runner signals it; an interrupt is forwarded to it as one
SIGINT, which the CLI answers by cancelling (pulumi/pulumi ``pkg/backend/cancellation_scope.go``: the
first signal cancels and lets in-flight operations finish, a second terminates), and the runner reads its
output until it has exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

import pulumi.automation as auto
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Ctrl-C and SIGTERM during a run. Inside :meth:`interruptible` the first one stops the work: a
    running CLI command gets one SIGINT and is waited for, Python code gets ``KeyboardInterrupt``.
    Elsewhere (creating the stack, tearing it down) signals are only noted, and the work goes on;
    :meth:`interruptible` then stops at once. ``received`` names the first signal."""

    def __init__(self, log: Callable[[str], Any]) -> None:
        self.received = ""
        self._log = log
        self._interruptible = False
        self._cli_running = False
        self._cli: subprocess.Popen[str] | None = None
        self._command = ""
        self._forward_pending = False
        self._forwarded = False
        self.tearing_down = False
        """Set when the teardown starts: a first signal from then on is only noted."""

    @contextmanager
    def handled(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM (from the main thread) for the block; the previous handlers after it."""
        previous = {each: signal.signal(each, self._handle) for each in _SIGNALS}
        try:
            yield
        finally:
            for each, handler in previous.items():
                signal.signal(each, handler)

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A signal stops the block; ``KeyboardInterrupt`` at once if one was received before it."""
        self.check()
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    def check(self) -> None:
        """``KeyboardInterrupt`` if a signal was received: after a CLI command that an interrupt cancelled,
        or that finished although one was sent."""
        if self.received:
            raise KeyboardInterrupt(self.received)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        first, self.received = not self.received, self.received or name
        if not (first and self._interruptible):
            if self.tearing_down:
                going_on = "still tearing down, so that the stack is not left behind"
            elif self._forwarded and self._cli_running:
                going_on = "waiting for the Pulumi CLI to finish cancelling"
            else:
                going_on = "the run stops after this step and tears the stack down"
            self._log(f"{name}: {going_on}")
        elif self._cli_running:
            self._forward_pending = True
            self._forward()
        else:
            raise KeyboardInterrupt(name)

    def _forward(self) -> None:
        if self._cli is None or not self._forward_pending or self._forwarded:
            return
        self._forwarded = True
        self._log(f"{self.received}: cancelling `{self._command}`; waiting for it to finish")
        self._cli.send_signal(signal.SIGINT)

    @contextmanager
    def cli(
        self, command: str, start: Callable[[], subprocess.Popen[str]]
    ) -> Iterator[subprocess.Popen[str]]:
        """Run the CLI ``command`` that ``start`` starts; a signal meanwhile is forwarded to it (once)."""
        self._cli_running, self._command = True, command
        try:
            self._cli = start()
            self._forward()
            yield self._cli
        finally:
            self._cli_running, self._cli = False, None


class InterruptibleCommand(auto.PulumiCommand):
    """``PulumiCommand`` whose commands run in their own session and are cancelled through
    :class:`Interrupts`. ``auto.InvalidVersionError`` when the CLI is older than ``version`` or the SDK
    supports (as ``PulumiCommand``)."""

    def __init__(
        self, interrupts: Interrupts, root: str | None = None, version: VersionInfo | None = None
    ) -> None:
        super().__init__(root=root, version=version)
        self.interrupts = interrupts

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: Callable[[str], Any] | None = None,
        on_error: Callable[[str], Any] | None = None,
    ) -> auto.CommandResult:
        """Run a command as ``PulumiCommand.run`` does (``--non-interactive``, the same environment, a
        ``CommandError`` for a non-zero exit), but started in its own session and read until it exits."""
        options = args[: args.index("--")] if "--" in args else args
        args = args if "--non-interactive" in options else ["--non-interactive", *args]
        env = {**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"}
        if os.path.isabs(self.command):  # the SDK puts plugins next to the CLI first on PATH
            env["PATH"] = os.pathsep.join([os.path.dirname(self.command), env.get("PATH", "")])
        outputs: tuple[list[str], list[str]] = ([], [])

        def start() -> subprocess.Popen[str]:
            return subprocess.Popen(  # noqa: S603 (the CLI PulumiCommand found, with the SDK's arguments)
                [self.command, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                encoding="utf-8",
                start_new_session=True,
            )

        words = [arg for arg in args[:3] if not arg.startswith("-")][:2]  # up, stack rm, config set-all
        with self.interrupts.cli(" ".join(["pulumi", *words]), start) as process:
            readers = [
                threading.Thread(target=_read, args=(stream, callback, lines))
                for stream, callback, lines in zip(
                    (process.stdout, process.stderr), (on_output, on_error), outputs, strict=True
                )
            ]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join()
            code = process.wait()
        result = auto.CommandResult(stdout="\n".join(outputs[0]), stderr="\n".join(outputs[1]), code=code)
        if code != 0:
            raise create_command_error(result)
        return result


def _read(stream: TextIO | None, callback: Callable[[str], Any] | None, lines: list[str]) -> None:
    if stream is None:  # never: both are pipes
        return
    for line in iter(stream.readline, ""):
        stripped = line.rstrip()
        if callback is not None:
            callback(stripped)
        lines.append(stripped)
    stream.close()
