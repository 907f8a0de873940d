"""Count approvals that will never become things, as the ``StalePendingApprovals`` metric.

A device has an hour between the hook's approval and the thing's creation: its certificate ownership
token expires after that. An item still ``PENDING`` later than that points at a device that gave up,
a template that fails after the hook, or an activation that never ran. Runs on a schedule.

It also publishes ``ThingEventsDisabled``: activation runs on THING registry events, an account-wide
switch owned by one stack per account and region. When they are off, no approved device of this stack
can ever become ``ACTIVE``, and an alarm on this metric says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from hook import runtime
from hook.contract import (
    STALE_APPROVAL_AFTER_SECONDS,
    Metric,
    Service,
    metrics_namespace_from_environment,
)
from hook.registry_items import timestamp
from hook.registry_transitions import function_records

logger = Logger(service=Service.STALE_APPROVALS.value)
metrics = Metrics(namespace=metrics_namespace_from_environment(), service=Service.STALE_APPROVALS.value)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: Any, context: Any) -> dict[str, int | bool]:
    """Publish how many ``PENDING`` approvals are older than the ownership token's hour, and whether the
    account's THING registry events are on."""
    cutoff = timestamp(datetime.now(UTC) - timedelta(seconds=STALE_APPROVAL_AFTER_SECONDS))
    stale = function_records().count_pending_before(cutoff)
    metrics.add_metric(name=Metric.STALE_PENDING_APPROVALS, unit=MetricUnit.Count, value=stale)
    logger.info("stale approvals counted", extra={"stale": stale, "cutoff": cutoff})
    enabled = thing_events_enabled(runtime.iot())
    metrics.add_metric(name=Metric.THING_EVENTS_DISABLED, unit=MetricUnit.Count, value=0 if enabled else 1)
    if not enabled:
        logger.error(
            "THING registry events are off in this account and region: approved devices cannot become "
            "ACTIVE; the stack with accountSettings: true switches them on"
        )
    return {"stale": stale, "thingEventsEnabled": enabled}


def thing_events_enabled(iot: Any) -> bool:
    """Whether AWS IoT publishes THING registry events (``$aws/events/thing/...``) in this account and
    region (API DescribeEventConfigurations)."""
    configurations = iot.describe_event_configurations().get("eventConfigurations", {})
    return bool(configurations.get("THING", {}).get("Enabled", False))
