"""Exit codes and the errors that map to them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What ``fleetctl`` exits with; scripts can rely on these."""

    OK = 0
    ABORTED = 1
    """The operator answered no when asked to confirm."""
    USAGE = 2
    """Bad arguments, a bad manifest or missing stack context (2 is also what Typer uses for bad args)."""
    NOT_FOUND = 3
    """The serial or certificate does not exist."""
    AWS = 4
    """An AWS request failed."""


class FleetctlError(Exception):
    """An error reported as one or more lines on stderr, exiting with :attr:`exit_code`."""

    exit_code = ExitCode.USAGE


class UsageProblem(FleetctlError):
    """Bad input: arguments, stack context or a manifest."""


class Declined(FleetctlError):
    """The operator answered no when asked to confirm; the message says what was left as it was."""

    exit_code = ExitCode.ABORTED


class NotFound(FleetctlError):
    """What the command names does not exist."""

    exit_code = ExitCode.NOT_FOUND


class AwsProblem(FleetctlError):
    """An AWS request failed after others had already changed something; the message says what."""

    exit_code = ExitCode.AWS
