"""Printing results: Rich tables for people, plain JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

Columns = Sequence[tuple[str, str]]
"""A table's columns: (key in each row, heading)."""


def print_json(data: object) -> None:
    """``data`` as JSON on stdout, and nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str))


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
