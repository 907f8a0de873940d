"""``fleetctl preregister MANIFEST``: import a factory manifest as ``PREREGISTERED``."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from fleetctl.commands.options import JsonFlag, stack_of
from fleetctl.context import AWS_CONCURRENCY
from fleetctl.errors import ExitCode
from fleetctl.manifest import HEADER, PUBLIC_KEY_COLUMN, ManifestRow, checked_manifest
from fleetctl.manifest_import import ImportResult, ImportTally
from fleetctl.manifest_import import preregister as preregister_rows
from fleetctl.output import print_import_report, print_manifest_problems
from fleetctl.progress import progress as show_progress
from fleetctl.spill import Spill


def preregister(
    ctx: typer.Context,
    manifest: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help=f"CSV with the header {HEADER} (any order), and optionally {PUBLIC_KEY_COLUMN}.",
        ),
    ],
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows even when others are bad.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Import a factory manifest as PREREGISTERED, streaming: checked whole first (nothing is written while a
    row is bad), then written 16 rows at a time, slowing down when DynamoDB throttles, with the rate and the
    time left on stderr. Existing serials are left as they are; run it again to finish an interrupted one."""
    stack = stack_of(ctx)
    rules = stack.rules
    with ExitStack() as files:
        with show_progress("checking the manifest", None) as advance:
            checked = files.enter_context(checked_manifest(manifest, rules, advance))
        if checked.problem_count and not skip_invalid:
            print_manifest_problems(manifest, checked)
            raise typer.Exit(ExitCode.USAGE)
        tally = ImportTally(files.enter_context(Spill()))
        with show_progress("pre-registering", checked.valid_rows) as advance:

            def count(row: ManifestRow, result: ImportResult) -> None:
                tally.add(row, result)
                advance()

            preregister_rows(stack.bulk_records, checked.rows(), count, concurrency=AWS_CONCURRENCY)
        print_import_report(manifest, checked, tally, json_output)
