"""Progress of long work on stderr: on a terminal a Rich bar with the rate and the time left; elsewhere (a
log, CI) a plain line at most every :data:`PLAIN_INTERVAL_SECONDS`, and nothing for work done sooner."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

PLAIN_INTERVAL_SECONDS: Final = 10.0
"""Least time between two plain progress lines."""


@contextmanager
def progress(description: str, total: int | None, unit: str = "rows") -> Iterator[Callable[[], None]]:
    """Show the progress of ``total`` units of work (``None``: not known); yields the function to call
    once per unit done."""
    console = Console(stderr=True)
    if console.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(unit),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)
        return
    plain = _PlainProgress(description, total, unit)
    yield plain.advance
    plain.finish()


class _RateColumn(ProgressColumn):
    """Units per second, as Rich estimates it over the last 30 seconds."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self._unit}/s", style="progress.data.speed")


class _PlainProgress:
    """Lines like ``pre-registering: 12,000/100,000 rows (12%), 1,190 rows/s, about 1m 06s left``: the
    rate is the average since the start."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self._description = description
        self._total = total
        self._unit = unit
        self._started = self._shown = time.monotonic()
        self._done = 0
        self._lines = 0

    def advance(self) -> None:
        self._done += 1
        now = time.monotonic()
        if now - self._shown >= PLAIN_INTERVAL_SECONDS:
            self._shown = now
            self._line(now, finished=False)

    def finish(self) -> None:
        """The closing line with the average rate, when a progress line was shown (the work was long)."""
        if self._lines:
            self._line(time.monotonic(), finished=True)

    def _line(self, now: float, *, finished: bool) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        done = f"{self._done:,}" if self._total is None else f"{self._done:,}/{self._total:,}"
        parts = [f"{done} {self._unit}"]
        if self._total:
            parts[0] += f" ({100 * self._done // self._total}%)"
        parts.append(f"{rate:,.0f} {self._unit}/s")
        if finished:
            parts.append(f"done in {_duration(elapsed)}")
        elif self._total is not None and rate > 0:
            parts.append(f"about {_duration((self._total - self._done) / rate)} left")
        typer.echo(f"{self._description}: {', '.join(parts)}", err=True)
        self._lines += 1


def _duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
