"""``fleetctl revoke``: devices revoked, by SERIAL or selectors."""

from __future__ import annotations

import typer

from fleetctl.commands.options import ReasonOption, RunOptions, run_options, selectors, with_options
from fleetctl.commands.selected_devices import act_on_selected
from fleetctl.device_removal import Revocation
from fleetctl.selection import Selectors


@with_options(selected=selectors, run=run_options)
def revoke(ctx: typer.Context, *, reason: ReasonOption, selected: Selectors, run: RunOptions) -> None:
    """Revoke devices: registry REVOKED, certificates REVOKED, policies and thing detached. Selectors
    combine: a device must match each one given. Safe to re-run: a re-run finishes an interrupted one."""
    act_on_selected(ctx, selected, run, Revocation(reason))
