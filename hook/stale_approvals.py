"""Count approvals that will never become things, as the ``StalePendingApprovals`` metric.

A device has an hour between the hook's approval and the thing's creation: its certificate ownership
token expires after that. An item still ``PENDING`` later than that points at a device that gave up,
a template that fails after the hook, or an activation that never ran. Runs on a schedule.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from hook.activation import CLIENT_CONFIG
from hook.contract import METRICS_NAMESPACE, STALE_APPROVAL_AFTER_SECONDS, Metric, Service
from hook.registry import DeviceRegistry, registry_from_environment, timestamp

logger = Logger(service=Service.STALE_APPROVALS.value)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=Service.STALE_APPROVALS.value)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: Any, context: Any) -> dict[str, int]:
    """Publish how many ``PENDING`` approvals are older than the ownership token's hour."""
    cutoff = timestamp(datetime.now(UTC) - timedelta(seconds=STALE_APPROVAL_AFTER_SECONDS))
    stale = _registry().count_pending_before(cutoff)
    metrics.add_metric(name=Metric.STALE_PENDING_APPROVALS, unit=MetricUnit.Count, value=stale)
    logger.info("stale approvals counted", extra={"stale": stale, "cutoff": cutoff})
    return {"stale": stale}


@functools.cache
def _registry() -> DeviceRegistry:
    return registry_from_environment(CLIENT_CONFIG)
