"""The acceptance run's report: what each check found, what the teardown removed, how long each step
took, the verdict and the exit status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum

from local.acceptance.run_plan import MARKER_KEY, Plan
from local.scenario.full_run import ScenarioResult
from local.scenario.result_tables import outcomes_table
from program.config import PROJECT_DIR


class Exit(IntEnum):
    """Exit statuses of the runner."""

    PASSED = 0
    FAILED = 1
    REFUSED = 2
    LEFT_BEHIND = 3
    """The stack could not be destroyed or removed, or something the run made or changed remains (the
    report names it)."""
    INTERRUPTED = 130


@dataclass
class Report:
    """What happened, for the summary the runner prints and its exit status."""

    plan: Plan
    scenario: ScenarioResult | None = None
    error: str = ""
    interrupted: bool = False
    clean_up: str = ""
    destroy_errors: list[str] = field(default_factory=list)
    destroy_blocked: bool = False
    """The sweep left what ``pulumi destroy`` would fail on, so the stack was not destroyed."""
    destroyed: bool = False
    removed: bool = False
    pending_operations: list[str] = field(default_factory=list)
    """What the state recorded as under way before the destroy: resources it may not have removed."""
    account: str = ""
    """What was done to the account-wide settings the stack changed, once it was destroyed."""
    left_behind: list[str] = field(default_factory=list)
    """What the run made or changed and could not remove or undo, with its ids."""
    not_ours: bool = False
    """The stack's config lacked this run's marker: it was neither deployed nor destroyed."""
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Add the time the block takes to ``step``."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.monotonic() - started

    @property
    def exit_code(self) -> Exit:
        """``LEFT_BEHIND`` unless the stack is gone with no pending operation and nothing is left behind,
        then ``INTERRUPTED``, ``FAILED`` or ``PASSED``."""
        if not self.removed or self.pending_operations or self.left_behind:
            return Exit.LEFT_BEHIND
        if self.interrupted:
            return Exit.INTERRUPTED
        if self.error or self.scenario is None or not self.scenario.passed:
            return Exit.FAILED
        return Exit.PASSED

    def render(self) -> str:
        """The report as text."""
        plan = self.plan
        lines = [f"Acceptance run on AWS: stack {plan.stack}, region {plan.region}, run {plan.run_id}", ""]
        if self.scenario is not None:
            lines += ["Checks", ""]
            for check in self.scenario.checks:
                lines.append(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}")
                lines += [f"          {line}" for line in check.detail.splitlines()]
            lines += ["", "Devices", "", outcomes_table(self.scenario.outcomes), ""]
        if self.interrupted:
            lines += ["Interrupted (Ctrl-C or SIGTERM).", ""]
        if self.error:
            lines += ["Error:", *(f"  {line}" for line in self.error.splitlines()), ""]
        lines += ["Teardown", "", f"  devices: {self.clean_up or 'none provisioned'}"]
        if self.pending_operations:
            lines.append("  pending operations (destroy may have left these resources; check the account):")
            lines += [f"    * {operation}" for operation in self.pending_operations]
        lines += [f"  destroy {error}" for error in self.destroy_errors]
        if self.destroy_blocked:
            lines.append("  destroy not attempted: the sweep left what it would fail on (LEFT BEHIND)")
        lines += [
            f"  stack destroyed: {'yes' if self.destroyed else 'NO'}",
            f"  stack removed from the workspace: {'yes' if self.removed else 'NO'}",
            *([f"  account event configurations: {self.account}"] if self.account else []),
            *(f"  LEFT BEHIND: {line}".replace("\n", "\n    ") for line in self.left_behind),
            "",
            "Time: " + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in self.seconds.items()),
            f"Result: {self._verdict()}",
        ]
        return "\n".join(lines)

    def _verdict(self) -> str:
        stack, cwd = self.plan.stack, PROJECT_DIR
        if self.not_ours:
            return (
                f"REFUSED: the config of stack {stack} lacks this run's {MARKER_KEY}; it was neither "
                f"deployed nor destroyed. Check it, then `pulumi stack rm {stack} --cwd {cwd}`."
            )
        if not self.destroyed:
            teardown = (
                f"`pulumi stack output --json --stack {stack} --cwd {cwd} > outputs.json`, "
                "`fleetctl --outputs outputs.json teardown`, then "
                if self.destroy_blocked
                else ""
            )
            return (
                f"RESOURCES MAY REMAIN: run {teardown}`pulumi destroy --stack {stack} --cwd {cwd}`, then "
                f"`pulumi stack rm {stack} --cwd {cwd}`."
            )
        if self.pending_operations:
            return (
                "RESOURCES MAY REMAIN: the destroy forgot the pending operations above; look for them in the "
                "account."
            )
        if not self.removed:
            return f"DESTROYED, NOT REMOVED: run `pulumi stack rm {stack} --cwd {cwd}`."
        outcome = self._outcome()
        if self.left_behind:
            return f"LEFT BEHIND (see the teardown): {outcome}"
        return outcome

    def _outcome(self) -> str:
        if self.interrupted:
            return "INTERRUPTED; the stack was destroyed and removed."
        checks = self.scenario.checks if self.scenario is not None else []
        failed = sum(not check.passed for check in checks)
        if self.error or self.scenario is None or failed:
            return f"FAILED ({failed} of {len(checks)} checks failed); the stack was destroyed and removed."
        return f"PASSED ({len(checks)} checks); the stack was destroyed and removed."
