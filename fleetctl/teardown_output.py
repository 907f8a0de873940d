"""What ``fleetctl teardown`` prints: a dry run's plan, or each step's results as it runs, then what
remains. With ``--json`` one JSON object whose fields are written as their steps run (a million devices'
rows are never held); otherwise a line per device, certificate or job, and a summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetctl.bulk import advancing
from fleetctl.output import print_bulk, print_json_stream, print_line
from fleetctl.stack_teardown import PolicyTarget, Remaining, Teardown, reports, run_teardown

if TYPE_CHECKING:
    from fleetctl.bulk import BulkRun, Row
    from fleetctl.pacing import Pacer


def print_preview(work: Teardown, *, json_output: bool) -> None:
    """What a teardown would change, changing nothing (AWS IoT and the registry are only read)."""
    if json_output:
        print_json_stream(
            {
                "stack": work.scope.base_name,
                "dryRun": True,
                "rotationJobs": work.open_rotation_jobs(),
                **_bulk_fields(work, lambda run: run.preview(), dry_run=True),
                "policyTargets": lambda: reports(work.preview_targets()),
            }
        )
        return
    print_line(f"dry run: teardown of stack {work.scope.base_name}; nothing is changed")
    _print_jobs("rotation jobs to cancel", work.open_rotation_jobs())
    print_bulk(work.devices.preview(), work.devices, json_output=False, dry_run=True)
    print_bulk(work.leftovers.preview(), work.leftovers, json_output=False, dry_run=True)
    targets = list(work.preview_targets())
    for each in targets:
        print_line(f"{each.policy} is attached to {each.target}")
    print_line(
        f"{len(targets):,} device-policy attachment(s) now; those of the devices above go with them, the "
        "others are detached after them"
    )


def print_run(
    work: Teardown, pacer: Pacer, wait: float, advance: Callable[[], None], *, json_output: bool
) -> Remaining | None:
    """Run the teardown step by step, printing each step's results as they come; what remains at the end,
    or ``None`` when a device failed (:attr:`Teardown.failure`) and the later steps were not run."""
    found: list[Remaining] = []

    def verified() -> Remaining:
        found.append(work.wait_until_clear(wait))
        return found[-1]

    def devices(run: BulkRun) -> Iterator[Row]:
        rows = run.execute(pacer)
        return advancing(rows, advance) if run is work.devices else rows

    if json_output:
        print_json_stream(
            {
                "stack": work.scope.base_name,
                "dryRun": False,
                "rotationJobsCancelled": lambda: work.cancel_rotation_jobs(pacer),
                **_bulk_fields(work, devices, dry_run=False),
                "policyTargets": lambda: [] if work.failure else reports(work.release_targets(pacer)),
                "remaining": lambda: None if work.failure else verified().report(),
            }
        )
        return found[-1] if found else None
    remaining = run_teardown(work, pacer, wait, _PrintedSteps(work, advance))
    if remaining is not None and not remaining:
        print_line(
            f"stack {work.scope.base_name}: nothing of its devices remains; ready for `pulumi destroy`"
        )
    return remaining


@dataclass(frozen=True)
class _PrintedSteps:
    """Each step's results as lines, the devices' progress advanced as each is done."""

    work: Teardown
    advance: Callable[[], None]

    def cancelled(self, job_ids: list[str]) -> None:
        _print_jobs("rotation jobs cancelled", job_ids)

    def ran(self, run: BulkRun, rows: Iterator[Row]) -> None:
        shown = advancing(rows, self.advance) if run is self.work.devices else rows
        print_bulk(shown, run, json_output=False, dry_run=False)

    def released(self, targets: list[PolicyTarget]) -> None:
        _print_released(targets)


def _bulk_fields(
    work: Teardown, rows_of: Callable[[BulkRun], Iterator[Row]], *, dry_run: bool
) -> dict[str, object]:
    """The registry's devices and the leftover things as JSON fields: each one's rows, then its counts; the
    leftovers only when the devices did not fail."""

    def reported(run: BulkRun) -> Iterator[dict[str, Any]]:
        if run is work.devices or not work.failure:
            yield from (row.report() for row in rows_of(run))

    return {
        "devices": reported(work.devices),
        "deviceCounts": lambda: work.devices.tally.report(dry_run=dry_run),
        "leftoverThings": reported(work.leftovers),
        "leftoverCounts": lambda: work.leftovers.tally.report(dry_run=dry_run),
    }


def _print_jobs(title: str, job_ids: list[str]) -> None:
    print_line(f"{title}: {', '.join(job_ids) if job_ids else 'none'}")


def _print_released(released: list[PolicyTarget]) -> None:
    for each in released:
        done = ", ".join(f"{step.action} {step.target}" for step in each.steps) or "already detached"
        print_line(f"{each.policy} on {each.target}: {done}")
    print_line(f"device-policy attachments released after the devices: {len(released):,}")
