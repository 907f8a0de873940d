"""Activation: once AWS IoT has created a device's thing, mark it ACTIVE and initialise its shadow.

An IoT topic rule on ``$aws/events/thing/+/created`` invokes :func:`lambda_handler`. A provisioning
template cannot create shadows, so this is where each device type's initial desired state is written.
The registry item records when the device's certificate expires (one ``DescribeCertificate``:
:mod:`hook.certificate_expiry`), so ``fleetctl certs expiring`` reads the registry instead of describing
every certificate of the account. The shadow is written before the registry moves to ``ACTIVE``, so a
redelivered event after a failure finishes the job, and one after success changes nothing. AWS errors are
raised, so that Lambda retries the asynchronous invocation and the function's Errors alarm fires when
retries run out.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.iot_registry_event import IoTCoreThingEvent

from hook import runtime
from hook.activation_config import ActivationConfig
from hook.certificate_expiry import certificate_not_after
from hook.contract import (
    ACTIVATION_CONFIG_ENV,
    ACTIVATION_CONFIG_FILE_NAME,
    Attr,
    DeviceStatus,
    Metric,
    Service,
    metrics_namespace_from_environment,
    serial_number_of,
)
from hook.registry_items import Item
from hook.registry_transitions import DeviceRecords, function_records

logger = Logger(service=Service.ACTIVATION.value)
metrics = Metrics(namespace=metrics_namespace_from_environment(), service=Service.ACTIVATION.value)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=IoTCoreThingEvent)
def lambda_handler(event: IoTCoreThingEvent, context: Any) -> dict[str, str]:
    """Handle one ``$aws/events/thing/<name>/created`` registry event; returns what was done."""
    if not _is_thing_created(event):
        logger.warning("not a thing-created event; ignored", extra={"eventType": event.get("eventType")})
        return {"outcome": "ignored"}
    records = function_records()
    outcome = activate(event.thing_name, _config(), records, runtime.iot_data(), runtime.iot())
    return {"outcome": outcome}


def _is_thing_created(event: IoTCoreThingEvent) -> bool:
    """The rule's topic only carries thing-created events; anything else (a test event, another
    operation) is ignored rather than failed, so Lambda does not retry it."""
    return event.get("operation") == "CREATED" and isinstance(event.get("thingName"), str)


def activate(
    thing_name: str, config: ActivationConfig, registry: DeviceRecords, shadows: Any, iot: Any
) -> str:
    """Activate the device behind ``thing_name``, recording its certificate's expiry (read with ``iot``);
    returns ``activated``, ``already-active``, ``ignored``, ``no-registry-item`` or ``unexpected-state``."""
    serial = serial_number_of(config.thing_name_prefix, thing_name)
    if serial is None:
        logger.info("thing of another stack; ignored", extra={"thingName": thing_name})
        return "ignored"
    logger.append_keys(serialNumber=serial, thingName=thing_name)
    item = registry.get(serial)
    if item is None:
        logger.warning("thing created for a serial the registry does not know")
        metrics.add_metric(name=Metric.THING_WITHOUT_REGISTRY_ITEM, unit=MetricUnit.Count, value=1)
        return "no-registry-item"
    if _is_active(item, thing_name):
        logger.info("already active; redelivered event")
        return "already-active"
    if item.get(Attr.STATUS) != DeviceStatus.PENDING:
        return _unexpected(item)

    certificate = item.get(Attr.CERTIFICATE_ID)
    not_after = certificate_not_after(iot, certificate) if certificate else None
    if not_after is None:
        logger.warning("AWS IoT did not say when the certificate expires; none recorded")
    desired = config.initial_shadows.get(item.get(Attr.DEVICE_TYPE, ""), {})
    shadows.update_thing_shadow(thingName=thing_name, payload=json.dumps({"state": {"desired": desired}}))
    stored = registry.activate(serial, thing_name, not_after)
    if stored is not None:
        return "already-active" if _is_active(stored, thing_name) else _unexpected(stored)
    logger.info("device activated", extra={"deviceType": item.get(Attr.DEVICE_TYPE)})
    metrics.add_metric(name=Metric.DEVICE_ACTIVATED, unit=MetricUnit.Count, value=1)
    return "activated"


def _is_active(item: Item, thing_name: str) -> bool:
    return item.get(Attr.STATUS) == DeviceStatus.ACTIVE and item.get(Attr.THING_NAME) == thing_name


def _unexpected(item: Item) -> str:
    logger.warning("thing created for a serial that is not PENDING", extra={"status": item.get(Attr.STATUS)})
    metrics.add_metric(name=Metric.UNEXPECTED_ACTIVATION, unit=MetricUnit.Count, value=1)
    return "unexpected-state"


@runtime.once
def _config() -> ActivationConfig:
    return ActivationConfig.load(runtime.packaged_file(ACTIVATION_CONFIG_ENV, ACTIVATION_CONFIG_FILE_NAME))
