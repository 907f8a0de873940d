"""``make sandbox``: the emulator with the local stack deployed, running until Ctrl-C or SIGTERM.

Writes into ``.sandbox/`` the stack's outputs (``stack.json``, without the claim key), ``sandbox.env`` and
the devices' ``devices.json``; ``source .sandbox/sandbox.env`` in another terminal points ``fleetctl``, the
AWS CLI and ``python -m local.devices`` at the emulator. On Ctrl-C or SIGTERM it stops the emulator and
every process it started, and removes those files.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from local.devices.__main__ import CONNECTION_FILE
from local.devices.live import interrupt_on_sigterm
from local.emulator.launcher import EmulatorError
from local.scenario.emulator_lock import EmulatorBusy
from local.scenario.fleetctl_runner import public_outputs
from local.scenario.sandbox import Sandbox, sandbox
from program.outputs import StackOutput

DEFAULT_DIRECTORY: Final = Path(".sandbox")
OUTPUTS_FILE: Final = "stack.json"
ENVIRONMENT_FILE: Final = "sandbox.env"


def environment_file(
    environment: Mapping[str, str | None], *, region: str, outputs: Path, bin_directory: Path
) -> str:
    """The ``source``-able shell lines that point fleetctl and the AWS CLI at the sandbox: ``environment``
    (``None`` unsets a variable), the region, ``FLEETCTL_OUTPUTS`` (fleetctl's ``--outputs``) and the
    project's ``bin_directory`` first on ``PATH``."""
    # AWS_ENDPOINT_URL is the endpoint of every service for the AWS CLI v2 and boto3 (AWS SDKs and Tools
    # reference guide, "Service-specific endpoints"; AWS CLI user guide, "Using endpoints in the AWS CLI").
    variables: dict[str, str | None] = {
        **environment,
        "AWS_PROFILE": None,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "FLEETCTL_OUTPUTS": str(outputs),
    }
    lines = ["# make sandbox: source this file to run fleetctl and the AWS CLI on the local emulator"]
    for name, value in sorted(variables.items()):
        lines.append(f"unset {name}" if value is None else f"export {name}={shlex.quote(value)}")
    lines.append(f'export PATH={shlex.quote(str(bin_directory))}:"$PATH"')
    return "\n".join(lines) + "\n"


def write_files(box: Sandbox, directory: Path) -> tuple[Path, Path, Path]:
    """Write into ``directory`` the stack outputs for fleetctl, the environment file and the devices'
    connection file (``python -m local.devices``); their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    outputs = directory / OUTPUTS_FILE
    outputs.write_text(json.dumps(public_outputs(box.outputs), indent=2) + "\n", encoding="utf-8")
    environment = directory / ENVIRONMENT_FILE
    environment.write_text(
        environment_file(
            {
                **box.fleetctl_environment,
                "CLAIM_CERTIFICATE_ID": str(box.outputs[StackOutput.CLAIM_CERTIFICATE_ID]),
            },
            region=str(box.outputs[StackOutput.REGION]),
            outputs=outputs,
            bin_directory=Path(sys.executable).parent.absolute(),
        ),
        encoding="utf-8",
    )
    devices = directory / CONNECTION_FILE
    devices.touch(mode=0o600)  # the claim certificate's private key: readable by its owner only
    devices.write_text(
        json.dumps(
            {
                "mqttHost": box.emulator.address.mqtt_host,
                "mqttPort": box.emulator.address.mqtt_port,
                "caPem": box.emulator.ca_pem(),
                "outputs": dict(box.outputs),
            }
        ),
        encoding="utf-8",
    )
    return outputs, environment, devices


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until Ctrl-C or SIGTERM; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--directory", type=Path, default=DEFAULT_DIRECTORY, help="where to write stack.json and sandbox.env"
    )
    directory = parser.parse_args(argv).directory.absolute()
    interrupt_on_sigterm()
    print("starting the AWS emulator (ministack) on 127.0.0.1 and deploying the local stack ...", flush=True)
    files: tuple[Path, ...] = ()
    try:
        with sandbox(holder=f"make sandbox in {Path.cwd()}") as box:
            files = write_files(box, directory)
            print(
                f"sandbox ready: {len(box.stack.created)} resources of the local stack, "
                f"AWS API on {box.emulator.address.endpoint_url}, MQTT on "
                f"{box.emulator.address.mqtt_host}:{box.emulator.address.mqtt_port}\n"
                f"stack outputs: {files[0]}\n"
                "in another terminal:\n"
                f"  source {files[1]}\n"
                "  fleetctl list                  # or any fleetctl command, and `aws iot list-things`\n"
                "  python -m local.devices --serial TS-900001 --type temperature-sensor   # a live device\n"
                "Ctrl-C stops the sandbox.",
                flush=True,
            )
            signal.pause()
    except KeyboardInterrupt:
        pass
    except (EmulatorBusy, EmulatorError) as error:
        print(f"make sandbox: {error}", file=sys.stderr)
        return 1
    finally:
        for path in files:
            path.unlink(missing_ok=True)
    print("sandbox stopped: the emulator and the processes it started have ended", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
