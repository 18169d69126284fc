"""Proof bundles: everything an auditor needs to check one record offline.

A bundle (``ProofBundle`` in proto/types.proto) holds the envelope exactly as committed, its
log index, an RFC 9162 inclusion path against the log root of a certified header (the
node's latest block), that header's exact bytes and commit certificate, and optionally a
consistency proof from an older log size to this header's.
"""

from __future__ import annotations

from node.errors import InputError, NotFoundError
from node.genesis import Genesis
from node.store import Store
from proto import types_pb2

BUNDLE_FORMAT = "suyuan-proof/1"


def build_bundle(
    store: Store, genesis: Genesis, record_id: bytes, *, since_size: int = 0
) -> types_pb2.ProofBundle:
    loc = store.record_location(record_id)
    if loc is None:
        raise NotFoundError(f"record {record_id.hex()} is not committed on this node")
    index, height = loc
    head = store.head()
    block = store.get_block(head.height)
    raw = store.get_envelope_at(index)
    if block is None or raw is None:
        raise NotFoundError("the committed block or envelope is missing")
    bundle = types_pb2.ProofBundle(
        format=BUNDLE_FORMAT,
        genesis_hash=genesis.hash,
        envelope=types_pb2.Envelope.FromString(raw),
        log_index=index,
        inclusion_path=store.inclusion_proof(index, head.log_size),
        header=block.header_bytes,
        certificate=types_pb2.CommitCertificate.FromString(block.certificate_bytes),
        record_height=height,
    )
    if since_size:
        if since_size > head.log_size:
            raise InputError(f"since_size {since_size} is beyond the log ({head.log_size})")
        bundle.consistency.CopyFrom(
            types_pb2.ConsistencyProof(
                old_size=since_size,
                old_root=store.log_root(since_size),
                path=store.consistency_proof(since_size, head.log_size),
            )
        )
    return bundle
