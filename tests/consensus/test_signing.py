"""Sign-bytes layout, signing and verification."""

import struct

import pytest

from consensus.messages import Proposal, Vote, VoteType, decode_message, encode_message
from consensus.signing import (
    proposal_sign_bytes,
    sign_proposal,
    sign_vote,
    verify_message,
    vote_sign_bytes,
)
from consensus.validators import BlockHash, ChainContext, ValidatorId, ValidatorSet
from node.errors import InputError
from tests.consensus.harness import CHAIN, GENESIS, make_block, make_ctx

H = bytes(range(32))


def test_vote_sign_bytes_layout():
    got = vote_sign_bytes(GENESIS, CHAIN, VoteType.PRECOMMIT, 7, 3, H)
    want = (
        b"suyuan/precommit/v1\0"
        + GENESIS
        + struct.pack(">H", len(CHAIN))
        + CHAIN.encode()
        + struct.pack(">QI", 7, 3)
        + b"\x02"
        + b"\x01"
        + H
    )
    assert got == want


def test_nil_vote_sign_bytes():
    got = vote_sign_bytes(GENESIS, CHAIN, VoteType.PREVOTE, 1, 0, None)
    assert got.startswith(b"suyuan/prevote/v1\0")
    assert got.endswith(b"\x01\x00" + bytes(32))


def test_proposal_sign_bytes_layout():
    got = proposal_sign_bytes(GENESIS, CHAIN, 2, 5, -1, H)
    want = (
        b"suyuan/proposal/v1\0"
        + GENESIS
        + struct.pack(">H", len(CHAIN))
        + CHAIN.encode()
        + struct.pack(">QI", 2, 5)
        + b"\x20"
        + b"\xff\xff\xff\xff"
        + b"\x01"
        + H
    )
    assert got == want


def test_types_and_nil_are_domain_separated():
    all_bytes = {
        vote_sign_bytes(GENESIS, CHAIN, VoteType.PREVOTE, 1, 0, H),
        vote_sign_bytes(GENESIS, CHAIN, VoteType.PRECOMMIT, 1, 0, H),
        vote_sign_bytes(GENESIS, CHAIN, VoteType.PREVOTE, 1, 0, None),
        vote_sign_bytes(GENESIS, CHAIN, VoteType.PREVOTE, 1, 0, bytes(32)),
        proposal_sign_bytes(GENESIS, CHAIN, 1, 0, -1, H),
        vote_sign_bytes(GENESIS, CHAIN + "x", VoteType.PREVOTE, 1, 0, H),
    }
    assert len(all_bytes) == 6


def test_signed_vote_verifies_and_roundtrips():
    ctx, signers = make_ctx(4)
    v = sign_vote(signers[1], ctx, VoteType.PREVOTE, 3, 1, H)
    assert verify_message(v, ctx) is None
    assert decode_message(encode_message(v).SerializeToString()) == v


def test_signed_proposal_verifies_and_roundtrips():
    ctx, signers = make_ctx(4)
    block = make_block(1, 0, "v1")
    from consensus.messages import block_hash_of

    p = sign_proposal(signers[1], ctx, 1, 0, -1, block_hash_of(block), block)
    assert verify_message(p, ctx) is None
    back = decode_message(encode_message(p).SerializeToString())
    assert isinstance(back, Proposal)
    assert back == p
    assert back.block == block


def test_other_chain_or_genesis_fails():
    ctx, signers = make_ctx(4)
    v = sign_vote(signers[0], ctx, VoteType.PREVOTE, 1, 0, H)
    other_chain = ChainContext(ctx.validators, GENESIS, "other")
    other_genesis = ChainContext(ctx.validators, bytes(32), CHAIN)
    assert verify_message(v, other_chain) == "bad_signature"
    assert verify_message(v, other_genesis) == "bad_signature"


def test_tampered_and_unknown_signer():
    ctx, signers = make_ctx(4)
    v = sign_vote(signers[0], ctx, VoteType.PREVOTE, 1, 0, H)
    tampered = Vote(v.type, v.height, v.round, None, v.validator, v.signature)
    assert verify_message(tampered, ctx) == "bad_signature"
    impostor = Vote(v.type, v.height, v.round, v.block_hash, ValidatorId("v1"), v.signature)
    assert verify_message(impostor, ctx) == "bad_signature"
    stranger = Vote(v.type, v.height, v.round, v.block_hash, ValidatorId("zz"), v.signature)
    assert verify_message(stranger, ctx) == "unknown_validator"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda pb: setattr(pb.vote, "height", 0),
        lambda pb: setattr(pb.vote, "block_hash", b"short"),
        lambda pb: setattr(pb.vote, "signature", b"x" * 10),
        lambda pb: setattr(pb.vote, "type", 0),
        lambda pb: setattr(pb.vote, "validator", ""),
        lambda pb: pb.ClearField("vote"),
    ],
)
def test_malformed_messages_raise_input_error(mutate):
    ctx, signers = make_ctx(4)
    pb = encode_message(sign_vote(signers[0], ctx, VoteType.PREVOTE, 1, 0, H))
    mutate(pb)
    with pytest.raises(InputError):
        decode_message(pb)


def test_garbage_bytes_raise_input_error():
    with pytest.raises(InputError):
        decode_message(b"\xff\xff\xff")


def test_proposal_pol_round_must_precede_round():
    ctx, signers = make_ctx(4)
    block = make_block(1, 0, "v1")
    from consensus.messages import block_hash_of

    p = sign_proposal(signers[1], ctx, 1, 2, 2, block_hash_of(block), block)
    with pytest.raises(InputError, match="pol_round"):
        decode_message(encode_message(p))


def test_validator_set_rules():
    ctx, _ = make_ctx(4)
    pairs = list(ctx.validators.members)
    with pytest.raises(ValueError, match="duplicate validator id"):
        ValidatorSet.from_pairs([pairs[0], pairs[0]])
    with pytest.raises(ValueError, match="already used"):
        ValidatorSet.from_pairs([pairs[0], ("other", pairs[0][1])])
    with pytest.raises(ValueError, match="32 bytes"):
        ValidatorSet.from_pairs([("a", b"x")])
    with pytest.raises(ValueError, match="empty"):
        ValidatorSet.from_pairs([])


def test_proposer_rotates_by_height_and_round():
    ctx, _ = make_ctx(4)
    vs = ctx.validators
    assert [vs.proposer(1, r) for r in range(5)] == ["v1", "v2", "v3", "v0", "v1"]
    assert [vs.proposer(h, 0) for h in range(1, 5)] == ["v1", "v2", "v3", "v0"]
    assert vs.n == 4
    assert vs.f == 1
    assert vs.quorum == 3
    assert vs.skip == 2
    _ = BlockHash
