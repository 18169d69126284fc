"""verify_certificate: counts distinct valid precommits, fails on any bad entry."""

import pytest

from consensus.certificate import (
    certificate_votes,
    make_certificate,
    require_certificate,
    verify_certificate,
)
from consensus.messages import VoteType
from consensus.signing import sign_vote
from node.errors import VerificationError
from proto import types_pb2
from tests.consensus.harness import CHAIN, GENESIS, make_ctx

H = bytes(range(32))


def cert_from(signers, ctx, k=None, height=5, round_=2, block_hash=H):
    votes = [sign_vote(s, ctx, VoteType.PRECOMMIT, height, round_, block_hash) for s in signers[:k]]
    return make_certificate(ctx.validators, height, round_, block_hash, votes)


def check(cert, ctx, expected=None):
    return verify_certificate(cert, ctx.validators, GENESIS, CHAIN, expected)


@pytest.mark.parametrize(("n", "k"), [(4, 3), (4, 4), (7, 5), (7, 7)])
def test_quorum_of_valid_precommits_verifies(n, k):
    ctx, signers = make_ctx(n)
    r = check(cert_from(signers, ctx, k), ctx, H)
    assert r
    assert r.verified == k
    assert r.signers == {f"v{i}" for i in range(k)}


@pytest.mark.parametrize(("n", "k"), [(4, 2), (7, 4), (4, 0)])
def test_2f_signatures_are_not_enough(n, k):
    ctx, signers = make_ctx(n)
    r = check(cert_from(signers, ctx, k), ctx)
    assert not r
    assert r.verified == k
    assert r.missing == ctx.validators.quorum - k
    with pytest.raises(VerificationError, match=f"certificate: {k}/{k} valid signatures, need"):
        require_certificate(cert_from(signers, ctx, k), ctx.validators, GENESIS, CHAIN)


def test_duplicate_validator_fails_even_with_quorum():
    ctx, signers = make_ctx(4)
    cert = cert_from(signers, ctx, 3)
    cert.signatures.append(cert.signatures[0])
    r = check(cert, ctx)
    assert not r
    assert r.verified == 3
    assert "duplicate" in r.reason


def test_duplicate_cannot_fake_a_quorum():
    ctx, signers = make_ctx(4)
    cert = cert_from(signers, ctx, 2)
    cert.signatures.append(cert.signatures[1])
    assert not check(cert, ctx)


def test_unknown_validator_fails():
    ctx, signers = make_ctx(4)
    cert = cert_from(signers, ctx, 3)
    cert.signatures.append(types_pb2.CommitSig(validator="mallory", signature=bytes(64)))
    r = check(cert, ctx)
    assert not r
    assert "unknown validator 'mallory'" in r.reason


def test_invalid_signature_fails():
    ctx, signers = make_ctx(4)
    cert = cert_from(signers, ctx, 4)
    cert.signatures[3].signature = bytes(64)
    r = check(cert, ctx)
    assert not r
    assert r.verified == 3
    assert "invalid signature from 'v3'" in r.reason
    with pytest.raises(
        VerificationError,
        match=r"^certificate: invalid signature from 'v3' \(every signature must be valid; "
        r"3/4 are, 3 needed\)$",
    ):
        require_certificate(cert, ctx.validators, GENESIS, CHAIN)


def test_signature_for_other_round_or_hash_or_chain_fails():
    ctx, signers = make_ctx(4)
    cert = cert_from(signers, ctx, 3)
    for field, value in (("round", 3), ("height", 6), ("block_hash", bytes(32))):
        bad = types_pb2.CommitCertificate()
        bad.CopyFrom(cert)
        setattr(bad, field, value)
        assert not check(bad, ctx)
    assert not verify_certificate(cert, ctx.validators, GENESIS, "other-chain")
    assert not verify_certificate(cert, ctx.validators, bytes(32), CHAIN)


def test_expected_hash_mismatch_fails():
    ctx, signers = make_ctx(4)
    r = check(cert_from(signers, ctx, 4), ctx, expected=bytes(32))
    assert not r
    assert "another block" in r.reason


def test_prevotes_do_not_make_a_certificate():
    ctx, signers = make_ctx(4)
    votes = [sign_vote(s, ctx, VoteType.PREVOTE, 5, 2, H) for s in signers]
    cert = make_certificate(ctx.validators, 5, 2, H, votes)
    assert len(cert.signatures) == 0
    cert.signatures.extend(
        types_pb2.CommitSig(validator=v.validator, signature=v.signature) for v in votes
    )
    assert not check(cert, ctx)


def test_malformed_header():
    ctx, signers = make_ctx(4)
    cert = cert_from(signers, ctx, 4)
    cert.block_hash = b"short"
    assert "32 bytes" in check(cert, ctx).reason
    cert = cert_from(signers, ctx, 4)
    cert.height = 0
    assert not check(cert, ctx)


def test_certificate_votes_roundtrip():
    ctx, signers = make_ctx(4)
    cert = cert_from(signers, ctx, 3)
    votes = certificate_votes(cert)
    again = make_certificate(ctx.validators, cert.height, cert.round, cert.block_hash, votes)
    assert again == cert


def test_make_certificate_orders_by_genesis_and_dedupes():
    ctx, signers = make_ctx(4)
    votes = [sign_vote(s, ctx, VoteType.PRECOMMIT, 5, 2, H) for s in reversed(signers)]
    cert = make_certificate(ctx.validators, 5, 2, H, votes + votes)
    assert [s.validator for s in cert.signatures] == ["v0", "v1", "v2", "v3"]
