"""node.compact: a block sent by leaf hashes is rebuilt byte for byte, or not at all."""

from __future__ import annotations

import hashlib

import pytest

from node.compact import assemble, check, envelope_leaf_hash, fill, resolve, to_compact
from node.errors import InputError
from proto import types_pb2
from tests.fixtures import genesis
from tests.node.livenode import signed

G = genesis()


def _block(n: int) -> tuple[types_pb2.Block, list[bytes]]:
    envs = [signed(G, f"urn:c:{i}") for i in range(n)]
    block = types_pb2.Block(header=b"header bytes", envelopes=envs)
    return block, [envelope_leaf_hash(e) for e in envs]


def test_round_trip_from_a_pool_is_the_same_block() -> None:
    block, hashes = _block(5)
    c = to_compact(block, hashes)
    check(c, hashlib.sha256(block.header).digest(), max_records=5)
    pool = {h: e for h, e in zip(hashes, block.envelopes, strict=True)}
    slots, missing = resolve(c, pool.get)
    assert missing == []
    assert assemble(c, slots).SerializeToString() == block.SerializeToString()


def test_missing_records_are_filled_only_by_envelopes_with_their_hash() -> None:
    block, hashes = _block(4)
    c = to_compact(block, hashes)
    pool = {hashes[0]: block.envelopes[0], hashes[3]: block.envelopes[3]}
    slots, missing = resolve(c, pool.get)
    assert missing == [1, 2]
    tampered = types_pb2.Envelope()
    tampered.CopyFrom(block.envelopes[1])
    tampered.signatures[0].sig = bytes(64)  # same payload, other signature: another leaf
    unrelated = signed(G, "urn:c:other")
    still = fill(c, slots, missing, [tampered, unrelated, types_pb2.Envelope()])
    assert still == [1, 2]
    with pytest.raises(ValueError, match="empty"):
        assemble(c, slots)
    assert fill(c, slots, still, [block.envelopes[2], block.envelopes[1]]) == []
    assert assemble(c, slots).SerializeToString() == block.SerializeToString()


def test_a_repeated_hash_fills_every_position_it_names() -> None:
    block, hashes = _block(1)
    c = to_compact(types_pb2.Block(header=b"h"), [])
    c.leaf_hashes.extend([hashes[0], hashes[0]])
    nothing: dict[bytes, types_pb2.Envelope] = {}
    slots, missing = resolve(c, nothing.get)
    assert fill(c, slots, missing, [block.envelopes[0]]) == []
    assert len(assemble(c, slots).envelopes) == 2  # validation refuses the repeat later


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: setattr(c, "header", b"other header"), "does not hash"),
        (lambda c: c.leaf_hashes.append(b"\x01" * 32), "the limit is 3"),
        (lambda c: c.leaf_hashes.__setitem__(0, b"\x01" * 31), "not 32 bytes"),
        (lambda c: setattr(c, "header", b"x" * 5000), "header is 5000 bytes"),
    ],
)
def test_malformed_compact_blocks_are_refused(mutate, match) -> None:
    block, hashes = _block(3)
    c = to_compact(block, hashes)
    bh = hashlib.sha256(block.header).digest()
    mutate(c)
    with pytest.raises(InputError, match=match):
        check(c, bh, max_records=3)


def test_to_compact_needs_one_hash_per_envelope() -> None:
    block, hashes = _block(2)
    with pytest.raises(ValueError, match="one leaf hash"):
        to_compact(block, hashes[:1])


def test_fill_looks_at_no_more_envelopes_than_hashes_wanted() -> None:
    block, hashes = _block(3)
    c = to_compact(block, hashes)
    pool = {hashes[0]: block.envelopes[0], hashes[2]: block.envelopes[2]}
    slots, missing = resolve(c, pool.get)
    assert missing == [1]
    junk = signed(G, "urn:c:junk")
    # one hash wanted: only the first envelope of the answer is looked at
    assert fill(c, slots, missing, [junk, block.envelopes[1]]) == [1]
    assert fill(c, slots, missing, [block.envelopes[1], junk]) == []
