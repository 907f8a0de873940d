"""The registry's devices written out as CSV or JSON lines, streaming: one item in memory at a time (a page of
them as read), however large the registry."""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from fleetctl.errors import UsageProblem
from hook.contract import Attr, DeviceStatus

if TYPE_CHECKING:
    from fleetctl.operator_transitions import OperatorRecords
    from hook.registry_items import Item


class ExportFormat(StrEnum):
    """What ``fleetctl export`` writes."""

    CSV = "csv"
    """A header row, then one row per device, with the columns of :data:`CSV_COLUMNS` in that order."""
    JSONL = "jsonl"
    """One JSON object per line and per device: its attributes, those of :data:`CSV_COLUMNS` first."""


CSV_COLUMNS: Final[tuple[Attr, ...]] = (
    Attr.SERIAL_NUMBER,
    Attr.STATUS,
    Attr.DEVICE_TYPE,
    Attr.MANUFACTURER,
    Attr.FIRMWARE_VERSION,
    Attr.LOCATION,
    Attr.THING_NAME,
    Attr.PUBLIC_KEY_SHA256,
    Attr.CERTIFICATE_ID,
    Attr.CERTIFICATE_NOT_AFTER,
    Attr.PENDING_CERTIFICATE_ID,
    Attr.REPLACED_CERTIFICATE_IDS,
    Attr.CLAIM_CERTIFICATE_ID,
    Attr.TEMPLATE_ARN,
    Attr.CLIENT_ID,
    Attr.CREATED_AT,
    Attr.APPROVED_AT,
    Attr.ACTIVATED_AT,
    Attr.UPDATED_AT,
    Attr.ROTATION_JOB_ID,
    Attr.ROTATION_REQUESTED_AT,
    Attr.ROTATED_AT,
    Attr.COMPLETED_ROTATION_JOB_IDS,
    Attr.ATTEMPTED_ROTATION_JOB_IDS,
    Attr.ROTATION_FAILED_AT,
    Attr.ROTATION_FAILURE_REASON,
    Attr.REPROVISION_ALLOWED_UNTIL,
    Attr.REPROVISION_GRANTED_BY,
    Attr.REPROVISION_GRANTED_AT,
    Attr.REPROVISION_REASON,
    Attr.REPROVISION_ALLOWS_DOWNGRADE,
    Attr.REPROVISIONED_AT,
    Attr.PREVIOUS_PUBLIC_KEY_SHA256,
    Attr.KEY_REBOUND_AT,
    Attr.KEY_REBOUND_BY,
    Attr.KEY_REBOUND_REASON,
    Attr.REVOKED_AT,
    Attr.REVOCATION_REASON,
    Attr.CERTIFICATES_REVOKED_AT,
    Attr.DECOMMISSIONED_AT,
    Attr.ATTESTED_BY,
    Attr.UNIQUE_ID,
    Attr.REGION,
    Attr.MANIFEST_DIGEST,
    Attr.PART_NUMBER,
)
"""The CSV's columns, in this order: who the device is, its certificates and keys, then its history, then
what attested it, the region it provisioned in and its signed manifest (each added last, so the earlier
columns keep their places). An attribute a device does not have is an empty cell."""

FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r", "\n")
"""A CSV cell starting with one of these is read as a formula by spreadsheets; OWASP's "CSV Injection"
(owasp.org/www-community/attacks/CSV_Injection) lists them. The csv module's quoting keeps a ``,`` or a
``"`` inside its cell, but not a ``;``, the separator a spreadsheet uses in locales whose decimal mark is
a comma (OWASP names both): a device's ``clientId`` (any text after the claim policy's prefix) can hold
``;=...;``, a cell of its own there."""
TEXT_MARKER: Final = "'"
"""Put before such a trigger, at the start of a cell or after a ``;``, as OWASP advises: spreadsheets then
show it as text. A genuine value is read back by dropping a ``'`` there when a trigger follows it
(``'-5th-floor`` is ``-5th-floor``); a value that already has ``'`` there gets one more (``'=1`` is the cell
``''=1``), so that reading holds for every value."""
_CELL_STARTS: Final = re.compile(r"(?:^|(?<=;))(?='*[=+\-@\t\r\n])")
"""Where a spreadsheet may start a cell with a trigger (after any ``'``): the start of the value, or just
after a ``;``."""

LEFT_OUT: Final = frozenset({Attr.STATUS_SHARD, Attr.TYPE_SHARD, Attr.DEVICE_SERIAL_NUMBER})
"""Never exported: the sharded indexes' keys (derived from the status, the type and the serial) and the
binding items' attribute (binding items are never exported)."""


def export_devices(
    records: OperatorRecords,
    export_format: ExportFormat,
    destination: Path | None,
    *,
    status: DeviceStatus | None = None,
    device_type: str | None = None,
    on_item: Callable[[], None] = lambda: None,
) -> int:
    """Write the devices in ``status`` and/or of ``device_type`` (every device when neither) to
    ``destination`` (stdout when ``None``), calling ``on_item`` per device; returns how many were written.

    They are read as :meth:`~fleetctl.registry_reads.RegistryReads.devices` reads them: a selection through
    the sharded indexes, the whole registry by a parallel Scan, so binding items never come up. A file is
    written under a temporary name beside it and renamed when complete, so an interrupted export never leaves
    a file that looks whole."""
    devices = records.devices(status, device_type)
    if destination is None:
        return _write(devices, export_format, sys.stdout, on_item)
    try:
        with tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            newline="",
            dir=destination.parent,
            prefix=f".{destination.name}.",
            suffix=".part",
            delete=False,
        ) as file:
            try:
                count = _write(devices, export_format, file, on_item)
            except BaseException:
                file.close()
                os.unlink(file.name)
                raise
        os.replace(file.name, destination)
    except OSError as error:
        raise UsageProblem(f"cannot write {destination}: {error.strerror or error}") from error
    return count


def _write(
    devices: Iterable[Item], export_format: ExportFormat, file: IO[str], on_item: Callable[[], None]
) -> int:
    count = 0
    if export_format is ExportFormat.CSV:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        for item in devices:
            writer.writerow([as_text_cell(item.get(column, "")) for column in CSV_COLUMNS])
            count += 1
            on_item()
    else:
        for item in devices:
            file.write(json.dumps(_exported(item)) + "\n")
            count += 1
            on_item()
    return count


def as_text_cell(value: str) -> str:
    """``value`` as a CSV cell no spreadsheet reads as a formula: :data:`TEXT_MARKER` before each of
    :data:`FORMULA_TRIGGERS` that starts it or follows a ``;``. JSON lines need none of it: no JSON reader
    evaluates a string."""
    return _CELL_STARTS.sub(TEXT_MARKER, value)


def _exported(item: Item) -> Item:
    """The item's attributes but :data:`LEFT_OUT`: those of :data:`CSV_COLUMNS` in that order, then any other
    by name."""
    known = {column: item[column] for column in CSV_COLUMNS if column in item}
    others = {name: item[name] for name in sorted(item) if name not in known and name not in LEFT_OUT}
    return known | others
