"""One emulator per port at a time: the sandbox, the demo and the e2e suite take the same lock before they
start the emulator, so a second one says which is running instead of failing on a port."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from local.emulator.launcher import HOST, EmulatorAddress


class EmulatorBusy(RuntimeError):
    """Another sandbox, demo or e2e run holds the emulator's ports."""


def lock_path(address: EmulatorAddress, directory: Path | None = None) -> Path:
    """The lock file of the emulator listening on ``address`` (in ``TMPDIR``, shared by every clone)."""
    base = directory or Path(os.environ.get("TMPDIR", "/tmp"))  # noqa: S108
    return base / f"iot-fleet-emulator-{address.gateway_port}.lock"


@contextmanager
def emulator_lock(address: EmulatorAddress, holder: str, directory: Path | None = None) -> Iterator[Path]:
    """Hold the lock of ``address`` while the block runs, recording ``holder`` (and this pid) in it;
    :class:`EmulatorBusy` naming the running one when another process holds it. The lock is the file's
    ``flock``: the system drops it when its holder exits, however it exits, so no stale lock is left."""
    path = lock_path(address, directory)
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            running = handle.read().strip() or "another process"
            raise EmulatorBusy(
                f"an emulator already runs on {HOST}:{address.gateway_port} (lock {path}): {running}; "
                "stop it first (Ctrl-C in its terminal), or use that one"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder}, pid {os.getpid()}\n")
        handle.flush()
        yield path
