"""Factory manifests: CSV files with one documented header, every row validated by the hook's own rules."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from fleetctl.errors import UsageProblem
from hook.contract import Parameter, ProvisioningDenied, RejectionReason
from hook.rules import DeviceRequest, RuleSet, validate_request

COLUMNS: Final[Mapping[str, Parameter]] = {
    "serial": Parameter.SERIAL_NUMBER,
    "device_type": Parameter.DEVICE_TYPE,
    "manufacturer": Parameter.MANUFACTURER,
    "firmware": Parameter.FIRMWARE_VERSION,
    "location": Parameter.LOCATION,
}
"""The manifest's columns and the provisioning parameter each one holds."""

HEADER: Final = ",".join(COLUMNS)
_COLUMN_OF: Final = {parameter: column for column, parameter in COLUMNS.items()}
_SHOWN_VALUE_MAX_LENGTH: Final = 40


@dataclass(frozen=True)
class ManifestRow:
    """A valid row: its line in the file and the normalised request the hook would accept."""

    line: int
    request: DeviceRequest


@dataclass(frozen=True)
class RowProblem:
    """Why one row is refused; ``column`` is ``None`` when the whole row is wrong."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.line}" if self.column is None else f"row {self.line}, column {self.column}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Manifest:
    """The valid rows, and a problem for every other row."""

    rows: list[ManifestRow]
    problems: list[RowProblem]


def read_manifest(path: Path, rules: RuleSet) -> Manifest:
    """Parse and validate the manifest at ``path``. A file that cannot be a manifest at all (unreadable,
    empty, a wrong header, no rows) raises :class:`UsageProblem`; bad rows are returned as problems.

    Rows are numbered by their line in the file, the header being line 1. Blank rows are ignored.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            records = [(line, cells) for line, cells in _numbered_records(file) if any(map(str.strip, cells))]
    except UnicodeDecodeError as error:
        raise UsageProblem(f"{path}: not UTF-8 text (byte {error.start})") from error
    except (OSError, csv.Error) as error:
        raise UsageProblem(f"{path}: cannot read as CSV: {error}") from error
    if not records:
        raise UsageProblem(f"{path} is empty: expected the header {HEADER} and one row per device")
    (header_line, raw_header), *body = records
    header = [name.strip() for name in raw_header]
    _check_header(path, header_line, header)
    if not body:
        raise UsageProblem(f"{path} has a header but no device rows")

    rows: list[ManifestRow] = []
    problems: list[RowProblem] = []
    first_line_of: dict[str, int] = {}
    for line, cells in body:
        if len(cells) != len(header):
            problems.append(
                RowProblem(line, None, f"has {len(cells)} cells, expected {len(header)} ({HEADER})")
            )
            continue
        values = dict(zip(header, cells, strict=True))
        try:
            request = validate_request({COLUMNS[name].value: value for name, value in values.items()}, rules)
        except ProvisioningDenied as denial:
            problems.append(_problem(line, denial, values, rules))
            continue
        serial = request.serial_number
        if serial in first_line_of:
            problems.append(
                RowProblem(line, "serial", f"serial {serial!r} is also in row {first_line_of[serial]}")
            )
            continue
        first_line_of[serial] = line
        rows.append(ManifestRow(line, request))
    return Manifest(rows, problems)


def _numbered_records(file: TextIO) -> Iterator[tuple[int, list[str]]]:
    """Each CSV record with the line it starts on (a quoted cell may span lines)."""
    reader = csv.reader(file)
    line = 1
    for cells in reader:
        yield line, cells
        line = reader.line_num + 1


def _check_header(path: Path, line: int, header: list[str]) -> None:
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in COLUMNS if name not in header]
    repeated = sorted({name for name in header if header.count(name) > 1})
    faults = [
        f"{label} {', '.join(names)}"
        for label, names in (
            ("unknown column(s)", unknown),
            ("missing column(s)", missing),
            ("repeated", repeated),
        )
        if names
    ]
    if faults:
        raise UsageProblem(
            f"{path} row {line}: the header must name the columns {HEADER} (in any order); "
            + "; ".join(faults)
        )


def _problem(line: int, denial: ProvisioningDenied, values: Mapping[str, str], rules: RuleSet) -> RowProblem:
    """The hook's denial, placed in the column of the parameter at fault, with the value and, where the
    detail does not say it, the expected form."""
    if denial.parameter is None:
        return RowProblem(line, None, denial.detail)
    column = _COLUMN_OF[denial.parameter]
    message = denial.detail
    value = values[column].strip()
    if value and value not in message:
        shown = value if len(value) <= _SHOWN_VALUE_MAX_LENGTH else value[:_SHOWN_VALUE_MAX_LENGTH] + "..."
        message += f" (got {shown!r})"
    expected = _expected(denial.reason, values["device_type"].strip(), rules)
    return RowProblem(line, column, message if expected is None else f"{message}; expected {expected}")


def _expected(reason: RejectionReason, device_type: str, rules: RuleSet) -> str | None:
    rule = rules.device_types.get(device_type)
    if reason is RejectionReason.UNKNOWN_DEVICE_TYPE:
        return "one of " + ", ".join(sorted(rules.device_types))
    if reason is RejectionReason.SERIAL_PATTERN_MISMATCH and rule and rule.serial_pattern:
        return f"a serial matching {rule.serial_pattern.pattern}"
    if reason is RejectionReason.MANUFACTURER_NOT_ALLOWED and rule and rule.manufacturers:
        return "one of " + ", ".join(sorted(rule.manufacturers))
    return None
