"""Printing results: Rich tables for people, plain JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Final

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

Columns = Sequence[tuple[str, str]]
"""A table's columns: (key in each row, heading)."""


def print_json(data: object) -> None:
    """``data`` as JSON on stdout, and nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str))


TABLE_ROWS_SHOWN: Final = 1000
"""Rows a table of per-row facts shows at most; ``--json`` lists every one."""


def print_json_stream(fields: Mapping[str, object]) -> None:
    """``fields`` as one JSON object on stdout, as :func:`print_json` would, except that a field whose value
    is an iterator is written item by item as it is read: a report of a million rows, never held. A field
    whose value is callable is written with what it returns when its turn comes (counts of the rows
    before it)."""
    typer.echo("{")
    for number, (name, given) in enumerate(fields.items()):
        comma = "," if number < len(fields) - 1 else ""
        value = given() if callable(given) else given
        if not isinstance(value, Iterator):
            typer.echo(f"  {json.dumps(name)}: {json.dumps(value, default=str)}{comma}")
            continue
        typer.echo(f"  {json.dumps(name)}: [", nl=False)
        separator = "\n"
        for item in value:
            typer.echo(f"{separator}    {json.dumps(item, default=str)}", nl=False)
            separator = ",\n"
        typer.echo(("\n  " if separator != "\n" else "") + f"]{comma}")
    typer.echo("}")


def print_rows(title: str, columns: Columns, rows: Iterable[Mapping[str, object]], count: int) -> None:
    """``count`` rows as a table of at most :data:`TABLE_ROWS_SHOWN` (the title says when there are more),
    or a line saying there are none."""
    if not count:
        print_line(f"{title}: none")
        return
    if count > TABLE_ROWS_SHOWN:
        title = f"{title}: the first {TABLE_ROWS_SHOWN:,} of {count:,} (--json lists them all)"
    print_table(title, columns, islice(rows, TABLE_ROWS_SHOWN))


def print_table(title: str, columns: Columns, rows: Iterable[Mapping[str, object]]) -> None:
    """Rows as a table; values are shown as they are (never read as Rich markup)."""
    table = Table(title=title, title_justify="left")
    for _, heading in columns:
        table.add_column(heading, overflow="fold")
    for row in rows:
        table.add_row(*(Text(_cell(row.get(key))) for key, _ in columns))
    Console().print(table)


def print_line(text: str) -> None:
    """One line of plain text on stdout."""
    typer.echo(text)


def print_error(text: str) -> None:
    """Each line of ``text`` on stderr, marked as coming from fleetctl."""
    for line in text.splitlines():
        typer.echo(f"fleetctl: {line}", err=True)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)
