"""``fleetctl registry backfill``: what a registry from before the sharded indexes lacks."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import Progress

from fleetctl.commands.options import JsonFlag, stack_of
from fleetctl.context import AWS_CONCURRENCY
from fleetctl.output import print_backfill
from fleetctl.registry_reads import SCAN_SEGMENTS


def backfill(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Write the sharded index keys (statusShard, typeShard) on every device item that lacks them or has
    stale ones (a registry created before the indexes were sharded). Safe to re-run; a second run writes
    nothing."""
    stack = stack_of(ctx)
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("reading the registry", total=None)
        # The client pools AWS_CONCURRENCY connections: the scan's segment readers and the writers share them.
        report = stack.records.backfill_shards(
            segments=SCAN_SEGMENTS,
            concurrency=AWS_CONCURRENCY - SCAN_SEGMENTS,
            on_item=lambda: progress.advance(task),
        )
    print_backfill(report, json_output)
