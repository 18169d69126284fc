"""The message log of one height: proposals, votes and their tallies.

Counting follows the paper: "2f+1 <PREVOTE, h, r, id(v)>" counts distinct validators that
sent a prevote for v. A Byzantine validator that sends two different votes is counted for
each value it sent, while honest validators only ever count once; quorum intersection still
rules out two conflicting quorums in one round, and every honest node can verify a
proof-of-lock that includes an equivocator's vote once gossip brings the vote to it.

Invariants:

1. Per (round, type, validator), at most ``MAX_VALUES`` values are stored, plus any value
   that is the hash of a proposal known at this height (the values that matter), so an
   equivocator cannot fill memory. Per round at most ``MAX_PROPOSALS`` proposals (the first
   one drives the prevote; the others can still carry a polka or a decision).
2. ``count(r, t, h)`` = number of validators with a stored vote of type t in round r for h
   (``None`` = nil); ``total(r, t)`` = number of validators with any such vote.
3. ``max_round[v]`` is the highest round of any validly signed message from ``v`` at this
   height, including rounds too far ahead to be stored; it drives the f+1 round skip.
"""

from __future__ import annotations

from collections import Counter

from consensus.messages import Proposal, Vote, VoteType
from consensus.validators import BlockHash, ValidatorId
from proto import types_pb2

__all__ = ["MAX_PROPOSALS", "MAX_VALUES", "HeightLog"]

MAX_VALUES = 2
MAX_PROPOSALS = 3

_Slot = tuple[int, VoteType]


class HeightLog:
    """Everything received for one height."""

    def __init__(self, height: int, quorum: int) -> None:
        self.height = height
        self._quorum = quorum
        self.proposals: dict[int, list[Proposal]] = {}
        self.blocks: dict[BlockHash, types_pb2.Block] = {}
        self.votes: dict[_Slot, dict[ValidatorId, dict[BlockHash | None, Vote]]] = {}
        self._tally: dict[_Slot, Counter[BlockHash | None]] = {}
        self.max_round: dict[ValidatorId, int] = {}
        self.precommit_quorums: dict[int, list[BlockHash]] = {}
        self.validity: dict[BlockHash, bool] = {}
        self.validating: set[BlockHash] = set()

    # ------------------------------------------------------------ votes

    def vote_values(self, v: Vote) -> dict[BlockHash | None, Vote] | None:
        """What ``v.validator`` already voted in ``v``'s (round, type)."""
        slot = self.votes.get((v.round, v.type))
        return None if slot is None else slot.get(v.validator)

    def can_store_vote(self, v: Vote) -> bool:
        values = self.vote_values(v)
        return values is None or len(values) < MAX_VALUES or v.block_hash in self.blocks

    def add_vote(self, v: Vote) -> None:
        key = (v.round, v.type)
        values = self.votes.setdefault(key, {}).setdefault(v.validator, {})
        assert v.block_hash not in values
        values[v.block_hash] = v
        tally = self._tally.setdefault(key, Counter())
        tally[v.block_hash] += 1
        if (
            v.type == VoteType.PRECOMMIT
            and v.block_hash is not None
            and tally[v.block_hash] == self._quorum
        ):
            self.precommit_quorums.setdefault(v.round, []).append(v.block_hash)
        self.note_round(v.validator, v.round)

    def has_block_precommit(self) -> bool:
        """Some validator precommitted a block (not nil) in some round of this height."""
        return any(
            vtype == VoteType.PRECOMMIT and any(h is not None for h in tally)
            for (_round, vtype), tally in self._tally.items()
        )

    def count(self, round_: int, vote_type: VoteType, block_hash: BlockHash | None) -> int:
        tally = self._tally.get((round_, vote_type))
        return 0 if tally is None else tally[block_hash]

    def total(self, round_: int, vote_type: VoteType) -> int:
        slot = self.votes.get((round_, vote_type))
        return 0 if slot is None else len(slot)

    def round_votes(self, round_: int, vote_type: VoteType) -> list[Vote]:
        slot = self.votes.get((round_, vote_type), {})
        return [v for values in slot.values() for v in values.values()]

    # ------------------------------------------------------------ proposals

    def first_proposal(self, round_: int) -> Proposal | None:
        ps = self.proposals.get(round_)
        return ps[0] if ps else None

    def round_proposals(self, round_: int) -> list[Proposal]:
        return self.proposals.get(round_, [])

    def can_store_proposal(self, p: Proposal) -> bool:
        return len(self.proposals.get(p.round, ())) < MAX_PROPOSALS

    def add_proposal(self, p: Proposal) -> None:
        assert p.block is not None
        self.proposals.setdefault(p.round, []).append(p)
        self.blocks.setdefault(p.block_hash, p.block)
        self.note_round(p.proposer, p.round)

    def proposal_with(self, block_hash: BlockHash, round_: int) -> Proposal | None:
        """A proposal carrying ``block_hash``, preferring one from ``round_``."""
        for p in self.proposals.get(round_, ()):
            if p.block_hash == block_hash:
                return p
        for ps in self.proposals.values():
            for p in ps:
                if p.block_hash == block_hash:
                    return p
        return None

    # ------------------------------------------------------------ rounds

    def note_round(self, validator: ValidatorId, round_: int) -> None:
        if round_ > self.max_round.get(validator, -1):
            self.max_round[validator] = round_

    def skip_target(self, skip: int) -> int:
        """The highest round r such that at least ``skip`` validators sent messages at rounds
        >= r (-1 if fewer than ``skip`` validators have sent anything)."""
        if len(self.max_round) < skip:
            return -1
        return sorted(self.max_round.values(), reverse=True)[skip - 1]
