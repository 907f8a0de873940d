"""``fleetctl rotate start|resume|status``: ask devices to rotate their certificate with AWS IoT jobs, resume
a job's failures in a new job, and follow a job (:mod:`fleetctl.rotation_jobs`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from fleetctl import rotation_jobs
from fleetctl.commands.options import (
    JsonFlag,
    RunOptions,
    pacer_of,
    run_options,
    selectors,
    stack_of,
    with_options,
)
from fleetctl.context import StackContext
from fleetctl.errors import Declined
from fleetctl.output import print_job_status, print_jobs_created, print_plan, print_plan_not_created
from fleetctl.pacing import Pacer
from fleetctl.selection import Selectors, resolve
from hook.contract import RotationKeyAlgorithm


def _job_id(value: str) -> str:
    if not rotation_jobs.is_job_id(value):
        raise typer.BadParameter(
            f"{value!r} is not an AWS IoT job id: expected 1-{rotation_jobs.JOB_ID_MAX_LENGTH} characters "
            "of a-z A-Z 0-9 _ -"
        )
    return value


JobIdArgument = Annotated[
    str,
    typer.Argument(metavar="JOB_ID", callback=_job_id, help="A rotation job, as `rotate start` named it."),
]


@with_options(selected=selectors, run=run_options)
def start(
    ctx: typer.Context,
    *,
    older_than: Annotated[
        int | None,
        typer.Option(
            min=0,
            metavar="DAYS",
            help="Devices whose certificate is older than this: since the latest of rotatedAt, "
            "reprovisionedAt, approvedAt.",
        ),
    ] = None,
    key_algorithm: Annotated[
        RotationKeyAlgorithm,
        typer.Option(help="The key pair the device makes for its new certificate."),
    ] = RotationKeyAlgorithm.EC_P256,
    selected: Selectors,
    run: RunOptions,
) -> None:
    """Ask ACTIVE devices to rotate their certificate, with AWS IoT jobs (at most 100 devices a job).
    Selectors combine: a device must match each one given."""
    stack = stack_of(ctx)
    chosen = resolve(stack, selected, own={"--older-than DAYS": older_than})
    pacer = pacer_of(ctx, run.rates)
    plan = rotation_jobs.plan_rotation(
        stack, chosen, older_than, key_algorithm, datetime.now(UTC), pacer=pacer
    )
    _carry_out(stack, plan, pacer, run)


@with_options(run=run_options)
def resume(ctx: typer.Context, job_id: JobIdArgument, *, run: RunOptions) -> None:
    """A new job, with JOB_ID's document, for its devices that failed, timed out or were removed and are
    still ACTIVE and not rotated since."""
    stack = stack_of(ctx)
    pacer = pacer_of(ctx, run.rates)
    _carry_out(stack, rotation_jobs.plan_resume(stack, job_id, datetime.now(UTC), pacer=pacer), pacer, run)


def status(ctx: typer.Context, job_id: JobIdArgument, json_output: JsonFlag = False) -> None:
    """How rotation job JOB_ID is doing: its executions by status, and why devices did not rotate; changes
    nothing."""
    print_job_status(rotation_jobs.job_status(stack_of(ctx), job_id), json_output)


def _carry_out(stack: StackContext, plan: rotation_jobs.Plan, pacer: Pacer, run: RunOptions) -> None:
    """Show the plan, then (unless a dry run, or declined) create its jobs and show them."""
    if not run.json_output:
        print_plan(plan)
    if not plan.targets or run.dry_run:
        print_plan_not_created(plan, run.json_output)
        return
    question = (
        f"Create {len(plan.jobs)} job(s) asking {len(plan.targets)} device(s) to rotate their certificate "
        f"({plan.document.get('keyAlgorithm')})?"
    )
    if not run.yes and not typer.confirm(question, err=True):
        raise Declined("no job created")
    print_jobs_created(rotation_jobs.create_jobs(stack, plan, pacer), run.json_output)
