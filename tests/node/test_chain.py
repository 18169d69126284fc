"""ChainState: block building, the numbered validation steps, commit — on a real LMDB store."""

from __future__ import annotations

import pytest

from consensus.messages import block_hash_of
from node.chain import EXTRA_DBS, ChainState, records_hash
from node.convert import envelope_from_proto, envelope_to_proto
from node.envelope import Envelope, envelope_leaf_bytes
from node.errors import InputError, LedgerError, RuleError
from node.records import make_record, sign_record
from node.store import Store
from proto import types_pb2
from tests.fixtures import genesis, key, object_event

G = genesis()


@pytest.fixture
def chain(tmp_path):
    store = Store.open(tmp_path / "s", G.hash, extra_dbs=EXTRA_DBS)
    ch = ChainState(store, G)
    yield ch
    store.close()


def rec(code: str, author: str = "farm", step: str = "commissioning", action: str = "ADD", **kw):
    r = make_record(G, author, object_event([code], step, action), category="meat", **kw)
    return envelope_to_proto(sign_record(r, key(author)))


def candidates(ch: ChainState, pbs):
    return [(pb, ch.verify(pb)) for pb in pbs]


def cert_for(block: types_pb2.Block, height: int) -> types_pb2.CommitCertificate:
    return types_pb2.CommitCertificate(height=height, block_hash=block_hash_of(block))


def test_build_validate_commit(chain: ChainState) -> None:
    block, dropped = chain.build_block(1, 0, "v1", candidates(chain, [rec("u:1"), rec("u:2")]))
    assert not dropped
    chain._prepared.clear()  # validate as another validator would
    p = chain.validate_block(block)
    head = chain.commit(p, cert_for(block, 1))
    assert head.height == 1
    assert head.log_size == 2
    assert chain.store.record_location(p.verified[0].record_id) == (0, 1)


def test_proposer_drops_rule_breaking_and_replayed_records(chain: ChainState) -> None:
    first = rec("u:1")
    block, _ = chain.build_block(1, 0, "v1", candidates(chain, [first]))
    chain.commit(chain.validate_block(block), cert_for(block, 1))
    again = rec("u:1")  # commission-once
    foreign = rec("u:9", author="retailer", step="shipping", action="OBSERVE")  # unknown code
    block2, dropped = chain.build_block(
        2, 0, "v2", candidates(chain, [first, again, foreign, rec("u:3")])
    )
    assert len(block2.envelopes) == 1
    reasons = " ".join(str(d.reason) for d in dropped)
    assert "already committed" in reasons
    assert "commission-once" in reasons


def _byzantine_block(chain: ChainState, pbs, **header_changes) -> types_pb2.Block:
    """A block built honestly, then tampered with as a Byzantine proposer could."""
    honest, _ = chain.build_block(chain.head().height + 1, 0, "v1", candidates(chain, pbs[:1]))
    header = types_pb2.BlockHeader.FromString(honest.header)
    for k, v in header_changes.items():
        setattr(header, k, v)
    chain._prepared.clear()
    return types_pb2.Block(header=header.SerializeToString(), envelopes=pbs)


def test_honest_validators_refuse_a_block_with_a_rule_breaking_record(chain: ChainState) -> None:
    block, _ = chain.build_block(1, 0, "v1", candidates(chain, [rec("u:1")]))
    chain.commit(chain.validate_block(block), cert_for(block, 1))
    bad = rec("u:1")  # commissions u:1 a second time
    ids = [chain.verify(bad).record_id]
    size, root = chain.store.preview_root([envelope_leaf_bytes(envelope_from_proto(bad))])
    forged = _byzantine_block(
        chain, [bad], num_records=1, records_hash=records_hash(ids), log_size=size, log_root=root
    )
    with pytest.raises(RuleError, match="commission-once"):
        chain.validate_block(forged)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"height": 5}, "height"),
        ({"prev_block_hash": b"\x01" * 32}, "prev_block_hash"),
        ({"chain_id": "other"}, "another chain"),
        ({"proposer": "farm"}, "not a validator"),
        ({"num_records": 2}, "num_records"),
        ({"records_hash": b"\x00" * 32}, "records_hash"),
        ({"log_root": b"\x00" * 32}, "log_root"),
        ({"log_size": 7}, "log_size"),
    ],
)
def test_header_fields_are_checked(chain: ChainState, change, match) -> None:
    forged = _byzantine_block(chain, [rec("u:1")], **change)
    with pytest.raises(LedgerError, match=match):
        chain.validate_block(forged)


def test_bad_signature_in_block_is_refused(chain: ChainState) -> None:
    pb = rec("u:1")
    block, _ = chain.build_block(1, 0, "v1", candidates(chain, [pb]))
    tampered = types_pb2.Block()
    tampered.CopyFrom(block)
    sig = bytearray(tampered.envelopes[0].signatures[0].sig)
    sig[0] ^= 1
    tampered.envelopes[0].signatures[0].sig = bytes(sig)
    chain._prepared.clear()
    with pytest.raises(InputError, match="invalid"):
        chain.validate_block(tampered)


def test_a_block_with_a_too_deep_record_is_refused_as_bad_input(chain: ChainState) -> None:
    """Regression: a signed record nesting 5,000 arrays deep raised RecursionError out of
    block validation, not a refusal (by the code, that would stop the validator's
    consensus loop)."""
    good = rec("u:1")
    payload = good.payload.replace(
        b'"author"', b'"attributes":{"x":' + b"[" * 5000 + b"]" * 5000 + b'},"author"'
    )
    env = Envelope(payload)
    deep = envelope_to_proto(env.with_signature("farm", key("farm").sign(env.signed_bytes())))
    honest = _byzantine_block(chain, [good])  # its header, with the deep record as body
    forged = types_pb2.Block(header=honest.header, envelopes=[deep])
    with pytest.raises(InputError, match=r"record 0: .*nests deeper than 64 levels"):
        chain.validate_block(forged)


def test_duplicate_record_within_a_block_is_refused(chain: ChainState) -> None:
    pb = rec("u:1")
    forged = _byzantine_block(chain, [pb, pb])
    with pytest.raises(LedgerError):
        chain.validate_block(forged)


def test_known_records_are_not_verified_again(chain: ChainState, monkeypatch) -> None:
    pbs = [rec("u:k1"), rec("u:k2")]
    block, _ = chain.build_block(1, 0, "v1", candidates(chain, pbs))
    known = [chain.verify(pb) for pb in block.envelopes]
    chain._prepared.clear()

    def no_verify(pb):
        raise AssertionError("verified again")

    monkeypatch.setattr(chain, "verify", no_verify)
    p = chain.validate_block(block, known=known)
    assert [v.record_id for v in p.verified] == [v.record_id for v in known]
    chain._prepared.clear()
    with pytest.raises(ValueError, match="one known entry per envelope"):
        chain.validate_block(block, known=known[:1])


def test_a_gap_in_known_is_verified(chain: ChainState) -> None:
    good = rec("u:k3")
    bad = rec("u:k4")
    block, _ = chain.build_block(1, 0, "v1", candidates(chain, [good, bad]))
    block.envelopes[1].signatures[0].sig = bytes(64)  # the record nobody verified is forged
    chain._prepared.clear()
    with pytest.raises(InputError, match="record 1"):
        chain.validate_block(block, known=[chain.verify(block.envelopes[0]), None])


def test_check_fresh_names_a_repeat_and_a_reused_nonce(chain: ChainState) -> None:
    """One nonce lookup answers a fresh record; a repeat is still named as one."""
    first = rec("u:1", nonce="nonce-0001")
    block, _ = chain.build_block(1, 0, "v1", candidates(chain, [first]))
    chain.commit(chain.validate_block(block), cert_for(block, 1))
    with pytest.raises(LedgerError, match="already committed"):
        chain.check_fresh(chain.verify(first))
    other = rec("u:2", nonce="nonce-0001")  # another record, same author and nonce
    with pytest.raises(LedgerError, match="nonce 'nonce-0001' of 'farm' was used"):
        chain.check_fresh(chain.verify(other))
    chain.check_fresh(chain.verify(rec("u:3", nonce="nonce-0002")))  # fresh: no error


def test_refusals_are_kept_without_their_traceback(chain: ChainState) -> None:
    """A refusal kept in a result list must not hold the frame that holds the list: the
    cycle would keep a whole batch of parsed records alive until a cyclic collection."""
    first = rec("u:1")
    block, _ = chain.build_block(1, 0, "v1", candidates(chain, [first]))
    chain.commit(chain.validate_block(block), cert_for(block, 1))
    bad = types_pb2.Envelope()
    bad.CopyFrom(rec("u:2"))
    bad.signatures[0].sig = bytes(64)
    results, _ = chain.admission_checks([first, bad, rec("u:3")])
    errors = [r for r in results if isinstance(r, LedgerError)]
    assert len(errors) == 2  # the replay and the bad signature
    assert all(e.__traceback__ is None for e in errors)
    _, dropped = chain.build_block(2, 0, "v2", candidates(chain, [rec("u:1", nonce="other-n1")]))
    assert [d.reason.__traceback__ for d in dropped] == [None]  # commission-once refusal


def test_an_event_dated_over_a_day_ahead_of_the_node_is_refused_at_admission(
    chain: ChainState,
) -> None:
    # QA: a commissioning dated 2099 was committed, and trace history listed it out of order
    import datetime as dt

    from node.records import event_time_ms

    def dated(code: str, when: str) -> types_pb2.Envelope:
        ev = {**object_event([code]), "eventTime": when, "eventTimeZoneOffset": "+00:00"}
        r = make_record(G, "farm", ev, category="meat")
        return envelope_to_proto(sign_record(r, key("farm")))

    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    with chain.store.reader() as r:
        with pytest.raises(RuleError) as info:
            chain.check_submitted(chain.verify(dated("u:1", "2099-01-01T00:00:00Z")), r)
        assert info.value.rule == "event-time"
        assert "after the node's time" in str(info.value)
        chain.check_submitted(chain.verify(dated("u:2", soon)), r)  # (a clock hours off)
        # QA: today's date with an offset of -23:59 is a day and a half ahead in UTC
        late = chain.verify(dated("u:3", f"{today}T23:59:59-23:59"))
        with pytest.raises(RuleError, match="after the node's time"):
            chain.check_submitted(late, r)
        # QA: an error declaration dated 2099 was committed
        ev = {**object_event(["u:4"]), "errorDeclaration": {
            "declarationTime": "2099-01-01T00:00:00Z", "reason": "incorrect_data"}}  # fmt: skip
        declared = chain.verify(
            envelope_to_proto(sign_record(make_record(G, "farm", ev, category="meat"), key("farm")))
        )
        with pytest.raises(RuleError, match=r"errorDeclaration\.declarationTime"):
            chain.check_submitted(declared, r)
    assert event_time_ms("2026-03-01T08:00:00.123456789+08:00") == 1772323200123
    assert event_time_ms("2026-03-01T00:00:60Z") == 1772323259000
    assert event_time_ms("2026-02-30T00:00:00Z") is None


def _dated(code: str, when: str) -> types_pb2.Envelope:
    ev = {**object_event([code]), "eventTime": when, "eventTimeZoneOffset": "+00:00"}
    return envelope_to_proto(sign_record(make_record(G, "farm", ev, category="meat"), key("farm")))


def _forged_with(chain: ChainState, pbs, **header_changes) -> types_pb2.Block:
    """``pbs`` under an honest header fixed up for them, then ``header_changes``."""
    ids = [chain.verify(pb).record_id for pb in pbs]
    size, root = chain.store.preview_root(
        [envelope_leaf_bytes(envelope_from_proto(pb)) for pb in pbs]
    )
    return _byzantine_block(
        chain, pbs, num_records=len(pbs), records_hash=records_hash(ids),
        log_size=size, log_root=root, **header_changes,
    )  # fmt: skip


def test_a_proposal_dated_ahead_of_the_validators_clock_is_refused(chain: ChainState) -> None:
    # (rule block-time: else a Byzantine proposer dates its block, and with it the event-time
    # rule's bound, as it likes)
    import time

    from node.chain import MAX_CLOCK_AHEAD_MS

    now = int(time.time() * 1000)
    ahead = _forged_with(chain, [rec("u:1")], time_ms=now + MAX_CLOCK_AHEAD_MS + 60_000)
    with pytest.raises(InputError, match=r"s after this node's clock .*rule block-time"):
        chain.validate_block(ahead)
    # a certified block (sync) is not judged by this node's clock
    chain.validate_block(ahead, verify_signatures=False)
    chain._prepared.clear()
    chain.validate_block(_forged_with(chain, [rec("u:1")], time_ms=now))  # (an honest time)


def test_a_proposal_not_dated_after_its_parent_is_refused(chain: ChainState) -> None:
    block, _ = chain.build_block(1, 0, "v1", candidates(chain, [rec("u:1")]))
    chain.commit(chain.validate_block(block), cert_for(block, 1))
    parent_ms = types_pb2.BlockHeader.FromString(block.header).time_ms
    assert chain.head_time_ms == parent_ms
    same = _forged_with(chain, [rec("u:2")], time_ms=parent_ms)
    with pytest.raises(InputError, match=r"not after the previous block's .*rule block-time"):
        chain.validate_block(same)
    # an honest proposer whose clock is behind the parent's time dates its block 1 ms later
    later, _ = chain.build_block(2, 0, "v2", candidates(chain, [rec("u:2")]), parent_ms - 5_000)
    assert types_pb2.BlockHeader.FromString(later.header).time_ms == parent_ms + 1
    chain._prepared.clear()
    chain.validate_block(later)


def test_the_head_time_is_read_back_when_the_store_reopens(tmp_path) -> None:
    store = Store.open(tmp_path / "s", G.hash, extra_dbs=EXTRA_DBS)
    chain = ChainState(store, G)
    assert chain.head_time_ms == 0
    block, _ = chain.build_block(1, 0, "v1", candidates(chain, [rec("u:1")]))
    chain.commit(chain.validate_block(block), cert_for(block, 1))
    store.close()
    store = Store.open(tmp_path / "s", G.hash, extra_dbs=EXTRA_DBS)
    try:
        again = ChainState(store, G)
        assert again.head_time_ms == types_pb2.BlockHeader.FromString(block.header).time_ms
    finally:
        store.close()


def test_a_record_dated_over_a_day_after_its_block_is_refused_in_the_block(
    chain: ChainState,
) -> None:
    # QA (the session before): rule event-time was judged at admission only, so a Byzantine
    # proposer (or a record gossiped by one) could commit an event dated 2099
    future = _dated("u:1", "2099-01-01T00:00:00Z")
    forged = _forged_with(chain, [future])
    with pytest.raises(RuleError, match=r"record 0: .*after the block's time") as info:
        chain.validate_block(forged)
    assert info.value.rule == "event-time"
    block, dropped = chain.build_block(1, 0, "v1", candidates(chain, [future, rec("u:2")]))
    assert len(block.envelopes) == 1
    assert [d.reason.rule for d in dropped] == ["event-time"]  # type: ignore[attr-defined]
    # judged against the header's time, not the validator's clock: a proposal dated 20 s
    # ahead carries an event a day and 10 s ahead of the clock
    import datetime as dt
    import time

    now = int(time.time() * 1000)
    when = dt.datetime.fromtimestamp(now / 1000 + 86_410, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    edge = _dated("u:3", when)
    with chain.store.reader() as r, pytest.raises(RuleError, match="after the node's time"):
        chain.check_submitted(chain.verify(edge), r)
    chain._prepared.clear()
    chain.validate_block(_forged_with(chain, [edge], time_ms=now + 20_000))
