"""``python -m local.devices``: simulated devices on a running ``make sandbox``.

Provisions one device (``--serial``/``--type``, ``--keys``) or a batch (``--fleet FILE``, the format of
``local/devices/sample_fleet.json``) by claim, then keeps each provisioned one alive until Ctrl-C (or for
``--seconds``): connected, publishing telemetry and its reported shadow, taking rotation jobs, with a line
for each change of its connection or certificate.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

from local.devices.firmware import Identity
from local.devices.fleet_runner import FleetTarget, Outcome, provision_fleet
from local.devices.live import LiveDevice, interrupt_on_sigterm
from local.devices.mqtt_session import Broker
from local.devices.sample_fleet import APPROVED, KEYS, FleetDevice, FleetFileError, load_fleet

CONNECTION_FILE: Final = "devices.json"
"""What ``make sandbox`` writes for devices: the stack outputs with the claim key, the broker and its CA."""


class SandboxMissing(RuntimeError):
    """No running sandbox's connection file."""


def read_connection(directory: Path) -> tuple[Broker, dict[str, Any]]:
    """The broker and stack outputs a running ``make sandbox`` wrote into ``directory``."""
    path = directory / CONNECTION_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        broker = Broker(document["mqttHost"], int(document["mqttPort"]), document["caPem"])
        return broker, dict(document["outputs"])
    except OSError as error:
        raise SandboxMissing(f"{path}: {error.strerror}; is `make sandbox` running?") from error
    except (ValueError, KeyError, TypeError) as error:
        raise SandboxMissing(
            f"{path}: not a sandbox connection file ({error!r}); restart `make sandbox`"
        ) from error


def _devices(arguments: argparse.Namespace) -> list[FleetDevice]:
    if arguments.fleet is not None:
        return load_fleet(arguments.fleet)
    identity = Identity(
        serial_number=arguments.serial,
        device_type=arguments.type,
        manufacturer=arguments.manufacturer,
        firmware_version=arguments.firmware,
        location=arguments.location,
    )
    return [FleetDevice(identity=identity, expect=APPROVED, keys=KEYS[arguments.keys]())]


def _said(outcome: Outcome) -> str:
    serial = outcome.device.identity.serial_number
    if outcome.provisioned is not None and outcome.approved:
        return (
            f"{serial}: provisioned as {outcome.provisioned.thing_name}, certificate "
            f"{outcome.provisioned.certificate_id[:12]} ({type(outcome.device.keys).__name__})"
        )
    return f"{serial}: not provisioned: {outcome.error}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.devices", description=__doc__.split("\n\n")[1])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", help="one device's serial number (with --type)")
    which.add_argument("--fleet", type=Path, help="a fleet file of devices to provision")
    parser.add_argument("--type", help="the device type, as the stack's deviceTypes name it")
    parser.add_argument("--manufacturer", default="AcmeIoT")
    parser.add_argument("--firmware", default="2.1.0", help="firmware version (default 2.1.0)")
    parser.add_argument("--location", default="sandbox")
    parser.add_argument("--keys", choices=sorted(KEYS), default="device", help="who makes the key pair")
    parser.add_argument(
        "--seconds", type=float, help="live this long, then exit; 0: provision only (default: until Ctrl-C)"
    )
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between telemetry rounds")
    parser.add_argument("--sandbox", type=Path, default=Path(".sandbox"), help="make sandbox's directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Provision the devices and keep them alive; 1 when one was not provisioned as its entry expects."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.serial is not None and not arguments.type:
        parser.error("--serial needs --type (a device type of the stack, e.g. temperature-sensor)")
    try:
        broker, outputs = read_connection(arguments.sandbox)
        devices = _devices(arguments)
    except (SandboxMissing, FleetFileError, OSError, ValueError, KeyError) as error:
        parser.error(str(error))
    interrupt_on_sigterm()
    outcomes = provision_fleet(
        FleetTarget.from_outputs(broker, outputs),
        devices,
        concurrency=4,
        on_outcome=lambda o: print(_said(o)),
    )
    unexpected = [o for o in outcomes if o.approved != (o.device.expect == APPROVED)]
    stop = threading.Event()
    live = [
        LiveDevice(broker, o.provisioned, lambda line: print(line, flush=True), arguments.interval)
        for o in outcomes
        if o.provisioned is not None and o.approved and arguments.seconds != 0
    ]
    threads = [threading.Thread(target=device.run, args=(stop,), daemon=True) for device in live]
    for thread in threads:
        thread.start()
    try:
        if live:
            deadline = None if arguments.seconds is None else time.monotonic() + arguments.seconds
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
