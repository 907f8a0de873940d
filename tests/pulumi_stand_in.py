"""A stand-in ``pulumi`` executable for the acceptance runner's tests, driven through the Automation API's
own ``PulumiCommand``; ``install(directory)`` puts it at ``<directory>/bin/pulumi``.

It keeps its stacks in the JSON file ``$PULUMI_STAND_IN_STATE`` and behaves like the Pulumi CLI where the
runner depends on it: ``pulumi stack init`` selects the new stack and ``pulumi stack rm`` leaves none
selected (``stack_remove.go``); ``config set-all --path`` stores ``key[i]`` items as a list; ``up``
refuses a config value of the wrong type (``validateStackConfigValue``, with ``local/acceptance/
stack_config.py``), locks the stack and records each resource it creates as a pending operation until
done; the first SIGINT or SIGTERM cancels (``cancellation_scope.go``: it goes on printing while its
in-flight operation finishes, then fails with "update canceled" and unlocks), a second one terminates at
once; a write to a closed pipe kills it with SIGPIPE, as it does a Go program; ``destroy`` refuses a
locked stack; ``cancel`` unlocks. ``$PULUMI_STAND_IN_SIGNAL`` (``SIGINT``, ``SIGTERM``, or several,
comma-separated) makes ``up`` send them to its parent, the runner (a SIGINT, as a terminal's Ctrl-C, to
itself too when it is in the runner's process group): ``$PULUMI_STAND_IN_SIGNAL_DURING`` names the
command (``up``, the default, after its second resource; ``stack init``; ``config <stack>``, the read of
its config; ``destroy``). ``$PULUMI_STAND_IN_VERSION`` is the version it reports.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from local.acceptance.stack_config import Stored, declared_types, stored_by_path, type_errors

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = 5
PROJECT = "iot-fleet-provisioning"
LOCKED = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
    "or delete the lock file with `pulumi cancel`."
)


def install(directory: Path) -> Path:
    """Write ``<directory>/bin/pulumi``, which runs this script with this interpreter; returns its path."""
    executable = directory / "bin" / "pulumi"
    executable.parent.mkdir(parents=True, exist_ok=True)
    executable.write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" "{__file__}" "$@"\n', encoding="utf-8"
    )
    executable.chmod(0o755)
    return executable


def load() -> dict[str, Any]:
    """The stand-in's state: ``current`` (the selected stack), ``stacks``, and ``calls`` (each argv)."""
    path = Path(os.environ["PULUMI_STAND_IN_STATE"])
    if not path.exists():
        return {"current": None, "stacks": {}, "calls": []}
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return state


def save(state: dict[str, Any]) -> None:
    """Write the state back."""
    Path(os.environ["PULUMI_STAND_IN_STATE"]).write_text(json.dumps(state, indent=1), encoding="utf-8")


def fail(message: str) -> None:
    print(f"error: {message}" if not message.startswith("error:") else message, file=sys.stderr, flush=True)
    sys.exit(255)


def signal_parent() -> None:
    """Send each signal of ``$PULUMI_STAND_IN_SIGNAL`` (``SIGINT,SIGTERM``), if set, to the runner, each
    given a moment to arrive. A SIGINT is a terminal's Ctrl-C, which the terminal sends to its foreground
    process group: it reaches this CLI too when it runs in the runner's process group."""
    for name in filter(None, os.environ.get("PULUMI_STAND_IN_SIGNAL", "").split(",")):
        os.kill(os.getppid(), signal.Signals[name])
        if name == "SIGINT" and os.getpgid(0) == os.getpgid(os.getppid()):
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def main(args: list[str]) -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Go: a write to a closed stdout or stderr kills it
    state = load()
    state["calls"].append(args)
    save(state)
    words = [arg for arg in args if not arg.startswith("-")]
    command = " ".join(words[:2])
    during = os.environ.get("PULUMI_STAND_IN_SIGNAL_DURING", "up")
    if during != "up" and command.startswith(during):
        signal_parent()
    if words[:1] == ["version"]:
        print(os.environ.get("PULUMI_STAND_IN_VERSION", "v3.272.0"))
    elif command == "stack ls":
        stacks = [{"name": name, "current": name == state["current"]} for name in state["stacks"]]
        print(json.dumps(stacks))
    elif command == "stack init":
        if words[2] in state["stacks"]:
            fail(f"stack '{words[2]}' already exists")
        state["stacks"][words[2]] = {"config": {}, "locked": False, "resources": [], "pending": []}
        state["current"] = words[2]
        save(state)
    elif command == "stack select":
        state["current"] = option(args, "--stack")
        save(state)
    elif command == "stack rm":
        del state["stacks"][words[2]]
        state["current"] = None
        save(state)
    else:
        stack_command(state, args, command)


def stack_command(state: dict[str, Any], args: list[str], command: str) -> None:
    """A command of one stack (``--stack``)."""
    name = option(args, "--stack")
    stack = state["stacks"][name]
    if command == "config set-all":
        set_all(stack, args)
        save(state)
    elif command.startswith("config"):
        config = {key: {"value": value["text"], "secret": False} for key, value in stack["config"].items()}
        print(json.dumps(config))
    elif command == "stack output":
        print(json.dumps(stack.get("outputs", {})))
    elif command == "stack history":
        print(json.dumps([history_entry()]))
    elif command == "stack export":
        print(json.dumps({"version": 3, "deployment": {"pending_operations": stack["pending"]}}))
    elif command.startswith("cancel"):
        stack["locked"] = False
        save(state)
        print(f"The currently running update for '{name}' has been canceled!")
    elif command.startswith("destroy"):
        if stack["locked"]:
            fail(LOCKED)
        for urn in stack["resources"]:
            print(f"    - {urn} deleted", flush=True)
        stack.update(resources=[], pending=[], outputs={})
        save(state)
    elif command.startswith("up"):
        up(state, name)
    else:
        fail(f"the stand-in does not know `pulumi {command}`")


def set_all(stack: dict[str, Any], args: list[str]) -> None:
    pairs = dict(args[index + 1].split("=", 1) for index, arg in enumerate(args) if arg == "--plaintext")
    if "--path" in args:
        stored = stored_by_path(pairs)
    else:
        stored = {key: Stored(value) for key, value in pairs.items()}
    stack["config"].update(
        {key: {"text": value.text, "object": value.object} for key, value in stored.items()}
    )


def history_entry() -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return {
        "kind": "update",
        "startTime": now,
        "endTime": now,
        "message": "",
        "environment": {},
        "config": {},
        "result": "succeeded",
    }


def up(state: dict[str, Any], name: str) -> None:
    stack = state["stacks"][name]
    stored = {key: Stored(value["text"], value["object"]) for key, value in stack["config"].items()}
    errors = type_errors(name, stored, declared_types(Path.cwd() / "Pulumi.yaml"))
    if errors:
        fail(errors[0])
    if stack["locked"]:
        fail(LOCKED)
    stack["locked"] = True
    save(state)
    signals: list[str] = []

    def cancel(signum: int, frame: object) -> None:
        signals.append(signal.Signals(signum).name)
        if len(signals) > 1:
            print("^C received; terminating", flush=True)
            os._exit(255)  # locked, the pending operation left in the state
        shown = "^C" if signum == signal.SIGINT else "SIGTERM"
        print(
            f"{shown} received; cancelling. If you would like to terminate immediately, press ^C again.",
            flush=True,
        )

    for each in (signal.SIGINT, signal.SIGTERM):
        signal.signal(each, cancel)
    for index in range(RESOURCES):
        if signals:
            break
        urn = f"urn:pulumi:{name}::{PROJECT}::aws:iot/thingType:ThingType::type-{index}"
        stack["pending"].append(
            {"resource": {"urn": urn, "type": "aws:iot/thingType:ThingType"}, "type": "creating"}
        )
        save(state)
        print(f"    + {urn} creating", flush=True)
        if index == 1 and os.environ.get("PULUMI_STAND_IN_SIGNAL_DURING", "up") == "up":
            signal_parent()
        for _ in range(3):  # the in-flight operation goes on, and so does the output
            time.sleep(0.1)
            if signals:
                print(f"    + {urn} creating (waiting for it to finish)", flush=True)
        stack["pending"].pop()
        stack["resources"].append(urn)
        save(state)
        print(f"    + {urn} created", flush=True)
    stack["locked"] = False
    if signals:
        save(state)
        fail("update canceled")
    stack["outputs"] = {"iotEndpoint": "abc-ats.iot.eu-west-1.amazonaws.com"}
    save(state)
    print(f"Resources:\n    + {RESOURCES} created", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
