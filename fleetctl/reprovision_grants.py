"""Re-provisioning grants: an operator allows an ``ACTIVE`` device to provision once more, with a new
certificate, for a while (a device whose key was lost or wiped, or that was restored from a factory image).

The hook approves the device's next ``RegisterThing`` with a new certificate while the grant lasts; the
device stays ``ACTIVE`` on the same thing, and the certificate it replaces is retired
(``hook/certificate_retirement.py``). The grant is written through
:class:`~fleetctl.operator_transitions.OperatorRecords`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from fleetctl.errors import NotFound, UsageProblem
from fleetctl.operator_transitions import TransitionRefused
from hook.contract import Attr, DeviceStatus
from hook.registry_items import timestamp

if TYPE_CHECKING:
    from fleetctl.context import StackContext

WINDOW_HOURS_DEFAULT: Final = 1
WINDOW_HOURS_MAX: Final = 72
"""A grant is for a device an operator is working on now, not a standing permission: while it lasts, anyone
holding the claim certificate who knows the serial can take it (it is not bound to the device's key; binding
serials to device keys, issue 12, closes that). Three days at most, for a device shipped back to a depot."""
REASON_MAX_LENGTH: Final = 256

_WHY_REFUSED: Final[dict[str, str]] = {
    DeviceStatus.PREREGISTERED: "it has never provisioned, so it needs no grant",
    DeviceStatus.PENDING: "its provisioning has not finished; `fleetctl release` frees a stale approval",
    DeviceStatus.REVOKED: "a revoked serial never provisions again",
    DeviceStatus.DECOMMISSIONED: "a decommissioned serial never provisions again",
}


def grant(
    stack: StackContext, serial: str, reason: str, window_hours: int, *, allow_downgrade: bool = False
) -> dict[str, Any]:
    """Allow ``serial`` one provisioning with a new certificate for ``window_hours``, of a firmware older
    than its recorded one only with ``allow_downgrade``, recorded with the caller's identity and
    ``reason``; what the grant allows, as JSON-ready data. A serial that is not in the registry is
    :class:`NotFound`; one that is not ``ACTIVE``, a :class:`UsageProblem` naming its state."""
    until = timestamp(datetime.now(UTC) + timedelta(hours=window_hours))
    try:
        item = stack.records.grant_reprovision(
            serial, reason, stack.caller.arn, until, allow_downgrade=allow_downgrade
        )
    except TransitionRefused as refused:
        if refused.stored is None:
            raise NotFound(f"serial {serial!r}: no item in registry {stack.table}") from refused
        status = refused.stored.get(Attr.STATUS, "without a status")
        why = _WHY_REFUSED.get(status, "")
        raise UsageProblem(
            f"serial {serial!r} is {status}; only an ACTIVE device can be allowed to re-provision"
            + (f" ({why})" if why else "")
        ) from refused
    return {
        "serial": serial,
        "status": item.get(Attr.STATUS),
        "thingName": item.get(Attr.THING_NAME),
        "firmwareVersion": item.get(Attr.FIRMWARE_VERSION),
        "allowsDowngrade": item.get(Attr.REPROVISION_ALLOWS_DOWNGRADE) == "true",
        "certificateId": item.get(Attr.CERTIFICATE_ID),
        "allowedUntil": item.get(Attr.REPROVISION_ALLOWED_UNTIL),
        "grantedBy": item.get(Attr.REPROVISION_GRANTED_BY),
        "grantedAt": item.get(Attr.REPROVISION_GRANTED_AT),
        "reason": item.get(Attr.REPROVISION_REASON),
    }
