"""Whole-chain invariants checked on every node of a live testnet after a scenario."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from node import merkle
from node.client import LedgerClient
from node.convert import envelope_from_proto
from node.envelope import envelope_leaf_bytes
from proto import types_pb2


def chain_of(address: str, to_height: int) -> list[types_pb2.CommittedBlock]:
    with LedgerClient(address, timeout=120) as c:
        return list(c.stream_blocks(1, to_height))


def check_chain(blocks: list[types_pb2.CommittedBlock]) -> list[bytes]:
    """Contiguous heights, linked headers, recomputed log roots; returns record ids."""
    leaves: list[bytes] = []
    ids: list[bytes] = []
    prev = bytes(32)
    for i, cb in enumerate(blocks, start=1):
        h = types_pb2.BlockHeader.FromString(cb.block.header)
        assert h.height == i, f"height {h.height} at position {i}"
        assert h.prev_block_hash == prev, f"block {i} is not linked to block {i - 1}"
        assert cb.certificate.height == i
        assert cb.certificate.block_hash == hashlib.sha256(cb.block.header).digest()
        for pb in cb.block.envelopes:
            env = envelope_from_proto(pb)
            leaves.append(merkle.leaf_hash(envelope_leaf_bytes(env)))
            ids.append(env.record_id)
        assert h.log_size == len(leaves), f"block {i}: log size {h.log_size} != {len(leaves)}"
        assert h.log_root == merkle.root(leaves), f"block {i}: log root differs"
        prev = hashlib.sha256(cb.block.header).digest()
    return ids


def check_all(addresses: Iterable[str], acknowledged: Iterable[bytes] = ()) -> int:
    """Every node: a valid chain, the same headers at every height, each acknowledged
    record present exactly once. Returns the common height checked."""
    addrs = list(addresses)
    heights = []
    for a in addrs:
        with LedgerClient(a, timeout=10) as c:
            heights.append(int(c.status().height))
    top = min(heights)
    chains = [chain_of(a, top) for a in addrs]
    first_ids = check_chain(chains[0])
    for a, ch in zip(addrs[1:], chains[1:], strict=True):
        assert [b.block.header for b in ch] == [b.block.header for b in chains[0]], (
            f"{a} has other headers than {addrs[0]} below height {top}"
        )
        assert check_chain(ch) == first_ids
    assert len(set(first_ids)) == len(first_ids), "a record is committed twice"
    missing = set(acknowledged) - set(first_ids)
    assert not missing, f"{len(missing)} acknowledged records are not committed by height {top}"
    return top
