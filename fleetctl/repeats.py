"""Which values of a stream too large to keep occur more than once: 8-byte digests, not the values."""

from __future__ import annotations

import hashlib
import heapq
from array import array
from itertools import pairwise
from typing import Final

SORT_CHUNK: Final = 65_536
"""Digests sorted at a time: one list of that many ints (about 2.5 MB) exists while a chunk is sorted."""


def digest(value: str) -> int:
    """The first 8 bytes of the value's BLAKE2b hash, as an unsigned integer."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


class RepeatFinder:
    """Remembers an 8-byte digest of each value added, in an ``array`` of unsigned 64-bit integers, and
    finds the digests added more than once.

    Memory: 8 MB per million values, plus about 2.5 MB while :meth:`repeated` sorts (a chunk at a time);
    a ``set`` of the values themselves would take some 60-100 MB per million. Two different values share
    a digest with a probability of about n²/2⁶⁵ (3·10⁻⁸ for a million values), so a repeated digest names
    candidates, never a verdict: the caller compares the values themselves in a second look at just those
    (see :mod:`fleetctl.manifest`)."""

    def __init__(self) -> None:
        self._digests = array("Q")

    def add(self, value: str) -> None:
        """Remember ``value`` (its digest)."""
        self._digests.append(digest(value))

    def repeated(self) -> frozenset[int]:
        """The digests added more than once: the array is sorted in place in chunks of
        :data:`SORT_CHUNK`, then the chunks are merged and neighbours compared."""
        digests = self._digests
        for start in range(0, len(digests), SORT_CHUNK):
            digests[start : start + SORT_CHUNK] = array("Q", sorted(digests[start : start + SORT_CHUNK]))
        with memoryview(digests) as view:
            chunks = [iter(view[start : start + SORT_CHUNK]) for start in range(0, len(digests), SORT_CHUNK)]
            return frozenset(left for left, right in pairwise(heapq.merge(*chunks)) if left == right)
