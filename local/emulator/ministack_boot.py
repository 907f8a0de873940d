"""Start ministack with every listener bound to 127.0.0.1.

Run by the emulator's own interpreter (``.venv-ministack/bin/python``), never imported by the project.
ministack binds its HTTP gateway to ``BIND_HOST``, but its IoT mTLS broker (and a few optional
listeners) hard-code ``0.0.0.0``. Wrapping :meth:`asyncio.BaseEventLoop.create_server` before ministack
is imported forces every asyncio listener, ``asyncio.start_server`` included, onto the loopback address.

It also applies ``local/emulator/ministack_csr_shim.py`` (``CreateCertificateFromCsr`` over MQTT, which
ministack does not answer) unless ``MINISTACK_CSR_SHIM=0``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

LOOPBACK = "127.0.0.1"


def _loopback_only(create_server: Any) -> Any:
    @functools.wraps(create_server)
    async def create_loopback_server(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("sock") is None:
            if len(args) >= 2:  # (protocol_factory, host, ...)
                args = (args[0], LOOPBACK, *args[2:])
            else:
                kwargs["host"] = LOOPBACK
        return await create_server(self, *args, **kwargs)

    return create_loopback_server


asyncio.BaseEventLoop.create_server = _loopback_only(  # type: ignore[method-assign]
    asyncio.BaseEventLoop.create_server
)

if __name__ == "__main__":
    import ministack_csr_shim  # beside this file: the script's directory is first on sys.path

    if ministack_csr_shim.enabled():
        from ministack.services import iot

        ministack_csr_shim.install(iot)

    from ministack.app import main

    main()
