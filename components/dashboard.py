"""The provisioning dashboard's body: a pure function of the monitored names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.alarms import PERIOD_SECONDS, REGISTRY_OPERATIONS, MonitoredNames
from hook.contract import (
    CLAIM_CERTIFICATE_DIMENSION,
    REASON_DIMENSION,
    SERVICE_DIMENSION,
    Metric,
    Service,
)


@dataclass(frozen=True)
class FleetView:
    """The fleet a region's dashboard shows beside its own metrics (``docs/global-fleet.md``)."""

    registry_table: pulumi.Input[str]
    registry_region: str
    regions: tuple[str, ...]


def dashboard_body(names: MonitoredNames, region: pulumi.Input[str], fleet: FleetView) -> pulumi.Output[str]:
    """The provisioning dashboard: decisions, reasons, hook latency, approvals per claim certificate and
    activations, registry errors (in the registry's region), stale approvals, and the fleet's approvals and
    rejections by region. Sorted JSON, once the names it shows are known.

    A metric's rendering properties may name another region ("Dashboard Body Structure and Syntax", the
    format of each metric in the array: ``region``), so every region's dashboard shows the whole fleet."""

    def widget(
        title: str, metrics: list[list[Any]], stat: str = "Sum", y: int = 0, x: int = 0
    ) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "stat": stat,
                "period": PERIOD_SECONDS,
                "metrics": metrics,
            },
        }

    hook = {SERVICE_DIMENSION: Service.HOOK.value}
    by_reason = (
        f'SEARCH(\'{{"{names.metrics_namespace}",{REASON_DIMENSION},{SERVICE_DIMENSION}}} '
        f"MetricName=\"{Metric.PROVISIONING_REJECTED}\"', 'Sum', {PERIOD_SECONDS})"
    )
    table = ["AWS/DynamoDB"]
    in_registry = {"region": fleet.registry_region}
    widgets = [
        widget(
            "Approvals and rejections",
            [
                [names.metrics_namespace, Metric.PROVISIONING_APPROVED.value, *_flat(hook)],
                [names.metrics_namespace, Metric.PROVISIONING_REJECTED.value, *_flat(hook)],
            ],
        ),
        widget("Rejections by reason", [[{"expression": by_reason, "id": "reasons", "label": ""}]], x=12),
        widget(
            "Hook duration (ms)",
            [
                ["AWS/Lambda", "Duration", "FunctionName", names.hook_function, {"stat": "p50"}],
                ["AWS/Lambda", "Duration", "FunctionName", names.hook_function, {"stat": "p99"}],
            ],
            stat="p99",
            y=6,
        ),
        widget(
            "Approvals per claim certificate, and activations",
            [
                *(
                    [
                        names.metrics_namespace,
                        Metric.PROVISIONING_APPROVED.value,
                        *_flat(hook),
                        CLAIM_CERTIFICATE_DIMENSION,
                        certificate_id,
                        {"label": f"Approved through claim certificate {generation}"},
                    ]
                    for generation, certificate_id in names.claim_certificates.items()
                ),
                [
                    names.metrics_namespace,
                    Metric.DEVICE_ACTIVATED.value,
                    SERVICE_DIMENSION,
                    Service.ACTIVATION.value,
                ],
            ],
            y=6,
            x=12,
        ),
        widget(
            "Registry errors",
            [
                [*table, metric, "TableName", fleet.registry_table, in_registry]
                for metric in ("ReadThrottleEvents", "WriteThrottleEvents")
            ]
            + [
                [
                    *table,
                    "SystemErrors",
                    "TableName",
                    fleet.registry_table,
                    "Operation",
                    operation,
                    in_registry,
                ]
                for operation in REGISTRY_OPERATIONS
            ],
            y=12,
        ),
        widget(
            "Stale PENDING approvals (older than 1 hour)",
            [
                [
                    names.metrics_namespace,
                    Metric.STALE_PENDING_APPROVALS.value,
                    SERVICE_DIMENSION,
                    Service.STALE_APPROVALS.value,
                ]
            ],
            stat="Maximum",
            y=12,
            x=12,
        ),
        widget(
            "Fleet: approvals and rejections by region",
            [
                [
                    names.metrics_namespace,
                    metric.value,
                    *_flat(hook),
                    {"region": fleet_region, "label": f"{fleet_region} {label}"},
                ]
                for fleet_region in fleet.regions
                for metric, label in (
                    (Metric.PROVISIONING_APPROVED, "approved"),
                    (Metric.PROVISIONING_REJECTED, "rejected"),
                )
            ],
            y=18,
        ),
    ]
    return pulumi.Output.json_dumps({"widgets": widgets}, sort_keys=True)


def _flat(dimensions: dict[str, str]) -> list[str]:
    return [part for pair in dimensions.items() for part in pair]
