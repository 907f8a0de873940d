"""Property test of the whole certificate lifecycle against moto: random sequences of provisioning (clones
included), activation, rotation (started, completed, failed), re-provisioning grants and their use,
revocation and decommissioning, each through the code that does it in the stack (the registry adapter, the
rotation and retirement functions, fleetctl), with the registry's stream delivered to the retirement
function after every step. After each step:

- an ``ACTIVE`` serial has exactly one active certificate, its current one (besides the pending one of a
  rotation in progress, which must be active for the device to connect with it);
- every certificate the registry has replaced is revoked;
- no certificate belongs to two serials (bindings, items and things agree);
- every item carries the index keys of its status and type (the sharded indexes follow every transition).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as label
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from moto import mock_aws
from typer.testing import CliRunner

from fleetctl.cli import app
from fleetctl.operator_transitions import OperatorRecords
from hook import certificate_retirement, certificate_rotation, runtime
from hook.contract import Attr, DeviceStatus, ProvisioningDenied, device_type_resource_name, thing_name
from hook.registry_decisions import Provenance
from hook.registry_items import Item, shard_attributes, timestamp
from hook.rotation_contract import ROTATION_JOB_OPERATION, rotation_job_id_prefix
from hook.rules import parse_rules, validate_request
from tests.support import (
    BASE,
    CLAIM_POLICY,
    REGION,
    RULES,
    TABLE_NAME,
    TEMPLATE_ARN,
    FakeLambdaContext,
    KeysForMoto,
    RegistryStream,
    certificate_signing_request,
    create_registry_table,
    registry_contents,
    valid_parameters,
)

SERIALS = ("TS-000001", "TS-000002")
DEVICE_TYPE = "temperature-sensor"
POLICY = device_type_resource_name(BASE, DEVICE_TYPE)

serials = st.sampled_from(SERIALS)


@pytest.fixture(autouse=True)
def certificate_functions_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keys_for_moto: KeysForMoto
) -> Iterator[None]:
    monkeypatch.setenv("REGISTRY_TABLE_NAME", TABLE_NAME)
    monkeypatch.setenv("STACK_BASE_NAME", BASE)
    monkeypatch.delenv("IOT_DATA_ENDPOINT", raising=False)
    LifecycleMachine.outputs_dir = tmp_path
    LifecycleMachine.keys_for_moto = keys_for_moto
    yield
    runtime.reset()


class LifecycleMachine(RuleBasedStateMachine):
    """The stack on moto, driven one lifecycle operation at a time."""

    outputs_dir: Path
    keys_for_moto: KeysForMoto

    def __init__(self) -> None:
        super().__init__()
        self._mock = mock_aws()
        self._mock.start()
        self.keys_for_moto.reset()
        runtime.reset()
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_registry_table(self.dynamodb)
        self.stream = RegistryStream(self.dynamodb)
        self.iot = boto3.client("iot", region_name=REGION)
        self.iot.create_policy(policyName=POLICY, policyDocument="{}")
        claim = self.iot.create_keys_and_certificate(setAsActive=True)
        self.iot.create_policy(policyName=CLAIM_POLICY, policyDocument="{}")
        self.claim_certificate_id = claim["certificateId"]
        self.records = OperatorRecords(self.dynamodb, TABLE_NAME)
        self.outputs = self.outputs_dir / "outputs.json"
        self.outputs.write_text(
            json.dumps(
                {
                    "deviceRegistryTableName": TABLE_NAME,
                    "provisioningTemplateName": f"{BASE}-fleet",
                    "provisioningTemplateArn": TEMPLATE_ARN,
                    "claimCertificateId": claim["certificateId"],
                    "region": REGION,
                    "hookRules": RULES,
                }
            ),
            encoding="utf-8",
        )
        self.issued: set[str] = set()
        self.jobs = 0

    def teardown(self) -> None:
        self._mock.stop()

    @initialize()
    def provision_the_fleet(self) -> None:
        """Every serial starts provisioned, so the sequences explore what follows."""
        for serial in SERIALS:
            self.provision(serial)

    # --- operations --------------------------------------------------------------------------------

    @rule(serial=serials)
    def provision(self, serial: str) -> None:
        """A device (genuine, re-provisioned or a clone) asks with a new certificate; on approval the
        template attaches and activates it, and the activation function runs."""
        certificate = self.iot.create_keys_and_certificate(setAsActive=False)
        self.issued.add(certificate["certificateId"])
        parameters = valid_parameters(SerialNumber=serial, DeviceType=DEVICE_TYPE, FirmwareVersion="2.1.0")
        request = validate_request(parameters, parse_rules(RULES))
        provenance = Provenance(certificate["certificateId"], self.claim_certificate_id, TEMPLATE_ARN, serial)
        try:
            self.records.approve(request, provenance, require_preregistration=False)
        except ProvisioningDenied:
            return self._deliver_stream()
        name = thing_name(BASE, serial)
        things = {each["thingName"] for each in self.iot.list_things()["things"]}
        if name not in things:
            self.iot.create_thing(thingName=name)
        self.iot.attach_thing_principal(thingName=name, principal=certificate["certificateArn"])
        self.iot.attach_policy(policyName=POLICY, target=certificate["certificateArn"])
        self.iot.update_certificate(certificateId=certificate["certificateId"], newStatus="ACTIVE")
        self.records.activate(serial, name)
        return self._deliver_stream()

    @rule(serial=serials)
    def start_rotation(self, serial: str) -> None:
        """An operator's rotation job for the device (when it has a thing), then the device sends a CSR
        for it with its current certificate."""
        self.jobs += 1
        job_id = f"{rotation_job_id_prefix(BASE)}{self.jobs}"
        things = {each["thingName"]: each["thingArn"] for each in self.iot.list_things()["things"]}
        if thing_name(BASE, serial) in things:
            document = json.dumps({"operation": ROTATION_JOB_OPERATION, "keyAlgorithm": "EC-P256"})
            self.iot.create_job(jobId=job_id, targets=[things[thing_name(BASE, serial)]], document=document)
        item = self.records.get(serial) or {}
        caller = item.get(Attr.CERTIFICATE_ID, "0" * 64)
        self._rotation_step(serial, "csr", caller, {"csr": certificate_signing_request(), "jobId": job_id})

    @rule(serial=serials)
    def complete_rotation(self, serial: str) -> None:
        """The device reports success with its new certificate."""
        item = self.records.get(serial) or {}
        caller = item.get(Attr.PENDING_CERTIFICATE_ID, "0" * 64)
        self._rotation_step(serial, "result", caller, {"status": "SUCCEEDED", "jobId": self._job_of(item)})

    @rule(serial=serials)
    def rotate(self, serial: str) -> None:
        """A whole rotation: the CSR, then success reported with the new certificate."""
        self.start_rotation(serial)
        self.complete_rotation(serial)

    @rule(serial=serials)
    def fail_rotation(self, serial: str) -> None:
        """The device reports failure with its current certificate."""
        item = self.records.get(serial) or {}
        caller = item.get(Attr.CERTIFICATE_ID, "0" * 64)
        self._rotation_step(
            serial,
            "result",
            caller,
            {"status": "FAILED", "reason": "connect failed", "jobId": self._job_of(item)},
        )

    @rule(serial=serials)
    def grant_reprovision(self, serial: str) -> None:
        """An operator allows one re-provisioning, for an hour; only an ``ACTIVE`` serial can have it."""
        active = (self.records.get(serial) or {}).get(Attr.STATUS) == DeviceStatus.ACTIVE
        result = self._fleetctl("reprovision", serial, "--reason", "RMA", "--window", "1")
        assert (result.exit_code == 0) == active, result.output
        if active:
            until = (self.records.get(serial) or {})[Attr.REPROVISION_ALLOWED_UNTIL]
            assert timestamp() < until <= timestamp(datetime.now(UTC) + timedelta(hours=1))
        self._deliver_stream()

    @rule(serial=serials, operation=st.sampled_from(["revoke", "decommission"]))
    def take_out_of_service(self, serial: str, operation: str) -> None:
        """An operator revokes or decommissions the device with fleetctl."""
        self._fleetctl(operation, serial, "--reason", "stolen")
        self._deliver_stream()

    # --- invariants --------------------------------------------------------------------------------

    @invariant()
    def the_lifecycle_invariants_hold(self) -> None:
        """The invariants of the module's docstring, on one reading of the registry and the certificates."""
        observed = Observed(self.dynamodb, self.iot)
        an_active_serial_has_exactly_one_active_certificate(observed)
        every_replaced_certificate_is_revoked(observed)
        no_certificate_belongs_to_two_serials(observed, self.issued)
        every_item_is_in_the_index_shards_of_its_status_and_type(observed)

    # --- helpers -----------------------------------------------------------------------------------

    def _rotation_step(self, serial: str, step: str, caller: str, payload: dict[str, str]) -> None:
        event = {
            **payload,
            "callerCertificateId": caller,
            "thingName": thing_name(BASE, serial),
            "step": step,
        }
        answer = certificate_rotation.lambda_handler(event, FakeLambdaContext())
        label(f"{step} {payload.get('status', '')}: {answer['outcome']}")
        item: Item = self.records.get(serial) or {}
        if Attr.PENDING_CERTIFICATE_ID in item:
            self.issued.add(item[Attr.PENDING_CERTIFICATE_ID])
        self._deliver_stream()

    def _job_of(self, item: Item) -> str:
        """The job of the device's rotation in progress, or the latest job."""
        return item.get(Attr.ROTATION_JOB_ID) or f"{rotation_job_id_prefix(BASE)}{self.jobs}"

    def _deliver_stream(self) -> None:
        """The registry's changes since the last step, delivered to the retirement function."""
        event = self.stream.event()
        if event["Records"]:
            response = certificate_retirement.lambda_handler(event, FakeLambdaContext())
            assert response["batchItemFailures"] == [], response

    def _fleetctl(self, *args: str) -> Any:
        return CliRunner().invoke(app, ["--outputs", str(self.outputs), *args, "--json"])


class Observed:
    """One reading of the registry, and of each certificate's status and things when first asked for."""

    def __init__(self, dynamodb: Any, iot: Any) -> None:
        self.devices, self.bindings = registry_contents(dynamodb)
        self._iot = iot
        self._described: dict[str, dict[str, Any]] = {}
        self._things: dict[str, list[str]] = {}

    def status(self, certificate_id: str) -> str:
        return str(self._description(certificate_id)["status"])

    def things_of(self, certificate_id: str) -> list[str]:
        if certificate_id not in self._things:
            arn = self._description(certificate_id)["certificateArn"]
            self._things[certificate_id] = list(self._iot.list_principal_things(principal=arn)["things"])
        return self._things[certificate_id]

    def _description(self, certificate_id: str) -> dict[str, Any]:
        if certificate_id not in self._described:
            described = self._iot.describe_certificate(certificateId=certificate_id)
            self._described[certificate_id] = described["certificateDescription"]
        return self._described[certificate_id]


def an_active_serial_has_exactly_one_active_certificate(observed: Observed) -> None:
    for serial, item in observed.devices.items():
        if item.get(Attr.STATUS) != DeviceStatus.ACTIVE:
            continue
        bound = {certificate for certificate, owner in observed.bindings.items() if owner == serial}
        active = {certificate for certificate in bound if observed.status(certificate) == "ACTIVE"}
        assert active - {item.get(Attr.PENDING_CERTIFICATE_ID)} == {item[Attr.CERTIFICATE_ID]}, item


def every_replaced_certificate_is_revoked(observed: Observed) -> None:
    for item in observed.devices.values():
        for certificate in item.get(Attr.REPLACED_CERTIFICATE_IDS, "").split():
            assert observed.status(certificate) == "REVOKED", (certificate, item)
            assert not observed.things_of(certificate), (certificate, item)


def no_certificate_belongs_to_two_serials(observed: Observed, issued: set[str]) -> None:
    for serial, item in observed.devices.items():
        for attribute in (Attr.CERTIFICATE_ID, Attr.PENDING_CERTIFICATE_ID):
            if attribute in item:
                assert observed.bindings.get(item[attribute]) == serial, (attribute, item)
    for certificate in issued:
        assert len(observed.things_of(certificate)) <= 1, certificate


def every_item_is_in_the_index_shards_of_its_status_and_type(observed: Observed) -> None:
    for serial, item in observed.devices.items():
        keys = {key: item[key] for key in (Attr.STATUS_SHARD, Attr.TYPE_SHARD) if key in item}
        expected = shard_attributes(serial, status=item[Attr.STATUS], device_type=item.get(Attr.DEVICE_TYPE))
        assert keys == expected, item


LifecycleMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
test_lifecycle_invariants_hold_after_every_operation = LifecycleMachine.TestCase
