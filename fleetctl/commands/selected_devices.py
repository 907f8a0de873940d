"""What ``revoke`` and ``decommission`` share: one device by its serial, or a selection's dry run, or its
confirmed run paced to AWS IoT's rates (:mod:`fleetctl.bulk`)."""

from __future__ import annotations

import typer

from fleetctl import bulk, selection
from fleetctl.commands.options import RunOptions, pacer_of, stack_of
from fleetctl.errors import AwsProblem, Declined
from fleetctl.output import print_bulk, print_steps
from fleetctl.progress import progress as show_progress


def act_on_selected(
    ctx: typer.Context, selected: selection.Selectors, run: RunOptions, operation: bulk.Operation
) -> None:
    """Do ``operation`` to the device SERIAL names alone (unless a dry run), or to the selection: show what
    it would change (a dry run), or count it, ask, and do it, paced to AWS IoT's rates (the defaults, or
    ``--rate``); each device's result is printed as it is done."""
    stack = stack_of(ctx)
    if selected.serial is not None and selected.one_serial and not run.dry_run:
        steps = operation.apply_by_serial(stack.for_serial(selected.serial), selected.serial)
        print_steps(selected.serial, steps, run.json_output)
        return
    bulk_run = bulk.BulkRun(stack, selection.resolve(stack, selected), operation)
    if run.dry_run:
        print_bulk(bulk_run.preview(), bulk_run, json_output=run.json_output, dry_run=True)
        return
    total = None
    if not run.yes:
        for _ in bulk_run.preview():
            pass
        total = bulk_run.tally.to_change
        question = (
            f"{operation.verb.capitalize()} {total:,} device(s)? ({bulk_run.tally.done:,} already done, "
            f"{bulk_run.tally.skipped:,} skipped; --dry-run lists them)"
        )
        if total and not typer.confirm(question, err=True):
            raise Declined("nothing was changed")
    with show_progress(operation.verb, total, unit="devices") as advance:
        rows = bulk.advancing(bulk_run.execute(pacer_of(ctx, run.rates)), advance)
        print_bulk(rows, bulk_run, json_output=run.json_output, dry_run=False)
    if bulk_run.tally.error is not None:
        raise AwsProblem(
            f"stopped at a failure; {bulk_run.tally.to_change:,} device(s) were changed before it, and a "
            f"re-run with the same selectors finishes the job:\n{bulk_run.tally.error}"
        )
