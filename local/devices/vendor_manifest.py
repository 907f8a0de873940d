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

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

from local.devices.vendor import Authority, Vendor, VendorElement

UNIQUE_ID_HEADER: Final = "uniqueId"
"""The unprotected header member naming the element (not signed: the payload's ``uniqueId`` is)."""
MANIFEST_REGISTRY: Final = JWSRegistry(
    header_registry={UNIQUE_ID_HEADER: HeaderParameter("the element's unique id", "str", required=True)},
    algorithms=["ES256"],
)
"""joserfc's JWS rules for a manifest entry: ES256 only, and the ``uniqueId`` header it would otherwise
refuse as unknown."""
DEFAULT_PART_NUMBER: Final = "ATECC608B-TNGTLS"


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def signer_ids(certificate: x509.Certificate) -> dict[str, str]:
    """The protected header members naming a manifest-signer certificate: ``kid`` (its subject key
    identifier) and ``x5t#S256`` (its SHA-256 thumbprint), both base64url."""
    identifier = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    return {"kid": b64url(identifier), "x5t#S256": b64url(certificate.fingerprint(hashes.SHA256()))}


def element_record(made: VendorElement, part_number: str = DEFAULT_PART_NUMBER) -> dict[str, Any]:
    """An element's record as the vendor signs it: slot 0's key as a JWK with its device certificate and
    signer in ``x5c``."""
    public_key = made.device_certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ValueError("a manifest's slot 0 key is EC P-256")
    numbers = public_key.public_numbers()
    chain = [made.device_certificate, *made.signers]
    return {
        "version": 1,
        "model": "ATECC608B",
        "partNumber": part_number,
        "manufacturer": {"organizationName": made.device_certificate.issuer.rfc4514_string()},
        "provisioningTimestamp": made.device_certificate.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
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
    member = {"protected": header, "header": {UNIQUE_ID_HEADER: str(record["uniqueId"])}}
    signed = jws.serialize_json(
        member, json.dumps(record), ECKey.import_key(signer.key), registry=MANIFEST_REGISTRY
    )
    return dict(signed)


def signed_manifest(vendor: Vendor, elements: Iterable[VendorElement]) -> list[dict[str, Any]]:
    """The vendor's signed manifest of ``elements``, signed by its manifest signer."""
    return [signed_entry(vendor.manifest_signer, element_record(made)) for made in elements]


def write_signed_manifest(path: Path, entries: list[dict[str, Any]]) -> None:
    """Write ``entries`` as a manifest file."""
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")
