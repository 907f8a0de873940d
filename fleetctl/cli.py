"""The ``fleetctl`` command line: the root command and its stack options, and where every command is wired
in. Each command lives in its own module of :mod:`fleetctl.commands`; this module only names them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from typer.core import TyperGroup

from fleetctl.commands import (
    backfill,
    certs,
    claim,
    decommission,
    export,
    list_devices,
    preregister,
    rebind,
    release,
    report,
    reprovision,
    revoke,
    rotate,
    show,
    teardown,
)
from fleetctl.context import StackContext
from fleetctl.errors import ExitCode, FleetctlError
from fleetctl.output import print_error


class _ReportingGroup(TyperGroup):
    """Reports fleetctl's errors and AWS errors as lines on stderr with their exit code, not a traceback."""

    def invoke(self, ctx: Any) -> Any:  # Any: Click's Context, which newer Typer versions vendor
        try:
            return super().invoke(ctx)
        except FleetctlError as error:
            print_error(str(error))
            raise typer.Exit(error.exit_code) from None
        except (ClientError, BotoCoreError) as error:
            print_error("AWS error: " + " ".join(str(error).split()))
            raise typer.Exit(ExitCode.AWS) from None


app = typer.Typer(cls=_ReportingGroup, no_args_is_help=True, add_completion=False)


@app.callback()
def stack_options(
    ctx: typer.Context,
    *,
    outputs: Annotated[
        list[Path] | None,
        typer.Option(
            envvar="FLEETCTL_OUTPUTS",
            exists=True,
            help="The JSON of `pulumi stack output --json`: table, template, region, rules, claim id. "
            "For a fleet of several regions, once per region's stack, or a directory of them.",
        ),
    ] = None,
    table: Annotated[str | None, typer.Option(help="Registry table name (instead of the outputs').")] = None,
    template: Annotated[
        str | None,
        typer.Option(help="Provisioning template name, <prefix>-<env>-fleet (instead of the outputs')."),
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (instead of the outputs').")] = None,
    rules: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Hook rules JSON file (instead of the outputs')."),
    ] = None,
) -> None:
    """Operate a fleet-provisioning stack, named by --outputs FILE or by flags, or a fleet of several
    regions' stacks (--outputs FILE per region): devices, their certificates and the claim certificate."""
    ctx.obj = StackContext.resolve(outputs, table=table, template=template, region=region, rules_file=rules)


app.command("preregister")(preregister.preregister)
app.command("export")(export.export)
app.command("list")(list_devices.list_devices)
app.command("show")(show.show)
app.command("revoke")(revoke.revoke)
app.command("release")(release.release)
app.command("decommission")(decommission.decommission)
app.command("reprovision")(reprovision.reprovision)
app.command("rebind")(rebind.rebind)
app.command("teardown")(teardown.teardown)
app.command("report")(report.report)

rotate_app = typer.Typer(
    no_args_is_help=True,
    help="Certificate rotation by AWS IoT job: start one, resume a job's failures, follow a job.",
)
rotate_app.command("start")(rotate.start)
rotate_app.command("resume")(rotate.resume)
rotate_app.command("status")(rotate.status)
app.add_typer(rotate_app, name="rotate")

claim_app = typer.Typer(no_args_is_help=True, help="The stack's claim certificate(s).")
claim_app.command("status")(claim.status)
claim_app.command("suspend")(claim.suspend)
claim_app.command("resume")(claim.resume)
claim_app.command("deactivate")(claim.deactivate)
app.add_typer(claim_app, name="claim")

certs_app = typer.Typer(no_args_is_help=True, help="Device certificates.")
certs_app.command("expiring")(certs.expiring)
app.add_typer(certs_app, name="certs")

registry_app = typer.Typer(no_args_is_help=True, help="The registry table itself.")
registry_app.command("backfill")(backfill.backfill)
app.add_typer(registry_app, name="registry")
