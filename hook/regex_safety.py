"""Refuse serial-number patterns whose matching time can explode (catastrophic backtracking).

Python's ``re`` backtracks, and a match cannot be interrupted. A pattern is accepted only when no
quantifier repeats something that can itself match in several ways: no nested quantifiers such as
``(a+)+``, no alternation under a quantifier such as ``(a|ab)*``, no backreferences. Together with the
short, charset-checked serial this keeps every match fast.
"""

from __future__ import annotations

import re._constants as sre_constants  # the standard library's own regex parser (Python 3.11+)
import re._parser as sre_parser
from typing import Any

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT}


def unsafe_construct(pattern: str) -> str | None:
    """Describe the first construct of ``pattern`` that risks catastrophic backtracking, or ``None``."""
    return _scan(sre_parser.parse(pattern), inside_repeat=False)


def _scan(items: Any, inside_repeat: bool) -> str | None:
    for op, arg in items:
        problem = _scan_item(op, arg, inside_repeat)
        if problem:
            return problem
    return None


def _scan_item(op: Any, arg: Any, inside_repeat: bool) -> str | None:
    if op in _REPEATS:
        repeats = arg[1] > 1
        if repeats and inside_repeat:
            return "a quantifier inside a repeated group"
        return _scan(arg[2], inside_repeat or repeats)
    if op is sre_constants.BRANCH and inside_repeat:
        return "an alternation inside a repeated group"
    if op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
        return "a backreference"
    return next(filter(None, (_scan(child, inside_repeat) for child in _children(op, arg))), None)


def _children(op: Any, arg: Any) -> list[Any]:
    """The sub-patterns nested in one parsed item."""
    if op is sre_constants.BRANCH:
        return list(arg[1])
    if op is sre_constants.SUBPATTERN:
        return [arg[-1]]
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [arg[1]]
    if op is sre_constants.ATOMIC_GROUP:
        return [arg]
    return []
