"""``fleetctl decommission``: devices retired for good, by SERIAL or selectors."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetctl.commands.options import ReasonOption, RunOptions, run_options, selectors, with_options
from fleetctl.commands.selected_devices import act_on_selected
from fleetctl.device_removal import Decommissioning
from fleetctl.selection import Selectors


@with_options(selected=selectors, run=run_options)
def decommission(
    ctx: typer.Context,
    *,
    reason: ReasonOption = "decommissioned",
    keep_thing: Annotated[bool, typer.Option(help="Keep the thing in AWS IoT.")] = False,
    selected: Selectors,
    run: RunOptions,
) -> None:
    """Retire devices for good: revoke, delete the thing, registry DECOMMISSIONED. Selectors combine: a
    device must match each one given. Safe to re-run: a re-run finishes an interrupted one."""
    act_on_selected(ctx, selected, run, Decommissioning(reason, keep_thing))
