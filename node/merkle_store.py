"""The Merkle log's persistent layout on one LMDB sub-database, and its append step.

Every *complete* perfect subtree ``(level, index)`` is hashed exactly once, when its last
leaf arrives, and never changes afterwards. Nodes are numbered in that completion order
(post-order): ``position(level, index)`` grows with every append, so the node stream is
append-only. It is stored in chunks of ``CHUNK`` hashes under 8-byte big-endian chunk
numbers; only the last, partial chunk is ever rewritten (once per block). A tree of ``n``
leaves holds ``2n - popcount(n)`` nodes, about 64 bytes of hashes per leaf.

Any root, inclusion proof or consistency proof at a past size ``s <= n`` is a list of
aligned ranges (``node.merkle``), each the fold of at most 64 stored perfect subtrees:
O(log n) reads, no leaf rehashing.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node import merkle

CHUNK = 63  # 63 * 32 = 2016-byte values: two per 4 KiB LMDB page, never an overflow page
_CHUNK_BYTES = CHUNK * merkle.HASH_SIZE
_KEY = struct.Struct(">Q")


def node_count(size: int) -> int:
    """Number of complete perfect subtrees (stored nodes) in a tree of ``size`` leaves."""
    return 2 * size - size.bit_count()


def position(level: int, index: int) -> int:
    """Post-order position of node ``(level, index)``: how many nodes complete before it."""
    end = (index + 1) << level  # the node completes when leaf end-1 is appended
    top = (end & -end).bit_length() - 1  # the highest node completed by that append
    return node_count(end) - 1 - (top - level)


@dataclass(frozen=True)
class Frontier:
    """The tree's right border: ``size`` leaves and the perfect subtrees covering them
    (largest first), plus the hashes already in the last, partial chunk."""

    size: int
    peaks: tuple[bytes, ...]
    tail: bytes

    @property
    def root(self) -> bytes:
        return merkle.fold(self.peaks)


@dataclass(frozen=True)
class Appended:
    """The result of ``extend``: the new frontier and the chunk puts that record it."""

    frontier: Frontier
    overwrite: tuple[bytes, bytes] | None  # the previously partial chunk, rewritten
    appends: list[tuple[bytes, bytes]]  # new chunks, keys ascending past every stored key


def extend(front: Frontier, leaf_data: Sequence[bytes]) -> Appended:
    """Append leaves (their raw data; hashed here) to ``front``. Pure.

    Invariant: ``result.frontier.root`` is ``MTH`` of all leaves; the puts hold every node
    completed by these leaves, in post-order, after the ``node_count(front.size)`` before.
    """
    if not leaf_data:
        return Appended(front, None, [])
    sha = hashlib.sha256
    out: list[bytes] = []
    push = out.append
    stack = list(front.peaks)
    n = front.size
    for data in leaf_data:
        h = sha(b"\x00" + data).digest()
        push(h)
        n += 1
        m = n
        while not m & 1:
            h = sha(b"\x01" + stack.pop() + h).digest()
            push(h)
            m >>= 1
        stack.append(h)
    buf = front.tail + b"".join(out)
    first = node_count(front.size) // CHUNK
    pieces = [
        (_KEY.pack(first + j), buf[off : off + _CHUNK_BYTES])
        for j, off in enumerate(range(0, len(buf), _CHUNK_BYTES))
    ]
    overwrite = pieces.pop(0) if front.tail and pieces else None
    last = pieces[-1][1] if pieces else overwrite[1] if overwrite else b""
    tail = last if len(last) < _CHUNK_BYTES else b""
    return Appended(Frontier(n, tuple(stack), tail), overwrite, pieces)


def preview(front: Frontier, leaf_data: Sequence[bytes]) -> tuple[int, bytes]:
    """``(size, root)`` the log would have after appending ``leaf_data``; writes nothing."""
    sha = hashlib.sha256
    stack = list(front.peaks)
    n = front.size
    for data in leaf_data:
        h = sha(b"\x00" + data).digest()
        n += 1
        m = n
        while not m & 1:
            h = sha(b"\x01" + stack.pop() + h).digest()
            m >>= 1
        stack.append(h)
    return n, merkle.fold(stack)


Reader = Callable[[bytes], bytes | None]
"""Reads one chunk by key (an LMDB ``txn.get`` bound to the Merkle sub-database)."""


class NodeReader:
    """Reads stored nodes through ``get``, caching chunks for one proof's lifetime."""

    def __init__(self, get: Reader) -> None:
        self._get = get
        self._cache: dict[int, bytes] = {}

    def node(self, level: int, index: int) -> bytes:
        """The hash of the complete perfect subtree ``(level, index)``."""
        chunk, offset = divmod(position(level, index), CHUNK)
        value = self._cache.get(chunk)
        if value is None:
            value = self._get(_KEY.pack(chunk))
            if value is None:
                raise KeyError((level, index))
            self._cache[chunk] = value = bytes(value)
        start = offset * merkle.HASH_SIZE
        h = value[start : start + merkle.HASH_SIZE]
        if len(h) != merkle.HASH_SIZE:
            raise KeyError((level, index))
        return h

    def range_hash(self, start: int, size: int) -> bytes:
        """``MTH`` of the aligned range ``[start, start+size)`` from its perfect subtrees."""
        return merkle.fold([self.node(lv, ix) for lv, ix in merkle.subtrees(start, size)])

    def frontier(self, size: int) -> Frontier:
        """Rebuild the frontier of a stored tree of ``size`` leaves (at open)."""
        peaks = tuple(self.node(lv, ix) for lv, ix in merkle.subtrees(0, size))
        chunk, used = divmod(node_count(size), CHUNK)
        tail = b""
        if used:
            value = self._get(_KEY.pack(chunk))
            if value is None or len(value) < used * merkle.HASH_SIZE:
                raise KeyError(("chunk", chunk))
            tail = bytes(value)[: used * merkle.HASH_SIZE]
        return Frontier(size, peaks, tail)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return [self.range_hash(s, z) for s, z in merkle.inclusion_ranges(index, size)]

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return [self.range_hash(s, z) for s, z in merkle.consistency_ranges(size1, size2)]
