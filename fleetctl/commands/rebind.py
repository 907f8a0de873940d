"""``fleetctl rebind SERIAL``: bind a serial to another device key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetctl import key_rebinding
from fleetctl.commands.options import JsonFlag, SerialArgument, grant_reason, stack_of
from fleetctl.output import print_rebinding
from hook.public_keys import PublicKeyError, registered_key_sha256


def _public_key(value: str) -> str:
    """A key as ``registered_key_sha256`` reads it, given inline or as ``@FILE``: its fingerprint."""
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise typer.BadParameter(f"cannot read {value[1:]!r}: {error}") from None
    try:
        return registered_key_sha256(value)
    except PublicKeyError as error:
        raise typer.BadParameter(str(error)) from None


def rebind(
    ctx: typer.Context,
    *,
    serial: SerialArgument,
    public_key: Annotated[
        str,
        typer.Option(
            callback=_public_key,
            metavar="KEY",
            help="The device's new key: a PEM public key, base64 DER SubjectPublicKeyInfo or its SHA-256 "
            "fingerprint (sha256:<64 hex>), or @FILE to read it from a file.",
        ),
    ],
    reason: Annotated[
        str,
        typer.Option(callback=grant_reason, help="Why; stored as keyReboundReason (at most 256 characters)."),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Bind a PREREGISTERED or ACTIVE serial to another device key (a replaced secure element, a wrong
    manifest), recording the previous key, who and why. The hook then admits only the new key."""
    print_rebinding(serial, key_rebinding.rebind(stack_of(ctx), serial, public_key, reason), json_output)
