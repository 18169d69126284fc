"""Commit certificates: >= quorum precommits for one block at one (height, round).

A certificate carries only ``(validator id, signature)`` pairs (``CommitSig``); everything
else a signature covers is in the certificate header or the genesis file, so
``verify_certificate`` needs nothing but the validator set, the genesis hash and the chain
id. It is the one verification used by consensus, block sync, ``suyuan verify`` and
``suyuan audit``.
"""

from __future__ import annotations

from collections.abc import Iterable

from consensus.messages import MAX_ROUND, SIG_LEN, Vote, VoteType
from consensus.quorum import QuorumResult, join_reasons
from consensus.signing import verify_signature, vote_sign_bytes
from consensus.validators import HASH_LEN, BlockHash, ValidatorId, ValidatorSet
from node.errors import VerificationError
from proto import types_pb2

__all__ = [
    "certificate_votes",
    "make_certificate",
    "require_certificate",
    "verify_certificate",
]


def make_certificate(
    validators: ValidatorSet,
    height: int,
    round_: int,
    block_hash: bytes,
    precommits: Iterable[Vote],
) -> types_pb2.CommitCertificate:
    """Build a certificate from precommits for ``block_hash`` at ``(height, round)``.

    Precommits for anything else are ignored; signatures are listed in genesis order, one
    per validator. The caller checks the quorum (``verify_certificate`` does too).
    """
    chosen: dict[str, Vote] = {}
    for v in precommits:
        if (
            v.type == VoteType.PRECOMMIT
            and v.height == height
            and v.round == round_
            and v.block_hash == block_hash
            and v.validator in validators
        ):
            chosen.setdefault(v.validator, v)
    order = sorted(chosen, key=lambda vid: validators.index(vid) or 0)
    return types_pb2.CommitCertificate(
        height=height,
        round=round_,
        block_hash=block_hash,
        signatures=[
            types_pb2.CommitSig(validator=vid, signature=chosen[vid].signature) for vid in order
        ],
    )


def certificate_votes(cert: types_pb2.CommitCertificate) -> list[Vote]:
    """The precommits a certificate is made of (unverified), e.g. to re-gossip them."""
    return [
        Vote(
            VoteType.PRECOMMIT,
            cert.height,
            cert.round,
            BlockHash(cert.block_hash),
            ValidatorId(s.validator),
            s.signature,
        )
        for s in cert.signatures
    ]


def verify_certificate(
    cert: types_pb2.CommitCertificate,
    validators: ValidatorSet,
    genesis_hash: bytes,
    chain_id: str,
    expected_hash: bytes | None = None,
) -> QuorumResult:
    """Count the distinct valid precommit signatures in ``cert``. Never raises.

    Steps:

    (1) The header is well formed: height >= 1, round < 2**32, a 32-byte block hash.
    (2) If ``expected_hash`` is given, the certificate is for that block.
    (3) For each signature, in order: the signer is a validator (else fail: unknown
        validator), has not signed earlier in this certificate (else fail: duplicate),
        and its signature verifies over the precommit sign-bytes for
        ``(genesis, chain, height, round, block_hash)`` (else fail: invalid signature).
        Counting continues after a failure so the result reports every valid signature.
    (4) The result is truthy iff no step failed and the count reaches the quorum.
    """
    needed = validators.quorum
    presented = len(cert.signatures)

    def fail(reason: str, verified: int = 0, signers: frozenset[str] = frozenset()) -> QuorumResult:
        return QuorumResult(verified, needed, signers, reason, presented)

    # (1)
    if cert.height < 1 or cert.round > MAX_ROUND:
        return fail("malformed height or round")
    if len(cert.block_hash) != HASH_LEN:
        return fail("block hash must be 32 bytes")
    # (2)
    if expected_hash is not None and cert.block_hash != expected_hash:
        return fail("certificate is for another block")
    # (3)
    data = vote_sign_bytes(
        genesis_hash, chain_id, VoteType.PRECOMMIT, cert.height, cert.round, cert.block_hash
    )
    signers: set[str] = set()
    seen: set[str] = set()
    reasons: list[str] = []
    for s in cert.signatures:
        if s.validator not in validators:
            reasons.append(f"unknown validator {s.validator!r}")
            continue
        if s.validator in seen:
            reasons.append(f"duplicate signature from {s.validator!r}")
            continue
        seen.add(s.validator)
        if len(s.signature) != SIG_LEN or not verify_signature(
            validators, s.validator, data, s.signature
        ):
            reasons.append(f"invalid signature from {s.validator!r}")
            continue
        signers.add(s.validator)
    # (4)
    return QuorumResult(len(signers), needed, frozenset(signers), join_reasons(reasons), presented)


def require_certificate(
    cert: types_pb2.CommitCertificate,
    validators: ValidatorSet,
    genesis_hash: bytes,
    chain_id: str,
    expected_hash: bytes | None = None,
) -> QuorumResult:
    """``verify_certificate``, raising ``VerificationError`` when the result is falsy.

    The message reads e.g. ``certificate: 2/3 valid signatures, need 3``.
    """
    result = verify_certificate(cert, validators, genesis_hash, chain_id, expected_hash)
    if not result:
        raise VerificationError(result.describe("certificate"))
    return result
