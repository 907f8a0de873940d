"""The scenario's revocation check against a deployment whose AWS IoT applies the revocation late, as AWS
documents it may: the check waits within the deployment's revocation patience, and no longer."""

from __future__ import annotations

from typing import Any

import pytest

from hook.contract import Attr, DeviceStatus
from local.deploy.inspection import Certificate, Thing
from local.deploy.mock_engine import local_config
from local.devices.firmware import ProvisionedDevice, Timings
from local.devices.mqtt_session import Credentials
from local.scenario.deployment import Deployment, Patience, stack_settings
from local.scenario.expectations import ScenarioFailure
from local.scenario.revocation_checks import REVOCATION_REASON, REVOKED_DEVICE, expect_revoked

THING = "iot-provisioning-local_TS-910001"
DEVICE = ProvisionedDevice(REVOKED_DEVICE, THING, "c1", Credentials("", ""), Timings())


class LateDetachingInspector:
    """AWS IoT as read after a revocation: the registry revoked at once, the certificate revoked but still
    attached to its policy and thing for the first ``late_reads`` reads."""

    def __init__(self, late_reads: int) -> None:
        self.late_reads = late_reads
        self.reads = 0

    def registry(self, table_name: str) -> dict[str, dict[str, str]]:
        return {
            REVOKED_DEVICE.serial_number: {
                Attr.STATUS: DeviceStatus.REVOKED,
                Attr.REVOCATION_REASON: REVOCATION_REASON,
                Attr.REVOKED_AT: "2026-12-06T11:00:00Z",
                Attr.CERTIFICATE_ID: "c1",
            }
        }

    def certificate(self, certificate_id: str) -> Certificate:
        self.reads += 1
        attached = self.reads <= self.late_reads
        return Certificate(
            certificate_id,
            f"arn:aws:iot:eu-west-1:1:cert/{certificate_id}",
            "REVOKED",
            ["iot-provisioning-local_temperature-sensor"] if attached else [],
            [THING] if attached else [],
        )

    def thing(self, name: str) -> Thing:
        return Thing(name, "iot-provisioning-local_temperature-sensor", {}, [], [])


def _deployment(inspector: Any, revocation: float) -> Deployment:
    return Deployment(
        target=None,  # type: ignore[arg-type]  # the check connects no device
        inspector=inspector,
        outputs={"deviceRegistryTableName": "iot-provisioning-local-device-registry"},
        settings=stack_settings(local_config(), "local"),
        patience=Patience(activation=0.0, logs=0.0, revocation=revocation, interval=0.01),
    )


def test_a_detachment_aws_iot_applies_late_is_waited_for_within_the_revocation_patience() -> None:
    inspector = LateDetachingInspector(late_reads=3)

    expect_revoked(_deployment(inspector, revocation=5.0), DEVICE, REVOCATION_REASON)

    assert inspector.reads == 4


def test_a_certificate_still_attached_after_the_revocation_patience_fails_the_check() -> None:
    inspector = LateDetachingInspector(late_reads=10_000)

    with pytest.raises(ScenarioFailure, match=r"TS-910001: certificate policies: got \['iot-provisioning"):
        expect_revoked(_deployment(inspector, revocation=0.1), DEVICE, REVOCATION_REASON)
    assert 1 < inspector.reads < 10_000


def test_without_revocation_patience_aws_iot_is_read_once() -> None:
    inspector = LateDetachingInspector(late_reads=1)

    with pytest.raises(ScenarioFailure, match="certificate policies"):
        expect_revoked(_deployment(inspector, revocation=0.0), DEVICE, REVOCATION_REASON)
    assert inspector.reads == 1
