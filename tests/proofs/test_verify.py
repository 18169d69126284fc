"""Offline bundle verification: honest bundles pass, and each kind of forgery fails at the
step that catches it (numbered as in node/verify.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from consensus.messages import VoteType
from consensus.signing import sign_vote
from node.errors import VerificationError
from node.genesis import Genesis
from node.records import make_record, sign_record
from node.verify import bundle_to_json, parse_bundle_json, require_bundle, verify_bundle
from proto import types_pb2
from tests.fixtures import genesis, key, object_event
from tests.proofs.chainbuilder import ChainBuilder, forge_block, nonce_for


def failed_step(result) -> int | None:
    f = result.first_failure
    return None if f is None else f.number


def test_every_honest_bundle_verifies(chain):
    for env in chain.envs:
        bundle = chain.bundle(env)
        result = verify_bundle(bundle, chain.genesis)
        assert result, result.describe()
        assert [s.ok for s in result.steps] == [True] * 5 + [None]
        assert result.record_id == env.record_id
        # the committing block's header: record_height == header height, index in range
        assert bundle.record_height == result.height


def test_a_block_decided_in_a_later_round_than_it_was_built_verifies(tmp_path):
    # Tendermint re-proposes a round's valid value: the header keeps round 0, the commit
    # certificate is for round 2. Offline checks refused such an honest block.
    b = ChainBuilder(tmp_path / "store")
    env = b.commission("urn:epc:id:sgtin:0614141.107346.77")
    b.commit([env], round_=0, decided_round=2)
    result = verify_bundle(b.bundle(env), b.genesis)
    assert result, result.describe()
    later = ChainBuilder(tmp_path / "store2")
    env2 = later.commission("urn:epc:id:sgtin:0614141.107346.78")
    later.commit([env2], round_=2, decided_round=1)  # certified before it was built: forged
    result = verify_bundle(later.bundle(env2), later.genesis)
    assert failed_step(result) == 4
    assert "round 2, certificate 1/1" in result.describe()


def test_handoff_bundle_names_both_parties(chain):
    result = verify_bundle(chain.bundle(chain.hand), chain.genesis)
    assert result
    assert "farm and slaughterhouse" in result.steps[1].message


def test_json_round_trip_is_exact(chain):
    bundle = chain.bundle(chain.envs[2], since_size=1)
    text = bundle_to_json(bundle)
    assert parse_bundle_json(text) == bundle
    assert '"format": "suyuan-proof/1"' in text


def test_bundle_from_another_chain_fails_at_step_1(chain, tmp_path):
    other = ChainBuilder(tmp_path / "other", genesis("another-chain"))
    try:
        env = other.commission("urn:epc:id:sgtin:0614141.107346.9")
        other.commit([env])
        result = verify_bundle(other.bundle(env), chain.genesis)
    finally:
        other.close()
    assert failed_step(result) == 1
    assert not result.steps[0].ok


def test_format_must_be_exact(chain):
    bundle = chain.bundle(chain.envs[0])
    for fmt in ("suyuan-proof/2", "Suyuan-proof/1", "suyuan-proof/1 ", ""):
        bundle.format = fmt
        assert failed_step(verify_bundle(bundle, chain.genesis)) == 1


def _without(g: Genesis, member: str) -> Genesis:
    members = [m for m in g.members if m.id != member]
    return Genesis.build(g.chain_id, members, list(g.validators))


def test_record_by_a_removed_member_fails(chain):
    """Verified against a genesis without the author, the record fails (step 1 or 2)."""
    g2 = _without(chain.genesis, "farm")
    bundle = chain.bundle(chain.envs[0])
    assert not verify_bundle(bundle, g2)
    bundle.genesis_hash = g2.hash  # even claiming the new chain's identity
    result = verify_bundle(bundle, g2)
    assert failed_step(result) == 2


def test_record_by_a_never_member_fails_even_if_certified(tmp_path):
    """A Byzantine quorum certifies a block holding a stranger's record: only step 2 fails."""
    b = ChainBuilder(tmp_path / "s")
    try:
        rec = make_record(b.genesis, "mallory", object_event(["urn:x:1"]), nonce=nonce_for("m"))
        env = sign_record(rec, key("mallory"))
        bundle, _ = forge_block(b, [env], (1, bytes(32), []))
        result = verify_bundle(bundle, b.genesis)
        assert [s.ok for s in result.steps][2:5] == [True, True, True], result.describe()
        assert failed_step(result) == 2
        assert "'mallory': not a member" in result.steps[1].message
    finally:
        b.close()


def test_record_missing_the_receivers_signature_fails_even_if_certified(tmp_path):
    b = ChainBuilder(tmp_path / "s")
    try:
        hand = b.handoff("urn:x:2")
        one = type(hand)(hand.payload, hand.payload_type, hand.signatures[:1])
        bundle, _ = forge_block(b, [one], (1, bytes(32), []))
        result = verify_bundle(bundle, b.genesis)
        assert failed_step(result) == 2
        assert "receiver" in result.steps[1].message
    finally:
        b.close()


def test_certificate_with_2f_signatures_fails(chain):
    bundle = chain.bundle(chain.envs[0])
    del bundle.certificate.signatures[2:]  # 2 = 2f for n = 4
    result = verify_bundle(bundle, chain.genesis)
    assert failed_step(result) == 5
    assert "2/2 valid signatures, need 3" in result.steps[4].message


def test_certificate_of_one_validator_repeated_fails(chain):
    bundle = chain.bundle(chain.envs[0])
    first = bundle.certificate.signatures[0]
    sigs = [type(first)(validator=first.validator, signature=first.signature) for _ in range(4)]
    del bundle.certificate.signatures[:]
    bundle.certificate.signatures.extend(sigs)
    result = verify_bundle(bundle, chain.genesis)
    assert failed_step(result) == 5
    assert "duplicate" in result.steps[4].message


def test_quorum_plus_one_invalid_signature_fails(chain):
    bundle = chain.bundle(chain.envs[0])
    s = bundle.certificate.signatures[3]
    s.signature = bytes(64)
    result = verify_bundle(bundle, chain.genesis)
    assert failed_step(result) == 5
    assert "invalid signature" in result.steps[4].message


def test_dropping_one_signature_beyond_the_quorum_stays_valid(chain):
    bundle = chain.bundle(chain.envs[0])
    del bundle.certificate.signatures[0]
    assert verify_bundle(bundle, chain.genesis)


def test_certificate_from_a_non_validator_fails(chain):
    bundle = chain.bundle(chain.envs[0])
    h = bundle.certificate.height
    bh = bytes(bundle.certificate.block_hash)
    from consensus.signing import Ed25519Signer

    farm = Ed25519Signer("farm", key("farm").signing_key)
    v = sign_vote(farm, chain.ctx, VoteType.PRECOMMIT, h, 0, bh)
    bundle.certificate.signatures.add(validator="farm", signature=v.signature)
    assert failed_step(verify_bundle(bundle, chain.genesis)) == 5


def test_consistency_both_directions_and_checkpoints(chain):
    # an old record (height 1, size 3) tied to a newer checkpoint (size 6) ...
    cp_new = chain.checkpoint()
    old = chain.bundle(chain.envs[0], since_size=6)
    r = require_bundle(old, chain.genesis, cp_new)
    assert r.steps[5].ok
    # ... and a newer record (height 3, size 6) tied to an older checkpoint (size 3)
    cp_old = chain.checkpoint(1)
    new = chain.bundle(chain.envs[4], since_size=3)
    assert require_bundle(new, chain.genesis, cp_old).steps[5].ok
    # a checkpoint the bundle has no proof for
    bare = chain.bundle(chain.envs[4])
    res = verify_bundle(bare, chain.genesis, cp_old)
    assert failed_step(res) == 6
    assert "--since" in res.steps[5].message
    # the checkpoint of the header's own log needs no proof
    assert verify_bundle(bare, chain.genesis, chain.checkpoint(3))


def test_checkpoint_from_a_forked_history_fails_step_6(chain, tmp_path):
    fork = ChainBuilder(tmp_path / "fork")
    try:
        fork.commit([fork.commission(f"urn:epc:id:sgtin:0614141.107346.{i}") for i in range(3)])
        fork.commit([fork.commission("urn:other:1"), fork.commission("urn:other:2")])
        fork.commit([fork.commission("urn:other:3")])
        cp_fork = fork.checkpoint(3)
    finally:
        fork.close()
    bundle = chain.bundle(chain.envs[0], since_size=6)
    res = verify_bundle(bundle, chain.genesis, cp_fork)
    assert failed_step(res) == 6
    assert "rewritten" in res.steps[5].message


def test_require_bundle_names_the_step(chain):
    bundle = chain.bundle(chain.envs[0])
    bundle.log_index += 1
    with pytest.raises(VerificationError, match=r"^step 3 \(inclusion\) failed"):
        require_bundle(bundle, chain.genesis)


@pytest.mark.parametrize("cut", [0, 50])
def test_an_empty_or_cut_short_header_is_named_as_such(chain, cut):
    # QA-P: an empty header read as height 0 ("record_height 11 is not the header's 0")
    bundle = chain.bundle(chain.envs[0])
    bundle.header = bytes(bundle.header)[:cut]
    result = verify_bundle(bundle, chain.genesis)
    assert failed_step(result) == 3
    assert result.first_failure is not None
    assert "header is empty, cut short or does not parse" in result.first_failure.message
    assert result.steps[3].message == "header is empty, cut short or does not parse"


def test_record_id_is_payload_sha256(chain):
    bundle = chain.bundle(chain.envs[1])
    r = verify_bundle(bundle, chain.genesis)
    assert r.record_id == hashlib.sha256(bundle.envelope.payload).digest()


DATA = Path(__file__).with_name("data")


def test_a_real_bundle_from_a_reproposed_block_verifies():
    # from a black-box chaos run on a 4-node testnet (SIGKILLs under load): block 1149 was
    # built in round 0 and decided in round 2; every node's audit and every proof of its
    # records failed there until the offline checks allowed a later certificate round
    g = Genesis.load(DATA / "reproposed-genesis.json")
    bundle = parse_bundle_json((DATA / "reproposed-bundle.json").read_text())
    header = types_pb2.BlockHeader.FromString(bundle.header)
    assert (header.height, header.round, bundle.certificate.round) == (1149, 0, 2)
    result = verify_bundle(bundle, g)
    assert result, result.describe()
    assert result.height == 1149


def test_a_missing_certificate_and_a_changed_envelope_are_named(chain):
    # QA-R: a bundle without its certificate read "SHA-256(header) is not the certificate's
    # block hash", and a handoff whose two signatures were swapped pointed at the path
    bundle = chain.bundle(chain.envs[0])
    bundle.ClearField("certificate")
    result = verify_bundle(bundle, chain.genesis)
    assert failed_step(result) == 4
    assert result.steps[3].message == "no commit certificate (it is missing or empty)"
    hand = chain.bundle(chain.hand)
    sigs = list(hand.envelope.signatures)
    assert len(sigs) == 2
    del hand.envelope.signatures[:]
    hand.envelope.signatures.extend(reversed(sigs))
    result = verify_bundle(hand, chain.genesis)
    assert failed_step(result) == 3
    assert "its signatures, in their order, make the leaf" in result.steps[2].message
