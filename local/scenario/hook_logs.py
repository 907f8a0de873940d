"""The pre-provisioning hook's decisions, read back from its CloudWatch log group, and the outcomes of a
fleet with the reasons the hook logged for them."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from local.devices.fleet_runner import HOOK_DENIED, Outcome


@dataclass(frozen=True)
class Denial:
    """Why the hook denied a serial: a reason from the fixed set and a detail."""

    reason: str
    detail: str


def hook_denials(logs: Any, function_name: str) -> dict[str, Denial]:
    """The last denial the hook logged for each serial number (JSON log lines ``provisioning denied``)."""
    denials: dict[str, Denial] = {}
    pages = logs.get_paginator("filter_log_events").paginate(logGroupName=f"/aws/lambda/{function_name}")
    for page in pages:
        for event in sorted(page["events"], key=lambda event: event["timestamp"]):
            line = _json(event["message"])
            if line.get("message") == "provisioning denied" and isinstance(line.get("serialNumber"), str):
                denials[line["serialNumber"]] = Denial(str(line.get("reason")), str(line.get("detail")))
    return denials


def with_hook_reasons(outcomes: list[Outcome], logs: Any, hook_function_name: str) -> list[Outcome]:
    """The outcomes, with the reason the hook logged for each rejected device."""
    denials = hook_denials(logs, hook_function_name)
    return [
        replace(outcome, reason=f"{denial.reason}: {denial.detail}")
        if outcome.error_code == HOOK_DENIED
        and (denial := denials.get(outcome.device.identity.serial_number))
        else outcome
        for outcome in outcomes
    ]


def _json(message: str) -> dict[str, Any]:
    try:
        document = json.loads(message)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
