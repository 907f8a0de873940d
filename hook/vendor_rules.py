"""Zero-touch rules of a device type, without ``cryptography``: how a vendor's unique id becomes the type's
serial and how a vendor certificate serial is written. The stack config (``program/vendors.py``), the hook's
rules file (:mod:`hook.rules`) and the chain check (:mod:`hook.vendor_chain`) all use these, so the three
agree on every serial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hook.contract import NAME_CHARSET, SERIAL_NUMBER_MAX_LENGTH

UNIQUE_ID: Final = "{uniqueId}"
"""The placeholder of a serial rule (``SL-{uniqueId}``) for the element's unique id."""
UNIQUE_ID_FORM: Final = "2-64 lowercase hex digits"
_UNIQUE_ID = re.compile(r"[0-9a-f]{2,64}")
_RULE_TEXT = re.compile(f"{NAME_CHARSET}*")
CERTIFICATE_SERIAL_FORM: Final = "a certificate serial number in hex (1-40 digits, ':' allowed between bytes)"
_CERTIFICATE_SERIAL = re.compile(r"[0-9A-Fa-f]{1,2}(?::?[0-9A-Fa-f]{2})*")
_CERTIFICATE_SERIAL_MAX_DIGITS: Final = 40
"""RFC 5280 4.1.2.2: a certificate serial number is at most 20 octets."""


@dataclass(frozen=True)
class ZeroTouchRule:
    """What a zero-touch device type trusts: its pinned vendor roots (PEM, bundled in the hook's package
    with the rules file), the serial rule, and the vendor device certificates it refuses."""

    roots_pem: tuple[str, ...]
    serial_rule: str
    denied_certificates: frozenset[int]
    """Serial numbers of vendor device certificates known to be compromised."""


def check_serial_rule(rule: str) -> str:
    """``rule`` if it holds :data:`UNIQUE_ID` exactly once and otherwise only serial characters; else
    ``ValueError`` naming the expected form."""
    head, _, tail = rule.partition(UNIQUE_ID)
    if rule.count(UNIQUE_ID) != 1 or not (_RULE_TEXT.fullmatch(head) and _RULE_TEXT.fullmatch(tail)):
        raise ValueError(
            f"expected a serial rule holding {UNIQUE_ID} once, around it only A-Z a-z 0-9 : _ - "
            f"(e.g. SL-{UNIQUE_ID}); got {rule!r}"
        )
    return rule


def serial_for(rule: str, unique_id: str, pattern: re.Pattern[str] | None) -> str:
    """The serial ``rule`` makes of an element's ``unique_id``; ``ValueError`` when the unique id is not
    lowercase hex or the serial does not fit the type's ``pattern`` or a thing name."""
    if not _UNIQUE_ID.fullmatch(unique_id):
        raise ValueError(f"unique id {unique_id[:80]!r} is not {UNIQUE_ID_FORM}")
    serial = rule.replace(UNIQUE_ID, unique_id)
    if len(serial) > SERIAL_NUMBER_MAX_LENGTH:
        raise ValueError(f"serial {serial!r} is longer than {SERIAL_NUMBER_MAX_LENGTH} characters")
    if pattern is not None and not pattern.fullmatch(serial):
        raise ValueError(f"serial {serial!r} does not match the type's serialPattern {pattern.pattern!r}")
    return serial


def certificate_serial(text: str) -> int:
    """A certificate serial number written in hex (``0a:1b...`` or ``0a1b...``, any case); ``ValueError``
    naming the expected form."""
    digits = text.replace(":", "")
    if not (_CERTIFICATE_SERIAL.fullmatch(text) and len(digits) <= _CERTIFICATE_SERIAL_MAX_DIGITS):
        raise ValueError(f"expected {CERTIFICATE_SERIAL_FORM}; got {text[:80]!r}")
    return int(digits, 16)


def certificate_serial_hex(serial: int) -> str:
    """A certificate serial number as lowercase hex without leading zeros: how the registry, the logs and
    the rules file write it."""
    return f"{serial:x}"
