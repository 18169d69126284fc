"""Transcript tests of the replica, named after the paper's claims (arXiv 1807.04938).

A ``Solo`` drives one replica (v0) with messages the test signs itself using every
validator's key, so Byzantine behaviour is just a message the test chooses to send.
"""

from __future__ import annotations

import pytest

from consensus.certificate import make_certificate, verify_certificate
from consensus.events import (
    BlockValidity,
    Broadcast,
    Commit,
    EvidenceFound,
    MessageReceived,
    PersistSignState,
    ProposalValue,
    Relay,
    RequestProposal,
    RequestSync,
    ScheduleTimeout,
    SyncCommitted,
    TimeoutFired,
    ValidateBlock,
)
from consensus.evidence import verify_evidence
from consensus.messages import Proposal, Step, Vote, VoteType, block_hash_of
from consensus.signing import sign_proposal, sign_vote
from consensus.signstate import SignState
from consensus.state import Replica
from tests.consensus.harness import (
    CHAIN,
    GENESIS,
    PARAMS,
    Cluster,
    is_valid,
    make_block,
    make_ctx,
)


class Solo:
    """Replica v{me} of n, fed by hand."""

    def __init__(
        self, n: int = 4, me: int = 0, height: int = 1, state: bytes | None = None, locked=None
    ):
        self.ctx, self.signers = make_ctx(n)
        self.me = me
        self.r = Replica(self.ctx, self.signers[me], PARAMS, height, state, locked=locked)
        self.log: list[object] = []
        self.last = self.feed_start()

    def feed_start(self):
        out = self.r.start()
        self.log.extend(out)
        return out

    def step(self, ev):
        out = self.r.step(ev)
        self.log.extend(out)
        self.last = out
        return out

    def block(self, h: int, r: int, tag: str = "", invalid: bool = False):
        return make_block(h, r, self.ctx.validators.proposer(h, r), tag, invalid)

    def proposal(self, h, r, block, pol=-1, signer=None):
        s = self.signers[signer if signer is not None else self.proposer_index(h, r)]
        return sign_proposal(s, self.ctx, h, r, pol, block_hash_of(block), block)

    def proposer_index(self, h, r):
        return self.ctx.validators.index(self.ctx.validators.proposer(h, r))

    def vote(self, i, t, h, r, bh):
        return sign_vote(self.signers[i], self.ctx, t, h, r, bh)

    def deliver(self, msg, validity: bool | None = None):
        out = self.step(MessageReceived(msg))
        if validity is not None:
            for a in list(out):
                if isinstance(a, ValidateBlock):
                    out = out + self.step(BlockValidity(a.block_hash, validity))
            self.last = out
        return out

    def answer_validity(self):
        out = []
        for a in self.last:
            if isinstance(a, ValidateBlock):
                out += self.step(BlockValidity(a.block_hash, is_valid(a.block)))
        return out

    def votes(self, out=None, t=None):
        src = self.log if out is None else out
        return [
            a.message
            for a in src
            if isinstance(a, Broadcast)
            and isinstance(a.message, Vote)
            and (t is None or a.message.type == t)
        ]

    def timeout(self, step):
        return self.step(TimeoutFired(self.r.height, self.r.round, step))

    def others(self):
        return [i for i in range(len(self.signers)) if i != self.me]


def kinds(out):
    return [type(a).__name__ for a in out]


# ---------------------------------------------------------------- the happy path


def test_four_validators_decide_with_a_valid_certificate():
    c = Cluster(4)
    c.start()
    c.stabilize()
    commits = [n.commits[0] for n in c.nodes]
    assert {block_hash_of(x.block) for x in commits} == {commits[0].certificate.block_hash}
    for x in commits:
        assert x.height == 1
        r = verify_certificate(
            x.certificate, c.ctx.validators, GENESIS, CHAIN, block_hash_of(x.block)
        )
        assert r
        assert r.verified >= 3
    assert min(n.replica.height for n in c.nodes) > 2  # and it keeps going


def test_only_the_proposer_asks_for_a_value_and_proposers_rotate():
    c = Cluster(4)
    c.start()
    for h in range(1, 9):
        c.stabilize(rounds=3)
        proposer = c.ctx.validators.proposer(h, 0)
        askers = [n.replica.validator_id for n in c.nodes if any(r.height == h for r in n.requests)]
        assert askers == [proposer]
    from proto import types_pb2

    decided = [types_pb2.BlockHeader.FromString(x.block.header) for x in c.nodes[0].commits]
    assert [hd.proposer for hd in decided[:8]] == [
        c.ctx.validators.proposer(h, 0) for h in range(1, 9)
    ]


def test_persist_precedes_every_broadcast_it_protects():
    c = Cluster(4)
    c.start()
    c.stabilize()
    for n in c.nodes:
        last_persisted = None
        for a in n.actions:
            if isinstance(a, PersistSignState):
                last_persisted = a.state
            elif isinstance(a, Broadcast):
                m = a.message
                step = Step.PROPOSE if isinstance(m, Proposal) else m.step
                assert last_persisted is not None
                assert last_persisted.position == (m.height, m.round, int(step))
                assert last_persisted.signature == m.signature


def test_timeouts_grow_with_the_round():
    s = Solo()
    durations = {}
    for r in range(4):
        for a in s.log:
            if isinstance(a, ScheduleTimeout) and a.round == r:
                durations[(r, a.step)] = a.duration_ms
        s.timeout(Step.PROPOSE)
        s.step(TimeoutFired(1, r, Step.PRECOMMIT))
    props = [durations[(r, Step.PROPOSE)] for r in range(4)]
    assert props == [PARAMS.propose_ms + PARAMS.delta_ms * r for r in range(4)]
    assert PARAMS.timeout(Step.PREVOTE, 3) == PARAMS.prevote_ms + 3 * PARAMS.delta_ms


# ---------------------------------------------------------------- validity


def test_no_prevote_until_validity_is_known_then_nil_for_invalid():
    s = Solo()
    bad = s.block(1, 0, invalid=True)
    out = s.deliver(s.proposal(1, 0, bad))
    assert kinds(out) == ["Relay", "ValidateBlock"]
    assert not s.votes()
    out = s.step(BlockValidity(block_hash_of(bad), False))
    assert [v.block_hash for v in s.votes(out)] == [None]


def test_valid_block_is_prevoted_after_the_answer():
    s = Solo()
    b = s.block(1, 0)
    s.deliver(s.proposal(1, 0, b))
    out = s.step(BlockValidity(block_hash_of(b), True))
    assert [v.block_hash for v in s.votes(out)] == [block_hash_of(b)]


def test_invalid_block_is_never_committed_even_with_a_quorum_of_precommits():
    s = Solo()
    bad = s.block(1, 0, invalid=True)
    s.deliver(s.proposal(1, 0, bad), validity=False)
    for i in s.others():
        s.deliver(s.vote(i, VoteType.PRECOMMIT, 1, 0, block_hash_of(bad)))
    assert not any(isinstance(a, Commit) for a in s.log)
    assert s.r.height == 1


# ---------------------------------------------------------------- locking (Lemma: lock)


def lock_v0_on(s: Solo, r: int, block):
    """Drive v0 at round r to prevote and precommit ``block`` (it locks)."""
    s.deliver(s.proposal(1, r, block), validity=True)
    for i in (1, 2):
        s.deliver(s.vote(i, VoteType.PREVOTE, 1, r, block_hash_of(block)))
    assert s.r.locked_round == r
    assert s.r.locked_hash == block_hash_of(block)


def to_round(s: Solo, r: int):
    while s.r.round < r:
        s.timeout(Step.PROPOSE)
        s.timeout(Step.PREVOTE)
        s.step(TimeoutFired(1, s.r.round, Step.PRECOMMIT))
    assert s.r.round == r


def test_locked_validator_prevotes_nil_for_another_value_without_proof_of_lock():
    s = Solo()
    v = s.block(1, 0, "v")
    lock_v0_on(s, 0, v)
    to_round(s, 1)
    w = s.block(1, 1, "w")
    out = s.deliver(s.proposal(1, 1, w), validity=True)
    assert [x.block_hash for x in s.votes(out, VoteType.PREVOTE)] == [None]


def test_locked_validator_ignores_an_older_proof_of_lock():
    s = Solo()
    v = s.block(1, 1, "v")
    w = s.block(1, 0, "w")
    # A (Byzantine-made) polka for w at round 0 that v0 did not act on.
    for i in (1, 2, 3):
        s.deliver(s.vote(i, VoteType.PREVOTE, 1, 0, block_hash_of(w)))
    to_round(s, 1)
    lock_v0_on(s, 1, v)
    to_round(s, 2)
    out = s.deliver(s.proposal(1, 2, w, pol=0), validity=True)  # pol 0 < locked round 1
    assert [x.block_hash for x in s.votes(out, VoteType.PREVOTE)] == [None]


def test_locked_validator_follows_a_newer_proof_of_lock():
    s = Solo()
    v = s.block(1, 0, "v")
    lock_v0_on(s, 0, v)
    to_round(s, 1)
    w = s.block(1, 1, "w")
    for i in (1, 2, 3):  # polka for w at round 1, newer than the lock at 0
        s.deliver(s.vote(i, VoteType.PREVOTE, 1, 1, block_hash_of(w)))
    to_round(s, 2)
    out = s.deliver(s.proposal(1, 2, w, pol=1), validity=True)
    assert [x.block_hash for x in s.votes(out, VoteType.PREVOTE)] == [block_hash_of(w)]


def test_proof_of_lock_must_be_a_real_quorum():
    s = Solo()
    v = s.block(1, 0, "v")
    lock_v0_on(s, 0, v)
    to_round(s, 1)
    w = s.block(1, 1, "w")
    for i in (1, 2):  # only 2 of 3 needed prevotes
        s.deliver(s.vote(i, VoteType.PREVOTE, 1, 1, block_hash_of(w)))
    to_round(s, 2)
    out = s.deliver(s.proposal(1, 2, w, pol=1), validity=True)
    assert not s.votes(out, VoteType.PREVOTE)  # waits (l.28 not enabled) ...
    out = s.timeout(Step.PROPOSE)
    assert [x.block_hash for x in s.votes(out, VoteType.PREVOTE)] == [None]  # ... then nil


def test_locked_proposer_reproposes_its_valid_value():
    s = Solo(me=2)  # v2 proposes (1, 1)
    v = s.block(1, 0, "v")
    s.deliver(s.proposal(1, 0, v), validity=True)
    for i in (0, 1):
        s.deliver(s.vote(i, VoteType.PREVOTE, 1, 0, block_hash_of(v)))
    assert s.r.valid_round == 0
    to_round(s, 1)
    props = [
        a.message for a in s.log if isinstance(a, Broadcast) and isinstance(a.message, Proposal)
    ]
    assert [(p.round, p.pol_round, p.block_hash) for p in props] == [(1, 0, block_hash_of(v))]
    assert not any(isinstance(a, RequestProposal) for a in s.log)


def test_a_decision_at_round_r_survives_view_changes():
    """If one validator decides v at round 0, every later decision is v (Lemma: agreement)."""
    c = Cluster(4)
    c.start()
    c.flush(1, only=lambda m: isinstance(m, Proposal))  # v1's proposal reaches everyone
    for i in range(4):  # prevotes reach everyone: all lock v and precommit v
        c.flush(i, only=lambda m: isinstance(m, Vote) and m.type == VoteType.PREVOTE)
    assert all(n.replica.locked_round == 0 for n in c.nodes)
    assert not c.nodes[0].commits
    for i in (1, 2, 3):
        c.flush(i, [0])  # only v0 sees the precommits and decides
    decided = block_hash_of(c.nodes[0].commits[0].block)
    rest = [1, 2, 3]
    # Their precommits are lost; rounds 1-2 fail (proposals lost, nil polkas), and in
    # round 3 the proposer (v0, having moved on, or Byzantine) proposes a fresh value w.
    for r in (0, 1, 2):
        for i in rest:
            c.nodes[i].outbox.clear()
            c.apply(i, c.nodes[i].replica.step(TimeoutFired(1, r, Step.PRECOMMIT)))
        if r == 2:
            break
        for i in rest:
            c.nodes[i].outbox.clear()
            c.fire(i, Step.PROPOSE)
        c.stabilize(rest)
        assert all(
            c.nodes[i].replica.round == r + 1 and c.nodes[i].replica.locked_round == 0 for i in rest
        )
    w = make_block(1, 3, "v0", "w")
    fresh = sign_proposal(c.signers[0], c.ctx, 1, 3, -1, block_hash_of(w), w)
    for i in rest:
        c.deliver(fresh, i)
        assert [m.block_hash for m in c.nodes[i].outbox if isinstance(m, Vote)] == [None]
    c.stabilize(rest)
    for i in rest:
        c.fire(i, Step.PRECOMMIT)
    c.stabilize(rest)  # round 4: v1 re-proposes v with its proof-of-lock from round 0
    for i in rest:
        assert [block_hash_of(x.block) for x in c.nodes[i].commits][:1] == [decided]
        assert c.nodes[i].commits[0].certificate.round == 4


# ---------------------------------------------------------------- round skip (l.55)


def test_f_plus_one_round_skip():
    s = Solo()
    x = s.block(1, 5, "x")
    s.deliver(s.vote(1, VoteType.PREVOTE, 1, 5, block_hash_of(x)))
    assert s.r.round == 0  # one validator (<= f) may be Byzantine
    out = s.deliver(s.vote(2, VoteType.PRECOMMIT, 1, 7, None))
    assert s.r.round == 5  # f+1 validators are at rounds >= 5
    assert ScheduleTimeout(1, 5, Step.PROPOSE, PARAMS.timeout(Step.PROPOSE, 5)) in out


def test_skip_counts_rounds_too_far_ahead_to_store():
    s = Solo()
    s.deliver(s.vote(1, VoteType.PREVOTE, 1, 1000, None))
    s.deliver(s.vote(2, VoteType.PREVOTE, 1, 999, None))
    assert s.r.counters["round_too_far"] == 2
    assert s.r.round == 999


def test_decided_elsewhere_hints_at_commits_this_replica_has_not_applied():
    s = Solo()
    assert s.r.decided_elsewhere() is None
    s.deliver(s.vote(1, VoteType.PRECOMMIT, 1, 0, None))  # nil precommits decide nothing
    assert s.r.decided_elsewhere() is None
    x = s.block(1, 0, "x")
    s.deliver(s.vote(2, VoteType.PRECOMMIT, 1, 0, block_hash_of(x)))
    assert s.r.decided_elsewhere() == 1
    s.deliver(s.vote(3, VoteType.PREVOTE, 4, 0, None))  # v3 is at height 4: it decided 1-3
    assert s.r.decided_elsewhere() == 3


# ---------------------------------------------------------------- bad input is counted


def test_bad_messages_are_dropped_and_counted():
    s = Solo()
    good = s.vote(1, VoteType.PREVOTE, 1, 0, None)
    forged = Vote(good.type, 1, 0, None, good.validator, bytes(64))
    other_ctx, other_signers = make_ctx(4)
    from consensus.validators import ChainContext

    foreign = sign_vote(
        other_signers[1],
        ChainContext(other_ctx.validators, GENESIS, "other"),
        VoteType.PREVOTE,
        1,
        0,
        None,
    )
    stranger = Vote(good.type, 1, 0, None, "mallory", good.signature)  # type: ignore[arg-type]
    b = s.block(1, 0)
    wrong_proposer = s.proposal(1, 0, b, signer=2)
    p = s.proposal(1, 0, b)
    bad_body = Proposal(
        p.height, p.round, -1, p.block_hash, p.proposer, p.signature, s.block(1, 0, "z")
    )
    for m in (forged, foreign, stranger, wrong_proposer, bad_body, good, good):
        assert not [a for a in s.deliver(m) if isinstance(a, Broadcast)]
    c = s.r.counters
    assert c["bad_signature"] == 2
    assert c["unknown_validator"] == 1
    assert c["wrong_proposer"] == 1
    assert c["bad_block_hash"] == 1
    assert c["duplicate"] == 1


def test_far_past_heights_are_dropped_unverified():
    s = Solo(height=10)
    s.deliver(Vote(VoteType.PREVOTE, 3, 0, None, "v1", bytes(64)))  # type: ignore[arg-type]
    assert s.r.counters == {"stale_height": 1}


def test_events_before_start_raise():
    ctx, signers = make_ctx(4)
    r = Replica(ctx, signers[0], PARAMS)
    with pytest.raises(RuntimeError):
        r.step(TimeoutFired(1, 0, Step.PROPOSE))
    r.start()
    with pytest.raises(RuntimeError):
        r.start()


# ---------------------------------------------------------------- evidence


def test_double_vote_becomes_evidence_once():
    s = Solo()
    a = s.vote(2, VoteType.PREVOTE, 1, 0, bytes([1]) * 32)
    b = s.vote(2, VoteType.PREVOTE, 1, 0, bytes([2]) * 32)
    s.deliver(a)
    out = s.deliver(b)
    ev = [x.evidence for x in out if isinstance(x, EvidenceFound)]
    assert len(ev) == 1
    assert verify_evidence(ev[0], s.ctx.validators, GENESIS, CHAIN)
    assert Relay(b) in out  # gossiped so that other honest nodes see it too
    s.deliver(b)
    s.deliver(s.vote(2, VoteType.PREVOTE, 1, 0, None))
    assert sum(isinstance(x, EvidenceFound) for x in s.log) == 1
    assert s.r.counters["equivocation"] == 2
    assert s.r.counters["conflict_dropped"] == 1  # at most two values per validator and slot


def test_an_equivocators_vote_counts_for_each_value_it_sent():
    """Paper counting: "2f+1 <PREVOTE, h, r, id(v)>" counts senders of a prevote for v; an
    equivocator's second vote, gossiped late, still completes a proof-of-lock."""
    s = Solo()
    v = s.block(1, 0, "v")
    s.deliver(s.proposal(1, 0, v), validity=True)
    s.deliver(s.vote(3, VoteType.PREVOTE, 1, 0, None))  # v3 told us nil ...
    s.deliver(s.vote(1, VoteType.PREVOTE, 1, 0, block_hash_of(v)))
    assert s.r.locked_round == -1
    s.deliver(s.vote(3, VoteType.PREVOTE, 1, 0, block_hash_of(v)))  # ... and others v
    assert s.r.locked_round == 0  # v0, v1, v3 prevoted v: a polka
    assert any(isinstance(a, EvidenceFound) for a in s.log)


def test_double_proposal_becomes_evidence_and_first_is_kept():
    s = Solo()
    b1, b2 = s.block(1, 0, "1"), s.block(1, 0, "2")
    s.deliver(s.proposal(1, 0, b1), validity=True)
    out = s.deliver(s.proposal(1, 0, b2))
    assert any(isinstance(x, EvidenceFound) for x in out)
    assert [v.block_hash for v in s.votes()] == [block_hash_of(b1)]


def test_equivocation_at_a_recent_past_height_is_still_caught():
    s = Solo()
    c = Cluster(4)
    c.start()
    c.stabilize(rounds=2)
    s = Solo(height=3)
    a = s.vote(1, VoteType.PRECOMMIT, 2, 0, bytes([1]) * 32)
    b = s.vote(1, VoteType.PRECOMMIT, 2, 0, bytes([2]) * 32)
    s.deliver(a)
    assert any(isinstance(x, EvidenceFound) for x in s.deliver(b))


# ---------------------------------------------------------------- restart safety


def test_restart_never_signs_a_different_vote_for_the_same_slot():
    s = Solo()
    b = s.block(1, 0)
    s.deliver(s.proposal(1, 0, b), validity=True)
    [prevote] = s.votes()
    state = s.r.sign_state
    assert state is not None
    s2 = Solo(state=state.to_bytes())
    assert (s2.r.round, s2.r.step_name) == (0, Step.PREVOTE)
    out = s2.timeout(Step.PROPOSE)  # would prevote nil at (1, 0): refused
    out += s2.deliver(s.proposal(1, 0, b), validity=True)
    assert not s2.votes(out, VoteType.PREVOTE)
    # It still precommits in round 0 after a polka, and moves on.
    for i in (1, 2):
        s2.deliver(s2.vote(i, VoteType.PREVOTE, 1, 0, block_hash_of(b)))
    s2.deliver(prevote)
    assert [v.block_hash for v in s2.votes(t=VoteType.PRECOMMIT)] == [block_hash_of(b)]


def test_restart_keeps_the_lock():
    s = Solo()
    v = s.block(1, 0, "v")
    lock_v0_on(s, 0, v)
    state = s.r.sign_state
    assert state is not None
    assert state.locked_round == 0
    s2 = Solo(state=SignState.from_bytes(state.to_bytes()).to_bytes())
    assert s2.r.locked_hash == block_hash_of(v)
    s2.step(TimeoutFired(1, 0, Step.PRECOMMIT))
    w = s2.block(1, 1, "w")
    out = s2.deliver(s2.proposal(1, 1, w), validity=True)
    assert [x.block_hash for x in s2.votes(out)] == [None]


def test_restarted_proposer_does_not_propose_twice_differently():
    ctx, signers = make_ctx(4)
    r = Replica(ctx, signers[1], PARAMS)  # v1 proposes (1, 0)
    out = r.start()
    [req] = [a for a in out if isinstance(a, RequestProposal)]
    out = r.step(ProposalValue(1, 0, make_block(1, 0, "v1", "first")))
    assert kinds(out)[:2] == ["PersistSignState", "Broadcast"]
    first = out[0]
    assert isinstance(first, PersistSignState)
    # Crash right after persisting the proposal (the broadcast may or may not have left).
    r2 = Replica(ctx, signers[1], PARAMS, 1, first.state.to_bytes())
    out = r2.start()
    assert not any(isinstance(a, RequestProposal | Broadcast) for a in out)
    out = r2.step(ProposalValue(1, 0, make_block(1, 0, "v1", "second")))
    assert not any(isinstance(a, Broadcast) for a in out)
    assert req == RequestProposal(1, 0)
    # Crash after the whole list: it re-sends its identical prevote, and no proposal.
    assert r.sign_state is not None
    r3 = Replica(ctx, signers[1], PARAMS, 1, r.sign_state.to_bytes())
    resent = [a.message for a in r3.start() if isinstance(a, Broadcast)]
    assert len(resent) == 1
    assert isinstance(resent[0], Vote)
    assert resent[0].type == VoteType.PREVOTE
    assert resent[0].signature == r.sign_state.signature


def test_a_restart_in_a_later_round_re_sends_the_precommit_of_the_round_before():
    """Seed 20563 of ``python -m consensus.sim`` (4 validators, 1 Byzantine): v0 precommitted
    in round 0, moved on and prevoted in round 1, then crashed; its round-0 precommit was
    lost in flight, and the honest validators still in round 0's precommit step waited for
    it for ever. The sign state now keeps the last precommit too, and a restart re-sends it."""
    s = Solo()
    v = s.block(1, 0, "v")
    lock_v0_on(s, 0, v)
    [precommit] = s.votes(t=VoteType.PRECOMMIT)
    for i in (1, 2):  # 2f+1 precommits of round 0, then its timeout: round 1
        s.deliver(s.vote(i, VoteType.PRECOMMIT, 1, 0, None))
    s.step(TimeoutFired(1, 0, Step.PRECOMMIT))
    assert s.r.round == 1
    s.timeout(Step.PROPOSE)  # prevotes in round 1 (its last message)
    state = s.r.sign_state
    assert state is not None
    assert (state.round, state.step, state.precommit_round) == (1, Step.PREVOTE, 0)
    s2 = Solo(state=state.to_bytes())
    resent = s2.votes(s2.last)
    assert precommit in resent
    assert [(x.type, x.round) for x in resent] == [
        (VoteType.PREVOTE, 1),
        (VoteType.PRECOMMIT, 0),
    ]


def test_a_restart_locked_on_a_block_it_kept_proposes_it_again_with_its_proof():
    """Seeds 21493 and 23866 of ``python -m consensus.sim``: a validator restarted locked
    on a block it no longer held; it prevoted nil for every other proposal and could not
    propose that block, and no round decided again. The driver keeps the locked block and
    its proof of lock (``PersistLock``, just before the precommit); a restart resumes with
    it as the valid value, re-sends the proof, and proposes it with that round as pol."""
    from consensus.events import PersistLock
    from consensus.lockstate import LockedValue

    s = Solo()
    v = s.block(1, 0, "v")
    lock_v0_on(s, 0, v)
    kinds_in_order = [type(a).__name__ for a in s.last]
    assert kinds_in_order.index("PersistLock") < kinds_in_order.index("PersistSignState")
    [kept] = [a.value for a in s.log if isinstance(a, PersistLock)]
    assert (kept.height, kept.round, len(kept.prevotes)) == (1, 0, 3)
    state = s.r.sign_state
    assert state is not None
    s2 = Solo(state=state.to_bytes(), locked=LockedValue.from_bytes(kept.to_bytes()))
    assert (s2.r.locked_round, s2.r.valid_round) == (0, 0)
    polka = {(m.validator, m.round) for m in s2.r.rebroadcast() if isinstance(m, Vote)}
    assert {("v0", 0), ("v1", 0), ("v2", 0)} <= polka
    mine = next(r for r in range(1, 9) if s2.proposer_index(1, r) == 0)
    s2.step(TimeoutFired(1, 0, Step.PRECOMMIT))
    to_round(s2, mine)
    [proposal] = [a.message for a in s2.last if isinstance(a, Broadcast)
                  and isinstance(a.message, Proposal)]  # fmt: skip
    assert (proposal.block_hash, proposal.pol_round) == (block_hash_of(v), 0)
    # without the kept value (a driver of an earlier version), it resumes the lock alone
    s3 = Solo(state=state.to_bytes())
    assert (s3.r.locked_round, s3.r.valid_round) == (0, -1)


def test_sign_state_at_a_later_height_blocks_all_signing():
    ctx, signers = make_ctx(4)
    later = SignState(5, 0, Step.PREVOTE, None)
    r = Replica(ctx, signers[1], PARAMS, 1, later)
    r.start()
    out = r.step(ProposalValue(1, 0, make_block(1, 0, "v1")))
    assert not any(isinstance(a, Broadcast) for a in out)
    assert r.counters["sign_refused"] == 1


# ---------------------------------------------------------------- sync and rebroadcast


def committed_chain(heights: int):
    c = Cluster(4)
    c.start()
    c.stabilize(rounds=heights * 3)
    return c, c.nodes[0].commits[:heights]


def test_sync_jumps_heights_with_verified_certificates():
    c, chain = committed_chain(3)
    s = Solo(me=0)
    s.ctx, s.signers = c.ctx, c.signers
    out = s.step(SyncCommitted(chain[1].block, chain[1].certificate))
    assert s.r.counters["sync_gap"] == 1
    assert not out
    out = s.step(SyncCommitted(chain[0].block, chain[0].certificate))
    assert [a.height for a in out if isinstance(a, Commit)] == [1]
    s.step(SyncCommitted(chain[0].block, chain[0].certificate))
    assert s.r.counters["stale_sync"] == 1
    forged = chain[1].certificate.__class__()
    forged.CopyFrom(chain[1].certificate)
    del forged.signatures[1:]
    s.step(SyncCommitted(chain[1].block, forged))
    assert s.r.counters["bad_sync"] == 1
    s.step(SyncCommitted(chain[2].block, chain[1].certificate))  # cert for another block
    assert s.r.counters["bad_sync"] == 2
    out = s.r.catch_up(chain[1].block, chain[1].certificate)
    assert [a.height for a in out if isinstance(a, Commit)] == [2]
    assert s.r.height == 3


def test_request_sync_when_f_plus_one_are_two_heights_ahead():
    s = Solo()
    s.deliver(s.vote(1, VoteType.PREVOTE, 3, 0, None))
    assert s.r.sync_needed() is None
    out = s.deliver(s.vote(2, VoteType.PREVOTE, 5, 0, None))
    assert RequestSync(1) in out
    assert s.r.sync_needed() == 1


def test_seen_ahead_when_f_plus_one_are_one_height_ahead():
    s = Solo()
    s.deliver(s.vote(1, VoteType.PREVOTE, 2, 0, None))
    assert not s.r.seen_ahead()  # one validator ahead may be a faulty one
    s.deliver(s.vote(2, VoteType.PREVOTE, 2, 0, None))
    assert s.r.seen_ahead()  # f+1: a correct one decided height 1 without us
    assert s.r.sync_needed() is None  # only one height: the driver waits, then syncs


def test_rebroadcast_own_and_last_commit():
    c = Cluster(4)
    c.start()
    c.stabilize(rounds=2)  # height 1 decided, height 2 under way
    r = c.nodes[0].replica
    own = r.rebroadcast(own_only=True)
    assert own
    assert all((m.proposer if isinstance(m, Proposal) else m.validator) == "v0" for m in own)
    everything = r.rebroadcast()
    last_precommits = [m for m in everything if isinstance(m, Vote) and m.height == r.height - 1]
    assert len(last_precommits) >= 3
    # A replica that missed height 1 entirely decides it from the re-gossiped last commit.
    late = Replica(c.ctx, c.signers[3], PARAMS)
    late.start()
    out = []
    for m in everything:
        out += late.step(MessageReceived(m))
        for a in list(out):
            if isinstance(a, ValidateBlock):
                out += late.step(BlockValidity(a.block_hash, True))
    assert any(isinstance(a, Commit) and a.height == 1 for a in out)


def test_follower_without_a_key_commits_but_never_signs():
    c = Cluster(4)
    follower = Replica(c.ctx, None, PARAMS)
    follower.start()
    c.start()
    c.flush(1)
    for i in range(4):
        c.flush(i)
    for n in c.nodes:
        for a in n.actions:
            if isinstance(a, Broadcast):
                for ax in follower.step(MessageReceived(a.message)):
                    assert not isinstance(ax, Broadcast | PersistSignState)
                    if isinstance(ax, ValidateBlock):
                        follower.step(BlockValidity(ax.block_hash, True))
    assert follower.height == 2


def test_certificate_from_commit_is_minimal_input_for_verify():
    c, chain = committed_chain(1)
    cert = chain[0].certificate
    rebuilt = make_certificate(c.ctx.validators, cert.height, cert.round, cert.block_hash, [])
    assert len(rebuilt.signatures) == 0
    assert verify_certificate(cert, c.ctx.validators, GENESIS, CHAIN, block_hash_of(chain[0].block))
