"""Sign-bytes for proposals and votes, signing, and verification.

Every consensus signature is Ed25519 (PyNaCl) over these fixed bytes, never over protobuf::

    offset  size  field
    0       T     domain tag, NUL-terminated ASCII:
                    b"suyuan/proposal/v1\\0"  b"suyuan/prevote/v1\\0"  b"suyuan/precommit/v1\\0"
    T       32    genesis hash (SHA-256 of the genesis file's canonical form)
    +32     2     chain id length L, u16 big-endian
    +2      L     chain id, UTF-8
    ...     8     height, u64 big-endian (first block is height 1)
    ...     4     round, u32 big-endian
    ...     1     type: 0x01 prevote, 0x02 precommit, 0x20 proposal
    ...     4     proposals only: pol_round, i32 big-endian two's complement (-1 = none)
    ...     1     block hash present: 0x00 nil, 0x01 block
    ...     32    block hash (32 zero bytes for nil)

Commit certificates carry precommit signatures over exactly the precommit sign-bytes, so a
certificate verifies with the genesis file alone. Messages from another chain fail to
verify because the genesis hash and chain id are signed.

``verify_message`` is a pure function with no shared state: a driver may call it from a
thread pool (or batch it) and hand the replica the message with ``verified=True``.
"""

from __future__ import annotations

import struct
from typing import Protocol

from nacl.signing import SigningKey

from consensus.messages import Message, Proposal, Vote, VoteType
from consensus.validators import HASH_LEN, BlockHash, ChainContext, ValidatorId, ValidatorSet
from node import ed25519
from proto import types_pb2

__all__ = [
    "Ed25519Signer",
    "Signer",
    "proposal_sign_bytes",
    "sign_proposal",
    "sign_vote",
    "verify_message",
    "verify_signature",
    "vote_sign_bytes",
]

TAG_PROPOSAL = b"suyuan/proposal/v1\0"
TAG_PREVOTE = b"suyuan/prevote/v1\0"
TAG_PRECOMMIT = b"suyuan/precommit/v1\0"
TYPE_PROPOSAL = 0x20
_ZERO_HASH = bytes(HASH_LEN)


class Signer(Protocol):
    """Holds one validator's key. ``sign`` returns a 64-byte Ed25519 signature."""

    @property
    def validator_id(self) -> ValidatorId: ...

    def sign(self, message: bytes) -> bytes: ...


class Ed25519Signer:
    """A ``Signer`` over a PyNaCl signing key held in memory."""

    def __init__(self, validator_id: str, key: SigningKey) -> None:
        self._id = ValidatorId(validator_id)
        self._key = key

    @property
    def validator_id(self) -> ValidatorId:
        return self._id

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature


def _prefix(tag: bytes, genesis_hash: bytes, chain_id: str, height: int, round_: int) -> bytes:
    if len(genesis_hash) != HASH_LEN:
        raise ValueError("genesis hash must be 32 bytes")
    cid = chain_id.encode()
    return b"".join(
        (tag, genesis_hash, struct.pack(">H", len(cid)), cid, struct.pack(">QI", height, round_))
    )


def _hash_field(block_hash: bytes | None) -> bytes:
    if block_hash is None:
        return b"\x00" + _ZERO_HASH
    if len(block_hash) != HASH_LEN:
        raise ValueError("block hash must be 32 bytes")
    return b"\x01" + block_hash


def vote_sign_bytes(
    genesis_hash: bytes,
    chain_id: str,
    vote_type: VoteType,
    height: int,
    round_: int,
    block_hash: bytes | None,
) -> bytes:
    """The bytes a prevote or precommit signature covers (layout in the module docstring)."""
    tag = TAG_PREVOTE if vote_type == VoteType.PREVOTE else TAG_PRECOMMIT
    return b"".join(
        (
            _prefix(tag, genesis_hash, chain_id, height, round_),
            bytes((int(vote_type),)),
            _hash_field(block_hash),
        )
    )


def proposal_sign_bytes(
    genesis_hash: bytes,
    chain_id: str,
    height: int,
    round_: int,
    pol_round: int,
    block_hash: bytes,
) -> bytes:
    """The bytes a proposal signature covers (layout in the module docstring)."""
    return b"".join(
        (
            _prefix(TAG_PROPOSAL, genesis_hash, chain_id, height, round_),
            bytes((TYPE_PROPOSAL,)),
            struct.pack(">i", pol_round),
            _hash_field(block_hash),
        )
    )


def message_sign_bytes(msg: Message, genesis_hash: bytes, chain_id: str) -> bytes:
    if isinstance(msg, Proposal):
        return proposal_sign_bytes(
            genesis_hash, chain_id, msg.height, msg.round, msg.pol_round, msg.block_hash
        )
    return vote_sign_bytes(genesis_hash, chain_id, msg.type, msg.height, msg.round, msg.block_hash)


def sign_vote(
    signer: Signer,
    ctx: ChainContext,
    vote_type: VoteType,
    height: int,
    round_: int,
    block_hash: bytes | None,
) -> Vote:
    """Sign a vote. No double-sign guard here: the replica's ``SignGuard`` decides first."""
    data = vote_sign_bytes(ctx.genesis_hash, ctx.chain_id, vote_type, height, round_, block_hash)
    return Vote(
        vote_type,
        height,
        round_,
        None if block_hash is None else BlockHash(block_hash),
        signer.validator_id,
        signer.sign(data),
    )


def sign_proposal(
    signer: Signer,
    ctx: ChainContext,
    height: int,
    round_: int,
    pol_round: int,
    block_hash: bytes,
    block: types_pb2.Block | None = None,
) -> Proposal:
    """Sign a proposal (``block`` is attached unsigned; its hash is what is signed)."""
    data = proposal_sign_bytes(
        ctx.genesis_hash, ctx.chain_id, height, round_, pol_round, block_hash
    )
    return Proposal(
        height,
        round_,
        pol_round,
        BlockHash(block_hash),
        signer.validator_id,
        signer.sign(data),
        block,
    )


def verify_signature(
    validators: ValidatorSet, validator: str, data: bytes, signature: bytes
) -> bool:
    """True iff ``validator`` is in the set and ``signature`` is its Ed25519 over ``data``."""
    key = validators.public_key(validator)
    return key is not None and ed25519.verify(key, data, signature)


def verify_message(msg: Message, ctx: ChainContext) -> str | None:
    """Check a message's signer and signature. Pure and thread-safe.

    Returns None when valid, else the name of the counter the replica files it under:
    ``"unknown_validator"`` or ``"bad_signature"`` (which includes other chains).
    """
    signer = msg.proposer if isinstance(msg, Proposal) else msg.validator
    if signer not in ctx.validators:
        return "unknown_validator"
    data = message_sign_bytes(msg, ctx.genesis_hash, ctx.chain_id)
    if not verify_signature(ctx.validators, signer, data, msg.signature):
        return "bad_signature"
    return None
