"""The Merkle log's persistent layout on one LMDB sub-database, and its append step.

Every *complete* perfect subtree ``(level, index)`` is hashed exactly once, when its last
leaf arrives, and never changes afterwards. Level ``l`` of a tree of ``n`` leaves holds
``n >> l`` nodes; each level is an append-only stream of 32-byte hashes, stored in chunks of
``CHUNK`` hashes under the key ``level (1 byte) || chunk number (8 bytes, big-endian)``.
A full chunk is 4,064 bytes: exactly one 4 KiB LMDB overflow page, so hashes cost ~32.3
bytes each whatever the B-tree's fill; ``2n`` nodes make ~65 bytes per leaf. Only the last,
partial chunk of each level is ever rewritten (at most once per block and level).

A root, inclusion proof or consistency proof at a past size ``s <= n`` is a list of aligned
ranges (``node.merkle``), each the fold of at most 64 stored perfect subtrees: O(log n)
reads, no leaf rehashing.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node import merkle

CHUNK = 127  # hashes per chunk: 127 * 32 + 16-byte page header <= 4096
_CHUNK_BYTES = CHUNK * merkle.HASH_SIZE
_NODE_KEY = struct.Struct(">BQ")


def chunk_key(level: int, chunk: int) -> bytes:
    return _NODE_KEY.pack(level, chunk)


@dataclass(frozen=True)
class Frontier:
    """The tree's right border: ``size`` leaves, the perfect subtrees covering them
    (``peaks``, largest first), and per level the hashes already in its partial chunk."""

    size: int
    peaks: tuple[bytes, ...]
    tails: tuple[bytes, ...]  # tails[level], for level < size.bit_length()

    @property
    def root(self) -> bytes:
        return merkle.fold(self.peaks)


EMPTY = Frontier(0, (), ())


@dataclass(frozen=True)
class Appended:
    """The result of ``extend``: the new frontier and the chunk puts that record it."""

    frontier: Frontier
    puts: list[tuple[bytes, bytes]]  # (chunk key, chunk value); overwrites partial chunks


def _peaks_by_level(front: Frontier) -> dict[int, bytes]:
    n = front.size
    levels = [lv for lv in range(n.bit_length() - 1, -1, -1) if n >> lv & 1]
    return dict(zip(levels, front.peaks, strict=True))


def extend(
    front: Frontier, leaf_data: Sequence[bytes], *, write: bool = True, hashed: bool = False
) -> Appended:
    """Append leaves (raw data, hashed here; or their RFC 9162 leaf hashes if ``hashed``)
    to ``front``. Pure; level by level, so the hashing runs in list comprehensions rather
    than a per-leaf loop.

    Invariant: ``result.frontier.root`` is ``MTH`` of all leaves, and ``result.puts`` (when
    ``write``) stores every node these leaves complete.
    """
    if not leaf_data:
        return Appended(front, [])
    sha = hashlib.sha256
    old_peaks = _peaks_by_level(front)
    tails = list(front.tails)
    puts: list[tuple[bytes, bytes]] = []
    new = (
        [bytes(d) for d in leaf_data] if hashed else [sha(b"\x00" + d).digest() for d in leaf_data]
    )
    peaks: dict[int, bytes] = {}
    level, start = 0, front.size  # start: index of new[0] at this level (= old size >> level)
    while new:
        count = start + len(new)
        if write:
            if level == len(tails):
                tails.append(b"")
            buf = tails[level] + b"".join(new)
            first = start // CHUNK
            puts += [
                (_NODE_KEY.pack(level, first + j), buf[off : off + _CHUNK_BYTES])
                for j, off in enumerate(range(0, len(buf), _CHUNK_BYTES))
            ]
            used = count % CHUNK
            tails[level] = buf[len(buf) - used * merkle.HASH_SIZE :] if used else b""
        if count & 1:
            peaks[level] = new[-1]
        if start & 1:  # new[0] is a right child: its sibling is the old peak at this level
            new = [old_peaks[level], *new]
        it = iter(new)
        new = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        start >>= 1
        level += 1
    for lv, h in old_peaks.items():  # levels the new leaves did not reach keep their peak
        if lv >= level:
            peaks[lv] = h
    size = front.size + len(leaf_data)
    ordered = tuple(peaks[lv] for lv in range(size.bit_length() - 1, -1, -1) if size >> lv & 1)
    return Appended(Frontier(size, ordered, tuple(tails) if write else ()), puts)


def preview(
    front: Frontier, leaf_data: Sequence[bytes], *, hashed: bool = False
) -> tuple[int, bytes]:
    """``(size, root)`` the log would have after appending ``leaf_data`` (leaf hashes if
    ``hashed``); writes nothing."""
    after = extend(front, leaf_data, write=False, hashed=hashed).frontier
    return after.size, after.root


Reader = Callable[[bytes], "bytes | memoryview | None"]
"""Reads one chunk by key (an LMDB ``txn.get`` bound to the Merkle sub-database); a
memoryview must stay valid while the ``NodeReader`` is used (same transaction)."""


class NodeReader:
    """Reads stored nodes through ``get``, caching chunks for one transaction."""

    def __init__(self, get: Reader) -> None:
        self._get = get
        self._cache: dict[bytes, bytes | memoryview] = {}

    def _chunk(self, key: bytes) -> bytes | memoryview:
        value = self._cache.get(key)
        if value is None:
            value = self._get(key)
            if value is None:
                raise KeyError(key.hex())
            self._cache[key] = value
        return value

    def node(self, level: int, index: int) -> bytes:
        """The hash of the complete perfect subtree ``(level, index)``."""
        chunk, offset = divmod(index, CHUNK)
        key = _NODE_KEY.pack(level, chunk)
        value = self._cache.get(key)
        if value is None:
            value = self._chunk(key)
        start = offset * merkle.HASH_SIZE
        h = bytes(value[start : start + merkle.HASH_SIZE])
        if len(h) != merkle.HASH_SIZE:
            raise KeyError((level, index))
        return h

    def range_hash(self, start: int, size: int) -> bytes:
        """``MTH`` of the aligned range ``[start, start+size)`` from its perfect subtrees."""
        if size and not size & (size - 1):  # one perfect subtree: the common case in proofs
            level = size.bit_length() - 1
            return self.node(level, start >> level)
        return merkle.fold([self.node(lv, ix) for lv, ix in merkle.subtrees(start, size)])

    def frontier(self, size: int) -> Frontier:
        """Rebuild the frontier of a stored tree of ``size`` leaves (at open)."""
        peaks = tuple(self.node(lv, ix) for lv, ix in merkle.subtrees(0, size))
        tails = []
        for level in range(size.bit_length()):
            chunk, used = divmod(size >> level, CHUNK)
            tail = b""
            if used:
                tail = bytes(self._chunk(_NODE_KEY.pack(level, chunk))[: used * merkle.HASH_SIZE])
                if len(tail) != used * merkle.HASH_SIZE:
                    raise KeyError((level, chunk))
            tails.append(tail)
        return Frontier(size, peaks, tuple(tails))

    def inclusion(self, index: int, size: int) -> list[bytes]:
        out: list[bytes] = []
        get, pack = self._get, _NODE_KEY.pack
        for start, width in merkle.inclusion_ranges(index, size):
            if width & (width - 1):  # at most one range per proof is not a perfect subtree
                out.append(self.range_hash(start, width))
                continue
            level = width.bit_length() - 1
            chunk, offset = divmod(start >> level, CHUNK)
            value = get(pack(level, chunk))
            offset *= merkle.HASH_SIZE
            h = bytes(value[offset : offset + merkle.HASH_SIZE]) if value is not None else b""
            if len(h) != merkle.HASH_SIZE:
                raise KeyError((level, start >> level))
            out.append(h)
        return out

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return [self.range_hash(s, z) for s, z in merkle.consistency_ranges(size1, size2)]
