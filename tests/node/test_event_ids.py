"""EPCIS eventIDs, one event one record (``node.event_ids``), on a real LMDB store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from node import event_ids
from node.chain import EXTRA_DBS, ChainState, records_hash
from node.convert import envelope_to_proto
from node.epcis import normalize_code
from node.errors import RuleError
from node.records import make_record, sign_record
from node.store import Store
from proto import types_pb2
from tests.fixtures import genesis, key, object_event
from tests.node.test_chain import candidates, cert_for

G = genesis()
EID = "urn:uuid:6e1e9d2c-5c4b-4f9a-9b8e-0d6f1c2a3b4c"


@pytest.fixture
def chain(tmp_path: Path):
    store = Store.open(tmp_path / "s", G.hash, extra_dbs=EXTRA_DBS)
    yield ChainState(store, G)
    store.close()


def rec(code: str, eid: str = EID) -> types_pb2.Envelope:
    ev = {**object_event([code]), "eventID": eid}
    return envelope_to_proto(sign_record(make_record(G, "farm", ev, category="meat"), key("farm")))


def _commit(chain: ChainState, pbs: list[types_pb2.Envelope]) -> None:
    h = chain.store.head().height + 1
    block, dropped = chain.build_block(h, 0, "v1", candidates(chain, pbs))
    assert not dropped
    chain.commit(chain.validate_block(block), cert_for(block, h))


def test_a_committed_eventid_is_refused_at_admission_and_by_the_proposer(chain: ChainState) -> None:
    _commit(chain, [rec("u:1")])
    again = rec("u:2")  # another code, the same eventID (QA: it committed a second time)
    with chain.store.reader() as r, pytest.raises(RuleError) as info:
        chain.check_submitted(chain.verify(again), r)
    assert info.value.rule == "event-id"
    assert f"eventID {EID!r} is already on the chain" in str(info.value)
    block, dropped = chain.build_block(2, 0, "v1", candidates(chain, [again, rec("u:3", "x")]))
    assert len(block.envelopes) == 1
    assert [d.reason.rule for d in dropped] == ["event-id"]  # type: ignore[attr-defined]


def test_a_block_naming_one_eventid_twice_keeps_the_first(chain: ChainState) -> None:
    a, b = rec("u:1"), rec("u:2")
    block, dropped = chain.build_block(1, 0, "v1", candidates(chain, [a, b]))
    assert [pb.payload for pb in block.envelopes] == [a.payload]
    assert "earlier record of this block" in str(dropped[0].reason)


def test_validators_refuse_a_proposal_that_repeats_an_eventid(chain: ChainState) -> None:
    _commit(chain, [rec("u:1")])
    # a Byzantine proposer's block: honest header fields, the repeat inside
    honest, _ = chain.build_block(2, 0, "v1", candidates(chain, [rec("u:4", "other")]))
    header = types_pb2.BlockHeader.FromString(honest.header)
    bad = rec("u:2")
    chain._prepared.clear()
    v = chain.verify(bad)
    size, root = chain.store.preview_root([v.leaf_hash], hashed=True)
    header.log_size, header.log_root = size, root
    header.records_hash = records_hash([v.record_id])
    block = types_pb2.Block(header=header.SerializeToString(), envelopes=[bad])
    with pytest.raises(RuleError, match=r"block: record 0: .*already on the chain"):
        chain.validate_block(block)
    # a certified block is not judged by the rule: a log written before it still replays
    p = chain.validate_block(block, verify_signatures=False)
    chain.commit(p, cert_for(block, 2))
    assert chain.store.head().log_size == 2


def test_an_older_store_is_indexed_when_the_chain_opens(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = Store.open(path, G.hash, extra_dbs=EXTRA_DBS)
    chain = ChainState(store, G)
    _commit(chain, [rec("u:1")])
    _commit(chain, [rec("u:2", "urn:uuid:other")])
    assert event_ids.indexed_height(store) == 2
    # as a store of the previous version: no index at all
    with store._env.begin(write=True) as txn:
        txn.drop(store._dbs[event_ids.DB], delete=False)
    assert event_ids.indexed_height(store) == 0
    chain = ChainState(store, G)  # a node starting on it
    assert event_ids.indexed_height(store) == 2
    with store.reader() as r, pytest.raises(RuleError, match="already on the chain"):
        chain.check_submitted(chain.verify(rec("u:3")), r)
    store.close()


def test_a_long_eventid_is_keyed_by_its_digest() -> None:
    assert event_ids.key("x" * 1000).startswith(b"h")
    assert len(event_ids.key("x" * 1000)) == 33
    assert event_ids.key("urn:uuid:1") == b"eurn:uuid:1"


def test_a_uuid_eventid_in_capitals_is_the_same_event(chain: ChainState) -> None:
    _commit(chain, [rec("u:1", "urn:uuid:abcdef00-1111-4222-8333-444455556666")])
    again = rec("u:2", "urn:uuid:ABCDEF00-1111-4222-8333-444455556666")
    with chain.store.reader() as r, pytest.raises(RuleError, match="already on the chain"):
        chain.check_submitted(chain.verify(again), r)


@pytest.mark.parametrize(
    ("eid", "why"),
    [
        (12345, "must be a non-empty string"),
        ("", "must be a non-empty string"),
        (" urn:uuid:1", "has a space"),
        ("urn:x:caf\u0065\u0301", "plainer form"),  # NFD: e and a combining accent
        ("urn:x:a\u200bb", "shows nothing"),
        ("urn:x:a\u202eb", "control or format character"),
    ],
)
def test_an_eventid_is_one_token_written_one_way(eid: object, why: str) -> None:
    from node.errors import InputError

    ev = {**object_event(["u:1"]), "eventID": eid}
    with pytest.raises(InputError, match=why):
        make_record(G, "farm", ev, category="meat")


def test_an_older_store_indexes_a_uuid_eventid_as_the_rule_compares_it(tmp_path: Path) -> None:
    # the index built at start keyed a urn:uuid as written, the rule in lower case: a
    # capitalised UUID committed before the upgrade could be committed again after it
    path = tmp_path / "s"
    store = Store.open(path, G.hash, extra_dbs=EXTRA_DBS)
    chain = ChainState(store, G)
    _commit(chain, [rec("u:1", "urn:uuid:ABCDEF00-1111-4222-8333-444455556666")])
    with store._env.begin(write=True) as txn:
        txn.drop(store._dbs[event_ids.DB], delete=False)
    chain = ChainState(store, G)  # indexed again from the blocks
    again = rec("u:2", "urn:uuid:abcdef00-1111-4222-8333-444455556666")
    with store.reader() as r, pytest.raises(RuleError, match="already on the chain"):
        chain.check_submitted(chain.verify(again), r)
    store.close()


# ------------------------------------------------------------------ error declarations
# QA: EPCIS 2.0 corrects an event by capturing it again, same eventID, with an
# errorDeclaration; the ledger refused that (rule event-id), and a destruction recorded by
# mistake closed its code for good.


def _event(code: str, eid: str, step: str = "commissioning", action: str = "ADD", **more):
    return {**object_event([code], step, action), "eventID": eid, **more}


def _signed(author: str, ev: dict[str, Any]) -> types_pb2.Envelope:
    r = make_record(G, author, ev, category="meat")
    return envelope_to_proto(sign_record(r, key(author)))


def _declared(ev: dict[str, Any]) -> dict[str, Any]:
    return {**ev, "errorDeclaration": {"declarationTime": "2026-03-02T08:00:00+08:00",
                                       "reason": "urn:epcglobal:cbv:er:did_not_occur"}}  # fmt: skip


def _packed(chain: ChainState, parent: str, children: list[str], tag: str) -> dict[str, Any]:
    """Commission ``parent`` and ``children`` (farm) and pack them; the packing event (its
    eventIDs end ``{tag}0``, ``{tag}1``...)."""
    codes = [parent, *children]
    for n, c in enumerate(codes):
        _commit(
            chain,
            [_signed("farm", _event(c, f"urn:uuid:00000000-0000-4000-8000-0000000000{tag}{n}"))],
        )
    pack = {
        **object_event([], "packing", "ADD"),
        "type": "AggregationEvent",
        "parentID": parent,
        "childEPCs": children,
        "eventID": f"urn:uuid:00000000-0000-4000-8000-0000000000{tag}{len(codes)}",
    }
    pack.pop("epcList")
    _commit(chain, [_signed("farm", pack)])
    return pack


def _admit(chain: ChainState, pb: types_pb2.Envelope) -> None:
    with chain.store.reader() as r:
        chain.check_submitted(chain.verify(pb), r)


def test_an_error_declaration_repeats_its_events_eventid_once(chain: ChainState) -> None:
    first = _event("u:1", "urn:uuid:00000000-0000-4000-8000-000000000001")
    _commit(chain, [_signed("farm", first)])
    declaration = _signed("farm", _declared(first))
    _admit(chain, declaration)  # the one repeat EPCIS asks for
    block, dropped = chain.build_block(2, 0, "v1", candidates(chain, [declaration]))
    assert not dropped
    chain._prepared.clear()
    chain.commit(chain.validate_block(block), cert_for(block, 2))
    again = _signed("farm", _declared({**first, "eventTime": "2026-03-01T08:00:00.5+08:00"}))
    with pytest.raises(RuleError, match="is already declared in error") as info:
        _admit(chain, again)
    assert info.value.rule == "error-declaration"
    with pytest.raises(RuleError, match="already on the chain"):  # the event itself: still once
        _admit(chain, _signed("farm", {**first, "eventTime": "2026-03-01T09:00:00+08:00"}))


@pytest.mark.parametrize(
    ("author", "change", "why"),
    [
        (
            "farm",
            {"eventID": "urn:uuid:00000000-0000-4000-8000-0000000000ff"},
            "not on a committed",
        ),
        ("farm", {"eventID": None}, "names the event it declares by that event's eventID"),
        ("farm", {"bizStep": "receiving", "action": "OBSERVE"}, "its action differs"),
        ("slaughterhouse", {}, "may not declare an event of 'farm' in error"),
    ],
)
def test_an_error_declaration_must_restate_a_committed_event_by_its_author(
    chain: ChainState, author: str, change: dict[str, Any], why: str
) -> None:
    first = _event("u:1", "urn:uuid:00000000-0000-4000-8000-000000000002")
    _commit(chain, [_signed("farm", first)])
    ev = {k: v for k, v in {**first, **change}.items() if v is not None}
    bad = _signed(author, _declared(ev))
    with pytest.raises(RuleError, match=why) as info:
        _admit(chain, bad)
    assert info.value.rule == "error-declaration"
    # ... and the proposer drops it, and validators refuse a block that carries it
    block, dropped = chain.build_block(2, 0, "v1", candidates(chain, [bad]))
    assert [d.reason.rule for d in dropped] == ["error-declaration"]  # type: ignore[attr-defined]
    assert not block.envelopes


def test_declaring_a_destruction_in_error_reopens_the_code(chain: ChainState) -> None:
    born = _event("u:5", "urn:uuid:00000000-0000-4000-8000-000000000005")
    gone = _event("u:5", "urn:uuid:00000000-0000-4000-8000-000000000006", "destroying", "OBSERVE")
    _commit(chain, [_signed("farm", born)])
    _commit(chain, [_signed("farm", gone)])
    assert chain.custody_view.get("u:5").closed  # type: ignore[union-attr]
    # a regulator may declare anyone's event in error
    _commit(chain, [_signed("regulator", _declared(gone))])
    st = chain.custody_view.get("u:5")
    assert st is not None
    assert (st.closed, st.status, st.custodian) == (False, "active", "farm")
    ship = _event("u:5", "urn:uuid:00000000-0000-4000-8000-000000000007", "shipping", "OBSERVE")
    _commit(chain, [_signed("farm", ship)])  # the code lives on


def test_a_close_is_undone_whatever_was_recorded_on_the_closed_code_since(
    chain: ChainState,
) -> None:
    # QA: a sale, then a recall, then the recall declared in error: the sale could never be
    # declared, since the recall's declaration was "a record after" it, and declaring that
    # was refused as already declared
    born = _event("u:6", "urn:uuid:00000000-0000-4000-8000-000000000008")
    sold = _event("u:6", "urn:uuid:00000000-0000-4000-8000-000000000009", "retail_selling",
                  "OBSERVE", disposition="retail_sold")  # fmt: skip
    recall = _event("u:6", "urn:uuid:00000000-0000-4000-8000-00000000000a", "holding", "OBSERVE",
                    disposition="recalled")  # fmt: skip
    look = _event("u:6", "urn:uuid:00000000-0000-4000-8000-00000000000e", "inspecting", "OBSERVE")
    for author, ev in (("farm", born), ("farm", sold), ("regulator", recall),
                       ("regulator", _declared(recall)), ("inspector", look)):  # fmt: skip
        _commit(chain, [_signed(author, ev)])
    st = chain.custody_view.get("u:6")
    assert st is not None
    assert (st.closed, st.closed_at, st.recalled) == (True, 1, False)
    _commit(chain, [_signed("farm", _declared(sold))])
    st = chain.custody_view.get("u:6")
    assert st is not None
    assert (st.closed, st.closed_at, st.status, st.custodian) == (False, -1, "active", "farm")


def test_an_audit_replays_an_undone_destruction_as_the_node_did(tmp_path: Path) -> None:
    from node.audit import audit_blocks
    from tests.proofs.chainbuilder import ChainBuilder

    b = ChainBuilder(tmp_path / "store")
    try:
        code = "urn:epc:id:sgtin:0614141.107346.5"
        born = _event(code, "urn:uuid:00000000-0000-4000-8000-00000000000b")
        gone = _event(
            code, "urn:uuid:00000000-0000-4000-8000-00000000000c", "destroying", "OBSERVE"
        )
        after = _event(code, "urn:uuid:00000000-0000-4000-8000-00000000000d", "shipping", "OBSERVE")
        for ev in (born, gone, _declared(gone), after):
            b.commit(
                [sign_record(make_record(b.genesis, "farm", ev, category="meat"), key("farm"))]
            )
        # (rule 7 replays the undo: without it, shipping a destroyed code breaks rule closed)
        assert audit_blocks(b.committed_blocks(), b.genesis).ok
    finally:
        b.close()


def test_undoing_a_destruction_leaves_an_earlier_recall_in_place(chain: ChainState) -> None:
    born = _event("u:8", "urn:uuid:00000000-0000-4000-8000-000000000010")
    recall = _event("u:8", "urn:uuid:00000000-0000-4000-8000-000000000011", "holding", "OBSERVE",
                    disposition="recalled")  # fmt: skip
    gone = _event("u:8", "urn:uuid:00000000-0000-4000-8000-000000000012", "destroying", "OBSERVE")
    for author, ev in (("farm", born), ("regulator", recall), ("farm", gone)):
        _commit(chain, [_signed(author, ev)])
    _commit(chain, [_signed("farm", _declared(gone))])
    st = chain.custody_view.get("u:8")
    assert st is not None
    assert (st.closed, st.recalled, st.status) == (False, True, "recalled")
    # a declaration is not a handoff
    r = make_record(G, "farm", _declared(born), category="meat", handoff_to="slaughterhouse")
    with chain.store.reader() as rd, pytest.raises(RuleError, match="moves no custody"):
        event_ids.check_declaration(r, rd, G)


@pytest.mark.parametrize("declarer", ["farm", "regulator"])
def test_declaring_a_restated_recall_lifts_nothing(chain: ChainState, declarer: str) -> None:
    # QA: the farm restated the regulator's recall with an eventID of its own, declared that
    # in error (or had the regulator declare it), and shipped the recalled code
    born = _event("u:9", "urn:uuid:00000000-0000-4000-8000-000000000020")
    by_regulator = _event("u:9", "urn:uuid:00000000-0000-4000-8000-000000000021", "holding",
                          "OBSERVE", disposition="recalled")  # fmt: skip
    restated = {**by_regulator, "eventID": "urn:uuid:00000000-0000-4000-8000-000000000022"}
    for author, ev in (("farm", born), ("regulator", by_regulator), ("farm", restated)):
        _commit(chain, [_signed(author, ev)])
    _commit(chain, [_signed(declarer, _declared(restated))])  # recorded, lifts nothing
    assert chain.custody_view.get("u:9").recalled  # type: ignore[union-attr]


def test_a_declaration_restates_each_code_in_its_role(chain: ChainState) -> None:
    # QA: a parent and a child swapped passed for a restatement
    pack = _packed(chain, "u:p", ["u:c"], "3")
    swapped = {**pack, "parentID": "u:c", "childEPCs": ["u:p"]}
    with pytest.raises(RuleError, match="its codes differ from record"):
        _admit(chain, _signed("farm", _declared(swapped)))


def test_an_error_declarations_reason_is_cbvs_or_a_uri() -> None:
    reasons = (
        "did_not_occur",
        "incorrect_data",
        "urn:epcglobal:cbv:er:incorrect_data",
        "https://ref.gs1.org/cbv/ER-did_not_occur",
        "urn:example:er:mislabelled",
    )
    for reason in reasons:
        ev = {
            **_event("u:1", "urn:uuid:00000000-0000-4000-8000-000000000040"),
            "errorDeclaration": {"declarationTime": "2026-03-02T08:00:00Z", "reason": reason},
        }
        assert make_record(G, "farm", ev, category="meat").error_declaration is not None


@pytest.mark.parametrize(
    ("decl", "why"),
    [
        ("x", "'errorDeclaration' must be an object"),
        ({}, "errorDeclaration.declarationTime must be an RFC 3339 date-time"),
        ({"declarationTime": "2026-12-05T12:00:00"}, "declarationTime must be an RFC 3339"),
        ({"declarationTime": "2026-03-02T08:00:00Z", "reason": 5}, "reason must be a non-empty"),
        ({"declarationTime": "2026-03-02T08:00:00Z", "reason": "  "}, "reason must be a non-empty"),
        (
            {"declarationTime": "2026-03-02T08:00:00Z", "correctiveEventIDs": ["not a uri"]},
            "correctiveEventIDs: 'not a uri' is not an eventID",
        ),
        (  # QA: a misspelt reason was committed for good (a declaration is made once)
            {"declarationTime": "2026-03-02T08:00:00Z", "reason": "did_not_ocur"},
            "reason 'did_not_ocur' is no CBV error reason: did_not_occur or incorrect_data",
        ),
        (
            {"declarationTime": "2026-03-02T08:00:00Z", "correctiveEventIDs": "x"},
            "correctiveEventIDs must be a list",
        ),
    ],
)
def test_an_error_declaration_is_epcis_shaped(decl: object, why: str) -> None:
    # QA: {}, a time without an offset and a reason 5 were committed
    from node.errors import InputError

    ev = {
        **_event("u:1", "urn:uuid:00000000-0000-4000-8000-000000000040"),
        "errorDeclaration": decl,
    }
    with pytest.raises(InputError, match=why):
        make_record(G, "farm", ev, category="meat")


def test_a_recall_naming_a_container_and_its_contents_can_be_lifted(chain: ChainState) -> None:
    # QA: "the code has a record after the declared event" named the declaration itself
    _packed(chain, "u:box", ["u:in"], "6")
    eid = "urn:uuid:00000000-0000-4000-8000-000000000063"
    recall = {**_event("u:box", eid, "holding", "OBSERVE", disposition="recalled"),
              "epcList": ["u:box", "u:in"]}  # fmt: skip
    _commit(chain, [_signed("regulator", recall)])
    _commit(chain, [_signed("regulator", _declared(recall))])
    assert not chain.custody_view.get("u:box").recalled  # type: ignore[union-attr]
    assert not chain.custody_view.get("u:in").recalled  # type: ignore[union-attr]


def test_a_regulator_may_declare_a_sale_it_could_not_record(chain: ChainState) -> None:
    # QA: refused by the role table (a regulator may not record bizStep retail_selling)
    born = _event("u:11", "urn:uuid:00000000-0000-4000-8000-000000000070")
    sold = _event("u:11", "urn:uuid:00000000-0000-4000-8000-000000000071", "retail_selling",
                  "OBSERVE", disposition="retail_sold")  # fmt: skip
    for ev in (born, sold):
        _commit(chain, [_signed("farm", ev)])
    _commit(chain, [_signed("regulator", _declared(sold))])
    assert not chain.custody_view.get("u:11").closed  # type: ignore[union-attr]


def test_a_producer_may_lift_its_own_recall(chain: ChainState) -> None:
    born = _event("u:12", "urn:uuid:00000000-0000-4000-8000-000000000080")
    own = _event("u:12", "urn:uuid:00000000-0000-4000-8000-000000000081", "holding", "OBSERVE",
                 disposition="recalled")  # fmt: skip
    for ev in (born, own):
        _commit(chain, [_signed("farm", ev)])
    assert chain.custody_view.get("u:12").recalled_at == 1  # type: ignore[union-attr]
    _commit(chain, [_signed("farm", _declared(own))])
    st = chain.custody_view.get("u:12")
    assert st is not None
    assert (st.recalled, st.recalled_at, st.status) == (False, -1, "active")


def test_a_regulators_recall_takes_over_a_producers(chain: ChainState) -> None:
    # QA: the producer recalled, the regulator's `recall` wrote nothing (already recalled),
    # and the producer's declaration of its own recall lifted what the regulator ordered
    born = _event("u:13", "urn:uuid:00000000-0000-4000-8000-000000000090")
    own = _event("u:13", "urn:uuid:00000000-0000-4000-8000-000000000091", "holding", "OBSERVE",
                 disposition="recalled")  # fmt: skip
    ordered = {**own, "eventID": "urn:uuid:00000000-0000-4000-8000-000000000092"}
    for author, ev in (("farm", born), ("farm", own), ("regulator", ordered)):
        _commit(chain, [_signed(author, ev)])
    st = chain.custody_view.get("u:13")
    assert st is not None
    assert (st.recalled_at, st.recalled_by) == (2, "regulator")
    _commit(chain, [_signed("farm", _declared(own))])
    assert chain.custody_view.get("u:13").recalled  # type: ignore[union-attr]


def test_undoing_a_close_reopens_every_content_it_closed(chain: ChainState) -> None:
    # QA (an earlier pass): the case and one item reopened, the inspected item stayed
    # closed, without a word; each content now knows the record that closed it
    _packed(chain, "u:case", ["u:i1", "u:i2"], "a")
    gone = _event(
        "u:case", "urn:uuid:00000000-0000-4000-8000-0000000000a4", "destroying", "OBSERVE"
    )
    _commit(chain, [_signed("farm", gone)])
    look = _event("u:i2", "urn:uuid:00000000-0000-4000-8000-0000000000a5", "inspecting", "OBSERVE")
    _commit(chain, [_signed("inspector", look)])
    _commit(chain, [_signed("farm", _declared(gone))])
    for code in ("u:case", "u:i1", "u:i2"):
        st = chain.custody_view.get(code)
        assert st is not None, code
        assert (st.closed, st.status) == (False, "active"), code


def test_a_declared_transformation_reopens_its_inputs_and_closes_its_outputs(
    chain: ChainState,
) -> None:
    # the previous note: a transformation declared in error left its inputs consumed
    for i, code in enumerate(("u:in1", "u:in2")):
        _commit(
            chain,
            [_signed("farm", _event(code, f"urn:uuid:00000000-0000-4000-8000-0000000000b{i}"))],
        )
    made = {"type": "TransformationEvent", "eventTime": "2026-03-01T09:00:00+08:00",
            "eventTimeZoneOffset": "+08:00", "bizStep": "commissioning",
            "eventID": "urn:uuid:00000000-0000-4000-8000-0000000000b5",
            "inputEPCList": ["u:in1", "u:in2"], "outputEPCList": ["u:out1"]}  # fmt: skip
    _commit(chain, [_signed("farm", made)])
    assert chain.custody_view.get("u:in1").closed  # type: ignore[union-attr]
    _commit(chain, [_signed("farm", _declared(made))])
    for code, closed in (("u:in1", False), ("u:in2", False), ("u:out1", True)):
        st = chain.custody_view.get(code)
        assert st is not None, code
        assert st.closed is closed, code
    # the inputs can be used again
    again = {**made, "eventID": "urn:uuid:00000000-0000-4000-8000-0000000000b6",
             "outputEPCList": ["u:out2"]}  # fmt: skip
    _commit(chain, [_signed("farm", again)])
    assert chain.custody_view.get("u:in1").closed  # type: ignore[union-attr]


def test_a_transformation_whose_output_moved_on_is_not_declared(chain: ChainState) -> None:
    _commit(
        chain, [_signed("farm", _event("u:in9", "urn:uuid:00000000-0000-4000-8000-0000000000c7"))]
    )
    made = {"type": "TransformationEvent", "eventTime": "2026-03-01T09:00:00+08:00",
            "eventTimeZoneOffset": "+08:00", "bizStep": "commissioning",
            "eventID": "urn:uuid:00000000-0000-4000-8000-0000000000c8",
            "inputEPCList": ["u:in9"], "outputEPCList": ["u:out9"]}  # fmt: skip
    _commit(chain, [_signed("farm", made)])
    pack = {**_event("", "urn:uuid:00000000-0000-4000-8000-0000000000c9", "packing", "ADD"),
            "type": "AggregationEvent", "parentID": "u:box9", "childEPCs": ["u:out9"],
            "eventTime": "2026-03-01T10:00:00+08:00"}  # fmt: skip
    pack.pop("epcList")
    _commit(chain, [_signed("farm", pack)])
    h = chain.store.head().height + 1
    block, dropped = chain.build_block(
        h, 0, "v1", candidates(chain, [_signed("farm", _declared(made))])
    )
    assert not block.envelopes
    assert "output u:out9 has been acted on since the declared transformation" in str(
        dropped[0].reason
    )


def test_a_declaration_is_not_dated_before_its_event(chain: ChainState) -> None:
    born = _event("u:14", "urn:uuid:00000000-0000-4000-8000-0000000000b0")
    _commit(chain, [_signed("farm", born)])
    early = {**born, "errorDeclaration": {"declarationTime": "2026-02-01T00:00:00Z"}}
    with pytest.raises(RuleError, match="declarationTime is before the declared event's"):
        _admit(chain, _signed("farm", early))


def test_an_event_dated_ahead_of_its_block_is_declared_once_committed(
    chain: ChainState,
) -> None:
    # QA: an event dated a few hours ahead (a local time written as Z) could not be declared
    # in error until that time came, and its goods could not be handed on until then
    now = dt.datetime.now(dt.UTC)

    def at(t: dt.datetime) -> str:
        return t.isoformat(timespec="seconds").replace("+00:00", "Z")

    eid = "urn:uuid:00000000-0000-4000-8000-0000000000b7"
    later = at(now + dt.timedelta(hours=8))
    ahead = {**_event("u:15", eid), "eventTime": later, "eventTimeZoneOffset": "+00:00"}
    _commit(chain, [_signed("farm", ahead)])
    before = {**ahead, "errorDeclaration": {"declarationTime": at(now - dt.timedelta(hours=1))}}
    with pytest.raises(RuleError, match="and before its record was committed"):
        _admit(chain, _signed("farm", before))
    after = {**ahead, "errorDeclaration": {"declarationTime": at(now + dt.timedelta(minutes=1))}}
    _commit(chain, [_signed("farm", after)])
    st = chain.custody_view.get("u:15")
    assert st is not None
    assert st.void_at == 0  # the commissioning declared: the code may be made again


def _lot_event(eid: str, step: str, action: str, **more: Any) -> dict[str, Any]:
    ev = {**_event("", eid, step, action), "quantityList": [{"epcClass": _LOT}], **more}
    ev.pop("epcList")
    return ev


_LOT = "urn:epc:class:lgtin:6901234.012345.L1"
_ITEM = normalize_code("urn:epc:id:sgtin:6901234.012345.9")


def _recalled_lot_with_late_item(chain: ChainState, tag: str) -> dict[str, Any]:
    """Commit, by the farm: lot L1 (log 0), its recall (1), and an item made in it after
    the recall (2, born recalled); eventIDs end in ``tag`` + 0, 1, 2. Returns the recall."""
    eid = f"urn:uuid:00000000-0000-4000-8000-000000000{tag}"
    lot = _lot_event(f"{eid}0", "commissioning", "ADD")
    recall = _lot_event(f"{eid}1", "holding", "OBSERVE", disposition="recalled")
    late = _event("urn:epc:id:sgtin:6901234.012345.9", f"{eid}2", ilmd={"cbvmda:lotNumber": "L1"})
    for ev in (lot, recall, late):
        _commit(chain, [_signed("farm", ev)])
    return recall


@pytest.mark.parametrize("taken_over", [False, True], ids=["producer", "regulator-took-over"])
def test_lifting_a_lots_recall_lifts_the_items_born_recalled_in_it(
    chain: ChainState, taken_over: bool
) -> None:
    # the previous note: items commissioned into a lot after its recall stayed recalled
    # when the recall was declared in error (only codes that record named were lifted)
    recall = _recalled_lot_with_late_item(chain, "0c")
    item = chain.custody_view.get(_ITEM)
    assert item is not None
    assert (item.recalled, item.recalled_at, item.recalled_by) == (True, 1, "farm")
    declared, declarer = recall, "farm"
    if taken_over:  # a regulator's recall of the lot takes its born-recalled items over too
        declared = {**recall, "eventID": "urn:uuid:00000000-0000-4000-8000-0000000000c3"}
        declarer = "regulator"
        _commit(chain, [_signed("regulator", declared)])
        _commit(chain, [_signed("farm", _declared(recall))])  # the producer's: lifts nothing
        item = chain.custody_view.get(_ITEM)
        assert item is not None
        assert (item.recalled, item.recalled_by) == (True, "regulator")
    _commit(chain, [_signed(declarer, _declared(declared))])
    for code in (normalize_code(_LOT), _ITEM):
        st = chain.custody_view.get(code)
        assert st is not None, code
        assert (st.recalled, st.status, st.heirs) == (False, "active", ()), code


def test_a_regulators_recall_of_a_lot_never_commissioned_holds_its_later_items(
    chain: ChainState,
) -> None:
    # QA (this session): a lot known only by its items was left out of its own recall, so
    # an item made in it afterwards was not recalled, and could be sold
    first = _event(
        "urn:epc:id:sgtin:6901234.012345.8",
        "urn:uuid:00000000-0000-4000-8000-0000000000d0",
        ilmd={"cbvmda:lotNumber": "L1"},
    )
    _commit(chain, [_signed("farm", first)])
    assert chain.custody_view.get(normalize_code(_LOT)) is None  # known by its item only
    recall = _lot_event(
        "urn:uuid:00000000-0000-4000-8000-0000000000d1", "holding", "OBSERVE",
        disposition="recalled", epcList=["urn:epc:id:sgtin:6901234.012345.8"],
    )  # fmt: skip
    _commit(chain, [_signed("regulator", recall)])
    lot = chain.custody_view.get(normalize_code(_LOT))
    assert lot is not None
    assert (lot.recalled, lot.custodian, lot.is_class, lot.recalled_by) == (
        True, "", True, "regulator",
    )  # fmt: skip
    # the lot itself cannot be commissioned now; the refusal says why
    again = _lot_event("urn:uuid:00000000-0000-4000-8000-0000000000d9", "commissioning", "ADD")
    [refused] = chain.check_rules([chain.verify(_signed("farm", again))]).refused
    assert "the lot is known from a regulator's recall or an inspection" in str(refused.error)
    # any member's item made in it later is born recalled (the lot has no custodian)
    late = _event(
        "urn:epc:id:sgtin:6901234.012345.9",
        "urn:uuid:00000000-0000-4000-8000-0000000000d2",
        ilmd={"cbvmda:lotNumber": "L1"},
    )
    _commit(chain, [_signed("retailer", late)])
    item = chain.custody_view.get(_ITEM)
    assert item is not None
    assert (item.recalled, item.recalled_by, item.custodian) == (True, "regulator", "retailer")
    # the regulator's declaration of its recall lifts the lot, its items and those born since
    _commit(chain, [_signed("regulator", _declared(recall))])
    for code in (normalize_code(_LOT), _ITEM, normalize_code("urn:epc:id:sgtin:6901234.012345.8")):
        st = chain.custody_view.get(code)
        assert st is not None, code
        assert (st.recalled, st.heirs) == (False, ()), code


def test_a_recall_of_an_unknown_code_that_is_no_lot_is_refused(chain: ChainState) -> None:
    ev = _event(
        "urn:epc:id:sgtin:6901234.012345.77",
        "urn:uuid:00000000-0000-4000-8000-0000000000e1",
        "holding",
        "OBSERVE",
        disposition="recalled",
    )
    [refused] = chain.check_rules([chain.verify(_signed("regulator", ev))]).refused
    assert "never commissioned" in str(refused.error)
    # nor may a producer recall a lot it never made (only a regulator's recall makes one)
    own = _lot_event(
        "urn:uuid:00000000-0000-4000-8000-0000000000e2", "holding", "OBSERVE",
        disposition="recalled",
    )  # fmt: skip
    [refused] = chain.check_rules([chain.verify(_signed("farm", own))]).refused
    assert "only a regulator, or the code's producer" in str(refused.error)


def test_a_committed_handoff_may_be_declared_by_its_sender(chain: ChainState) -> None:
    # the previous note: handoff offers carried no eventID, so a handoff could not be declared;
    # the declaration marks it (custody stays with the receiver: a handoff back corrects it)
    from cli.handoff_cmd import handoff_event
    from node.records import cosign

    _commit(
        chain, [_signed("farm", _event("u:20", "urn:uuid:00000000-0000-4000-8000-0000000000d0"))]
    )
    ev = handoff_event(["u:20"], [], "2026-03-01T09:00:00+08:00", "shipping", "in_transit", "")
    assert ev["eventID"].startswith("urn:uuid:")
    offer = sign_record(make_record(G, "farm", ev, category="meat", handoff_to="slaughterhouse"),
                        key("farm"))  # fmt: skip
    _commit(chain, [envelope_to_proto(cosign(offer, key("slaughterhouse")))])
    _commit(chain, [_signed("farm", _declared(ev))])
    st = chain.custody_view.get("u:20")
    assert st is not None
    assert (st.custodian, st.status) == ("slaughterhouse", "active")


def test_a_regulators_retraction_leaves_the_producers_own_recall_in_force(
    chain: ChainState,
) -> None:
    # QA-U: the processor recalled its lot's pack, the regulator recalled it too, then
    # declared its own recall in error: the pack was active again and was sold, though the
    # processor's recall was never declared
    born = _event("u:14", "urn:uuid:00000000-0000-4000-8000-0000000000e0")
    own = _event("u:14", "urn:uuid:00000000-0000-4000-8000-0000000000e1", "holding", "OBSERVE",
                 disposition="recalled")  # fmt: skip
    ordered = {**own, "eventID": "urn:uuid:00000000-0000-4000-8000-0000000000e2"}
    for author, ev in (("farm", born), ("farm", own), ("regulator", ordered)):
        _commit(chain, [_signed(author, ev)])
    _commit(chain, [_signed("regulator", _declared(ordered))])
    st = chain.custody_view.get("u:14")
    assert st is not None
    assert (st.recalled, st.recalled_at, st.recalled_by, st.recalls) == (True, 1, "farm", ())
    _commit(chain, [_signed("farm", _declared(own))])  # the producer's own: now lifted
    st = chain.custody_view.get("u:14")
    assert st is not None
    assert (st.recalled, st.status, st.recalls) == (False, "active", ())


def test_a_producers_recall_of_a_code_the_regulator_recalled_outlasts_the_regulators(
    chain: ChainState,
) -> None:
    # QA-U, the other order: the regulator recalled first, the producer restated it; the
    # regulator's retraction leaves the producer's recall governing
    born = _event("u:15", "urn:uuid:00000000-0000-4000-8000-0000000000f0")
    ordered = _event("u:15", "urn:uuid:00000000-0000-4000-8000-0000000000f1", "holding",
                     "OBSERVE", disposition="recalled")  # fmt: skip
    own = {**ordered, "eventID": "urn:uuid:00000000-0000-4000-8000-0000000000f2"}
    for author, ev in (("farm", born), ("regulator", ordered), ("farm", own)):
        _commit(chain, [_signed(author, ev)])
    st = chain.custody_view.get("u:15")
    assert st is not None
    assert (st.recalled_at, st.recalled_by, st.recalls) == (1, "regulator", ("2:farm",))
    _commit(chain, [_signed("regulator", _declared(ordered))])
    st = chain.custody_view.get("u:15")
    assert st is not None
    assert (st.recalled, st.recalled_at, st.recalled_by, st.recalls) == (True, 2, "farm", ())
    sale = _event("u:15", "urn:uuid:00000000-0000-4000-8000-0000000000f3", "retail_selling",
                  "OBSERVE", disposition="retail_sold")  # fmt: skip
    h = chain.store.head().height + 1
    _, dropped = chain.build_block(h, 0, "v1", candidates(chain, [_signed("farm", sale)]))
    assert [getattr(d.reason, "rule", "") for d in dropped] == ["recalled"], dropped


def test_items_born_recalled_stay_recalled_while_another_recall_of_their_lot_stands(
    chain: ChainState,
) -> None:
    # the producer recalled the lot, an item was made in it (born recalled), the regulator
    # recalled the lot too and retracted it: the producer's recall still holds lot and item
    recall = _recalled_lot_with_late_item(chain, "0d")
    ordered = {**recall, "eventID": "urn:uuid:00000000-0000-4000-8000-0000000000cb"}
    _commit(chain, [_signed("regulator", ordered)])
    _commit(chain, [_signed("regulator", _declared(ordered))])
    for code in (normalize_code(_LOT), _ITEM):
        st = chain.custody_view.get(code)
        assert st is not None, code
        assert (st.recalled, st.recalled_at, st.recalled_by) == (True, 1, "farm"), code
    _commit(chain, [_signed("farm", _declared(recall))])
    for code in (normalize_code(_LOT), _ITEM):
        st = chain.custody_view.get(code)
        assert st is not None, code
        assert (st.recalled, st.status) == (False, "active"), code


def test_an_item_recalled_directly_keeps_its_lots_restated_recall(chain: ChainState) -> None:
    # review: farm recalled lot L (1), item I was made in it (2, born recalled), the
    # regulator recalled I directly (3), farm restated L's recall (4): I got no note of
    # it, and once 1 and 3 were declared in error I was active, and sold, while 4 stood
    recall = _recalled_lot_with_late_item(chain, "1c")
    direct = _event("urn:epc:id:sgtin:6901234.012345.9",
                    "urn:uuid:00000000-0000-4000-8000-0000000001c3", "holding", "OBSERVE",
                    disposition="recalled")  # fmt: skip
    _commit(chain, [_signed("regulator", direct)])
    restated = {**recall, "eventID": "urn:uuid:00000000-0000-4000-8000-0000000001c4"}
    _commit(chain, [_signed("farm", restated)])
    _commit(chain, [_signed("farm", _declared(recall))])
    _commit(chain, [_signed("regulator", _declared(direct))])
    for code in (normalize_code(_LOT), _ITEM):
        st = chain.custody_view.get(code)
        assert st is not None, code
        assert (st.recalled, st.recalled_at, st.recalled_by) == (True, 4, "farm"), code
    assert chain.custody_view.get(_ITEM).disposition == "recalled"  # type: ignore[union-attr]


def test_a_regulators_recall_governs_when_the_governing_one_is_declared(chain: ChainState) -> None:
    # review: farm (1), regulator (2), v2, a regulator too (3), farm again (4); v2's
    # declared: the farm's latest came to govern while the regulator's stood
    born = _event("u:16", "urn:uuid:00000000-0000-4000-8000-000000000100")
    first = _event("u:16", "urn:uuid:00000000-0000-4000-8000-000000000101", "holding",
                   "OBSERVE", disposition="recalled")  # fmt: skip
    recalls = [
        ("farm", first),
        ("regulator", {**first, "eventID": "urn:uuid:00000000-0000-4000-8000-000000000102"}),
        ("v2", {**first, "eventID": "urn:uuid:00000000-0000-4000-8000-000000000103"}),
        ("farm", {**first, "eventID": "urn:uuid:00000000-0000-4000-8000-000000000104"}),
    ]
    _commit(chain, [_signed("farm", born)])
    for author, ev in recalls:
        _commit(chain, [_signed(author, ev)])
    st = chain.custody_view.get("u:16")
    assert st is not None
    assert (st.recalled_at, st.recalled_by, st.recalls) == (
        3,
        "v2",
        ("1:farm", "2:regulator", "4:farm"),
    )
    _commit(chain, [_signed("v2", _declared(recalls[2][1]))])
    st = chain.custody_view.get("u:16")
    assert st is not None
    assert (st.recalled_at, st.recalled_by, st.recalls) == (2, "regulator", ("1:farm", "4:farm"))


def test_recall_notes_past_the_cap_drop_the_restating_members_own_first() -> None:
    from node.custody import MAX_RECALLS, _pushed

    full = tuple(f"{i}:{'regulator' if i == 0 else 'farm'}" for i in range(MAX_RECALLS))
    out = _pushed(full, 99, "farm")
    assert len(out) == MAX_RECALLS
    assert out[0] == "0:regulator"  # another member's is never pushed out by farm's
    assert out[-1] == "99:farm"
    assert "1:farm" not in out
    others = tuple(f"{i}:m{i}" for i in range(MAX_RECALLS))
    assert _pushed(others, 99, "farm") == (*others[1:], "99:farm")  # none of its own: oldest
    # review: a producer's 15 restatements, another's one recall, then a regulator's note
    spam = ("0:producer2", *(f"{i}:producer1" for i in range(1, MAX_RECALLS)))
    out = _pushed(spam, 50, "regulator")
    assert out[0] == "0:producer2"  # its only recall is kept
    assert "1:producer1" not in out
    assert out[-1] == "50:regulator"


def test_a_recall_rerun_skips_codes_a_recall_of_its_own_holds() -> None:
    from node.recall import _holds
    from proto import services_pb2

    n = services_pb2.TraceNode(code="c", recalled=True, recalled_by="regulator",
                               recalled_at=7, other_recalls=["3:farm"])  # fmt: skip
    assert _holds(n, "farm")
    assert _holds(n, "regulator")
    assert not _holds(n, "processor")


def test_declaring_a_regulators_second_recall_leaves_its_first_in_force(
    chain: ChainState,
) -> None:
    # QA-V: the regulator recalled a code (`suyuan recall`), recorded a second recall of it,
    # and declared the second in error: the code was active again, and was sold
    born = _event("u:17", "urn:uuid:00000000-0000-4000-8000-000000000110")
    first = _event("u:17", "urn:uuid:00000000-0000-4000-8000-000000000111", "holding",
                   "OBSERVE", disposition="recalled")  # fmt: skip
    second = {**first, "eventID": "urn:uuid:00000000-0000-4000-8000-000000000112"}
    _commit(chain, [_signed("farm", born)])
    _commit(chain, [_signed("regulator", first)])
    _commit(chain, [_signed("regulator", second)])
    _commit(chain, [_signed("regulator", _declared(second))])
    st = chain.custody_view.get("u:17")
    assert st is not None
    assert (st.recalled, st.recalled_at, st.recalled_by, st.recalls) == (True, 1, "regulator", ())


def test_a_lifted_recall_gives_back_the_disposition_it_found(chain: ChainState) -> None:
    # review: an expired code, recalled, its recall then declared in error, read "active"
    # (disposition ""), and the expired rule no longer held it
    born = _event("u:18", "urn:uuid:00000000-0000-4000-8000-000000000120")
    expired = _event("u:18", "urn:uuid:00000000-0000-4000-8000-000000000121", "holding",
                     "OBSERVE", disposition="expired")  # fmt: skip
    recall = _event("u:18", "urn:uuid:00000000-0000-4000-8000-000000000122", "holding",
                    "OBSERVE", disposition="recalled")  # fmt: skip
    _commit(chain, [_signed("farm", born)])
    _commit(chain, [_signed("farm", expired)])
    _commit(chain, [_signed("regulator", recall)])
    _commit(chain, [_signed("regulator", _declared(recall))])
    st = chain.custody_view.get("u:18")
    assert st is not None
    assert (st.recalled, st.disposition, st.pre_recall) == (False, "expired", "")
    sale = _event("u:18", "urn:uuid:00000000-0000-4000-8000-000000000123", "retail_selling",
                  "OBSERVE", disposition="retail_sold")  # fmt: skip
    h = chain.store.head().height + 1
    _, dropped = chain.build_block(h, 0, "v1", candidates(chain, [_signed("farm", sale)]))
    assert [getattr(d.reason, "rule", "") for d in dropped] == ["expired"], dropped
