"""The value a validator is locked on, kept so that a restart can propose it again.

A validator locks on a block when it precommits it (Tendermint's Algorithm 1, line 36);
its sign state keeps the lock (the round and the block's hash: ``consensus.signstate``),
which is what safety needs. Liveness needs more: a validator that restarts locked on a
block it no longer holds prevotes nil for every other proposal, and cannot propose the
block it is locked on. If no other honest validator holds that block as its valid value,
no proposal can gather a quorum again (``python -m consensus.sim`` seeds 21493 and 23866:
4 validators, 1 Byzantine, rounds 22-24 without a decision). So the block and the
prevotes that justified the lock (its proof of lock, 2f+1 prevotes) are handed to the
driver with ``PersistLock``, before the precommit, and given back to ``Replica`` after a
restart: it resumes with the block as its valid value, re-proposes it with that round as
its ``pol_round`` when it is the proposer, and re-sends the prevotes, so that the others
can accept it (line 28).

Byte layout of ``LockedValue.to_bytes()``::

    magic        22  b"suyuan/locked-value/v1\\0"
    height        8  u64 BE
    round         4  u32 BE
    block_len     4  u32 BE, then the block (``types_pb2.Block``, serialized)
    count         2  u16 BE, then per prevote: u16 BE length, ``consensus_pb2.Vote``
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from consensus.messages import Vote, VoteType
from node.errors import InputError
from proto import consensus_pb2, types_pb2

__all__ = ["LockedValue"]

_MAGIC = b"suyuan/locked-value/v1\0"
_HEAD = struct.Struct(">QII")
_U16 = struct.Struct(">H")


@dataclass(frozen=True)
class LockedValue:
    """The block locked on at (``height``, ``round``) and its proof of lock."""

    height: int
    round: int
    block: types_pb2.Block
    prevotes: tuple[Vote, ...]

    def to_bytes(self) -> bytes:
        body = self.block.SerializeToString()
        parts = [_MAGIC, _HEAD.pack(self.height, self.round, len(body)), body]
        parts.append(_U16.pack(len(self.prevotes)))
        for v in self.prevotes:
            raw = v.to_proto().SerializeToString()
            parts += [_U16.pack(len(raw)), raw]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> LockedValue:
        """Parse ``to_bytes`` output. Raises ``InputError`` on anything else."""
        try:
            if not data.startswith(_MAGIC):
                raise InputError("locked value: bad magic")
            pos = len(_MAGIC)
            height, round_, n = _HEAD.unpack_from(data, pos)
            pos += _HEAD.size
            block = types_pb2.Block.FromString(data[pos : pos + n])
            pos += n
            (count,) = _U16.unpack_from(data, pos)
            pos += _U16.size
            votes: list[Vote] = []
            for _ in range(count):
                (k,) = _U16.unpack_from(data, pos)
                pos += _U16.size
                votes.append(Vote.from_proto(consensus_pb2.Vote.FromString(data[pos : pos + k])))
                pos += k
        except (struct.error, DecodeError) as e:
            raise InputError(f"locked value: does not parse ({e})") from e
        if pos != len(data) or any(v.type != VoteType.PREVOTE for v in votes):
            raise InputError("locked value: bad length or a vote that is no prevote")
        return cls(height, round_, block, tuple(votes))
