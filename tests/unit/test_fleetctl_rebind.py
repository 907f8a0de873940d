"""fleetctl rebind on moto: an operator moves a serial to another device key, with a reason, and the hook
then admits only that key; every refusal names what was wrong."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto.core.models import DEFAULT_ACCOUNT_ID

from fleetctl.errors import ExitCode
from fleetctl.operator_transitions import OperatorRecords
from hook.contract import Attr, DeviceStatus
from hook.registry_decisions import Provenance
from hook.rules import parse_rules, validate_request
from tests.support import (
    CLAIM_CERTIFICATE_ID,
    RULES,
    TABLE_NAME,
    TEMPLATE_ARN,
    Fleet,
    certificate_id,
    decision_logs,
    device_certificate,
    device_key,
    hook_event,
    key_fingerprint,
    output_lines,
    public_key_pem,
    valid_parameters,
)

pytestmark = pytest.mark.usefixtures("no_outputs_from_the_environment")

SERIAL = "TS-000123"
MOTO_CALLER = f"arn:aws:sts::{DEFAULT_ACCOUNT_ID}:user/moto"
FACTORY_KEY = device_key()
REPLACEMENT = device_key()
BINDING_RULES: dict[str, Any] = RULES | {
    "deviceTypes": RULES["deviceTypes"]
    | {"temperature-sensor": RULES["deviceTypes"]["temperature-sensor"] | {"keyBinding": True}}
}
REBIND_ATTRIBUTES = {Attr.KEY_REBOUND_AT, Attr.KEY_REBOUND_BY, Attr.KEY_REBOUND_REASON}


def records(fleet: Fleet) -> OperatorRecords:
    return OperatorRecords(fleet.dynamodb, TABLE_NAME)


def preregister(fleet: Fleet, serial: str = SERIAL, key: Any = FACTORY_KEY) -> None:
    """The serial as a factory manifest with a ``public_key`` column registers it."""
    request = validate_request(valid_parameters(SerialNumber=serial), parse_rules(RULES))
    fingerprint = None if key is None else key_fingerprint(key)
    assert records(fleet).preregister(request, "2026-01-01T00:00:00.000+00:00", fingerprint) is None


def der_base64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_a_preregistered_serial_moves_to_a_key_read_from_a_file_and_records_who_and_why(
    fleet: Fleet, tmp_path: Path
) -> None:
    preregister(fleet)
    key_file = tmp_path / "replacement.pem"
    key_file.write_text(public_key_pem(REPLACEMENT), encoding="utf-8")

    done = fleet.run_json(
        "rebind", SERIAL, "--public-key", f"@{key_file}", "--reason", "  wrong key in the manifest  "
    )

    assert done["changed"] is True
    assert (done["publicKeySha256"], done["previousPublicKeySha256"]) == (
        key_fingerprint(REPLACEMENT),
        key_fingerprint(FACTORY_KEY),
    )
    assert (done["reboundBy"], done["reason"], done["status"]) == (
        MOTO_CALLER,
        "wrong key in the manifest",
        DeviceStatus.PREREGISTERED,
    )
    item = fleet.item(SERIAL)
    assert item[Attr.PUBLIC_KEY_SHA256] == key_fingerprint(REPLACEMENT)
    assert item[Attr.KEY_REBOUND_AT] == done["reboundAt"]
    preregister(fleet, "TS-000456", FACTORY_KEY)  # the previous key is free again


def test_an_active_device_is_rebound_and_the_hook_then_admits_only_the_new_key(
    fleet: Fleet,
    configure_hook: Callable[[dict[str, Any]], None],
    invoke: Callable[[Any], dict[str, Any]],
    hook_output: pytest.CaptureFixture[str],
) -> None:
    preregister(fleet)
    configure_hook(BINDING_RULES)
    genuine = hook_event(valid_parameters(FirmwareVersion="2.1.0"), certificate="factory")
    genuine["certificatePem"] = device_certificate(FACTORY_KEY)
    assert invoke(genuine)["allowProvisioning"] is True
    assert records(fleet).activate(SERIAL, f"fleet-test_{SERIAL}") is None

    result = fleet.run(
        "rebind", SERIAL, "--public-key", der_base64(REPLACEMENT), "--reason", "element swapped"
    )

    assert result.exit_code == ExitCode.OK, result.output
    text = " ".join(result.stdout.split())
    assert f"{SERIAL} (ACTIVE) is bound to key sha256:{key_fingerprint(REPLACEMENT)}" in text
    assert f"replacing sha256:{key_fingerprint(FACTORY_KEY)}" in text
    assert f"keeps certificate {certificate_id('factory')}" in text
    assert f"fleetctl reprovision {SERIAL}" in text

    fleet.run_json("reprovision", SERIAL, "--reason", "element swapped")
    hook_output.readouterr()
    for key, seed in ((FACTORY_KEY, "old-element"), (device_key(), "attacker")):
        attempt = hook_event(valid_parameters(FirmwareVersion="2.1.0"), certificate=seed)
        attempt["certificatePem"] = device_certificate(key)
        assert invoke(attempt)["allowProvisioning"] is False
    assert [log["reason"] for log in decision_logs(output_lines(hook_output))] == [
        "PublicKeyMismatch",
        "PublicKeyMismatch",
    ]
    recertified = hook_event(valid_parameters(FirmwareVersion="2.1.0"), certificate="new-element")
    recertified["certificatePem"] = device_certificate(REPLACEMENT)
    assert invoke(recertified)["allowProvisioning"] is True
    assert fleet.item(SERIAL)[Attr.CERTIFICATE_ID] == certificate_id("new-element")


def test_an_active_device_without_a_key_gets_one(fleet: Fleet) -> None:
    fleet.provision(SERIAL)

    done = fleet.run_json(
        "rebind",
        SERIAL,
        "--public-key",
        f"sha256:{key_fingerprint(REPLACEMENT)}",
        "--reason",
        "keys now exported",
    )

    assert (done["changed"], done["previousPublicKeySha256"]) == (True, None)
    assert fleet.item(SERIAL)[Attr.PUBLIC_KEY_SHA256] == key_fingerprint(REPLACEMENT)


def test_the_key_a_serial_already_has_changes_nothing(fleet: Fleet) -> None:
    preregister(fleet)
    before = fleet.item(SERIAL)

    result = fleet.run("rebind", SERIAL, "--public-key", public_key_pem(FACTORY_KEY), "--reason", "again")

    assert result.exit_code == ExitCode.OK, result.output
    assert "already bound to key" in result.stdout
    assert fleet.item(SERIAL) == before


def test_a_key_of_another_serial_is_refused_naming_it(fleet: Fleet) -> None:
    preregister(fleet)
    preregister(fleet, "TS-000456", REPLACEMENT)
    before = fleet.registry()

    result = fleet.run("rebind", SERIAL, "--public-key", public_key_pem(REPLACEMENT), "--reason", "typo")

    assert result.exit_code == ExitCode.USAGE
    assert "--public-key" in result.stderr
    assert "registered for serial 'TS-000456'" in result.stderr
    assert fleet.registry() == before


@pytest.mark.parametrize("state", [DeviceStatus.PENDING, DeviceStatus.REVOKED, DeviceStatus.DECOMMISSIONED])
def test_a_serial_in_another_state_is_refused_with_its_state(fleet: Fleet, state: DeviceStatus) -> None:
    preregister(fleet)
    request = validate_request(valid_parameters(), parse_rules(RULES))
    provenance = Provenance(certificate_id("device-1"), CLAIM_CERTIFICATE_ID, TEMPLATE_ARN, "client-1")
    records(fleet).approve(request, provenance, require_preregistration=False)
    if state is DeviceStatus.REVOKED:
        records(fleet).revoke(SERIAL, "stolen")
    elif state is DeviceStatus.DECOMMISSIONED:
        records(fleet).decommission(SERIAL)
    before = fleet.item(SERIAL)

    result = fleet.run("rebind", SERIAL, "--public-key", public_key_pem(REPLACEMENT), "--reason", "why")

    assert result.exit_code == ExitCode.USAGE
    assert f"serial 'TS-000123' is {state}; only a PREREGISTERED or ACTIVE serial's key can move" in (
        " ".join(result.stderr.split())
    )
    assert fleet.item(SERIAL) == before


def test_an_unknown_serial_is_not_found_and_nothing_is_written(fleet: Fleet) -> None:
    result = fleet.run("rebind", "TS-999999", "--public-key", public_key_pem(REPLACEMENT), "--reason", "why")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert "TS-999999" in result.stderr
    assert fleet.item_count() == 0


@pytest.mark.parametrize(
    ("args", "named", "expected"),
    [
        (["--public-key", "not a key!", "--reason", "why"], "--public-key", "expected a PEM public key"),
        (
            ["--public-key", public_key_pem(ec.generate_private_key(ec.SECP256K1())), "--reason", "why"],
            "--public-key",
            "EC on curve secp256k1; expected EC on NIST P-256, P-384 or P-521",
        ),
        (
            [
                "--public-key",
                FACTORY_KEY.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "--reason",
                "why",
            ],
            "--public-key",
            "must never leave the device",
        ),
        (["--public-key", "@/nonexistent/key.pem", "--reason", "why"], "--public-key", "cannot read"),
        (["--reason", "why"], "--public-key", ""),
        (["--public-key", public_key_pem(REPLACEMENT), "--reason", "   "], "--reason", "blank"),
        (["--public-key", public_key_pem(REPLACEMENT), "--reason", "x" * 257], "--reason", "at most 256"),
        (["--public-key", public_key_pem(REPLACEMENT)], "--reason", ""),
    ],
    ids=lambda value: str(value)[:30],
)
def test_bad_arguments_are_usage_errors_that_name_the_option(
    fleet: Fleet, args: list[str], named: str, expected: str
) -> None:
    preregister(fleet)
    before = fleet.item(SERIAL)

    result = fleet.run("rebind", SERIAL, *args)

    assert result.exit_code == ExitCode.USAGE
    message = " ".join(result.stderr.replace("│", " ").split())  # Typer's error box wraps the message
    assert named in message
    assert expected in message
    assert "PRIVATE KEY-----" not in result.output
    assert fleet.item(SERIAL) == before
    assert not REBIND_ATTRIBUTES & set(fleet.item(SERIAL))
