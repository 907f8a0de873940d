"""Answer fleet provisioning's ``CreateCertificateFromCsr`` over MQTT, which ministack 1.5.33 does not.

Run by the emulator's own interpreter (``local/emulator/ministack_boot.py`` applies it before ministack
starts), never imported by the project. ministack acknowledges a publish on
``$aws/certificates/create-from-csr/json`` and never answers it. The shim answers as the AWS IoT developer
guide's "Device provisioning MQTT API" describes: on ``.../accepted`` ``certificateId``, ``certificatePem``
and ``certificateOwnershipToken``; on ``.../rejected`` ``statusCode``, ``errorCode`` and ``errorMessage``. It
issues the certificate with ministack's own CSR signing (the one its HTTP ``CreateCertificateFromCsr`` uses:
the CSR's subject and key, RSA of 2048 bits or more, EC P-256/384/521), stores it ``PENDING_ACTIVATION`` and
records an ownership token the way ministack's ``CreateKeysAndCertificate`` does, so ministack's
``RegisterThing`` takes it.

Two functions of ``ministack.services.iot`` are wrapped, both looked up by name when a message arrives:
``_parse_fleet_provisioning_topic`` also recognises the topic (which also puts it under the broker's rule
that only a client with a certificate may publish fleet provisioning requests), and
``_fleet_provisioning_reply`` answers it; every other topic goes to ministack as before. The error code of
a bad CSR (``InvalidCsr``) is the shim's choice: AWS documents the fields of a rejection, not its codes.

``MINISTACK_CSR_SHIM=0`` leaves ministack as it is (``tests/e2e/test_emulator_csr_gap.py`` uses that to
tell when a ministack release answers the topic itself, and the shim can go).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Mapping
from typing import Any, Final

ENVIRONMENT_VARIABLE: Final = "MINISTACK_CSR_SHIM"
"""``0`` switches the shim off; anything else, or unset, leaves it on."""
TOPIC: Final = "$aws/certificates/create-from-csr/json"
OPERATION: Final = "create-from-csr"
"""What the wrapped topic parser returns for :data:`TOPIC`; ministack's own are ``create`` and
``provision``."""
BAD_CSR: Final = ("InvalidCsr", "CSR violates constraints")
"""Error code and message of a CSR that does not parse or verify, or whose key AWS IoT refuses; the message
is the one ministack's HTTP ``CreateCertificateFromCsr`` gives."""


def enabled(environment: Mapping[str, str] = os.environ) -> bool:
    """Whether the shim is to be applied: unless ``MINISTACK_CSR_SHIM=0``."""
    return environment.get(ENVIRONMENT_VARIABLE, "1").strip() != "0"


def install(iot: Any) -> None:
    """Wrap ``iot`` (``ministack.services.iot``) so that it answers :data:`TOPIC`."""
    parse_topic = iot._parse_fleet_provisioning_topic
    reply = iot._fleet_provisioning_reply

    def parse_fleet_provisioning_topic(topic: str) -> tuple[str, str | None] | None:
        return (OPERATION, None) if topic == TOPIC else parse_topic(topic)

    async def fleet_provisioning_reply(  # noqa: PLR0917  ministack calls it with these six
        account_id: str,
        region: str,
        operation: str,
        template_name: str | None,
        payload: bytes,
        connection: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        if operation == OPERATION:
            return await create_certificate_from_csr(iot, account_id, region, payload)
        result: tuple[str, dict[str, Any]] = await reply(
            account_id, region, operation, template_name, payload, connection
        )
        return result

    iot._parse_fleet_provisioning_topic = parse_fleet_provisioning_topic
    iot._fleet_provisioning_reply = fleet_provisioning_reply


async def create_certificate_from_csr(
    iot: Any, account_id: str, region: str, payload: bytes
) -> tuple[str, dict[str, Any]]:
    """``("accepted", ...)`` with a ``PENDING_ACTIVATION`` certificate for the request's CSR and its
    ownership token, or ``("rejected", ...)``; a rejected request stores nothing."""
    try:
        request = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        request = None
    csr = request.get("certificateSigningRequest") if isinstance(request, dict) else None
    if not isinstance(request, dict):
        return _rejected("InvalidPayload", "Message cannot be parsed")
    if not isinstance(csr, str) or not csr:
        return _rejected("InvalidPayload", "certificateSigningRequest is required")

    def issue() -> str:
        ca_pem, ca_key_pem = iot._ensure_ca()
        certificate_pem: str = iot.sign_certificate_request(ca_pem, ca_key_pem, csr)
        return certificate_pem

    try:
        certificate_pem = await asyncio.to_thread(issue)  # signing, off the broker's loop
    except ValueError:
        return _rejected(*BAD_CSR)
    except RuntimeError as error:
        return _rejected("InternalFailure", str(error), 500)
    certificate_id = iot.get_certificate_id(certificate_pem)
    token = secrets.token_urlsafe(48)
    with iot.request_scope(account_id, region):
        iot._certificates[certificate_id] = iot._certificate_record(
            certificate_id, certificate_pem, "PENDING_ACTIVATION"
        )
        iot._drop_expired(iot._ownership_tokens)
        iot._ownership_tokens[token] = {
            "certificateId": certificate_id,
            "expiration": time.time() + iot._OWNERSHIP_TOKEN_SECONDS,
        }
    return "accepted", {
        "certificateId": certificate_id,
        "certificatePem": certificate_pem,
        "certificateOwnershipToken": token,
    }


def _rejected(code: str, message: str, status: int = 400) -> tuple[str, dict[str, Any]]:
    return "rejected", {"statusCode": status, "errorCode": code, "errorMessage": message}
