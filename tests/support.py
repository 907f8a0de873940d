"""Helpers shared by the tests and the benchmarks: the registry table, well-formed hook events, the hook's
output lines, and a stack on moto for fleetctl."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID
from moto.core.botocore_stubber import BotocoreStubber
from typer.testing import CliRunner, Result

from fleetctl.cli import app
from fleetctl.errors import ExitCode
from fleetctl.manifest import HEADER
from fleetctl.operator_transitions import OperatorRecords
from fleetctl.registry_reads import devices_and_bindings
from hook import runtime
from hook.contract import (
    IOT_DATA_ENDPOINT_ENV,
    REGISTRY_INDEXES,
    REGISTRY_PARTITION_KEY,
    REGISTRY_TABLE_ENV,
    STACK_BASE_NAME_ENV,
    Attr,
    Parameter,
    device_type_resource_name,
    thing_name,
)
from hook.registry_decisions import Provenance
from hook.registry_items import timestamp
from hook.rules import parse_rules, validate_request
from local.devices.secure_element import SecureElement

TABLE_NAME = "test-device-registry"
TEMPLATE_ARN = "arn:aws:iot:us-east-1:123456789012:provisioningtemplate/test-fleet"
CLAIM_CERTIFICATE_ID = hashlib.sha256(b"claim").hexdigest()
REGION = "us-east-1"
BASE = "fleet-test"
"""The base name (``<prefix>-<env>``) of the fleetctl tests' stack."""
CLAIM_POLICY = f"{BASE}-claim"

RULES: dict[str, Any] = {
    "deviceTypes": {
        "temperature-sensor": {
            "serialPattern": "TS-[0-9]{6}",
            "manufacturers": ["AcmeIoT", "SensorWorks"],
            "minFirmwareVersion": "1.2.0",
        },
        "humidity-sensor": {"serialPattern": None, "manufacturers": None, "minFirmwareVersion": None},
        "gateway": {
            "serialPattern": "GW-[A-Z0-9]{4,12}",
            "manufacturers": None,
            "minFirmwareVersion": "v2.0.0",
        },
    },
    "requirePreregistration": False,
}


def create_registry_table(client: Any, table_name: str = TABLE_NAME) -> None:
    """Create the registry table with the key schema and indexes the hook contract defines."""
    key_attributes = {REGISTRY_PARTITION_KEY, *(key for keys in REGISTRY_INDEXES.values() for key in keys)}
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in sorted(key_attributes)
        ],
        KeySchema=[{"AttributeName": REGISTRY_PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, (hash_key, range_key) in REGISTRY_INDEXES.items()
        ],
    )


def in_hours(hours: float) -> str:
    """The registry's timestamp ``hours`` from now (negative: ago)."""
    return timestamp(datetime.now(UTC) + timedelta(hours=hours))


def registry_contents(client: Any) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The registry table's device items by serial and its certificate bindings (certificate -> serial)."""
    pages = client.get_paginator("scan").paginate(TableName=TABLE_NAME, ConsistentRead=True)
    return devices_and_bindings(item for page in pages for item in page["Items"])


def write_rules(path: Path, rules: dict[str, Any] = RULES) -> Path:
    """Write a rules document where the hook reads it and return the path."""
    path.write_text(json.dumps(rules), encoding="utf-8")
    return path


def certificate_id(seed: str) -> str:
    """A certificate id of the form AWS IoT uses (64 hex digits), derived from ``seed``."""
    return hashlib.sha256(seed.encode()).hexdigest()


def valid_parameters(**overrides: Any) -> dict[str, Any]:
    """Parameters that every rule in :data:`RULES` accepts, with ``overrides`` applied."""
    parameters: dict[str, Any] = {
        Parameter.SERIAL_NUMBER.value: "TS-000123",
        Parameter.DEVICE_TYPE.value: "temperature-sensor",
        Parameter.MANUFACTURER.value: "AcmeIoT",
        Parameter.FIRMWARE_VERSION.value: "v1.4.2",
        Parameter.LOCATION.value: "Factory-Floor-A",
    }
    parameters.update(overrides)
    return parameters


def hook_event(
    parameters: Any = None, *, certificate: str = "device-1", client_id: str = "client-1"
) -> dict[str, Any]:
    """An event as AWS IoT sends it to the hook (payload version 2020-04-01)."""
    return {
        "claimCertificateId": CLAIM_CERTIFICATE_ID,
        "certificateId": certificate_id(certificate),
        "certificatePem": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
        "templateArn": TEMPLATE_ARN,
        "clientId": client_id,
        "parameters": valid_parameters() if parameters is None else parameters,
    }


@dataclass
class FakeLambdaContext:
    """The attributes of the Lambda context object that Powertools reads."""

    function_name: str = "provisioning-hook"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:provisioning-hook"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


def output_lines(captured: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.readouterr().out.splitlines() if line.startswith("{")]


def decision_logs(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "decision" in line]


# --- a stack on moto for fleetctl ----------------------------------------------------------------------


@dataclass
class Fleet:
    """A deployed stack on moto: the registry, the claim certificate and policy, and its outputs file."""

    dynamodb: Any
    iot: Any
    claim_certificate_id: str
    outputs: Path
    tmp_path: Path
    template_arn: str = TEMPLATE_ARN
    """The provisioning template of the region of :attr:`iot`: where :meth:`provision` records the device."""

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, ["--outputs", str(self.outputs), *args], input=input)

    def run_json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == ExitCode.OK, (result.output, result.stderr, repr(result.exception))
        return json.loads(result.stdout)

    def find_item(self, serial: str) -> dict[str, str] | None:
        return OperatorRecords(self.dynamodb, TABLE_NAME).get(serial)

    def item(self, serial: str) -> dict[str, str]:
        item = self.find_item(serial)
        assert item is not None, f"no registry item for {serial}"
        return item

    def registry(self) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """Device items by serial and certificate bindings (certificate -> serial)."""
        return registry_contents(self.dynamodb)

    def item_count(self) -> int:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAME, Select="COUNT")
        return sum(page["Count"] for page in pages)

    def manifest(self, *lines: str, header: str = HEADER) -> Path:
        path = self.tmp_path / "manifest.csv"
        path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        return path

    def provision(
        self,
        serial: str,
        device_type: str = "temperature-sensor",
        claim: str | None = None,
        certificate_pem: str | None = None,
    ) -> str:
        """What the hook, the template and the activation function do for a device; returns its certificate id.
        Its certificate is made by moto, as AWS IoT makes one (no expiry recorded: the activation function
        records none), or is ``certificate_pem``, standing for a certificate with an expiry of its own (a
        stack-own CA's), recorded as its issuer would record it."""
        parameters = valid_parameters(SerialNumber=serial, DeviceType=device_type, FirmwareVersion="2.1.0")
        request = validate_request(parameters, parse_rules(RULES))
        expires = None
        if certificate_pem is None:
            certificate = self.iot.create_keys_and_certificate(setAsActive=True)
        else:
            certificate = self.iot.register_certificate_without_ca(
                certificatePem=certificate_pem, status="ACTIVE"
            )
            expires = x509.load_pem_x509_certificate(certificate_pem.encode()).not_valid_after_utc
        registry = OperatorRecords(self.dynamodb, TABLE_NAME)
        provenance = Provenance(
            certificate["certificateId"], claim or self.claim_certificate_id, self.template_arn, serial
        )
        registry.approve(request, provenance, require_preregistration=False)
        name = thing_name(BASE, serial)
        self.iot.create_thing(thingName=name, attributePayload={"attributes": {"DeviceType": device_type}})
        self.iot.attach_thing_principal(thingName=name, principal=certificate["certificateArn"])
        policy = device_type_resource_name(BASE, device_type)
        if policy not in {each["policyName"] for each in self.iot.list_policies()["policies"]}:
            self.iot.create_policy(policyName=policy, policyDocument="{}")
            self.iot.create_thing_group(thingGroupName=policy)
        self.iot.attach_policy(policyName=policy, target=certificate["certificateArn"])
        self.iot.add_thing_to_thing_group(thingGroupName=policy, thingName=name)
        assert registry.activate(serial, name) is None
        if expires is not None:
            self.dynamodb.update_item(
                TableName=TABLE_NAME,
                Key={Attr.SERIAL_NUMBER: {"S": serial}},
                UpdateExpression="SET #n = :n",
                ExpressionAttributeNames={"#n": Attr.CERTIFICATE_NOT_AFTER},
                ExpressionAttributeValues={":n": {"S": timestamp(expires)}},
            )
        return str(certificate["certificateId"])

    def certificate(self, certificate_id: str) -> dict[str, Any]:
        return dict(self.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"])

    def policies(self, certificate_id: str) -> list[str]:
        arn = self.certificate(certificate_id)["certificateArn"]
        return [each["policyName"] for each in self.iot.list_attached_policies(target=arn)["policies"]]

    def thing_principals(self, serial: str) -> list[str]:
        return list(self.iot.list_thing_principals(thingName=thing_name(BASE, serial))["principals"])


def before_every_call(monkeypatch: pytest.MonkeyPatch, handler: Callable[..., Any]) -> None:
    """Run ``handler(model=<operation model>, ...)`` before each AWS request of the clients created from
    now on: fleetctl makes its clients from boto3's default session, the test's own clients are older."""
    session = boto3.Session()
    session.events.register("before-call", handler)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)


def fail_once(
    monkeypatch: pytest.MonkeyPatch, operation: str, code: str = "ServiceUnavailable", *, times: int = 1
) -> None:
    """Make fleetctl's next call of ``operation`` fail as AWS would: an HTTP 400 error response, which the
    client raises as its modelled exception for ``code`` (``client.exceptions.<code>``) when it has one.
    With ``times``, that many attempts fail (a client retries a throttled call by itself)."""
    failures = [{"Error": {"Code": code, "Message": "injected"}} for _ in range(times)]

    def handler(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name == operation and failures:
            return AWSResponse(f"https://injected/{operation}", 400, HTTPHeaders(), None), failures.pop()
        return None

    before_every_call(monkeypatch, handler)


@contextmanager
def one_moto_request_at_a_time() -> Iterator[None]:
    """Let moto answer one request at a time while fleetctl sends several from its worker threads. AWS
    serves requests in parallel; moto's backends are not thread-safe (its IoT backend iterates the policy
    attachments a concurrent ``DetachPolicy`` deletes from: "OrderedDict mutated during iteration")."""
    original = BotocoreStubber.process_request
    lock = threading.Lock()

    def one_at_a_time(stubber: BotocoreStubber, request: Any) -> Any:
        with lock:
            return original(stubber, request)

    BotocoreStubber.process_request = one_at_a_time  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]


def add_claim_generations(fleet: Fleet) -> str:
    """Give the fleet's stack outputs ``claimCertificateIds``: generation ``2025-a`` is the fleet's claim
    certificate, ``2026-b`` a second one, whose id is returned."""
    second = str(fleet.iot.create_keys_and_certificate(setAsActive=True)["certificateId"])
    outputs = json.loads(fleet.outputs.read_text(encoding="utf-8"))
    outputs["claimCertificateIds"] = {"2025-a": fleet.claim_certificate_id, "2026-b": second}
    fleet.outputs.write_text(json.dumps(outputs), encoding="utf-8")
    return second


def serials(count: int, start: int = 1) -> list[str]:
    return [f"TS-{number:06d}" for number in range(start, start + count)]


def rows(*serial_numbers: str, location: str = "Line-1") -> list[str]:
    return [f"{serial},temperature-sensor,AcmeIoT,v1.4.2,{location}" for serial in serial_numbers]


def rules_entry(**restrictions: Any) -> dict[str, Any]:
    """A device type's entry in the hook's rules file: no restriction but those given."""
    return {
        "serialPattern": None,
        "manufacturers": None,
        "minFirmwareVersion": None,
        "retired": False,
        "keyBinding": False,
        "zeroTouch": None,
    } | restrictions


# --- certificates over a device's life: the rotation and retirement functions ------------------------------


def certificate_signing_request(common_name: str = "device", key: DeviceKey | None = None) -> str:
    """A PEM CSR of ``key`` (a new P-256 key by default), as a device makes one to rotate its certificate;
    signed with SHA-256, or by EdDSA's own digest."""
    key = key or device_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, digest)
    return request.public_bytes(serialization.Encoding.PEM).decode()


# --- device keys (key binding) -----------------------------------------------------------------------------

DeviceKey = CertificateIssuerPrivateKeyTypes
"""Any key a certificate or a CSR can carry, those AWS IoT refuses included (tests/unit/test_key_algorithms.py)."""
_ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())
"""Signs the tests' device certificates, as AWS IoT's CA signs a device's: only the subject key matters."""


def device_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key, as a secure element makes one at the factory."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_pem(key: DeviceKey) -> str:
    """The key's public half as a factory exports it: a PEM SubjectPublicKeyInfo."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_fingerprint(key: DeviceKey) -> str:
    """The lowercase hex SHA-256 of the key's DER SubjectPublicKeyInfo, computed here independently."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def device_certificate(key: DeviceKey, common_name: str = "device") -> str:
    """A PEM certificate of ``key``, as AWS IoT issues one for a device's CSR (valid a year)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(_ISSUER_KEY, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def element_certificate(element: SecureElement) -> str:
    """The certificate AWS IoT issues for the CSR a secure element signs: the element's key, AWS's issuer."""
    key = serialization.load_pem_private_key(element.key_and_csr("device").private_key_pem.encode(), None)
    return device_certificate(key)  # type: ignore[arg-type]


def configure_certificate_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rotation and retirement functions' environment for the stack of :class:`Fleet`, and a cold
    start of both (:func:`hook.runtime.reset`)."""
    monkeypatch.setenv(REGISTRY_TABLE_ENV, TABLE_NAME)
    monkeypatch.setenv(STACK_BASE_NAME_ENV, BASE)
    monkeypatch.delenv(IOT_DATA_ENDPOINT_ENV, raising=False)
    runtime.reset()


class RegistryStream:
    """The registry table's stream (``NEW_AND_OLD_IMAGES``) on moto, read as Lambda delivers it to the
    retirement function: ``event()`` is the batch of every change since the previous call."""

    def __init__(self, dynamodb: Any) -> None:
        described = dynamodb.update_table(
            TableName=TABLE_NAME,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        self.arn = described["TableDescription"]["LatestStreamArn"]
        # botocore addresses DynamoDB Streams by account (<account>.streams-ddb.<region>); moto serves the
        # regional endpoint only.
        self._streams = boto3.client(
            "dynamodbstreams",
            region_name=REGION,
            endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com",
        )
        self._last: str | None = None

    def event(self) -> dict[str, Any]:
        """A DynamoDB event source mapping's event: the records after the last one read, with
        ``eventSourceARN`` and the creation time in epoch seconds (``GetRecords`` gives a timestamp).

        Each read takes a new iterator: moto rolls a cancelled transaction back by restoring a copy of
        the table, stream included, which an older iterator no longer sees."""
        [shard] = self._streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        position = (
            {"ShardIteratorType": "TRIM_HORIZON"}
            if self._last is None
            else {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._last}
        )
        iterator = self._streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard["ShardId"], **position)
        page = self._streams.get_records(ShardIterator=iterator["ShardIterator"])
        records = []
        for record in page["Records"]:
            change = dict(record["dynamodb"])
            change["ApproximateCreationDateTime"] = int(change["ApproximateCreationDateTime"].timestamp())
            records.append({**record, "dynamodb": change, "eventSourceARN": self.arn})
            self._last = change["SequenceNumber"]
        return {"Records": records}


def metric_counts(lines: list[dict[str, Any]], metric: str) -> list[tuple[dict[str, str], float]]:
    """Every EMF document among ``lines`` (:func:`output_lines`) that counts ``metric``: its dimensions
    (names and values) and the total it counts."""
    counted = []
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            if metric in {each["Name"] for each in directive["Metrics"]}:
                [names] = directive["Dimensions"]
                values = line[metric] if isinstance(line[metric], list) else [line[metric]]
                counted.append(({name: line[name] for name in names}, float(sum(values))))
    return counted


class KeysForMoto:
    """RSA keys for moto's IoT backend, which makes a 2048-bit key (about 0.1 s) for every certificate it
    issues. Each key is made once per session; :meth:`reset` at each test hands them out again from the
    first, so the certificates of one test still have keys of their own."""

    def __init__(self) -> None:
        self._keys: list[rsa.RSAPrivateKey] = []
        self._handed_out = 0
        self._lock = threading.Lock()

    def generate_private_key(
        self, public_exponent: int, key_size: int, backend: Any = None
    ) -> rsa.RSAPrivateKey:
        """``rsa.generate_private_key`` as moto calls it: exponent 65537, 2048 bits."""
        if (public_exponent, key_size) != (65537, 2048):
            return rsa.generate_private_key(public_exponent, key_size)
        with self._lock:
            if self._handed_out == len(self._keys):
                self._keys.append(rsa.generate_private_key(public_exponent, key_size))
            self._handed_out += 1
            return self._keys[self._handed_out - 1]

    def reset(self) -> None:
        self._handed_out = 0
