"""Compact blocks: a proposal's body sent between validators by reference.

A block of 2,000 records is about 1 MB, and every record in it already reached each
validator by mempool gossip. On the wire a proposal therefore carries a ``CompactBlock``:
the header's exact bytes and, in block order, each envelope's RFC 9162 leaf hash, which
covers payload type, payload and every signature (every field the node keeps: unknown
protobuf fields are discarded when a record is verified, ``ChainState.verify``). A
validator rebuilds the block from the envelopes it holds, fetches those it lacks
(``Peer.GetRecords``), and only then hands the proposal with its whole block to the
replica (``node.proposals`` does the node's part). What the replica validates, votes on
and commits is the block the proposer built; block hash and certificate are unchanged.

Invariants:
  * ``check`` refuses a compact block whose header does not hash to the proposal's block
    hash, or that names more than ``max_records`` hashes or a hash that is not 32 bytes;
  * an envelope fills a slot only if the leaf hash *this node* computed for it is the
    slot's hash (never on a peer's word), so a rebuilt block is the proposer's, or none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from node.convert import envelope_from_proto
from node.envelope import envelope_leaf_bytes
from node.errors import InputError
from node.merkle import leaf_hash
from proto import consensus_pb2, types_pb2

HASH_LEN = 32
#: Larger than any header this code writes (about 300 bytes) by a wide margin.
MAX_HEADER_BYTES = 4096

Slots = list[types_pb2.Envelope | None]
T = TypeVar("T")


def to_compact(block: types_pb2.Block, leaf_hashes: Sequence[bytes]) -> consensus_pb2.CompactBlock:
    """The compact form of ``block``, given its envelopes' leaf hashes in block order."""
    if len(leaf_hashes) != len(block.envelopes):
        raise ValueError("one leaf hash per envelope")
    return consensus_pb2.CompactBlock(header=block.header, leaf_hashes=leaf_hashes)


def envelope_leaf_hash(pb: types_pb2.Envelope) -> bytes:
    """The leaf hash of ``pb`` as this node computes it. Raises ``InputError`` if malformed
    (also when a field is too long for the leaf encoding's length prefixes: ``leaf_bytes``)."""
    return leaf_hash(envelope_leaf_bytes(envelope_from_proto(pb)))


def check(compact: consensus_pb2.CompactBlock, block_hash: bytes, max_records: int) -> None:
    """Structural checks before any lookup or fetch; raises ``InputError`` naming the fault."""
    if len(compact.header) > MAX_HEADER_BYTES:
        raise InputError(f"compact block: header is {len(compact.header)} bytes")
    if hashlib.sha256(compact.header).digest() != block_hash:
        raise InputError("compact block: header does not hash to the proposal's block hash")
    n = len(compact.leaf_hashes)
    if n > max_records:
        raise InputError(f"compact block: {n} records, the limit is {max_records}")
    if any(len(h) != HASH_LEN for h in compact.leaf_hashes):
        raise InputError("compact block: a leaf hash is not 32 bytes")


def resolve(
    compact: consensus_pb2.CompactBlock, lookup: Callable[[bytes], T | None]
) -> tuple[list[T | None], list[int]]:
    """``lookup(leaf_hash)`` for each slot; returns the answers and the missing positions.

    ``lookup`` must answer only for envelopes whose leaf hash this node computed itself
    (the mempool's index does)."""
    found = [lookup(h) for h in compact.leaf_hashes]
    return found, [i for i, s in enumerate(found) if s is None]


def fill(
    compact: consensus_pb2.CompactBlock,
    slots: Slots,
    missing: Iterable[int],
    fetched: Iterable[types_pb2.Envelope],
) -> list[int]:
    """Put fetched envelopes into the ``missing`` slots whose hash they have; returns the
    positions still missing. Malformed or unrequested envelopes are ignored; at most one
    envelope per distinct hash wanted is looked at, and none once every slot is filled."""
    want: dict[bytes, list[int]] = {}
    for i in missing:
        want.setdefault(bytes(compact.leaf_hashes[i]), []).append(i)
    budget = len(want)
    for k, pb in enumerate(fetched):
        if not want or k >= budget:
            break
        try:
            positions = want.pop(envelope_leaf_hash(pb), None)
        except InputError:
            continue
        for i in positions or ():
            slots[i] = pb
    return sorted(i for positions in want.values() for i in positions)


def assemble(compact: consensus_pb2.CompactBlock, slots: Slots) -> types_pb2.Block:
    """The full block once every slot is filled."""
    envelopes = [s for s in slots if s is not None]
    if len(envelopes) != len(slots):
        raise ValueError("assemble: a slot is still empty")
    return types_pb2.Block(header=compact.header, envelopes=envelopes)


__all__ = ["assemble", "check", "envelope_leaf_hash", "fill", "resolve", "to_compact"]
