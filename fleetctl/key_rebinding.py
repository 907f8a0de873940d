"""Moving a serial to another device key: an operator's action, with a reason, for a device whose secure
element was replaced or whose factory manifest carried the wrong key.

Only a ``PREREGISTERED`` or ``ACTIVE`` serial may move; the key must not be registered for another serial.
The registry records the previous key, who moved it (the caller's identity), when and why, in the same
transaction that moves the key's binding (:meth:`~fleetctl.operator_transitions.OperatorRecords.rebind_key`).
An ``ACTIVE`` device keeps its current certificate, issued for the previous key, until it gets one for the
new key: ``fleetctl reprovision`` lets it provision once more, and the hook then admits only the new key. A
rotation in progress is dropped: its certificate was issued for the previous key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fleetctl.errors import NotFound, UsageProblem
from fleetctl.operator_transitions import PublicKeyInUse
from hook.contract import Attr, DeviceStatus

if TYPE_CHECKING:
    from fleetctl.context import StackContext

_WHY_REFUSED: Final[dict[str, str]] = {
    DeviceStatus.PENDING: "its provisioning has not finished; `fleetctl release` frees a stale approval",
    DeviceStatus.REVOKED: "a revoked serial keeps its key for good",
    DeviceStatus.DECOMMISSIONED: "a decommissioned serial keeps its key for good",
}


def rebind(stack: StackContext, serial: str, public_key_sha256: str, reason: str) -> dict[str, Any]:
    """Bind ``serial`` to the key ``public_key_sha256`` (a fingerprint,
    :func:`hook.public_keys.registered_key_sha256`), recorded with the caller's identity and ``reason``;
    what was done, as JSON-ready data (``changed`` false when the serial already had that key). A serial
    that is not in the registry is :class:`NotFound`; one in another state, or a key registered for another
    serial, a :class:`UsageProblem`."""
    item = stack.records.get(serial)
    if item is None:
        raise NotFound(f"serial {serial!r}: no item in registry {stack.table}")
    status = item.get(Attr.STATUS, "without a status")
    if status not in (DeviceStatus.PREREGISTERED, DeviceStatus.ACTIVE):
        why = _WHY_REFUSED.get(status, "")
        raise UsageProblem(
            f"serial {serial!r} is {status}; only a PREREGISTERED or ACTIVE serial's key can move"
            + (f" ({why})" if why else "")
        )
    if item.get(Attr.PUBLIC_KEY_SHA256) == public_key_sha256:
        return _report(item, changed=False, rotation_dropped=False)
    try:
        written = stack.records.rebind_key(item, public_key_sha256, reason, stack.caller.arn)
    except PublicKeyInUse as in_use:
        raise UsageProblem(
            f"--public-key: key sha256:{in_use.public_key_sha256} is registered for serial "
            f"{in_use.serial_number!r}; a key belongs to one serial (rebind that serial first if the key "
            "really moved)"
        ) from None
    if written is None:
        raise UsageProblem(f"serial {serial!r} changed while its key was being moved; run the command again")
    return _report(written, changed=True, rotation_dropped=Attr.PENDING_CERTIFICATE_ID in item)


def _report(item: dict[str, str], *, changed: bool, rotation_dropped: bool) -> dict[str, Any]:
    return {
        "serial": item[Attr.SERIAL_NUMBER],
        "status": item.get(Attr.STATUS),
        "changed": changed,
        "publicKeySha256": item.get(Attr.PUBLIC_KEY_SHA256),
        "previousPublicKeySha256": item.get(Attr.PREVIOUS_PUBLIC_KEY_SHA256),
        "reboundBy": item.get(Attr.KEY_REBOUND_BY),
        "reboundAt": item.get(Attr.KEY_REBOUND_AT),
        "reason": item.get(Attr.KEY_REBOUND_REASON),
        "certificateId": item.get(Attr.CERTIFICATE_ID),
        "rotationDropped": rotation_dropped,
    }
