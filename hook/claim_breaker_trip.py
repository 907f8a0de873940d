"""The claim-breaker function: counts the approvals on the registry table's stream and trips a claim
certificate's breaker when they pass its budget (:mod:`hook.claim_breaker`).

An approval is a change of a device item that gives it a new ``approvedAt`` (the hook's approval) or
``reprovisionedAt`` (a re-provisioning grant used), counted under the ``claimCertificateId`` of its
``NewImage``. Each invocation adds its batch's approvals to the hour's count of each claim certificate (one
``UpdateItem`` per claim certificate and batch) and, when the last hour's estimate passes the certificate's
budget (:data:`~hook.claim_breaker.CLAIM_BUDGETS_ENV`), opens every item of its breaker and counts
``ClaimBreakerTripped`` (alarmed). A failed invocation is retried by Lambda with the whole batch or its
halves (the mapping bisects a failing batch), whose approvals are then counted again: a retry can only make
the breaker trip earlier, never later. A claim certificate without a budget (not one of the stack's
generations) is logged and not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from hook import runtime
from hook.claim_breaker import CLAIM_BUDGETS_ENV, TRIPPED_BY, estimated_approvals, over_budget, parse_budgets
from hook.claim_breakers import ClaimBreakers
from hook.contract import REGISTRY_TABLE_ENV, Attr, Metric, Service, metrics_namespace_from_environment

SERVICE: Final = Service.CLAIM_BREAKER.value
APPROVAL_STAMPS: Final = (Attr.APPROVED_AT, Attr.REPROVISIONED_AT)
"""A change that writes a new value of either is an approval through its claim certificate."""

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=metrics_namespace_from_environment(), service=SERVICE)


def approvals_by_claim_certificate(records: Iterable[Any]) -> Counter[str]:
    """How many approvals each claim certificate made in a batch of stream records."""
    counted: Counter[str] = Counter()
    for record in records:
        change = record.get("dynamodb", {}) if isinstance(record, Mapping) else {}
        new, old = _strings(change.get("NewImage")), _strings(change.get("OldImage"))
        claim = new.get(Attr.CLAIM_CERTIFICATE_ID)
        if claim and any(new.get(stamp) and new.get(stamp) != old.get(stamp) for stamp in APPROVAL_STAMPS):
            counted[claim] += 1
    return counted


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Mapping[str, Any], context: Any) -> None:
    """Count the batch's approvals and trip the breakers whose budget they passed."""
    budgets = _budgets()
    now = datetime.now(UTC)
    for claim_certificate_id, approvals in approvals_by_claim_certificate(event.get("Records", [])).items():
        budget = budgets.get(claim_certificate_id)
        if budget is None:
            logger.warning(
                "approvals through a claim certificate with no budget", extra={"claim": claim_certificate_id}
            )
            continue
        current, previous = _breakers().add_approvals(claim_certificate_id, approvals, now)
        if not over_budget(current, previous, now, budget):
            continue
        estimate = estimated_approvals(current, previous, now)
        reason = f"{estimate:.0f} approvals in the last hour through this claim certificate, budget {budget}"
        if _breakers().trip(claim_certificate_id, reason, TRIPPED_BY):
            logger.warning("claim breaker tripped", extra={"claim": claim_certificate_id, "reason": reason})
            metrics.add_metric(name=Metric.CLAIM_BREAKER_TRIPPED, unit=MetricUnit.Count, value=1)


def _strings(image: Any) -> dict[str, str]:
    """A stream image's string attributes (every registry attribute the count reads is one)."""
    if not isinstance(image, Mapping):
        return {}
    return {name: value["S"] for name, value in image.items() if isinstance(value, Mapping) and "S" in value}


@runtime.once
def _budgets() -> dict[str, int]:
    return parse_budgets(runtime.required_env(CLAIM_BUDGETS_ENV))


@runtime.once
def _breakers() -> ClaimBreakers:
    return ClaimBreakers(
        runtime.client("dynamodb", runtime.FUNCTION_CLIENT_CONFIG), runtime.required_env(REGISTRY_TABLE_ENV)
    )
