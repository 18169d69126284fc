"""Consensus messages as frozen dataclasses, and their protobuf converters.

The state machine works on these types; ``proto/consensus.proto`` is the wire form.
Invariants a decoded message always satisfies (``from_proto`` raises ``InputError``
otherwise, so malformed input never reaches the state machine):

1. ``height >= 1``, ``0 <= round < 2**32``; a proposal's ``-1 <= pol_round < round``
   (a proposal whose proof-of-lock round is not older than its own round is malformed).
2. ``block_hash`` is 32 bytes, or ``None`` for a nil vote (empty on the wire).
   Proposals always name a block; on the wire and in the state machine they carry it,
   and ``block_hash == SHA-256(block.header)`` is checked by the receiver.
3. ``signature`` is 64 bytes (validity is checked in ``consensus.signing``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum

from consensus.validators import HASH_LEN, BlockHash, ValidatorId
from node.errors import InputError
from proto import consensus_pb2, types_pb2

__all__ = [
    "Message",
    "Proposal",
    "Step",
    "Vote",
    "VoteType",
    "block_hash_of",
    "decode_message",
    "encode_message",
]

SIG_LEN = 64
MAX_ROUND = 2**32 - 1
MAX_HEIGHT = 2**64 - 1


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


class Step(IntEnum):
    """Steps of a round, in the order a validator passes (and signs) them."""

    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


def block_hash_of(block: types_pb2.Block) -> BlockHash:
    """The block hash: SHA-256 over the header's exact bytes."""
    return BlockHash(hashlib.sha256(block.header).digest())


@dataclass(frozen=True, slots=True)
class Vote:
    """A signed prevote or precommit; ``block_hash is None`` means nil."""

    type: VoteType
    height: int
    round: int
    block_hash: BlockHash | None
    validator: ValidatorId
    signature: bytes

    @property
    def step(self) -> Step:
        return Step.PREVOTE if self.type == VoteType.PREVOTE else Step.PRECOMMIT

    def to_proto(self) -> consensus_pb2.Vote:
        return consensus_pb2.Vote(
            type=int(self.type),  # type: ignore[arg-type]
            height=self.height,
            round=self.round,
            block_hash=self.block_hash or b"",
            validator=self.validator,
            signature=self.signature,
        )

    @classmethod
    def from_proto(cls, pb: consensus_pb2.Vote) -> Vote:
        if int(pb.type) not in (1, 2):
            raise InputError(f"vote: unknown type {pb.type}")
        _check_hr(pb.height, pb.round, "vote")
        if pb.block_hash and len(pb.block_hash) != HASH_LEN:
            raise InputError("vote: block hash must be 32 bytes or empty")
        _check_sig(pb.signature, "vote")
        if not pb.validator:
            raise InputError("vote: no validator")
        return cls(
            VoteType(pb.type),
            pb.height,
            pb.round,
            BlockHash(pb.block_hash) if pb.block_hash else None,
            ValidatorId(pb.validator),
            pb.signature,
        )


@dataclass(frozen=True, slots=True)
class Proposal:
    """A signed proposal of ``block_hash`` at ``(height, round)`` with proof-of-lock round.

    ``block`` is the proposed value. It is excluded from equality and hashing: two proposals
    are the same message when their signed fields are equal.
    """

    height: int
    round: int
    pol_round: int
    block_hash: BlockHash
    proposer: ValidatorId
    signature: bytes
    block: types_pb2.Block | None = field(default=None, compare=False, hash=False, repr=False)

    def to_proto(self, with_block: bool = True) -> consensus_pb2.Proposal:
        pb = consensus_pb2.Proposal(
            height=self.height,
            round=self.round,
            pol_round=self.pol_round,
            block_hash=self.block_hash,
            proposer=self.proposer,
            signature=self.signature,
        )
        if with_block and self.block is not None:
            pb.block.CopyFrom(self.block)
        return pb

    @classmethod
    def from_proto(cls, pb: consensus_pb2.Proposal) -> Proposal:
        _check_hr(pb.height, pb.round, "proposal")
        if not -1 <= pb.pol_round < pb.round:
            raise InputError(f"proposal: pol_round {pb.pol_round} not in [-1, {pb.round})")
        if len(pb.block_hash) != HASH_LEN:
            raise InputError("proposal: block hash must be 32 bytes")
        _check_sig(pb.signature, "proposal")
        if not pb.proposer:
            raise InputError("proposal: no proposer")
        block = None
        if pb.HasField("block"):
            block = types_pb2.Block()
            block.CopyFrom(pb.block)
        return cls(
            pb.height,
            pb.round,
            pb.pol_round,
            BlockHash(pb.block_hash),
            ValidatorId(pb.proposer),
            pb.signature,
            block,
        )


Message = Proposal | Vote


def encode_message(msg: Message) -> consensus_pb2.ConsensusMessage:
    """Wrap a proposal (with its block) or a vote for the wire."""
    if isinstance(msg, Proposal):
        return consensus_pb2.ConsensusMessage(proposal=msg.to_proto())
    return consensus_pb2.ConsensusMessage(vote=msg.to_proto())


def decode_message(data: bytes | consensus_pb2.ConsensusMessage) -> Message:
    """Parse and structurally check a wire message. Raises ``InputError`` when malformed."""
    if isinstance(data, bytes | bytearray | memoryview):
        pb = consensus_pb2.ConsensusMessage()
        try:
            pb.ParseFromString(bytes(data))
        except Exception as e:  # protobuf raises DecodeError or RuntimeWarning-like errors
            raise InputError(f"consensus message: cannot parse: {e}") from e
    else:
        pb = data
    which = pb.WhichOneof("msg")
    if which == "proposal":
        return Proposal.from_proto(pb.proposal)
    if which == "vote":
        return Vote.from_proto(pb.vote)
    raise InputError("consensus message: empty")


def _check_hr(height: int, round_: int, what: str) -> None:
    if not 1 <= height <= MAX_HEIGHT:
        raise InputError(f"{what}: height must be >= 1")
    if not 0 <= round_ <= MAX_ROUND:
        raise InputError(f"{what}: round out of range")


def _check_sig(sig: bytes, what: str) -> None:
    if len(sig) != SIG_LEN:
        raise InputError(f"{what}: signature must be {SIG_LEN} bytes")
