"""Per-row report entries kept on disk, not in memory: a million conflicting or bad rows cost a temporary
file, read back in the order they were written."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any


class Spill:
    """JSON objects appended to an anonymous temporary file (deleted when closed) and read back in order.

    Not for reading while appending: read once everything is written."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.count = 0
        """How many entries were appended."""

    def append(self, entry: Mapping[str, Any]) -> None:
        """Add ``entry`` after the others."""
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self.count += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Every entry, in the order appended."""
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield json.loads(line)
        self._file.seek(0, 2)

    def close(self) -> None:
        """Delete the file."""
        self._file.close()

    def __enter__(self) -> Spill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
