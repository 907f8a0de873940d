"""``fleetctl rotate start|resume|status``: ask devices to rotate their certificate with AWS IoT jobs, resume
a job's failures in a new job, and follow a job (:mod:`fleetctl.rotation_jobs`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from fleetctl import job_ends, rotation_jobs, rotation_status
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
from fleetctl.errors import Declined, UsageProblem
from fleetctl.output import print_job_status, print_jobs_created, print_plan, print_plan_not_created
from fleetctl.pacing import Pacer
from fleetctl.selection import Selectors, resolve
from hook.rotation_contract import RotationKeyAlgorithm


def _job_id(value: str) -> str:
    if not rotation_jobs.is_job_id(value):
        raise typer.BadParameter(
            f"{value!r} is not an AWS IoT job id: expected 1-{rotation_jobs.JOB_ID_MAX_LENGTH} characters "
            "of a-z A-Z 0-9 _ -"
        )
    return value


def _end_after(value: str | timedelta) -> timedelta:
    if isinstance(value, timedelta):  # Click converts the default too
        return value
    try:
        return job_ends.parse_end_after(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


EndAfterOption = Annotated[
    timedelta,
    typer.Option(
        metavar="DURATION",
        parser=_end_after,
        help="End each job this long after its creation (<N>d or <N>h, 1h to 730d): AWS IoT then cancels "
        "the executions of devices that never took it, and the job stops holding one of the account's "
        "active jobs.",
    ),
]
_DEFAULT_END_AFTER = job_ends.parse_end_after(job_ends.END_AFTER_DEFAULT)

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
    end_after: EndAfterOption = _DEFAULT_END_AFTER,
    selected: Selectors,
    run: RunOptions,
) -> None:
    """Ask ACTIVE devices to rotate their certificate, with AWS IoT jobs (at most 100 devices a job).
    Selectors combine: a device must match each one given."""
    stack = one_region(stack_of(ctx))
    chosen = resolve(stack, selected, own={"--older-than DAYS": older_than})
    pacer = pacer_of(ctx, run.rates)
    plan = rotation_jobs.plan_rotation(
        stack, chosen, older_than, key_algorithm, datetime.now(UTC), end_after=end_after, pacer=pacer
    )
    _carry_out(stack, plan, pacer, run)


@with_options(run=run_options)
def resume(
    ctx: typer.Context,
    job_id: JobIdArgument,
    *,
    end_after: EndAfterOption = _DEFAULT_END_AFTER,
    run: RunOptions,
) -> None:
    """A new job, with JOB_ID's document, for its devices that did not rotate (failed, timed out, removed,
    cancelled at the job's end, or SUCCEEDED without the registry showing the rotation) and are still
    ACTIVE and not rotated since; pending certificates JOB_ID left unconfirmed past its in-progress timeout
    are retired first."""
    stack = one_region(stack_of(ctx))
    pacer = pacer_of(ctx, run.rates)
    plan = rotation_jobs.plan_resume(stack, job_id, datetime.now(UTC), end_after=end_after, pacer=pacer)
    _carry_out(stack, plan, pacer, run)


def status(ctx: typer.Context, job_id: JobIdArgument, json_output: JsonFlag = False) -> None:
    """How rotation job JOB_ID is doing: its executions by status and outcome, and why devices did not
    rotate; changes nothing."""
    print_job_status(
        rotation_status.job_status(one_region(stack_of(ctx)), job_id, datetime.now(UTC)), json_output
    )


def one_region(stack: StackContext) -> StackContext:
    """The stack, when the outputs name one region: a job is of one region (its targets are thing ARNs,
    which carry it), so a fleet's regions rotate one at a time."""
    if len(stack.fleet) > 1:
        raise UsageProblem(
            f"rotation jobs are regional: pass the outputs of one region ({', '.join(sorted(stack.fleet))}) "
            "and run once per region; the registry is found from any of them"
        )
    return stack


def _carry_out(stack: StackContext, plan: rotation_jobs.Plan, pacer: Pacer, run: RunOptions) -> None:
    """Show the plan, then (unless a dry run, or declined) create its jobs and show them."""
    if not run.json_output:
        print_plan(plan)
    if not (plan.targets or plan.stale_pending) or run.dry_run:
        print_plan_not_created(plan, run.json_output)
        return
    question = (
        f"Create {len(plan.jobs)} job(s) asking {len(plan.targets)} device(s) to rotate their certificate "
        f"({plan.document.get('keyAlgorithm')})"
        + (
            f", after retiring {len(plan.stale_pending)} unconfirmed pending certificate(s)"
            if plan.stale_pending
            else ""
        )
        + "?"
    )
    if not run.yes and not typer.confirm(question, err=True):
        raise Declined("no job created")
    done = rotation_jobs.create_jobs(stack, plan, pacer, datetime.now(UTC))
    print_jobs_created(done, run.json_output)
