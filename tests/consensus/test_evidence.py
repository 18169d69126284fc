"""Equivocation evidence verifies offline and only when it proves an equivocation."""

import pytest

from consensus.evidence import (
    evidence_key,
    proposal_evidence,
    require_evidence,
    verify_evidence,
    vote_evidence,
)
from consensus.messages import VoteType, block_hash_of
from consensus.signing import sign_proposal, sign_vote
from node.errors import VerificationError
from proto import consensus_pb2
from tests.consensus.harness import CHAIN, GENESIS, make_block, make_ctx

A, B = bytes([1]) * 32, bytes([2]) * 32
PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


def ok(ev, ctx):
    return verify_evidence(ev, ctx.validators, GENESIS, CHAIN)


def test_double_prevote_is_evidence_and_canonical():
    ctx, s = make_ctx(4)
    a = sign_vote(s[2], ctx, VoteType.PREVOTE, 3, 1, A)
    b = sign_vote(s[2], ctx, VoteType.PREVOTE, 3, 1, None)
    ev1, ev2 = vote_evidence(a, b, GENESIS, CHAIN), vote_evidence(b, a, GENESIS, CHAIN)
    assert ok(ev1, ctx)
    assert ev1.SerializeToString() == ev2.SerializeToString()
    assert evidence_key(ev1) == ("vote", "v2", 3, 1, 1)
    require_evidence(ev1, ctx.validators, GENESIS, CHAIN)


def test_double_proposal_is_evidence_without_bodies():
    ctx, s = make_ctx(4)
    b1, b2 = make_block(1, 0, "v1", "x"), make_block(1, 0, "v1", "y")
    p1 = sign_proposal(s[1], ctx, 1, 0, -1, block_hash_of(b1), b1)
    p2 = sign_proposal(s[1], ctx, 1, 0, -1, block_hash_of(b2), b2)
    ev = proposal_evidence(p1, p2, GENESIS, CHAIN)
    assert ok(ev, ctx)
    assert not ev.duplicate_proposal.a.HasField("block")
    # Same block, different pol_round is also a conflict.
    p3 = sign_proposal(s[1], ctx, 1, 3, 1, block_hash_of(b1), b1)
    p4 = sign_proposal(s[1], ctx, 1, 3, -1, block_hash_of(b1), b1)
    assert ok(proposal_evidence(p3, p4, GENESIS, CHAIN), ctx)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda s, c: (sign_vote(s[0], c, PV, 3, 1, A), sign_vote(s[0], c, PV, 3, 1, A)),
            "conflict",
        ),
        (
            lambda s, c: (sign_vote(s[0], c, PV, 3, 1, A), sign_vote(s[1], c, PV, 3, 1, B)),
            "different",
        ),
        (
            lambda s, c: (sign_vote(s[0], c, PV, 3, 1, A), sign_vote(s[0], c, PV, 3, 2, B)),
            "different",
        ),
        (
            lambda s, c: (sign_vote(s[0], c, PV, 3, 1, A), sign_vote(s[0], c, PC, 3, 1, B)),
            "different",
        ),
        (
            lambda s, c: (sign_vote(s[0], c, PV, 4, 1, A), sign_vote(s[0], c, PV, 3, 1, B)),
            "different",
        ),
    ],
)
def test_non_equivocations_are_rejected(make, reason):
    ctx, s = make_ctx(4)
    a, b = make(s, ctx)
    ev = consensus_pb2.Evidence(
        duplicate_vote=consensus_pb2.DuplicateVote(a=a.to_proto(), b=b.to_proto())
    )
    assert not ok(ev, ctx)
    with pytest.raises(VerificationError, match=reason):
        require_evidence(ev, ctx.validators, GENESIS, CHAIN)


def test_forged_signature_is_rejected():
    ctx, s = make_ctx(4)
    a = sign_vote(s[0], ctx, VoteType.PRECOMMIT, 3, 1, A)
    b = sign_vote(s[1], ctx, VoteType.PRECOMMIT, 3, 1, B)
    ev = vote_evidence(a, b, GENESIS, CHAIN)
    ev.duplicate_vote.b.validator = "v0"  # v1's signature claimed as v0's
    with pytest.raises(VerificationError, match="invalid signature"):
        require_evidence(ev, ctx.validators, GENESIS, CHAIN)


def test_other_chain_and_non_validator_and_empty():
    ctx, s = make_ctx(4)
    a = sign_vote(s[0], ctx, VoteType.PREVOTE, 3, 1, A)
    b = sign_vote(s[0], ctx, VoteType.PREVOTE, 3, 1, B)
    ev = vote_evidence(a, b, GENESIS, CHAIN)
    assert not verify_evidence(ev, ctx.validators, GENESIS, "other")
    small, _ = make_ctx(3)
    other_ctx, other_s = make_ctx(5)
    ev5 = vote_evidence(
        sign_vote(other_s[4], other_ctx, PV, 3, 1, A),
        sign_vote(other_s[4], other_ctx, PV, 3, 1, B),
        GENESIS,
        CHAIN,
    )
    with pytest.raises(VerificationError, match="not a validator"):
        require_evidence(ev5, ctx.validators, GENESIS, CHAIN)
    with pytest.raises(VerificationError, match="no kind"):
        require_evidence(consensus_pb2.Evidence(), ctx.validators, GENESIS, CHAIN)
    bad = consensus_pb2.Evidence()
    bad.CopyFrom(ev)
    bad.duplicate_vote.a.signature = b"short"
    with pytest.raises(VerificationError, match="signature must be 64 bytes"):
        require_evidence(bad, small.validators, GENESIS, CHAIN)


@pytest.mark.parametrize("keep", ["a", "b"])
def test_evidence_with_one_message_missing_says_so(keep):
    # QA-P: a missing vote b was reported as "vote: unknown type 0"
    from consensus.evidence import check_evidence

    ctx, s = make_ctx(4)
    vote = sign_vote(s[2], ctx, PV, 3, 1, A)
    ev = consensus_pb2.Evidence(
        duplicate_vote=consensus_pb2.DuplicateVote(**{keep: vote.to_proto()})
    )
    other = "b" if keep == "a" else "a"
    assert check_evidence(ev, ctx.validators, GENESIS, CHAIN) == (
        f"evidence: duplicate_vote: message {other!r} is missing (two are needed)"
    )
