"""A chip vendor's signed manifest (Microchip Trust&GO / TrustFLEX format), verified entry by entry before
``fleetctl preregister`` writes anything.

The manifest is a JSON array of JWS in flattened JSON serialization (RFC 7515 7.2.2): protected header
``alg`` ES256, ``kid`` (base64url of the manifest-signer certificate's subject key identifier) and
``x5t#S256`` (base64url of its SHA-256 thumbprint); unprotected header ``uniqueId``; payload the element's
record with ``partNumber``, ``uniqueId``, ``provisioningTimestamp`` and ``publicKeySet.keys[]``, slot 0's EC
P-256 JWK carrying ``x5c`` (device certificate, then its signer). Sources: Espressif's ``esp-cryptoauthlib``
``esp_cryptoauth_utility/helper_scripts/manifest.py`` (Microchip's manifest code) and AWS's Thingpress
``src/provider_microchip/provider_microchip/manifest_handler.py``.

JWS is read by joserfc (maintained by Authlib's author, Authlib's own JOSE successor): flattened JSON with an
unprotected header, ES256 as RFC 7518 3.4's raw ``r || s``, and an allow-list of algorithms and header
members (``MANIFEST_REGISTRY``). The certificates are checked by the hook's own chain checks
(:func:`hook.vendor_chain.verify_to_a_pinned_root`), so an import and a zero-touch provisioning trust the
same things. A manifest is read whole (a vendor's manifest is one batch: a reel of a few thousand elements).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey
from joserfc.jws import FlattenedJSONSerialization, JWSRegistry
from joserfc.registry import HeaderParameter

from fleetctl.errors import UsageProblem
from fleetctl.manifest import ManifestRow
from hook.contract import Attr, Parameter, ProvisioningDenied
from hook.public_keys import key_sha256
from hook.rules import DeviceRequest, RuleSet, validate_request
from hook.vendor_chain import device_key, pinned_roots, thumbprint, unique_id_of, verify_to_a_pinned_root
from hook.vendor_rules import serial_for

UNIQUE_ID_HEADER: Final = "uniqueId"
"""The unprotected header member naming the element; not signed, so it must equal the payload's."""
MANIFEST_REGISTRY: Final = JWSRegistry(
    header_registry={UNIQUE_ID_HEADER: HeaderParameter("the element's unique id", "str", required=True)},
    algorithms=["ES256"],
)
"""joserfc's rules for an entry: ES256 only, and the ``uniqueId`` header it would otherwise refuse."""
OPTIONS: Final[Mapping[str, Parameter]] = {
    "--device-type": Parameter.DEVICE_TYPE,
    "--manufacturer": Parameter.MANUFACTURER,
    "--firmware": Parameter.FIRMWARE_VERSION,
    "--location": Parameter.LOCATION,
}
"""``fleetctl preregister``'s options giving every entry's request its values (the serial is the entry's)."""
ENTRY_MEMBERS: Final = frozenset({"protected", "header", "payload", "signature"})
ENTRY_FORM: Final = "a JWS in flattened JSON serialization (protected, header.uniqueId, payload, signature)"
X5C_MAX_CERTIFICATES: Final = 3
_PART_NUMBER = re.compile(r"[A-Za-z0-9._/-]{1,64}")
_SLOT_0: Final = "0"


class Refusal(StrEnum):
    """Why an entry is refused."""

    UNREADABLE = "unreadable"
    """Not an entry of the format: members, JSON, the slot 0 JWK or ``x5c``."""
    SIGNER_MISMATCH = "signer-mismatch"
    """``kid`` or ``x5t#S256`` name another certificate than the manifest signer given."""
    BAD_SIGNATURE = "bad-signature"
    """The signature does not verify: the entry changed after signing, or another key signed it."""
    UNIQUE_ID_MISMATCH = "unique-id-mismatch"
    """The unprotected ``uniqueId`` or the device certificate's ``CN=sn<id>`` is not the signed one."""
    DEVICE_CHAIN = "device-chain"
    """``x5c`` does not verify to a root pinned for the type (or a certificate in it expired)."""
    KEY_MISMATCH = "key-mismatch"
    """The JWK is not the device certificate's key."""
    SERIAL_RULE = "serial-rule"
    """The serial the type's rule makes of the unique id does not fit the type's ``serialPattern``."""
    DUPLICATE = "duplicate"
    """The unique id or the key is in an earlier entry too."""


@dataclass(frozen=True)
class EntryProblem:
    """Why one entry is refused: its number in the array (from 1), the reason and the detail."""

    line: int
    column: Refusal
    message: str

    def __str__(self) -> str:
        return f"entry {self.line}: {self.column}: {self.message}"


@dataclass(frozen=True)
class VendorTrust:
    """What a type's signed manifests are checked against: its pinned roots and serial rule."""

    roots: tuple[x509.Certificate, ...]
    serial_rule: str

    @classmethod
    def of(cls, outputs: Mapping[str, object], trust_output: str, device_type: str) -> VendorTrust:
        """The type's entry of the ``vendorTrust`` output; :class:`UsageProblem` when it has none."""
        trust = outputs.get(trust_output)
        entry = trust.get(device_type) if isinstance(trust, dict) else None
        if not isinstance(entry, dict):
            known = ", ".join(sorted(trust)) if isinstance(trust, dict) and trust else "none"
            raise UsageProblem(
                f"--device-type {device_type}: no vendor is trusted for it in the stack outputs "
                f"({trust_output}: {known}); a type trusts a vendor with vendor: in its stack config"
            )
        try:
            return cls(pinned_roots(tuple(entry["roots"])), str(entry["serial"]))
        except (KeyError, TypeError, ValueError) as error:
            raise UsageProblem(f"{trust_output}.{device_type}: unreadable ({error})") from None


@dataclass(frozen=True)
class ManifestSigner:
    """The manifest-signer certificate given, verified to a pinned root, and what names it in entries."""

    certificate: x509.Certificate
    key: ECKey
    """Its key: ES256 is ECDSA on P-256 (RFC 7518 3.4)."""
    kid: str
    x5t_s256: str

    @classmethod
    def read(cls, path: Path, trust: VendorTrust, now: datetime.datetime) -> ManifestSigner:
        """The certificate in the PEM file ``path``, once it verifies to a pinned root of the type within
        its validity; :class:`UsageProblem` naming the file and the reason otherwise (an unknown or
        look-alike signer, or an expired one)."""
        try:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
            certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except OSError as error:
            raise UsageProblem(f"--signer {path}: cannot read it: {error.strerror or error}") from None
        except (ValueError, x509.ExtensionNotFound):
            raise UsageProblem(
                f"--signer {path}: expected the vendor's manifest-signer certificate as PEM, with a subject "
                "key identifier (what an entry's kid names)"
            ) from None
        try:
            verify_to_a_pinned_root([certificate], trust.roots, now)
        except ProvisioningDenied as denial:
            raise UsageProblem(
                f"--signer {path}: refused as manifest signer ({denial.reason}): {denial.detail}; nothing "
                "was written"
            ) from None
        public_key = certificate.public_key()
        if not (
            isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1)
        ):
            raise UsageProblem(f"--signer {path}: not an EC P-256 key, so it cannot sign ES256")
        ids = signer_ids(certificate)
        # As PEM: joserfc 1.0 imports no cryptography key object.
        pem = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(certificate, ECKey.import_key(pem), ids["kid"], ids["x5t#S256"])


def signer_ids(certificate: x509.Certificate) -> dict[str, str]:
    """The protected header members naming a manifest-signer certificate: ``kid`` (base64url of its subject
    key identifier) and ``x5t#S256`` (base64url of its SHA-256 thumbprint), as Microchip's manifest code
    writes them and Thingpress checks them."""
    identifier = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    return {"kid": b64url(identifier), "x5t#S256": b64url(certificate.fingerprint(hashes.SHA256()))}


class SignedManifest:
    """A signed manifest verified by :func:`verified_manifest`: its rows, and every refused entry."""

    def __init__(self, path: Path, rows: list[ManifestRow], problems: list[EntryProblem]) -> None:
        self.path = path
        self._rows = rows
        self._problems = problems
        self.valid_rows = len(rows)
        """Entries that verified."""

    @property
    def problem_count(self) -> int:
        """How many entries are refused."""
        return len(self._problems)

    def problems(self) -> Iterator[EntryProblem]:
        """Every refused entry, in manifest order."""
        return iter(self._problems)

    def rows(self) -> Iterator[ManifestRow]:
        """The verified entries as rows to pre-register, in manifest order."""
        return iter(self._rows)


def verified_manifest(
    path: Path,
    *,
    signer: ManifestSigner,
    trust: VendorTrust,
    parameters: Mapping[Parameter, str],
    rules: RuleSet,
    now: datetime.datetime,
) -> SignedManifest:
    """Verify every entry of the manifest at ``path``: ``parameters`` are the requests' device type,
    manufacturer, firmware and location (the serial is each entry's). A file that is no manifest, or a
    parameter the type's rules refuse, raises :class:`UsageProblem`."""
    text = _read(path)
    try:
        entries = json.loads(text)
    except ValueError as error:
        raise UsageProblem(f"{path}: not JSON ({error}); expected a JSON array of {ENTRY_FORM}") from None
    if not isinstance(entries, list) or not entries:
        raise UsageProblem(f"{path}: expected a non-empty JSON array of {ENTRY_FORM}")
    digest = hashlib.sha256(text).hexdigest()
    verifier = _EntryVerifier(signer, trust, parameters, rules, now, digest)
    rows: list[ManifestRow] = []
    problems: list[EntryProblem] = []
    first_unique_id: dict[str, int] = {}
    first_key: dict[str | None, int] = {}
    for number, entry in enumerate(entries, start=1):
        checked = verifier.verify(number, entry)
        if isinstance(checked, ManifestRow):
            unique_id, key = checked.provenance[Attr.UNIQUE_ID], checked.public_key_sha256
            if unique_id in first_unique_id:
                checked = _duplicate(number, f"uniqueId {unique_id}", first_unique_id[unique_id])
            elif key in first_key:
                checked = _duplicate(number, f"public key sha256:{key}", first_key[key])
            else:
                first_unique_id[unique_id], first_key[key] = number, number
                rows.append(checked)
                continue
        problems.append(checked)
    return SignedManifest(path, rows, problems)


def _duplicate(number: int, what: str, earlier: int) -> EntryProblem:
    return EntryProblem(number, Refusal.DUPLICATE, f"{what} is also in entry {earlier}")


@dataclass(frozen=True)
class _EntryVerifier:
    signer: ManifestSigner
    trust: VendorTrust
    parameters: Mapping[Parameter, str]
    rules: RuleSet
    now: datetime.datetime
    digest: str

    def verify(self, number: int, entry: object) -> ManifestRow | EntryProblem:
        """One entry verified, or the first reason it is refused."""
        try:
            return self._verified(number, entry)
        except _Refused as refused:
            return EntryProblem(number, refused.reason, refused.detail)

    def _verified(self, number: int, entry: object) -> ManifestRow:
        if not isinstance(entry, dict) or set(entry) != ENTRY_MEMBERS:
            raise _Refused(Refusal.UNREADABLE, f"expected {ENTRY_FORM}")
        protected = _json_object(_b64url_decode(entry["protected"], "protected"), "protected header")
        if (protected.get("kid"), protected.get("x5t#S256")) != (self.signer.kid, self.signer.x5t_s256):
            raise _Refused(
                Refusal.SIGNER_MISMATCH,
                f"kid {str(protected.get('kid'))[:64]!r} and x5t#S256 name another certificate than the "
                f"manifest signer given (kid {self.signer.kid!r})",
            )
        record = self._signed_record(entry)
        unique_id = record.get("uniqueId")
        header = entry["header"]
        if not (
            isinstance(unique_id, str)
            and isinstance(header, dict)
            and header.get(UNIQUE_ID_HEADER) == unique_id
        ):
            raise _Refused(
                Refusal.UNIQUE_ID_MISMATCH,
                "the unprotected header's uniqueId is not the payload's (signed) one",
            )
        part_number = record.get("partNumber")
        if not (isinstance(part_number, str) and _PART_NUMBER.fullmatch(part_number)):
            raise _Refused(Refusal.UNREADABLE, "partNumber: expected 1-64 characters of A-Z a-z 0-9 . _ / -")
        public_key, chain = _slot_0(record)
        try:
            verify_to_a_pinned_root(chain, self.trust.roots, self.now)
            device_public_key = device_key(chain[0])
        except ProvisioningDenied as denial:
            raise _Refused(Refusal.DEVICE_CHAIN, f"x5c: {denial.detail}") from None
        if key_sha256(public_key, "the JWK") != device_public_key:
            raise _Refused(Refusal.KEY_MISMATCH, "slot 0's JWK is not the key of its x5c device certificate")
        try:
            named = unique_id_of(chain[0])
        except ProvisioningDenied as denial:
            raise _Refused(Refusal.UNIQUE_ID_MISMATCH, denial.detail) from None
        if named != unique_id.lower():
            raise _Refused(
                Refusal.UNIQUE_ID_MISMATCH, f"the device certificate names sn{named}, the entry {unique_id}"
            )
        return ManifestRow(
            number,
            self._request(named),
            device_public_key,
            {
                Attr.ATTESTED_BY: thumbprint(self.signer.certificate),
                Attr.MANIFEST_DIGEST: self.digest,
                Attr.PART_NUMBER: part_number,
                Attr.UNIQUE_ID: named,
            },
        )

    def _signed_record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The payload, once the signature verifies with the signer's key (joserfc, ES256 only)."""
        try:
            verified = jws.deserialize_json(
                cast(FlattenedJSONSerialization, entry),  # the four members, checked
                self.signer.key,
                registry=MANIFEST_REGISTRY,
            )
        except BadSignatureError:
            raise _Refused(
                Refusal.BAD_SIGNATURE,
                "the signature does not verify with the manifest signer's key: the entry was changed after "
                "it was signed, or another key signed it",
            ) from None
        except (JoseError, ValueError, TypeError, binascii.Error) as error:
            raise _Refused(
                Refusal.UNREADABLE, f"{error or type(error).__name__}; expected {ENTRY_FORM}"
            ) from None
        return _json_object(verified.payload, "payload")

    def _request(self, unique_id: str) -> DeviceRequest:
        """The request of the element's serial, with the options' values; a value the type's rules refuse
        (other than the serial) is a :class:`UsageProblem`: it is the operator's, not the entry's."""
        device_type = self.parameters[Parameter.DEVICE_TYPE]
        rule = self.rules.device_types.get(device_type)
        try:
            serial = serial_for(self.trust.serial_rule, unique_id, rule.serial_pattern if rule else None)
        except ValueError as error:
            raise _Refused(Refusal.SERIAL_RULE, str(error)) from None
        values = {
            name.value: value for name, value in {**self.parameters, Parameter.SERIAL_NUMBER: serial}.items()
        }
        try:
            return validate_request(values, self.rules)
        except ProvisioningDenied as denial:
            if denial.parameter is Parameter.SERIAL_NUMBER:
                raise _Refused(Refusal.SERIAL_RULE, denial.detail) from None
            option = next((name for name, each in OPTIONS.items() if each is denial.parameter), "a value")
            raise UsageProblem(f"{option}: {denial.detail}") from None


class _Refused(Exception):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _slot_0(record: dict[str, Any]) -> tuple[ec.EllipticCurvePublicKey, list[x509.Certificate]]:
    """Slot 0's key (an EC P-256 JWK, RFC 7518 6.2.1) and its ``x5c`` certificates (base64 DER, RFC 7517
    4.7)."""
    key_set = record.get("publicKeySet")
    keys = key_set.get("keys") if isinstance(key_set, dict) else None
    slot = (
        next((k for k in keys if isinstance(k, dict) and k.get("kid") == _SLOT_0), None)
        if isinstance(keys, list)
        else None
    )
    if slot is None or (slot.get("kty"), slot.get("crv")) != ("EC", "P-256"):
        raise _Refused(Refusal.UNREADABLE, "publicKeySet.keys: expected slot kid 0, an EC P-256 JWK")
    try:
        x, y = (int.from_bytes(_b64url_decode(slot[name], name), "big") for name in ("x", "y"))
        public_key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except (KeyError, ValueError) as error:
        raise _Refused(Refusal.UNREADABLE, f"slot 0's JWK: x and y are not a P-256 point ({error})") from None
    x5c = slot.get("x5c")
    if not (isinstance(x5c, list) and 1 <= len(x5c) <= X5C_MAX_CERTIFICATES):
        raise _Refused(
            Refusal.UNREADABLE, f"slot 0's x5c: expected 1-{X5C_MAX_CERTIFICATES} base64 DER certificates"
        )
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(each, validate=True)) for each in x5c]
    except (TypeError, ValueError, binascii.Error):
        raise _Refused(Refusal.UNREADABLE, "slot 0's x5c: not base64 DER certificates") from None
    return public_key, chain


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageProblem(f"{path}: cannot read: {error.strerror or error}") from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise _Refused(Refusal.UNREADABLE, f"the {what} is not a JSON object")
    return value


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64url_decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise _Refused(Refusal.UNREADABLE, f"{what}: expected base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        raise _Refused(Refusal.UNREADABLE, f"{what}: not base64url") from None
