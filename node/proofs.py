"""Proof bundles and checkpoint notes: the node's side of ``Ledger.Prove``,
``Ledger.GetCheckpoint`` and ``Ledger.SignCheckpoint``.

A bundle (``ProofBundle`` in proto/types.proto) holds the envelope exactly as committed, its
log index, an RFC 9162 inclusion path against the log root of the block that COMMITTED the
record, that block's exact header bytes and commit certificate, and ``record_height`` equal
to the header's height. Choosing the committing block (not the head) makes every field
checkable offline: the log index must lie in that block's range
``[log_size - num_records, log_size)`` (``node.verify`` step 3).

With ``since_size`` the bundle also carries a consistency proof between the header's log
and the log at ``since_size`` (a checkpoint the auditor holds): the smaller log is proven
a prefix of the larger, whichever it is, so an old record can be tied to a newer checkpoint
and a new record to an older one.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

from node.errors import InputError, NotFoundError
from node.genesis import Genesis
from node.keys import KeyPair
from node.note import checkpoint_text, origin, sign_checkpoint
from node.readback import committed_envelope
from node.store import Store, StoredBlock
from node.verify import BUNDLE_FORMAT, parse_header
from proto import services_pb2, types_pb2

__all__ = ["BUNDLE_FORMAT", "build_bundle", "sign_checkpoint_note"]


@dataclass(frozen=True)
class _Certified:
    header_bytes: bytes
    certificate_bytes: bytes
    header: types_pb2.BlockHeader


_CACHE_LIMIT = 4096
_cache: weakref.WeakKeyDictionary[Store, OrderedDict[int, _Certified]] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _block(store: Store, height: int) -> _Certified:
    """The committed header and certificate at ``height``.

    ``Store.get_block`` copies every envelope of the block (milliseconds for a full block),
    so the (immutable, once committed) header and certificate are kept in a small LRU per
    store: proving many records of one block reads the block once.
    """
    with _cache_lock:
        per = _cache.setdefault(store, OrderedDict())
        hit = per.get(height)
        if hit is not None:
            per.move_to_end(height)
            return hit
    block: StoredBlock | None = store.get_block(height)
    if block is None:
        raise NotFoundError(f"block {height} is not committed on this node")
    header = parse_header(block.header_bytes)
    if header is None:  # stored headers were validated before commit
        raise NotFoundError(f"block {height}'s stored header does not parse")
    got = _Certified(block.header_bytes, block.certificate_bytes, header)
    with _cache_lock:
        per[height] = got
        while len(per) > _CACHE_LIMIT:
            per.popitem(last=False)
    return got


def build_bundle(
    store: Store, genesis: Genesis, record_id: bytes, *, since_size: int = 0
) -> types_pb2.ProofBundle:
    """The proof bundle of a committed record (see the module docstring).

    Raises:
        NotFoundError: the record is not committed here.
        InputError: ``since_size`` is beyond this node's log.
    """
    loc = store.record_location(record_id)
    if loc is None:
        raise NotFoundError(f"record {record_id.hex()} is not committed on this node")
    index, height = loc
    block = _block(store, height)
    header = block.header
    envelope = committed_envelope(store, index)
    if envelope is None:
        raise NotFoundError("the committed envelope is missing")
    size = header.log_size
    bundle = types_pb2.ProofBundle(
        format=BUNDLE_FORMAT,
        genesis_hash=genesis.hash,
        envelope=envelope,
        log_index=index,
        inclusion_path=store.inclusion_proof(index, size),
        header=block.header_bytes,
        certificate=types_pb2.CommitCertificate.FromString(block.certificate_bytes),
        record_height=height,
    )
    if since_size:
        head_size = store.head().log_size
        if since_size > head_size:
            raise InputError(f"since_size {since_size} is beyond the log ({head_size})")
        lo, hi = sorted((since_size, size))
        bundle.consistency.CopyFrom(
            types_pb2.ConsistencyProof(
                old_size=since_size,
                old_root=store.log_root(since_size),
                path=store.consistency_proof(lo, hi),
            )
        )
    return bundle


def sign_checkpoint_note(
    store: Store, genesis: Genesis, key: KeyPair, height: int = 0
) -> services_pb2.CheckpointSignature:
    """This validator's C2SP note signature over the checkpoint of committed ``height``
    (0: the head). Only a committed block, whose certificate the node stored, is signed,
    so a validator only ever signs (size, root) pairs of its own certified log.

    Raises:
        InputError: the key is not a genesis validator.
        NotFoundError: the height is not committed here.
    """
    if key.name not in genesis.validators:
        raise InputError(f"{key.name!r} is not a validator; only validators sign checkpoints")
    h = height or store.head().height
    if h < 1:
        raise NotFoundError("no block is committed yet")
    header = _block(store, h).header
    org = origin(genesis.chain_id, genesis.hash)
    text = checkpoint_text(org, header.log_size, bytes(header.log_root))
    sig = sign_checkpoint(text, org, key)
    return services_pb2.CheckpointSignature(
        validator=key.name, height=h, note=text, signature=sig.signature
    )
