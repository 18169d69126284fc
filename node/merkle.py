"""RFC 9162 §2.1 Merkle tree hashing, proofs and their verification. Pure: no I/O.

Definitions (RFC 9162 §2.1.1), for a list of leaves ``D[n]``:

* leaf hash ``SHA-256(0x00 || data)``, node hash ``SHA-256(0x01 || left || right)``;
* ``MTH({}) = SHA-256("")``; for ``n > 1`` with ``k`` the largest power of two ``< n``:
  ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``.

Every proof is a list of ``MTH`` values over *ranges* ``(start, size)`` of leaves. The range
functions below (``inclusion_ranges``, ``consistency_ranges``) compute which ranges, so that a
store can answer a proof by reading the perfect subtrees of each range (``subtrees``) instead
of rehashing leaves. Every range they return is *aligned*: ``start`` is a multiple of the
smallest power of two ``>= size``, so it splits into perfect subtrees ``(level, index)``
covering leaves ``[index << level, (index + 1) << level)``.

``verify_inclusion`` and ``verify_consistency`` follow RFC 9162 §2.1.3.2 and §2.1.4.2; they
return ``False`` on any malformed input and never raise.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from node.errors import InputError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Hash one log entry: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two children: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE + left + right).digest()


def fold(subtree_hashes: Sequence[bytes]) -> bytes:
    """Root of an aligned range from the hashes of its perfect subtrees, largest first.

    ``fold([h0, h1, h2]) == node_hash(h0, node_hash(h1, h2))``; ``fold([]) == EMPTY_ROOT``.
    """
    if not subtree_hashes:
        return EMPTY_ROOT
    acc = subtree_hashes[-1]
    for h in reversed(subtree_hashes[:-1]):
        acc = _sha256(_NODE + h + acc).digest()
    return acc


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH`` of a list of leaf hashes in O(n) hashes and O(log n) memory."""
    stack: list[bytes] = []
    for count, leaf in enumerate(leaf_hashes, start=1):
        h, m = leaf, count
        while not m & 1:
            h = _sha256(_NODE + stack.pop() + h).digest()
            m >>= 1
        stack.append(h)
    return fold(stack)


def subtrees(start: int, size: int) -> list[tuple[int, int]]:
    """Perfect subtrees ``(level, index)`` covering the aligned range ``[start, start+size)``.

    Largest first, so ``fold`` of their hashes is the range's ``MTH``. At most 64 entries.
    """
    out: list[tuple[int, int]] = []
    pos = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Ranges ``(start, size)`` whose ``MTH`` values form ``PATH(index, D[size])``, in order.

    RFC 9162 §2.1.3.1, unrolled: walk down from the root and collect the sibling ranges;
    the leaf's own sibling comes first in the proof.
    """
    if not 0 <= index < size:
        raise InputError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    start, n, m = 0, size, index
    while n > 1:
        k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two < n
        if m < k:
            out.append((start + k, n - k))
            n = k
        else:
            out.append((start, k))
            start, m, n = start + k, m - k, n - k
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Ranges whose ``MTH`` values form ``PROOF(size1, D[size2])`` (RFC 9162 §2.1.4.1).

    Empty when ``size1 == 0`` or ``size1 == size2``.
    """
    if not 0 <= size1 <= size2:
        raise InputError(f"no consistency proof from size {size1} to size {size2}")
    if size1 in (0, size2):
        return []
    out: list[tuple[int, int]] = []
    start, m, n, whole = 0, size1, size2, True
    while m != n:
        k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two < n
        if m <= k:
            out.append((start + k, n - k))
            n = k
        else:
            out.append((start, k))
            start, m, n, whole = start + k, m - k, n - k, False
    if not whole:
        out.append((start, m))
    out.reverse()
    return out


def inclusion_path(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Reference inclusion proof over an in-memory list (O(n) hashes; tests, small trees)."""
    return [root(leaf_hashes[s : s + z]) for s, z in inclusion_ranges(index, len(leaf_hashes))]


def consistency_path(leaf_hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """Reference consistency proof from ``size1`` to ``len(leaf_hashes)`` (O(n) hashes)."""
    ranges = consistency_ranges(size1, len(leaf_hashes))
    return [root(leaf_hashes[s : s + z]) for s, z in ranges]


def _is_hash(value: object) -> bool:
    return type(value) is bytes and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return type(value) is int and 0 <= value < 1 << 64


def _hashes(path: object) -> list[bytes] | None:
    """``path`` as a list of 32-byte hashes, or ``None`` if it is anything else."""
    # Any sequence of hashes will do (a list, or a protobuf repeated field), not bytes.
    if not isinstance(path, Sequence) or isinstance(path, bytes | str) or len(path) > 128:
        return None
    items = list(path)
    if items and (set(map(type, items)) != {bytes} or set(map(len, items)) != {HASH_SIZE}):
        return None
    return items


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``path`` proves ``leaf_hash`` is leaf ``index`` of the tree ``root`` of size
    ``tree_size`` (RFC 9162 §2.1.3.2). ``False`` on any malformed input; never raises."""
    proof = _hashes(path)
    if (
        proof is None
        or not (_is_hash(leaf_hash) and _is_hash(root))
        or not (_is_size(index) and _is_size(tree_size))
        or index >= tree_size
    ):
        return False
    sha, one = _sha256, _NODE
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha(one + p + r).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = sha(one + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, path: Sequence[bytes]
) -> bool:
    """Whether ``path`` proves the tree ``root2`` of size ``size2`` extends the tree ``root1``
    of size ``size1`` (RFC 9162 §2.1.4.2). ``False`` on any malformed input; never raises.

    Edge cases: ``size1 == size2`` needs an empty path and equal roots; ``size1 == 0`` needs
    an empty path and ``root1 == EMPTY_ROOT`` (every tree extends the empty tree).
    """
    proof = _hashes(path)
    if (
        proof is None
        or not (_is_hash(root1) and _is_hash(root2))
        or not (_is_size(size1) and _is_size(size2))
        or size1 > size2
    ):
        return False
    if size1 == 0:
        return not proof and hmac.compare_digest(root1, EMPTY_ROOT)
    if size1 == size2:
        return not proof and hmac.compare_digest(root1, root2)
    if not proof:
        return False
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        proof = [root1, *proof]
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(_NODE + c + fr).digest()
            sr = _sha256(_NODE + c + sr).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(_NODE + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, root1) and hmac.compare_digest(sr, root2)
