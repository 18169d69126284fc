"""The message log of one height: proposals, votes and their tallies.

Invariants:

1. At most one proposal per round and one vote per (round, type, validator) is kept: the
   first valid one received. A later, different, validly signed one is an equivocation; it
   is turned into evidence by the replica and never counted.
2. Tallies count distinct validators: ``count(r, t, h)`` is the number of validators whose
   kept vote of type ``t`` in round ``r`` is for ``h`` (``None`` = nil) and ``total(r, t)``
   the number with any kept vote.
3. ``max_round[v]`` is the highest round of any validly signed message from ``v`` at this
   height, including rounds too far ahead to be stored; it drives the f+1 round skip.
"""

from __future__ import annotations

from collections import Counter

from consensus.messages import Proposal, Vote, VoteType
from consensus.validators import BlockHash, ValidatorId
from proto import types_pb2

__all__ = ["HeightLog"]

_Slot = tuple[int, VoteType]


class HeightLog:
    """Everything received for one height."""

    def __init__(self, height: int, quorum: int) -> None:
        self.height = height
        self._quorum = quorum
        self.proposals: dict[int, Proposal] = {}
        self.blocks: dict[BlockHash, types_pb2.Block] = {}
        self.votes: dict[_Slot, dict[ValidatorId, Vote]] = {}
        self._tally: dict[_Slot, Counter[BlockHash | None]] = {}
        self.max_round: dict[ValidatorId, int] = {}
        self.precommit_quorums: dict[int, BlockHash] = {}
        self.validity: dict[BlockHash, bool] = {}
        self.validating: set[BlockHash] = set()

    def existing_vote(self, v: Vote) -> Vote | None:
        slot = self.votes.get((v.round, v.type))
        return None if slot is None else slot.get(v.validator)

    def add_vote(self, v: Vote) -> None:
        key = (v.round, v.type)
        slot = self.votes.setdefault(key, {})
        assert v.validator not in slot
        slot[v.validator] = v
        tally = self._tally.setdefault(key, Counter())
        tally[v.block_hash] += 1
        if (
            v.type == VoteType.PRECOMMIT
            and v.block_hash is not None
            and tally[v.block_hash] >= self._quorum
        ):
            self.precommit_quorums.setdefault(v.round, v.block_hash)
        self.note_round(v.validator, v.round)

    def add_proposal(self, p: Proposal) -> None:
        assert p.round not in self.proposals
        assert p.block is not None
        self.proposals[p.round] = p
        self.blocks.setdefault(p.block_hash, p.block)
        self.note_round(p.proposer, p.round)

    def note_round(self, validator: ValidatorId, round_: int) -> None:
        if round_ > self.max_round.get(validator, -1):
            self.max_round[validator] = round_

    def count(self, round_: int, vote_type: VoteType, block_hash: BlockHash | None) -> int:
        tally = self._tally.get((round_, vote_type))
        return 0 if tally is None else tally[block_hash]

    def total(self, round_: int, vote_type: VoteType) -> int:
        slot = self.votes.get((round_, vote_type))
        return 0 if slot is None else len(slot)

    def round_votes(self, round_: int, vote_type: VoteType) -> list[Vote]:
        return list(self.votes.get((round_, vote_type), {}).values())

    def skip_target(self, skip: int) -> int:
        """The highest round r such that at least ``skip`` validators sent messages at rounds
        >= r (-1 if fewer than ``skip`` validators have sent anything)."""
        if len(self.max_round) < skip:
            return -1
        return sorted(self.max_round.values(), reverse=True)[skip - 1]
