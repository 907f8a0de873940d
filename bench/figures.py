"""The benchmarks' printed figures: each value beside its target, and the exit code `--strict` asks for."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One printed line: a measured value, how it was obtained, and its target (``None``: informational);
    ``rounds`` are the per-round values a median was taken of, printed beneath it."""

    name: str
    value: str
    detail: str
    target: str
    passed: bool | None
    rounds: tuple[str, ...] = field(default=())

    def lines(self) -> list[str]:
        verdict = "info" if self.passed is None else ("PASS" if self.passed else "FAIL")
        line = f"{self.name:<34}{self.value:>8}  {self.detail:<58} {self.target:<10} {verdict}"
        return [line] + ([f"{'':<36}rounds: {' '.join(self.rounds)}"] if self.rounds else [])


def print_figures(figures: Sequence[Figure], *, strict: bool) -> int:
    """Print every figure, then the targets missed; 1 when ``strict`` and one was missed, else 0."""
    for figure in figures:
        print("\n".join(figure.lines()))
    missed = [figure.name for figure in figures if figure.passed is False]
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 1 if strict and missed else 0


def median_of_rounds(
    name: str, ratios: Sequence[float], detail: str, target: float | None, unit: str = ""
) -> Figure:
    """The median of per-round ratios beside ``target`` (``None``: informational), with their spread."""
    middle = statistics.median(ratios)
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
    return Figure(
        name,
        f"{middle:.2f}{unit}",
        f"({detail}; median of {len(ratios)} rounds, spread {spread})",
        "-" if target is None else f"<= {target}",
        None if target is None else middle <= target,
        tuple(f"{ratio:.2f}" for ratio in ratios),
    )


def replace_passed(figure: Figure, passed: bool) -> Figure:
    """``figure`` with its verdict overridden (a target met by a side that failed is not met)."""
    return Figure(figure.name, figure.value, figure.detail, figure.target, passed, figure.rounds)
