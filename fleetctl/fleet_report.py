"""``fleetctl report``: a fleet's provisioning by region, from the registry (devices by state, claim
certificate use) and from each region's CloudWatch (the hook's approvals and denials)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fleetctl.claim_certificates import count_by_claim_certificate
from hook.contract import SERVICE_DIMENSION, Attr, DeviceStatus, Metric, Service, metrics_namespace
from program.outputs import StackOutput

if TYPE_CHECKING:
    from fleetctl.context import StackContext

_HOOK_COUNTS = {"approved": Metric.PROVISIONING_APPROVED, "denied": Metric.PROVISIONING_REJECTED}
"""The hook's metrics a region's row counts; the rejections counted with the service dimension alone
(:class:`~hook.contract.Metric`), so each denial once."""


@dataclass(frozen=True)
class Window:
    """The hours the CloudWatch counts cover, ending at ``end``."""

    hours: int
    end: datetime

    @classmethod
    def until(cls, hours: int, now: datetime) -> Window:
        """The last ``hours``, to the end of ``now``'s minute: CloudWatch's ``EndTime`` is exclusive, and
        data points are stored by the minute at best."""
        return cls(hours, now.replace(second=0, microsecond=0) + timedelta(minutes=1))

    @property
    def start(self) -> datetime:
        """When the window opens."""
        return self.end - timedelta(hours=self.hours)


def fleet_report(stack: StackContext, window: Window) -> dict[str, Any]:
    """Every given region's devices by state and claim certificate (registry), and its hook's approvals
    and denials within ``window`` (its CloudWatch); the serials pre-registered and not yet provisioned,
    which belong to no region yet, are counted for the fleet."""
    states: dict[str, Counter[str]] = {}
    preregistered = 0
    for item in stack.records.scan_devices(attributes=[Attr.STATUS, Attr.REGION]):
        status = item.get(Attr.STATUS, "")
        if status == DeviceStatus.PREREGISTERED:
            preregistered += 1
            continue
        region = item.get(Attr.REGION) or stack.registry_region
        states.setdefault(region, Counter())[status] += 1
    claims = count_by_claim_certificate(stack.records, stack.registry_region)
    regions = []
    for view in stack.regional():
        claim_use = {
            claim: count for (claim, region), count in sorted(claims.items()) if region == view.region
        }
        regions.append(
            {
                "region": view.region,
                "devices": dict(sorted(states.pop(view.region, Counter()).items())),
                "claimCertificates": claim_use,
                **hook_counts(view, window),
            }
        )
    return {
        "fleet": stack.outputs.get(StackOutput.FLEET_NAME),
        "registryRegion": stack.registry_region,
        "hours": window.hours,
        "preregistered": preregistered,
        "regions": regions,
        "otherRegions": {region: dict(sorted(counts.items())) for region, counts in sorted(states.items())},
    }


def hook_counts(stack: StackContext, window: Window) -> dict[str, int]:
    """The hook's approvals and denials of ``stack``'s region within ``window``: one ``GetMetricData``
    request, the Sum of each metric over the window (CloudWatch API reference, GetMetricData: a period is
    a multiple of 60 seconds; the data points of one metric are summed here)."""
    queries: list[Any] = [
        {
            "Id": key,
            "MetricStat": {
                "Metric": {
                    "Namespace": metrics_namespace(stack.base_name),
                    "MetricName": metric.value,
                    "Dimensions": [{"Name": SERVICE_DIMENSION, "Value": Service.HOOK.value}],
                },
                "Period": window.hours * 3600,
                "Stat": "Sum",
            },
        }
        for key, metric in _HOOK_COUNTS.items()
    ]
    cloudwatch = stack.clients.get("cloudwatch", stack.region)
    counts = dict.fromkeys(_HOOK_COUNTS, 0)
    pages = cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=window.start, EndTime=window.end
    )
    for page in pages:
        for result in page["MetricDataResults"]:
            counts[result["Id"]] += int(sum(result["Values"]))
    return counts
