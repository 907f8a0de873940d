"""Key algorithms: exactly the keys CreateCertificateFromCsr takes (RSA of at least 2048 bits, EC on NIST
P-256, P-384 or P-521) are accepted, and every other is refused naming the field and the accepted forms,
through each of the three places a key is checked: a manifest's ``public_key`` cell, the hook's key binding
of a provisioned certificate, and the rotation function's check of a bound device's CSR."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from fleetctl.manifest import HEADER, checked_manifest
from fleetctl.operator_transitions import OperatorRecords
from hook.public_keys import ACCEPTED_KEYS, certificate_key_sha256, csr_key_sha256, registered_key_sha256
from hook.registry_items import timestamp
from hook.rules import parse_rules, validate_request
from tests.support import (
    RULES,
    TABLE_NAME,
    DeviceKey,
    Fleet,
    RegistryStream,
    certificate_signing_request,
    decision_logs,
    device_certificate,
    key_fingerprint,
    output_lines,
    public_key_pem,
    valid_parameters,
)
from tests.unit.test_certificate_rotation import (
    JOB_1,
    SERIAL,
    THING,
    csr_event,
    open_rotation_jobs,
    published,
    retire,
)
from tests.unit.test_certificate_rotation import invoke as rotate
from tests.unit.test_pre_provisioning_key_binding import BINDING_RULES, event_with

pytestmark = [
    pytest.mark.filterwarnings("ignore:DSA is deprecated"),  # a refused kind
    pytest.mark.filterwarnings("ignore:No application metrics"),  # the hook counts nothing on approval
]


@dataclass(frozen=True)
class Kind:
    """A kind of key: how to make one, and ``None`` if accepted, else what the refusal says it is."""

    name: str
    make: Callable[[], DeviceKey]
    refused_as: str | None = None


KINDS = [
    Kind("EC P-256", lambda: ec.generate_private_key(ec.SECP256R1())),
    Kind("EC P-384", lambda: ec.generate_private_key(ec.SECP384R1())),
    Kind("EC P-521", lambda: ec.generate_private_key(ec.SECP521R1())),
    Kind("RSA 2048", lambda: rsa.generate_private_key(65537, 2048)),
    Kind("RSA 3072", lambda: rsa.generate_private_key(65537, 3072)),
    Kind("RSA 4096", lambda: rsa.generate_private_key(65537, 4096)),
    Kind("EC secp256k1", lambda: ec.generate_private_key(ec.SECP256K1()), "EC on curve secp256k1"),
    Kind("EC P-224", lambda: ec.generate_private_key(ec.SECP224R1()), "EC on curve secp224r1"),
    Kind(
        "EC brainpoolP256r1",
        lambda: ec.generate_private_key(ec.BrainpoolP256R1()),
        "EC on curve brainpoolP256r1",
    ),
    Kind("RSA 1024", lambda: rsa.generate_private_key(65537, 1024), "RSA of 1024 bits"),  # noqa: S505 (refused)
    Kind("RSA 2047", lambda: rsa.generate_private_key(65537, 2047), "RSA of 2047 bits"),  # noqa: S505
    Kind("Ed25519", ed25519.Ed25519PrivateKey.generate, "of type Ed25519"),
    Kind("Ed448", ed448.Ed448PrivateKey.generate, "of type Ed448"),
    Kind("DSA 2048", lambda: dsa.generate_private_key(2048), "of type DSA"),
]
"""The kinds tried at every entry point: each accepted one, and refused kinds a device or a factory could
plausibly have (a Bitcoin-style curve, a weaker NIST curve, a non-NIST curve, short RSA, EdDSA, DSA)."""
ACCEPTED = [kind for kind in KINDS if kind.refused_as is None]
by_kind = pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)


@cache
def key_of(kind: Kind) -> DeviceKey:
    """One key of ``kind`` for the whole module (RSA 4096 takes a while to make)."""
    return kind.make()


@by_kind
def test_a_key_its_certificate_and_its_csr_are_accepted_or_refused_alike(kind: Kind) -> None:
    key = key_of(kind)
    checks: list[Callable[[], str]] = [
        lambda: registered_key_sha256(public_key_pem(key)),
        lambda: certificate_key_sha256(device_certificate(key)),
        lambda: csr_key_sha256(certificate_signing_request(key=key)),
    ]
    for check in checks:
        if kind.refused_as is None:
            assert check() == key_fingerprint(key)
        else:
            with pytest.raises(ValueError, match=kind.refused_as) as refused:
                check()
            assert f"expected {ACCEPTED_KEYS}" in str(refused.value)


def test_a_manifest_binds_every_accepted_kind_and_refuses_every_other_by_row_and_column(
    tmp_path: Path,
) -> None:
    serials = {kind.name: f"TS-{number:06d}" for number, kind in enumerate(KINDS, start=1)}
    manifest = tmp_path / "manifest.csv"
    rows = [
        f'{serials[kind.name]},temperature-sensor,AcmeIoT,v1.4.2,Line-1,"{public_key_pem(key_of(kind))}"'
        for kind in KINDS
    ]
    manifest.write_text("\n".join([f"{HEADER},public_key", *rows]) + "\n")
    line_of = {  # the header is line 1; a PEM cell spans lines
        text.split(",", 1)[0]: number
        for number, text in enumerate(manifest.read_text().splitlines(), start=1)
        if text.startswith("TS-")
    }

    with checked_manifest(manifest, parse_rules(BINDING_RULES)) as checked:
        bound = {row.request.serial_number: row.public_key_sha256 for row in checked.rows()}
        problems = {problem.line: str(problem) for problem in checked.problems()}

    assert bound == {serials[kind.name]: key_fingerprint(key_of(kind)) for kind in ACCEPTED}
    refused = [kind for kind in KINDS if kind.refused_as is not None]
    assert sorted(problems) == sorted(line_of[serials[kind.name]] for kind in refused)
    for kind in refused:
        line = line_of[serials[kind.name]]
        assert problems[line].startswith(f"row {line}, column public_key: ")
        assert f"{kind.refused_as}; expected {ACCEPTED_KEYS}" in problems[line]


@by_kind
def test_the_hook_binds_a_certificate_of_every_accepted_kind_and_denies_every_other(
    kind: Kind,
    invoke: Callable[[Any], dict[str, Any]],
    configure_hook: Callable[[dict[str, Any]], None],
    dynamodb: Any,
    hook_output: pytest.CaptureFixture[str],
) -> None:
    key = key_of(kind)
    configure_hook(BINDING_RULES)
    request = validate_request(valid_parameters(), parse_rules(BINDING_RULES))
    records = OperatorRecords(dynamodb, TABLE_NAME)
    assert records.preregister(request, timestamp(), key_fingerprint(key)) is None
    hook_output.readouterr()

    answer = invoke(event_with(device_certificate(key)))

    assert answer["allowProvisioning"] is (kind.refused_as is None)
    if kind.refused_as is not None:
        [log] = decision_logs(output_lines(hook_output))
        assert log["reason"] == "CertificateUnreadable"
        assert log["detail"].startswith("certificatePem: ")
        assert kind.refused_as in log["detail"]
        assert f"expected {ACCEPTED_KEYS}" in log["detail"]


@by_kind
def test_a_bound_device_rotates_a_key_of_every_accepted_kind_and_is_refused_any_other(
    kind: Kind, fleet: Fleet, registry: OperatorRecords, stream: RegistryStream
) -> None:
    key = key_of(kind)
    request = validate_request(
        valid_parameters(SerialNumber=SERIAL, FirmwareVersion="2.1.0"), parse_rules(RULES)
    )
    assert registry.preregister(request, timestamp(), key_fingerprint(key)) is None
    current = fleet.provision(SERIAL)
    retire(stream)
    open_rotation_jobs(fleet, JOB_1)

    answer = rotate(csr_event(current, csr=certificate_signing_request(THING, key)))

    if kind.refused_as is None:
        assert answer == {"outcome": "certificate-issued"}
        return
    assert answer == {"outcome": "rejected", "reason": "InvalidCsr"}
    step, message = published()[-1]
    assert (step, message["reason"]) == ("rejected", "InvalidCsr")
    assert message["message"].startswith("csr: ")
    assert kind.refused_as in message["message"]
    assert f"expected {ACCEPTED_KEYS}" in message["message"]
