"""Committed envelopes read back from the store, checked against the log before use.

LMDB keeps no checksums: a changed byte in ``data.mdb`` would be served as a committed
record. Every envelope a node answers a client with (``GetRecord``, trace histories,
``Prove``) is read through here. Invariant: the envelope returned at log index ``i`` has
the leaf hash the Merkle log stores at ``i`` (the log every block certificate signs), and
one read by record id hashes to that id; anything else raises ``DamagedStoreError``
(gRPC ``DATA_LOSS``), never a wrong answer.
"""

from __future__ import annotations

import hashlib

from google.protobuf.message import DecodeError

from node.compact import envelope_leaf_hash
from node.errors import InputError
from node.store import Store, damaged
from proto import types_pb2


def committed_envelope(store: Store, index: int) -> types_pb2.Envelope | None:
    """The committed envelope at log ``index`` (None past the log), checked against the log."""
    raw = store.get_envelope_at(index)
    if raw is None:
        return None
    try:
        pb = types_pb2.Envelope.FromString(raw)
        leaf = envelope_leaf_hash(pb)
    except (DecodeError, InputError, ValueError) as e:
        raise damaged(f"the envelope at log index {index} does not parse") from e
    if leaf != store.leaf_hash_at(index):
        raise damaged(
            f"the envelope at log index {index} is not the one the log holds (its leaf hash "
            "differs)"
        )
    return pb


def committed_by_id(store: Store, record_id: bytes) -> tuple[int, types_pb2.Envelope] | None:
    """(log index, envelope) of a committed record, checked; None if not committed here."""
    loc = store.record_location(record_id)
    if loc is None:
        return None
    pb = committed_envelope(store, loc[0])
    if pb is None or hashlib.sha256(pb.payload).digest() != record_id:
        raise damaged(
            f"record {record_id.hex()} is indexed at log index {loc[0]}, which holds another record"
        )
    return loc[0], pb


__all__ = ["committed_by_id", "committed_envelope"]
