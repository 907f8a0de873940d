"""Refuse serial-number patterns whose matching time can explode (catastrophic backtracking).

Python's ``re`` backtracks, and a match cannot be interrupted. So a pattern is accepted only when the
number of ways it can match a serial is small, whatever the serial:

- a quantifier that can repeat more than once (``*``, ``+``, ``{2,8}``) applies to a single character
  (a literal, a class such as ``[0-9]``, or ``.``); a group may only be optional or repeated a fixed
  number of times;
- no backreferences and no lookarounds;
- the product of the choices the pattern offers (each quantifier's range of counts, up to the longest
  serial; each alternation's branches) is at most :data:`MAX_MATCH_PATHS`.

``TS-[0-9]{6}``, ``(?:GW|GT)-[A-F0-9]{4,12}`` and ``SN[0-9]+(?:-[A-Z]{2})?`` pass; ``(a+)+``,
``(TS|TS-)*`` and ``[A-Z0-9]*-?[A-Z0-9]*-?[A-Z0-9]*-?[A-Z0-9]*`` do not.
"""

from __future__ import annotations

import math
import re._constants as sre  # the standard library's own regex parser (Python 3.11+)
import re._parser as sre_parser
from typing import Any, Final

from hook.contract import SERIAL_NUMBER_MAX_LENGTH

MAX_MATCH_PATHS: Final = 100_000
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT}
_SINGLE_CHARACTER = {sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY, sre.CATEGORY}
_ZERO_WIDTH = {sre.AT}


class UnsafePattern(ValueError):
    """The pattern could backtrack for too long; the message says which construct."""


def unsafe_construct(pattern: str) -> str | None:
    """Describe why ``pattern`` risks catastrophic backtracking, or ``None`` when it is safe."""
    try:
        paths = _paths(sre_parser.parse(pattern))
    except UnsafePattern as problem:
        return str(problem)
    if paths > MAX_MATCH_PATHS:
        return f"it can match a serial in about {paths:.0e} ways (at most {MAX_MATCH_PATHS:,} allowed)"
    return None


def _paths(items: Any) -> float:
    """An upper bound on the ways a sequence of parsed items can match."""
    return math.prod(_item_paths(op, arg) for op, arg in items)


def _item_paths(op: Any, arg: Any) -> float:
    if op in _SINGLE_CHARACTER or op in _ZERO_WIDTH:
        return 1
    if op in _REPEATS:
        least: int = arg[0]
        most: int = arg[1]
        body = arg[2]
        if len(body) == 1 and body[0][0] in _SINGLE_CHARACTER:
            return float(min(most, SERIAL_NUMBER_MAX_LENGTH) - least + 1)
        if least == most:  # a group repeated a fixed number of times adds no choice of its own
            return _paths(body) ** least
        if most > 1:
            raise UnsafePattern("a group is repeated; repeat a character or a character class instead")
        return float(most - least + 1) * _paths(body)
    if op is sre.SUBPATTERN:
        return _paths(arg[-1])
    if op is sre.BRANCH:
        return sum(_paths(branch) for branch in arg[1])
    if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
        raise UnsafePattern("a backreference")
    raise UnsafePattern(f"an unsupported construct ({str(op).lower()})")
