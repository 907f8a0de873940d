"""Factory manifests: CSV files with one documented header, every row validated by the hook's own rules, read
as a stream so that a million rows take no more memory than a thousand.

A manifest is read twice, never held: :func:`checked_manifest` validates every row (and finds serials and
keys given twice), then :meth:`CheckedManifest.rows` reads the valid rows again for the write. The check
keeps 8 bytes per valid row, 16 for a row with a public key (:class:`~fleetctl.repeats.RepeatFinder`):
8-16 MB per million rows, released when it ends. Between the two reads what is kept is a count, the bad rows
in a temporary file (:class:`~fleetctl.spill.Spill`) and the line of each row repeating an earlier serial or
key (8 bytes each).
"""

from __future__ import annotations

import csv
import heapq
from array import array
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final, TextIO

from fleetctl.errors import UsageProblem
from fleetctl.repeats import RepeatFinder, digest
from fleetctl.spill import Spill
from hook.contract import Parameter, ProvisioningDenied, RejectionReason
from hook.public_keys import KEY_FORMS, PublicKeyError, registered_key_sha256
from hook.rules import DeviceRequest, RuleSet, validate_request

COLUMNS: Final[Mapping[str, Parameter]] = {
    "serial": Parameter.SERIAL_NUMBER,
    "device_type": Parameter.DEVICE_TYPE,
    "manufacturer": Parameter.MANUFACTURER,
    "firmware": Parameter.FIRMWARE_VERSION,
    "location": Parameter.LOCATION,
}
"""The manifest's required columns and the provisioning parameter each one holds."""

PUBLIC_KEY_COLUMN: Final = "public_key"
"""The optional column of a device's public key: a PEM public key (``-----BEGIN PUBLIC KEY-----``), base64
DER SubjectPublicKeyInfo, or its SHA-256 fingerprint (64 hex digits, optionally after ``sha256:``). A cell
may be blank, unless the row's device type binds serials to keys."""

HEADER: Final = ",".join(COLUMNS)
_COLUMN_OF: Final = {parameter: column for column, parameter in COLUMNS.items()}
_SHOWN_VALUE_MAX_LENGTH: Final = 40


@dataclass(frozen=True)
class ManifestRow:
    """A valid row: its line in the file (an entry's number in a signed manifest), the normalised request
    the hook would accept, and the fingerprint of the device's public key when the row gives one."""

    line: int
    request: DeviceRequest
    public_key_sha256: str | None = None
    provenance: Mapping[str, str] = field(default_factory=dict)
    """What attested the key (a signed manifest's entry: ``attestedBy``, ``manifestDigest``, ``partNumber``,
    ``uniqueId``), stored with the row; empty for a CSV row."""


@dataclass(frozen=True)
class RowRules:
    """What a row is checked against: the hook's rules, and the types whose rows are refused (their keys
    come from signed manifests only)."""

    hook: RuleSet
    signed_only: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RowProblem:
    """Why one row is refused; ``column`` is ``None`` when the whole row is wrong."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.line}" if self.column is None else f"row {self.line}, column {self.column}"
        return f"{where}: {self.message}"


class CheckedManifest:
    """A manifest validated by :func:`checked_manifest`: how many rows will be written, every bad row, and a
    second read of the valid ones."""

    def __init__(
        self,
        path: Path,
        rules: RowRules,
        *,
        valid_rows: int,
        problems: tuple[Spill, Spill],
        repeated_lines: array[int],
        identity: tuple[int, int],
    ) -> None:
        self.path = path
        self.valid_rows = valid_rows
        """Rows :meth:`rows` yields: valid, and not a serial or a key given in an earlier row."""
        self._rules = rules
        self._problems = problems
        self._repeated_lines = repeated_lines
        self._identity = identity

    @property
    def problem_count(self) -> int:
        """How many rows are bad."""
        return sum(spill.count for spill in self._problems)

    def problems(self) -> Iterator[RowProblem]:
        """Every bad row, in file order."""
        invalid, repeated = ((RowProblem(**entry) for entry in spill) for spill in self._problems)
        return heapq.merge(invalid, repeated, key=lambda problem: problem.line)

    def rows(self) -> Iterator[ManifestRow]:
        """The valid rows, read again from the file, in file order. Raises :class:`UsageProblem` if the file
        changed since it was checked (rows yielded before then were valid)."""
        self.ensure_unchanged()
        repeated = iter(self._repeated_lines)
        next_repeated = next(repeated, None)
        for checked in _rows(self.path, self._rules):
            if isinstance(checked, RowProblem):
                continue
            while next_repeated is not None and next_repeated < checked.line:
                next_repeated = next(repeated, None)
            if checked.line != next_repeated:
                yield checked
        self.ensure_unchanged()

    def ensure_unchanged(self) -> None:
        """Raise :class:`UsageProblem` if the file's size or modification time changed since it was
        checked."""
        if _identity(self.path) != self._identity:
            raise UsageProblem(
                f"{self.path} changed while it was being imported: run the command again on the finished "
                "file (rows already stored are then reported unchanged)"
            )


@contextmanager
def checked_manifest(
    path: Path,
    rules: RuleSet,
    on_row: Callable[[], None] = lambda: None,
    *,
    signed_only: frozenset[str] = frozenset(),
) -> Iterator[CheckedManifest]:
    """Validate the manifest at ``path`` in one streaming read, calling ``on_row`` per row. A file that
    cannot be a manifest at all (unreadable, empty, a wrong header, no rows) raises :class:`UsageProblem`;
    bad rows are :meth:`CheckedManifest.problems`. The temporary files holding those are deleted on exit.

    Rows are numbered by their line in the file, the header being line 1. Blank rows are ignored. A serial,
    or a public key, given in an earlier row is reported by row and column with that row's number: found
    by their 8-byte digests (:class:`~fleetctl.repeats.RepeatFinder`), then named in a second read of the
    file that compares the values of just the rows whose digest repeats (none, usually: no second read).
    A row of a type in ``signed_only`` (its keys come from its vendor's signed manifests) is refused.
    """
    row_rules = RowRules(rules, signed_only)
    with ExitStack() as stack:
        invalid, repeated = stack.enter_context(Spill()), stack.enter_context(Spill())
        identity = _identity(path)
        valid, serial_digests, key_digests = _check_rows(path, row_rules, invalid, on_row)
        repeated_lines = _name_repeats(path, row_rules, serial_digests, key_digests, repeated)
        manifest = CheckedManifest(
            path,
            row_rules,
            valid_rows=valid - repeated.count,
            problems=(invalid, repeated),
            repeated_lines=repeated_lines,
            identity=identity,
        )
        manifest.ensure_unchanged()
        yield manifest


def _check_rows(
    path: Path, rules: RowRules, invalid: Spill, on_row: Callable[[], None]
) -> tuple[int, frozenset[int], frozenset[int]]:
    """The first read: each bad row into ``invalid``; returns how many rows are valid, and the digests of
    the serials and of the keys that valid rows repeat."""
    serials, keys = RepeatFinder(), RepeatFinder()
    rows = valid = 0
    for checked in _rows(path, rules):
        on_row()
        rows += 1
        if isinstance(checked, RowProblem):
            invalid.append(asdict(checked))
            continue
        valid += 1
        serials.add(checked.request.serial_number)
        if checked.public_key_sha256 is not None:
            keys.add(checked.public_key_sha256)
    if not rows:
        raise UsageProblem(f"{path} has a header but no device rows")
    return valid, serials.repeated(), keys.repeated()


def _name_repeats(
    path: Path, rules: RowRules, serial_digests: frozenset[int], key_digests: frozenset[int], spill: Spill
) -> array[int]:
    """The second look: among the valid rows whose serial's or key's digest repeats, report each row whose
    serial or key an earlier kept row has (the first problem of a row only), and return their lines."""
    repeated_lines: array[int] = array("Q")
    if not (serial_digests or key_digests):
        return repeated_lines
    first_serial: dict[str, int] = {}
    first_key: dict[str, int] = {}
    for checked in _rows(path, rules):
        if isinstance(checked, RowProblem):
            continue
        serial, key = checked.request.serial_number, checked.public_key_sha256
        serial_candidate = digest(serial) in serial_digests
        key_candidate = key is not None and digest(key) in key_digests
        problem = None
        if serial_candidate and serial in first_serial:
            problem = RowProblem(
                checked.line, "serial", f"serial {serial!r} is also in row {first_serial[serial]}"
            )
        elif key is not None and key_candidate and key in first_key:
            problem = RowProblem(
                checked.line, PUBLIC_KEY_COLUMN, f"public key sha256:{key} is also in row {first_key[key]}"
            )
        if problem is not None:
            spill.append(asdict(problem))
            repeated_lines.append(checked.line)
            continue
        if serial_candidate:
            first_serial[serial] = checked.line
        if key is not None and key_candidate:
            first_key[key] = checked.line
    return repeated_lines


def _rows(path: Path, rules: RowRules) -> Iterator[ManifestRow | RowProblem]:
    """Every non-blank row after the header, validated, in file order."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            records = ((line, cells) for line, cells in _numbered_records(file) if any(map(str.strip, cells)))
            first = next(records, None)
            if first is None:
                raise UsageProblem(f"{path} is empty: expected the header {HEADER} and one row per device")
            header_line, raw_header = first
            header = [name.strip() for name in raw_header]
            _check_header(path, header_line, header)
            for line, cells in records:
                yield _checked_row(line, header, cells, rules)
    except UnicodeDecodeError as error:
        raise UsageProblem(f"{path}: not UTF-8 text (byte {error.start})") from error
    except (OSError, csv.Error) as error:
        raise UsageProblem(f"{path}: cannot read as CSV: {error}") from error


def _numbered_records(file: TextIO) -> Iterator[tuple[int, list[str]]]:
    """Each CSV record with the line it starts on (a quoted cell may span lines)."""
    reader = csv.reader(file)
    line = 1
    for cells in reader:
        yield line, cells
        line = reader.line_num + 1


def _identity(path: Path) -> tuple[int, int]:
    """What tells a changed file: its size and modification time."""
    try:
        status = path.stat()
    except OSError as error:
        raise UsageProblem(f"{path}: cannot read: {error}") from error
    return status.st_size, status.st_mtime_ns


def _check_header(path: Path, line: int, header: list[str]) -> None:
    unknown = [name for name in header if name not in COLUMNS and name != PUBLIC_KEY_COLUMN]
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
            f"{path} row {line}: the header must name the columns {HEADER} (in any order), and may add "
            f"{PUBLIC_KEY_COLUMN}; " + "; ".join(faults)
        )


def _checked_row(line: int, header: list[str], cells: list[str], rules: RowRules) -> ManifestRow | RowProblem:
    """One row validated: the hook's rules, then its key (:func:`_keyed_row`)."""
    if len(cells) != len(header):
        return RowProblem(line, None, f"has {len(cells)} cells, expected {len(header)} ({','.join(header)})")
    values = dict(zip(header, cells, strict=True))
    key_cell = values.pop(PUBLIC_KEY_COLUMN, "").strip()
    try:
        request = validate_request({COLUMNS[name].value: value for name, value in values.items()}, rules.hook)
    except ProvisioningDenied as denial:
        return _problem(line, denial, values, rules.hook)
    return _keyed_row(line, request, key_cell, rules)


def _keyed_row(line: int, request: DeviceRequest, key_cell: str, rules: RowRules) -> ManifestRow | RowProblem:
    """A valid request's row with its key: refused for a type that takes signed manifests only, or whose key
    is not one accepted, or that binds keys and has none."""
    if request.device_type in rules.signed_only:
        return RowProblem(
            line,
            "device_type",
            f"device type {request.device_type!r} takes its keys from its vendor's signed manifests only; "
            "expected fleetctl preregister MANIFEST.json --signer SIGNER.pem (docs/vendor-attestation.md)",
        )
    if key_cell:
        try:
            return ManifestRow(line, request, registered_key_sha256(key_cell))
        except PublicKeyError as error:
            return RowProblem(line, PUBLIC_KEY_COLUMN, str(error))
    if rules.hook.device_types[request.device_type].key_binding:
        return RowProblem(
            line,
            PUBLIC_KEY_COLUMN,
            f"device type {request.device_type!r} binds each serial to its device's key; "
            f"expected {KEY_FORMS}",
        )
    return ManifestRow(line, request)


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
