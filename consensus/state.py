"""The replica: Tendermint's Algorithm 1 as a pure, deterministic state machine.

Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus" (arXiv 1807.04938). The
replica does no I/O and reads no clock: ``step(event)`` returns the actions the driver must
execute, in order (``consensus.events`` documents each). Line numbers below are the paper's.

State per height: ``round``, ``step``, ``lockedValue/lockedRound`` (here the locked block
hash), ``validValue/validRound``. Rules, re-evaluated after every event until none fires:

- StartRound(r) (l.11): the proposer (``ValidatorSet.proposer``, round robin over
  height + round) proposes ``validValue`` with ``validRound`` if it has one, else asks the
  driver for a value (``RequestProposal``). Every validator schedules timeoutPropose (the
  proposer too, in case the driver never answers).
- l.22/l.28: on the round's proposal, prevote it iff it is valid (the driver's
  ``BlockValidity``; the replica waits for the answer) and the lock allows it: not locked,
  locked on the same value, or the proposal carries a proof-of-lock (2f+1 prevotes at
  ``pol_round``) with ``lockedRound <= pol_round < round``. Otherwise prevote nil.
- l.34/l.47: timeoutPrevote / timeoutPrecommit after 2f+1 votes of any kind.
- l.36: 2f+1 prevotes for the valid proposal: lock and precommit it (if still at
  prevote), and record it as the valid value.
- l.44: 2f+1 nil prevotes: precommit nil.
- l.49: 2f+1 precommits for a valid block at any round r: decide it (``Commit`` with the
  certificate), move to height + 1, forget locks, start round 0.
- l.55: messages from f+1 validators at rounds above ours: skip to that round.
- l.57-65: timeouts prevote nil, precommit nil, start the next round.

Invariants:

1. Every signature goes through ``SignGuard``: a ``PersistSignState`` action precedes every
   ``Broadcast`` of a new signature, so a driver that persists before sending never signs
   two different messages for one (height, round, step), across restarts too.
2. Malformed, badly signed, foreign or stale messages are dropped and counted in
   ``counters``; the replica never raises on network input.
3. A message counts at most once: one proposal per round, one vote per (round, type,
   validator). A conflicting, validly signed second message yields ``EvidenceFound`` once.
4. The replica treats blocks as opaque except for their hash, SHA-256(header).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from consensus.certificate import certificate_votes, make_certificate, verify_certificate
from consensus.events import (
    Action,
    BlockValidity,
    Broadcast,
    Commit,
    Event,
    EvidenceFound,
    MessageReceived,
    PersistLock,
    PersistSignState,
    ProposalValue,
    Relay,
    RequestProposal,
    RequestSync,
    ScheduleTimeout,
    Start,
    SyncCommitted,
    TimeoutFired,
    ValidateBlock,
)
from consensus.evidence import evidence_key, proposal_evidence, vote_evidence
from consensus.lockstate import LockedValue
from consensus.messages import Message, Proposal, Step, Vote, VoteType, block_hash_of
from consensus.params import TimeoutParams
from consensus.signing import Signer, sign_proposal, sign_vote, verify_message
from consensus.signstate import SignGuard, SignState
from consensus.validators import BlockHash, ChainContext, ValidatorId
from consensus.votes import HeightLog
from proto import types_pb2

__all__ = [
    "FUTURE_HEIGHTS_BUFFERED",
    "MAX_ROUNDS_AHEAD",
    "PAST_HEIGHTS_KEPT",
    "Replica",
]

PAST_HEIGHTS_KEPT = 2
"""Messages for this many heights below the current one are still checked for equivocation
(then dropped); older ones are dropped unverified as ``stale_height``."""

FUTURE_HEIGHTS_BUFFERED = 2
"""Messages for up to this many heights above the current one are kept for later."""

MAX_ROUNDS_AHEAD = 64
"""Messages more than this many rounds ahead are not stored (bounding memory a Byzantine
validator can fill); they still count towards the f+1 round skip once verified."""

SYNC_LAG = 2
"""``RequestSync`` when f+1 validators are seen at least this many heights ahead. A lag of
one is healed by the re-gossiped last commit (see ``rebroadcast``)."""


class Replica:
    """One validator's Tendermint state machine (see the module docstring).

    Construct with the chain context, this validator's signer (None, or a signer whose id is
    not in the validator set, makes a non-voting follower), timeout parameters, the height
    to decide next (last committed + 1) and, after a restart, the last persisted
    ``SignState``. Then feed ``Start()`` once, and every event after it.
    """

    def __init__(
        self,
        ctx: ChainContext,
        signer: Signer | None,
        params: TimeoutParams,
        height: int = 1,
        sign_state: SignState | bytes | None = None,
        last_commit: tuple[types_pb2.Block, types_pb2.CommitCertificate] | None = None,
        locked: LockedValue | None = None,
    ) -> None:
        if height < 1:
            raise ValueError("height must be >= 1")
        if isinstance(sign_state, bytes):
            sign_state = SignState.from_bytes(sign_state)
        self._locked_value = locked  # (``PersistLock``'s, given back after a restart)
        self._ctx = ctx
        self._vs = ctx.validators
        self._params = params
        self._signer = signer if signer is not None and signer.validator_id in self._vs else None
        self._me: ValidatorId | None = None if self._signer is None else self._signer.validator_id
        self._guard = SignGuard(sign_state)
        self._counters: Counter[str] = Counter()
        self._out: list[Action] = []
        self._started = False
        self._height = height
        self._logs: dict[int, HeightLog] = {}
        self._final_round: dict[int, int] = {}
        self._evidence_keys: set[tuple[str, str, int, int, int]] = set()
        self._seen_height: dict[ValidatorId, int] = {}
        self._sync_requested = 0
        self._last_commit: list[Message] = []
        if last_commit is not None:
            self._last_commit = list(certificate_votes(last_commit[1]))
        self._reset_height_state()

    # ------------------------------------------------------------ public view

    @property
    def height(self) -> int:
        return self._height

    @property
    def round(self) -> int:
        return self._round

    @property
    def step_name(self) -> Step:
        return self._step

    @property
    def locked_round(self) -> int:
        return self._locked_round

    @property
    def locked_hash(self) -> BlockHash | None:
        return self._locked_hash

    @property
    def valid_round(self) -> int:
        return self._valid_round

    @property
    def validator_id(self) -> ValidatorId | None:
        return self._me

    @property
    def sign_state(self) -> SignState | None:
        """The last state handed out in ``PersistSignState``."""
        return self._guard.last

    @property
    def counters(self) -> Mapping[str, int]:
        """Dropped and notable messages by reason (``bad_signature``, ``unknown_validator``,
        ``stale_height``, ``duplicate``, ``equivocation``, ...)."""
        return dict(self._counters)

    def retains(self, height: int, round_: int) -> bool:
        """Whether a message for ``(height, round)`` received now would be kept in the log
        (and so compared against later ones for equivocation)."""
        if not self._height - PAST_HEIGHTS_KEPT <= height <= self._height + FUTURE_HEIGHTS_BUFFERED:
            return False
        return round_ <= self._round_limit(height)

    def seen_ahead(self) -> bool:
        """f+1 validators (so at least one correct one) were seen at a later height: the
        height being decided here was decided without this replica (the driver syncs if
        that lasts)."""
        return self._sync_target() > self._height

    def decided_elsewhere(self) -> int | None:
        """The highest height another validator has (probably) decided that this replica
        has not applied, or ``None``: a height above this one some validator was seen at
        (it moved on, so it committed the heights before), else this height if some
        validator precommitted a block in it. A hint for the driver, which may wait for
        those commits before refusing a client (a Byzantine validator can make it true at
        will; it never changes what is decided)."""
        ahead = max(self._seen_height.values(), default=0)
        if ahead > self._height:
            return ahead - 1
        log = self._logs.get(self._height)
        return self._height if log is not None and log.has_block_precommit() else None

    def sync_needed(self) -> int | None:
        """The height to fetch from if f+1 validators are seen >= ``SYNC_LAG`` heights ahead."""
        return self._height if self._sync_target() >= self._height + SYNC_LAG else None

    def rebroadcast(self, own_only: bool = False) -> list[Message]:
        """Messages to resend on a timer (the network may have dropped them).

        The current and previous rounds' proposals and votes (a peer still in the previous
        round needs them to time out of it), the proposals and prevotes of the valid and
        locked rounds (a proof-of-lock peers may need), every vote of our own at this
        height, and the last height's commit (its proposal and precommits, so a peer one
        height behind can decide). With ``own_only``, only this validator's own messages.
        """
        log = self._log(self._height)
        r = self._round
        out: list[Message] = []
        for rr in sorted({r, self._valid_round, self._locked_round} - {-1}):
            out.extend(log.round_proposals(rr))
            out.extend(log.round_votes(rr, VoteType.PREVOTE))
        out.extend(log.round_votes(r, VoteType.PRECOMMIT))
        if r > 0:
            out.extend(log.round_proposals(r - 1))
            out.extend(log.round_votes(r - 1, VoteType.PREVOTE))
            out.extend(log.round_votes(r - 1, VoteType.PRECOMMIT))
        if self._me is not None:  # every vote of our own at this height
            for rr in range(r - 1):
                for t in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                    out.extend(log.votes.get((rr, t), {}).get(self._me, {}).values())
        out.extend(self._last_commit)
        out = list(dict.fromkeys(out))
        if own_only:
            out = [m for m in out if _sender(m) == self._me]
        return out

    # ------------------------------------------------------------ entry points

    def catch_up(
        self, block: types_pb2.Block, certificate: types_pb2.CommitCertificate
    ) -> list[Action]:
        """Same as ``step(SyncCommitted(block, certificate))``."""
        return self.step(SyncCommitted(block, certificate))

    def start(self) -> list[Action]:
        """Same as ``step(Start())``."""
        return self.step(Start())

    def step(self, event: Event) -> list[Action]:
        """Apply one event; return the actions to execute in order."""
        if isinstance(event, Start):
            if self._started:
                raise RuntimeError("replica already started")
            self._started = True
            self._begin()
        elif not self._started:
            raise RuntimeError("feed Start() before any other event")
        elif isinstance(event, MessageReceived):
            self._on_message(event.message, event.verified)
        elif isinstance(event, TimeoutFired):
            self._on_timeout(event)
        elif isinstance(event, ProposalValue):
            self._on_value(event)
        elif isinstance(event, BlockValidity):
            self._on_validity(event)
        elif isinstance(event, SyncCommitted):
            self._on_sync(event)
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"unknown event {event!r}")
        self._run_rules()
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------ height and round

    def _reset_height_state(self) -> None:
        self._round = 0
        self._step = Step.PROPOSE
        self._locked_round = -1
        self._locked_hash: BlockHash | None = None
        self._valid_round = -1
        self._valid_hash: BlockHash | None = None
        self._valid_block: types_pb2.Block | None = None
        self._awaiting_value = False
        self._last_prevote: Vote | None = None
        self._last_precommit: Vote | None = None
        self._prevote_wait: set[int] = set()
        self._precommit_wait: set[int] = set()
        self._polka_done: set[int] = set()

    def _log(self, height: int) -> HeightLog:
        log = self._logs.get(height)
        if log is None:
            log = self._logs[height] = HeightLog(height, self._vs.quorum)
        return log

    def _begin(self) -> None:
        last = self._guard.last
        if last is not None and last.height == self._height:
            # Resume where the last signature left us, with the lock it recorded.
            self._locked_round, self._locked_hash = last.locked_round, last.locked_hash
            self._round, self._step = last.round, last.step
            self._resume_locked_value(last)
            if last.step == Step.PROPOSE:
                self._schedule(Step.PROPOSE)
            self._counters["resumed"] += 1
            self._resend_signed(last)
            self._request_buffered_validity()
            return
        self._start_round(0)
        self._request_buffered_validity()

    def _resume_locked_value(self, last: SignState) -> None:
        """The block locked on before the restart, if the driver kept it (``PersistLock``):
        the valid value again, with its proof of lock in the log, which ``rebroadcast``
        re-sends (``consensus.lockstate``)."""
        lv = self._locked_value
        if (
            lv is None
            or last.locked_round < 0
            or (lv.height, lv.round) != (last.height, last.locked_round)
            or block_hash_of(lv.block) != last.locked_hash
        ):
            return
        log = self._log(self._height)
        for v in lv.prevotes:  # (this validator's own store: its words, checked when signed)
            if v.height == lv.height and v.round == lv.round and v.block_hash == last.locked_hash:
                values = log.vote_values(v)
                if values is None or v.block_hash not in values:
                    log.add_vote(v)
        log.validity.setdefault(last.locked_hash, True)
        self._valid_round, self._valid_hash, self._valid_block = (
            lv.round,
            last.locked_hash,
            lv.block,
        )
        self._counters["lock_resumed"] += 1

    def _resend_signed(self, last: SignState) -> None:
        """Re-apply and re-send the votes the persisted state proves we signed (invariant 4
        of ``consensus.signstate``): a vote lost at the crash must not stall the round."""
        if self._me is None:
            return
        votes: list[Vote] = []
        if last.prevote_round >= 0 and last.prevote_signature:
            votes.append(
                Vote(
                    VoteType.PREVOTE,
                    last.height,
                    last.prevote_round,
                    last.prevote_hash,
                    self._me,
                    last.prevote_signature,
                )
            )
            self._last_prevote = votes[-1]
        if last.precommit_round >= 0 and last.precommit_signature:
            votes.append(
                Vote(
                    VoteType.PRECOMMIT,
                    last.height,
                    last.precommit_round,
                    last.precommit_hash,
                    self._me,
                    last.precommit_signature,
                )
            )
            self._last_precommit = votes[-1]
        elif last.step == Step.PRECOMMIT and last.signature:  # (a layout without it)
            votes.append(
                Vote(
                    VoteType.PRECOMMIT,
                    last.height,
                    last.round,
                    last.block_hash,
                    self._me,
                    last.signature,
                )
            )
        if not votes:
            return
        self._out.append(PersistSignState(last))
        log = self._log(self._height)
        for v in votes:
            values = log.vote_values(v)
            if values is None or v.block_hash not in values:
                log.add_vote(v)
            self._out.append(Broadcast(v))

    def _enter_height(self, height: int) -> None:
        self._final_round[self._height] = self._round
        self._height = height
        self._reset_height_state()
        for h in [h for h in self._logs if h < height - PAST_HEIGHTS_KEPT]:
            del self._logs[h]
            self._final_round.pop(h, None)
        self._evidence_keys = {k for k in self._evidence_keys if k[2] >= height - PAST_HEIGHTS_KEPT}
        self._start_round(0)
        self._request_buffered_validity()

    def _request_buffered_validity(self) -> None:
        log = self._log(self._height)
        for ps in list(log.proposals.values()):
            for p in ps:
                self._validity(log, p.block_hash)

    def _start_round(self, round_: int) -> None:
        self._round = round_
        self._step = Step.PROPOSE
        self._awaiting_value = False
        if self._me is not None and self._vs.proposer(self._height, round_) == self._me:
            if self._valid_block is not None and self._valid_hash is not None:
                self._propose(self._valid_block, self._valid_hash, self._valid_round)
            else:
                self._awaiting_value = True
                self._out.append(RequestProposal(self._height, round_))
        self._schedule(Step.PROPOSE)

    def _schedule(self, step: Step) -> None:
        self._out.append(
            ScheduleTimeout(
                self._height, self._round, step, self._params.timeout(step, self._round)
            )
        )

    # ------------------------------------------------------------ signing

    def _guarded(self, step: Step, block_hash: BlockHash | None, pol_round: int = -1) -> bool:
        if self._signer is None:
            return False
        if self._guard.check(self._height, self._round, step, block_hash, pol_round) is False:
            self._counters["sign_refused"] += 1
            return False
        return True

    def _persist(self, step: Step, block_hash: BlockHash | None, pol: int, sig: bytes) -> None:
        pv, pc = self._last_prevote, self._last_precommit
        state = SignState(
            self._height,
            self._round,
            step,
            block_hash,
            pol,
            sig,
            self._locked_round,
            self._locked_hash,
            -1 if pv is None else pv.round,
            None if pv is None else pv.block_hash,
            b"" if pv is None else pv.signature,
            -1 if pc is None else pc.round,
            None if pc is None else pc.block_hash,
            b"" if pc is None else pc.signature,
        )
        self._guard.record(state)
        self._out.append(PersistSignState(state))

    def _propose(self, block: types_pb2.Block, block_hash: BlockHash, pol_round: int) -> None:
        if not self._guarded(Step.PROPOSE, block_hash, pol_round):
            return
        assert self._signer is not None
        p = sign_proposal(
            self._signer, self._ctx, self._height, self._round, pol_round, block_hash, block
        )
        self._persist(Step.PROPOSE, block_hash, pol_round, p.signature)
        log = self._log(self._height)
        log.validity.setdefault(block_hash, True)
        if log.first_proposal(self._round) is None:
            log.add_proposal(p)
        self._out.append(Broadcast(p))

    def _vote(self, vote_type: VoteType, block_hash: BlockHash | None) -> None:
        step = Step.PREVOTE if vote_type == VoteType.PREVOTE else Step.PRECOMMIT
        if not self._guarded(step, block_hash):
            return
        assert self._signer is not None
        v = sign_vote(self._signer, self._ctx, vote_type, self._height, self._round, block_hash)
        if vote_type == VoteType.PREVOTE:
            self._last_prevote = v
        else:
            self._last_precommit = v
        self._persist(step, block_hash, -1, v.signature)
        log = self._log(self._height)
        values = log.vote_values(v)
        if values is None or v.block_hash not in values:
            log.add_vote(v)
        self._out.append(Broadcast(v))

    # ------------------------------------------------------------ inputs

    def _round_limit(self, height: int) -> int:
        if height == self._height:
            base = self._round
        elif height < self._height:
            base = self._final_round.get(height, 0)
        else:
            base = 0
        return base + MAX_ROUNDS_AHEAD

    def _check(self, msg: Message, verified: bool) -> bool:
        if verified:
            return True
        reason = verify_message(msg, self._ctx)
        if reason is not None:
            self._counters[reason] += 1
            return False
        return True

    def _on_message(self, msg: Message, verified: bool) -> None:
        h = msg.height
        sender = _sender(msg)
        if h < self._height - PAST_HEIGHTS_KEPT:
            self._counters["stale_height"] += 1
            return
        if sender not in self._vs:
            self._counters["unknown_validator"] += 1
            return
        if isinstance(msg, Proposal):
            if msg.proposer != self._vs.proposer(h, msg.round):
                self._counters["wrong_proposer"] += 1
                return
            if msg.block is None or not -1 <= msg.pol_round < msg.round:
                self._counters["malformed"] += 1
                return
        if h > self._height + FUTURE_HEIGHTS_BUFFERED:
            if self._check(msg, verified):
                self._counters["future_height"] += 1
                self._note_height(sender, h)
            return
        log = self._log(h)
        same: list[Message]
        if isinstance(msg, Proposal):
            known = log.round_proposals(msg.round)
            same = [
                p for p in known if (p.block_hash, p.pol_round) == (msg.block_hash, msg.pol_round)
            ]
            first: Message | None = known[0] if known else None
        else:
            values = log.vote_values(msg)
            same = (
                []
                if values is None
                else [v for v in values.values() if v.block_hash == msg.block_hash]
            )
            first = None if values is None else next(iter(values.values()))
        if same and same[0] == msg:
            self._counters["duplicate"] += 1
            return
        if msg.round > self._round_limit(h):
            if self._check(msg, verified):
                self._counters["round_too_far"] += 1
                log.note_round(sender, msg.round)
                self._note_height(sender, h)
            return
        if not self._check(msg, verified):
            return
        if isinstance(msg, Proposal):
            assert msg.block is not None
            if block_hash_of(msg.block) != msg.block_hash:
                self._counters["bad_block_hash"] += 1
                return
        if same:  # same content, another valid signature: nothing new
            self._counters["duplicate"] += 1
            return
        self._note_height(sender, h)
        if first is not None:
            self._equivocation(first, msg)
            storable = (
                log.can_store_proposal(msg)
                if isinstance(msg, Proposal)
                else log.can_store_vote(msg)
            )
            if not storable:
                self._counters["conflict_dropped"] += 1
                return
        if isinstance(msg, Proposal):
            log.add_proposal(msg)
        else:
            log.add_vote(msg)
        if h < self._height:
            self._counters["past_height"] += 1
            return
        if sender != self._me:
            self._out.append(Relay(msg))
        if h == self._height and isinstance(msg, Proposal):
            self._validity(log, msg.block_hash)

    def _equivocation(self, first: Message, msg: Message) -> None:
        """``msg`` conflicts with ``first`` (same signer and slot, different content)."""
        g, c = self._ctx.genesis_hash, self._ctx.chain_id
        if isinstance(first, Proposal) and isinstance(msg, Proposal):
            ev = proposal_evidence(first, msg, g, c)
        elif isinstance(first, Vote) and isinstance(msg, Vote):
            ev = vote_evidence(first, msg, g, c)
        else:  # pragma: no cover - slots never mix kinds
            return
        self._counters["equivocation"] += 1
        key = evidence_key(ev)
        if key not in self._evidence_keys:
            self._evidence_keys.add(key)
            self._out.append(EvidenceFound(ev))

    def _note_height(self, sender: ValidatorId, height: int) -> None:
        if height <= self._seen_height.get(sender, 0):
            return
        self._seen_height[sender] = height
        target = self._sync_target()
        if target >= self._height + SYNC_LAG and target > self._sync_requested:
            self._sync_requested = target
            self._out.append(RequestSync(self._height))

    def _sync_target(self) -> int:
        seen = sorted(self._seen_height.values(), reverse=True)
        return seen[self._vs.skip - 1] if len(seen) >= self._vs.skip else 0

    def _on_timeout(self, ev: TimeoutFired) -> None:
        if ev.height != self._height or ev.round != self._round:
            self._counters["stale_timeout"] += 1
            return
        if ev.step == Step.PROPOSE and self._step == Step.PROPOSE:  # l.57
            self._awaiting_value = False
            self._vote(VoteType.PREVOTE, None)
            self._step = Step.PREVOTE
        elif ev.step == Step.PREVOTE and self._step == Step.PREVOTE:  # l.61
            self._vote(VoteType.PRECOMMIT, None)
            self._step = Step.PRECOMMIT
        elif ev.step == Step.PRECOMMIT:  # l.65
            self._start_round(self._round + 1)

    def _on_value(self, ev: ProposalValue) -> None:
        if (
            (ev.height, ev.round) != (self._height, self._round)
            or not self._awaiting_value
            or self._step != Step.PROPOSE
        ):
            self._counters["stale_value"] += 1
            return
        self._awaiting_value = False
        self._propose(ev.block, block_hash_of(ev.block), -1)

    def _on_validity(self, ev: BlockValidity) -> None:
        log = self._log(self._height)
        if ev.block_hash not in log.validating:
            self._counters["unexpected_validity"] += 1
            return
        log.validating.discard(ev.block_hash)
        log.validity[ev.block_hash] = ev.ok

    def _on_sync(self, ev: SyncCommitted) -> None:
        cert = ev.certificate
        if cert.height < self._height:
            self._counters["stale_sync"] += 1
            return
        if cert.height > self._height:
            self._counters["sync_gap"] += 1
            return
        if not ev.verified:
            block_hash = block_hash_of(ev.block)
            result = verify_certificate(
                cert, self._vs, self._ctx.genesis_hash, self._ctx.chain_id, expected_hash=block_hash
            )
            if not result:
                self._counters["bad_sync"] += 1
                return
        self._counters["synced"] += 1
        self._decided(ev.block, cert, None)

    # ------------------------------------------------------------ rules

    def _validity(self, log: HeightLog, block_hash: BlockHash) -> bool | None:
        known = log.validity.get(block_hash)
        if known is None and block_hash not in log.validating:
            block = log.blocks.get(block_hash)
            if block is not None:
                log.validating.add(block_hash)
                self._out.append(ValidateBlock(block_hash, block))
        return known

    def _run_rules(self) -> None:
        while True:
            if self._try_commit() or self._try_skip():
                continue
            changed = self._rule_proposal()
            self._rule_prevote_wait()
            changed = self._rule_polka() or changed
            changed = self._rule_nil_polka() or changed
            self._rule_precommit_wait()
            if not changed:
                return

    def _try_commit(self) -> bool:  # l.49
        log = self._log(self._height)
        for r, hashes in log.precommit_quorums.items():
            for block_hash in hashes:
                block = log.blocks.get(block_hash)
                if block is None or self._validity(log, block_hash) is not True:
                    continue
                votes = log.round_votes(r, VoteType.PRECOMMIT)
                cert = make_certificate(self._vs, self._height, r, block_hash, votes)
                self._decided(block, cert, log.proposal_with(block_hash, r))
                return True
        return False

    def _decided(
        self,
        block: types_pb2.Block,
        cert: types_pb2.CommitCertificate,
        proposal: Proposal | None,
    ) -> None:
        self._out.append(Commit(self._height, block, cert))
        self._last_commit = ([proposal] if proposal is not None else []) + list(
            certificate_votes(cert)
        )
        self._enter_height(self._height + 1)

    def _try_skip(self) -> bool:  # l.55
        target = self._log(self._height).skip_target(self._vs.skip)
        if target > self._round:
            self._counters["round_skips"] += 1
            self._start_round(target)
            return True
        return False

    def _rule_proposal(self) -> bool:  # l.22 and l.28
        if self._step != Step.PROPOSE:
            return False
        log = self._log(self._height)
        p = log.first_proposal(self._round)
        if p is None:
            return False
        v, vr = p.block_hash, p.pol_round
        if vr == -1:
            allowed = self._locked_round == -1 or self._locked_hash == v
        elif vr < self._round and log.count(vr, VoteType.PREVOTE, v) >= self._vs.quorum:
            allowed = self._locked_round <= vr or self._locked_hash == v
        else:
            return False
        choice: BlockHash | None = None
        if allowed:
            ok = self._validity(log, v)
            if ok is None:
                return False  # wait for BlockValidity
            choice = v if ok else None
        self._awaiting_value = False
        self._vote(VoteType.PREVOTE, choice)
        self._step = Step.PREVOTE
        return True

    def _rule_prevote_wait(self) -> None:  # l.34
        r = self._round
        if (
            self._step == Step.PREVOTE
            and r not in self._prevote_wait
            and self._log(self._height).total(r, VoteType.PREVOTE) >= self._vs.quorum
        ):
            self._prevote_wait.add(r)
            self._schedule(Step.PREVOTE)

    def _rule_polka(self) -> bool:  # l.36
        r = self._round
        if self._step == Step.PROPOSE or r in self._polka_done:
            return False
        log = self._log(self._height)
        for p in log.round_proposals(r):
            if log.count(r, VoteType.PREVOTE, p.block_hash) < self._vs.quorum:
                continue
            if self._validity(log, p.block_hash) is not True:
                continue
            self._on_polka(r, p)
            return True
        return False

    def _on_polka(self, r: int, p: Proposal) -> None:
        self._polka_done.add(r)
        if self._step == Step.PREVOTE:
            self._locked_round, self._locked_hash = r, p.block_hash
            if self._signer is not None and p.block is not None:
                polka = self._log(self._height).round_votes(r, VoteType.PREVOTE)
                proof = tuple(v for v in polka if v.block_hash == p.block_hash)
                self._out.append(PersistLock(LockedValue(self._height, r, p.block, proof)))
            self._vote(VoteType.PRECOMMIT, p.block_hash)
            self._step = Step.PRECOMMIT
        self._valid_round, self._valid_hash, self._valid_block = r, p.block_hash, p.block

    def _rule_nil_polka(self) -> bool:  # l.44
        if (
            self._step == Step.PREVOTE
            and self._log(self._height).count(self._round, VoteType.PREVOTE, None)
            >= self._vs.quorum
        ):
            self._vote(VoteType.PRECOMMIT, None)
            self._step = Step.PRECOMMIT
            return True
        return False

    def _rule_precommit_wait(self) -> None:  # l.47
        r = self._round
        if (
            r not in self._precommit_wait
            and self._log(self._height).total(r, VoteType.PRECOMMIT) >= self._vs.quorum
        ):
            self._precommit_wait.add(r)
            self._schedule(Step.PRECOMMIT)


def _sender(msg: Message) -> ValidatorId:
    return msg.proposer if isinstance(msg, Proposal) else msg.validator
