"""The signed manifest of a batch of a simulated vendor's secure elements, in Microchip's published format
(Trust&GO / TrustFLEX): a JSON array with one JWS per element in flattened JSON serialization (RFC 7515
7.2.2). Its protected header holds ``alg`` ES256, ``kid`` (base64url of the manifest-signer certificate's
subject key identifier) and ``x5t#S256`` (base64url of that certificate's SHA-256 thumbprint), its
unprotected header the element's ``uniqueId``, and its payload the element's record: ``partNumber``,
``uniqueId``, ``provisioningTimestamp`` and ``publicKeySet.keys[]`` with slot 0's EC P-256 JWK and ``x5c``
(device certificate, then its signer, base64 DER).

Format sources: Espressif's ``esp-cryptoauthlib`` ``esp_cryptoauth_utility/helper_scripts/manifest.py``
(Microchip's manifest code: ``create_signed_entry`` and the Trust&GO record), and AWS's Thingpress
``src/provider_microchip/provider_microchip/manifest_handler.py`` (how ``kid`` and ``x5t#S256`` are checked).
Only tests and the local sandbox use this.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.jws import HeaderDict

from fleetctl.signed_manifest import MANIFEST_REGISTRY, UNIQUE_ID_HEADER, b64url, signer_ids
from local.devices.vendor import Authority, Vendor, VendorElement

DEFAULT_PART_NUMBER: Final = "ATECC608B-TNGTLS"


def element_record(made: VendorElement, part_number: str = DEFAULT_PART_NUMBER) -> dict[str, Any]:
    """An element's record as the vendor signs it: slot 0's key as a JWK with its device certificate and
    signer in ``x5c``."""
    public_key = made.device_certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ValueError("a manifest's slot 0 key is EC P-256")
    numbers = public_key.public_numbers()
    organization = made.device_certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    chain = [made.device_certificate, *made.signers]
    return {
        "version": 1,
        "model": "ATECC608B",
        "partNumber": part_number,
        "manufacturer": {"organizationName": str(organization[0].value) if organization else ""},
        "provisioningTimestamp": made.device_certificate.not_valid_before_utc.strftime(
            "%Y-%m-%dT%H:%M:%S.000Z"
        ),
        "uniqueId": made.unique_id,
        "publicKeySet": {
            "keys": [
                {
                    "kid": "0",
                    "kty": "EC",
                    "crv": "P-256",
                    "x": b64url(numbers.x.to_bytes(32, "big")),
                    "y": b64url(numbers.y.to_bytes(32, "big")),
                    "x5c": [
                        base64.b64encode(each.public_bytes(serialization.Encoding.DER)).decode("ascii")
                        for each in chain
                    ],
                }
            ]
        },
    }


def signed_entry(
    signer: Authority, record: Mapping[str, Any], *, protected: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``record`` signed by ``signer`` as one manifest entry; ``protected`` replaces header members (a
    test's wrong ``kid``)."""
    header = {"typ": "JWT", "alg": "ES256", **signer_ids(signer.certificate), **(protected or {})}
    member: HeaderDict = {"protected": header, "header": {UNIQUE_ID_HEADER: str(record["uniqueId"])}}
    signed = jws.serialize_json(
        member, json.dumps(record), ECKey.import_key(_pem(signer.key)), registry=MANIFEST_REGISTRY
    )
    return dict(signed)


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as PEM: what joserfc 1.0 imports."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def signed_manifest(vendor: Vendor, elements: Iterable[VendorElement]) -> list[dict[str, Any]]:
    """The vendor's signed manifest of ``elements``, signed by its manifest signer."""
    return [signed_entry(vendor.manifest_signer, element_record(made)) for made in elements]


def write_signed_manifest(path: Path, entries: list[dict[str, Any]]) -> None:
    """Write ``entries`` as a manifest file."""
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")
