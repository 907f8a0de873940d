"""Run ``fleetctl`` in this process as an operator runs it on a stack's outputs: ``fleetctl --outputs
stack.json <args> --json``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from typer.testing import CliRunner

from fleetctl.cli import app
from program.outputs import StackOutput


class FleetctlFailed(RuntimeError):
    """fleetctl exited with a non-zero status; the message has its arguments, status and output."""


def run_fleetctl(
    outputs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *args: str,
    environment: Mapping[str, str | None] | None = None,
) -> Any:
    """fleetctl's JSON output for ``args`` on the stack of ``outputs``, or on the fleet of several regions'
    (each written to a temporary file without the claim certificate's private key, which fleetctl never
    reads, and given as ``--outputs``). ``environment`` is set for the run (``None`` unsets a variable;
    boto3's default session is made anew inside it), to reach the emulator, say; without it fleetctl uses
    the default AWS credentials."""
    stacks = [outputs] if isinstance(outputs, Mapping) else list(outputs)
    with tempfile.TemporaryDirectory() as directory:
        given = []
        for number, each in enumerate(stacks):
            public = public_outputs(each)
            stack = Path(directory) / f"stack-{number}.json"
            stack.write_text(json.dumps(public), encoding="utf-8")
            given += ["--outputs", str(stack)]
        with _fresh_boto3_session():
            result = CliRunner().invoke(app, [*given, *args, "--json"], env=dict(environment or {}))
    if result.exit_code != 0:
        raise FleetctlFailed(f"fleetctl {' '.join(args)} exited with {result.exit_code}: {result.output}")
    return json.loads(result.stdout)


def public_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The stack outputs fleetctl reads: all but the claim certificate's private key."""
    return {name: value for name, value in outputs.items() if name != StackOutput.CLAIM_PRIVATE_KEY}


@contextmanager
def _fresh_boto3_session() -> Iterator[None]:
    """boto3's default session resolves its credentials once: made anew for the run, and dropped after it."""
    boto3.DEFAULT_SESSION = None
    try:
        yield
    finally:
        boto3.DEFAULT_SESSION = None
