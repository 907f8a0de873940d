"""``fleetctl teardown``: the stack made ready for ``pulumi destroy`` (:mod:`fleetctl.stack_teardown`)."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetctl.commands.options import RunOptions, pacer_of, run_options, stack_of, with_options
from fleetctl.errors import AwsProblem, Declined
from fleetctl.progress import progress as show_progress
from fleetctl.stack_teardown import WAIT_SECONDS, StackScope, Teardown, remaining_problem
from fleetctl.teardown_output import print_preview, print_run

_WAIT_MAX_SECONDS = 3600

WaitOption = Annotated[
    int,
    typer.Option(
        "--wait",
        min=0,
        max=_WAIT_MAX_SECONDS,
        metavar="SECONDS",
        help="How long to look for what AWS IoT has not yet detached or deleted before reporting it.",
    ),
]


@with_options(run=run_options)
def teardown(ctx: typer.Context, *, wait: WaitOption = WAIT_SECONDS, run: RunOptions) -> None:
    """Make the stack ready for `pulumi destroy`: cancel its rotation jobs, decommission every device it
    approved and every thing left in its thing types, detach what its device policies are still attached to,
    then check that nothing remains. Safe to re-run: a re-run finishes an interrupted one."""
    stack = stack_of(ctx)
    work = Teardown(stack, StackScope.of(stack))
    if run.dry_run:
        print_preview(work, json_output=run.json_output)
        return
    total = None if run.yes else _confirmed(work)
    with show_progress("decommissioning", total, unit="devices") as advance:
        remaining = print_run(work, pacer_of(ctx, run.rates), wait, advance, json_output=run.json_output)
    if work.failure is not None:
        raise AwsProblem(
            f"stopped at a failure; a re-run of `fleetctl teardown` finishes the job:\n{work.failure}"
        )
    if remaining:
        raise AwsProblem(remaining_problem(remaining, work.scope))


def _confirmed(work: Teardown) -> int:
    """Count what the teardown would change and ask; the devices to decommission."""
    for _ in work.devices.preview():
        pass
    for _ in work.leftovers.preview():
        pass
    devices, leftovers, jobs = work.devices.tally, work.leftovers.tally, len(work.open_rotation_jobs())
    skipped = devices.skipped + leftovers.skipped
    question = (
        f"Decommission {devices.to_change:,} device(s) of stack {work.scope.base_name}? "
        f"Also {leftovers.to_change:,} thing(s) the registry no longer holds, and {jobs:,} rotation job(s) "
        "cancelled; then whatever its device policies are still attached to is detached. "
        f"({devices.done:,} already done, {skipped:,} skipped; --dry-run lists them)"
    )
    if not typer.confirm(question, err=True):
        raise Declined("nothing was changed")
    return devices.to_change
