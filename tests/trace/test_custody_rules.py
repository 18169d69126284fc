"""Each custody rule, accepted and refused, at the pure level with real signed records."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.custody import (
    _STATE_KEYS,
    BACK,
    DB_CUSTODY,
    DB_EDGES,
    DB_HISTORY,
    FWD,
    CodeState,
    InMemoryCustody,
    apply,
    apply_block,
    decode_state,
    edge_prefix,
    edge_target,
    encode_state,
    history_key,
    split_key,
)
from node.epcis import import_document, lot_links, normalize_code
from node.errors import InputError, RuleError, RulePermissionError
from node.trace import history, recall_scope, trace_back, trace_forward
from tests.fixtures import EPCIS_DIR
from tests.trace.helpers import GENESIS, Chain, event, signed

URN = "urn:epc:id:sgtin:6901234.012345.1"
DL = normalize_code(URN)  # https://id.gs1.org/01/06901234123456/21/1
A, B, C = "local:farm:pig-001", "local:farm:pig-002", "local:farm:pig-003"
CASE = "urn:epc:id:sscc:6903456.0000000101"
LOT = "urn:epc:class:lgtin:6901234.012345.L1"


def commission(chain: Chain, author: str, *codes: str) -> None:
    chain.add(author, event(action="ADD", step="commissioning", epcList=list(codes)))


def observe(step: str, *codes: str, **kw):
    return event(step=step, epcList=list(codes), **kw)


def raises(rule: str, code: str = "", perm: bool = False):
    cls = RulePermissionError if perm else RuleError
    match = rf"rule {rule}:"
    return pytest.raises(cls, match=match + (".*" + code if code else ""))


@pytest.fixture
def chain() -> Chain:
    return Chain()


# ------------------------------------------------------------------ commissioning


def test_commission_makes_author_commissioner_and_custodian(chain):
    commission(chain, "farm", A)
    st = chain.custody.get(A)
    assert st is not None
    assert (st.commissioned_by, st.custodian, st.status, st.first_index) == (
        "farm",
        "farm",
        "active",
        0,
    )


def test_code_is_commissioned_once(chain):
    commission(chain, "farm", A)
    with raises("commission-once", A):
        commission(chain, "slaughterhouse", A)


def test_commission_once_names_where_the_code_was_commissioned(chain):
    commission(chain, "farm", C)
    commission(chain, "farm", A)
    with raises("commission-once", A) as committed:
        commission(chain, "slaughterhouse", A)
    assert "(at log index 1)" in str(committed.value)
    # earlier in the same block: no log index yet (it would name one not yet assigned)
    bu = chain.block(
        [
            ("farm", event(action="ADD", step="commissioning", epcList=[B]), ""),
            ("processor", event(action="ADD", step="commissioning", epcList=[B]), ""),
        ]
    )
    assert [r.position for r in bu.refused] == [1]
    assert "(by a record not yet committed)" in str(bu.refused[0].error)


def test_urn_and_digital_link_are_one_code(chain):
    commission(chain, "farm", URN)
    with raises("commission-once"):
        commission(chain, "farm", "https://example.com/01/06901234123456/21/1?linkType=all")
    chain.add("farm", observe("shipping", DL), to="distributor")
    assert chain.custody.get(DL).custodian == "distributor"


def test_inspector_may_not_commission(chain):
    with raises("commission-role", A, perm=True):
        chain.add("inspector", event(action="ADD", step="inspecting", epcList=[A]))


def test_event_without_codes_is_refused(chain):
    with raises("codes"):
        chain.add("farm", event(step="storing"))


def test_code_in_two_roles_is_refused(chain):
    commission(chain, "farm", A)
    ev = event("TransformationEvent", None, "commissioning", inputEPCList=[A], outputEPCList=[A])
    with raises("duplicate-code", A):
        chain.add("farm", ev)


# ------------------------------------------------------------------ custodian acts


def test_only_custodian_acts(chain):
    commission(chain, "farm", A)
    chain.add("farm", observe("storing", A))
    with raises("custody", A, perm=True):
        chain.add("retailer", observe("storing", A))


def test_unknown_code_is_refused(chain):
    with raises("unknown-code", A):
        chain.add("farm", observe("storing", A))


def test_inspector_and_regulator_may_inspect_codes_they_do_not_hold(chain):
    commission(chain, "farm", A)
    chain.add("inspector", observe("inspecting", A, disposition="conformant"))
    chain.add("regulator", observe("sampling", A))
    st = chain.custody.get(A)
    assert (st.custodian, st.disposition, st.last_index) == ("farm", "conformant", 2)


def test_inspector_exception_is_only_for_inspections(chain):
    commission(chain, "farm", A)
    with raises("custody", A, perm=True):
        chain.add("regulator", observe("holding", A))


def test_terminal_event_closes_and_closed_refuses(chain):
    commission(chain, "farm", A, B)
    chain.add("farm", observe("retail_selling", A, disposition="retail_sold"))
    chain.add("farm", event(action="DELETE", step="decommissioning", epcList=[B]))
    assert chain.custody.get(A).status == "closed"
    assert chain.custody.get(B).status == "closed"
    with raises("closed", A):
        chain.add("farm", observe("storing", A))
    chain.add("inspector", observe("inspecting", A))  # a sold item may still be inspected


# ------------------------------------------------------------------ handoff


def test_handoff_moves_custody(chain):
    commission(chain, "farm", A, B)
    chain.add("farm", observe("shipping", A, B, disposition="in_transit"), to="slaughterhouse")
    assert chain.custody.get(A).custodian == "slaughterhouse"
    assert chain.custody.get(A).commissioned_by == "farm"
    chain.add("slaughterhouse", observe("receiving", A))
    with raises("custody", B, perm=True):
        chain.add("farm", observe("shipping", B), to="retailer")


def test_handoff_needs_both_signatures(chain):
    commission(chain, "farm", A)
    rec, _ = signed("farm", observe("shipping", A), to="slaughterhouse")
    with raises("handoff-signatures", perm=True):
        apply(chain.custody, rec, ("farm",), GENESIS, 1)


def test_handoff_cannot_commission(chain):
    with raises("handoff"):
        chain.add("farm", event(action="ADD", step="commissioning", epcList=[A]), to="retailer")


def test_recalled_code_refuses_handoff_except_return_or_destruction(chain):
    commission(chain, "farm", A, B, C)
    chain.add("regulator", observe("holding", A, B, C, disposition="recalled"))
    assert chain.custody.get(A).status == "recalled"
    assert chain.custody.get(A).custodian == "farm"
    with raises("recalled", A):
        chain.add("farm", observe("shipping", A), to="distributor")
    chain.add("farm", observe("shipping", A, disposition="returned"), to="slaughterhouse")
    assert chain.custody.get(A).custodian == "slaughterhouse"
    chain.add("farm", observe("destroying", B, disposition="destroyed"), to="processor")
    st = chain.custody.get(B)
    assert (st.custodian, st.status, st.recalled) == ("processor", "closed", True)
    chain.add("farm", observe("storing", C))  # may still be observed by its custodian
    chain.add("farm", observe("destroying", C, disposition="destroyed"))
    assert chain.custody.get(C).status == "closed"


@pytest.mark.parametrize(
    ("step", "disposition"),
    [
        ("retail_selling", "retail_sold"),
        ("retail_selling", ""),
        ("dispensing", "dispensed"),
        ("dispensing", ""),
        ("storing", "retail_sold"),
    ],
)
def test_recalled_code_may_not_be_sold_or_dispensed(chain, step, disposition):
    commission(chain, "farm", A, B, CASE)
    chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=CASE, childEPCs=[B]))
    chain.add("regulator", observe("holding", A, B, disposition="recalled"))
    kw = {"disposition": disposition} if disposition else {}
    with raises("recalled", A):
        chain.add("farm", observe(step, A, **kw))
    with raises("recalled", B):  # nor inside a container
        chain.add("farm", observe(step, CASE, **kw))
    assert chain.custody.get(A).status == "recalled"
    chain.add("farm", observe("destroying", A, CASE, disposition="destroyed"))
    assert chain.custody.get(A).status == "closed"
    assert chain.custody.get(B).status == "closed"


@pytest.mark.parametrize(
    ("step", "disposition"),
    [("dispensing", "dispensed"), ("retail_selling", ""), ("storing", "partially_dispensed")],
)
def test_an_expired_code_may_not_be_sold_or_dispensed(chain, step, disposition):
    # QA-R: a pack recorded expired was dispensed
    commission(chain, "farm", A, B, CASE)
    chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=CASE, childEPCs=[B]))
    chain.add("farm", observe("holding", A, B, disposition="expired"))
    kw = {"disposition": disposition} if disposition else {}
    with raises("expired", A):
        new_record(chain, "farm", observe(step, A, **kw))
    with raises("expired", B):  # nor inside a container
        new_record(chain, "farm", observe(step, CASE, **kw))
    new_record(chain, "farm", observe("destroying", A, disposition="destroyed"))  # may be
    # a later disposition (a re-tested, relabelled batch) ends it
    new_record(chain, "farm", observe("inspecting", B, disposition="sellable_accessible"))
    new_record(chain, "farm", observe(step, CASE, **kw))


def test_a_handoff_of_a_container_commits_only_with_the_contents_its_offer_listed(chain):
    # QA-R: the sender unpacked two of a case's three packs after its offer, and the
    # receiver's accept took on the lighter case; rule handoff-contents (new records)
    commission(chain, "farm", A, B, C, CASE)
    chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=CASE,
                            childEPCs=[A, B]))  # fmt: skip
    listed = {"offered_contents": {CASE: [A, B]}}

    def handoff(attrs):
        rec, signers = signed("farm", observe("shipping", CASE), to="slaughterhouse",
                              attributes=attrs)  # fmt: skip
        return apply(chain.custody, rec, signers, GENESIS, len(chain.log), new=True), rec

    chain.add("farm", event(action="DELETE", etype="AggregationEvent", parentID=CASE,
                            childEPCs=[A]))  # fmt: skip
    with raises("handoff-contents", normalize_code(CASE)) as err:
        handoff(listed)
    assert f"1 code left it ({A})" in str(err.value)
    chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=CASE,
                            childEPCs=[A, C]))  # fmt: skip
    with raises("handoff-contents") as err:
        handoff(listed)
    assert f"1 code joined it ({C})" in str(err.value)
    with raises("handoff-contents") as err:
        handoff({"offered_contents": [A]})
    assert "must map each container to the list of codes it holds" in str(err.value)
    upd, rec = handoff({"offered_contents": {CASE: [C, B, A]}})  # (order does not matter)
    chain.custody.commit(upd)
    chain.log.append(rec)
    assert chain.custody.get(A).custodian == "slaughterhouse"
    # a certified block replays without the rule
    rec, signers = signed("slaughterhouse", observe("shipping", CASE), to="processor",
                          attributes=listed)  # fmt: skip
    apply(chain.custody, rec, signers, GENESIS, len(chain.log))


def test_an_expired_code_is_handed_off_only_as_a_return_or_for_destruction(chain):
    # QA-T: a handoff's disposition (in_transit) overwrote expired, and the receiver sold
    # the tin
    commission(chain, "farm", A, B, CASE)
    chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=CASE, childEPCs=[B]))
    new_record(chain, "farm", observe("holding", A, B, disposition="expired"))
    for code in (A, CASE):  # (B is in the case)
        with raises("expired", B if code == CASE else A):
            new_record(chain, "farm", observe("shipping", code, disposition="in_transit"),
                       to="slaughterhouse")  # fmt: skip
    new_record(chain, "farm", observe("shipping", A, disposition="returned"), to="slaughterhouse")
    assert chain.custody.get(A).custodian == "slaughterhouse"
    # relabelled after a re-test: fit to ship again
    new_record(chain, "farm", observe("inspecting", B, disposition="sellable_accessible"))
    new_record(chain, "farm", observe("shipping", CASE, disposition="in_transit"),
               to="slaughterhouse")  # fmt: skip


def test_a_certified_sale_of_an_expired_code_replays(chain):
    # rule expired is for new records: a block certified before it still replays
    commission(chain, "farm", A)
    chain.add("farm", observe("holding", A, disposition="expired"))
    chain.add("farm", observe("dispensing", A, disposition="dispensed"))
    assert chain.custody.get(A).closed


def test_a_regulator_or_the_codes_producer_recalls(chain):
    commission(chain, "farm", A)
    commission(chain, "slaughterhouse", B)
    with raises("recall", A, perm=True):
        chain.add("inspector", observe("inspecting", A, disposition="recalled"))
    with raises("recall", B, perm=True):  # (another producer's code)
        chain.add("farm", observe("holding", A, B, disposition="recalled"))
    chain.add("regulator", observe("holding", B, disposition="recalled"))
    chain.add("slaughterhouse", observe("storing", B, disposition="recalled"))  # re-stating
    # QA: a drug's marketing-authorisation holder (a food's producer) recalls what it made
    # (主动召回); the rule refused anyone but a regulator
    chain.add("farm", observe("holding", A, disposition="recalled"))
    assert chain.custody.get(A).recalled


def test_recall_of_sold_code_keeps_it_closed(chain):
    commission(chain, "farm", A)
    chain.add("farm", observe("retail_selling", A, disposition="retail_sold"))
    chain.add("regulator", observe("holding", A, disposition="recalled"))
    st = chain.custody.get(A)
    assert (st.status, st.recalled) == ("closed", True)


# ------------------------------------------------------------------ transformation


def test_transformation_consumes_instances_and_commissions_outputs(chain):
    commission(chain, "farm", A, B)
    chain.add("farm", event(action="ADD", step="commissioning", quantityList=[{"epcClass": LOT}]))
    ev = event(
        "TransformationEvent",
        None,
        "killing",
        inputEPCList=[A, B],
        inputQuantityList=[{"epcClass": LOT, "quantity": 2}],
        outputEPCList=["local:carcass:1", "local:carcass:2"],
    )
    chain.add("farm", ev)
    lot = normalize_code(LOT)
    assert chain.custody.get(A).status == "closed"
    assert chain.custody.get(lot).status == "active"  # lots are partially consumed
    assert chain.custody.get(lot).is_class
    out = chain.custody.get("local:carcass:1")
    assert out.inputs == (A, B, lot)
    assert out.commissioned_by == "farm"
    assert chain.custody.get(A).outputs == ("local:carcass:1", "local:carcass:2")
    assert chain.custody.upstream("local:carcass:1") == sorted(
        [(A, "input"), (B, "input"), (lot, "input")]
    )


def test_transformation_inputs_must_be_in_authors_custody(chain):
    commission(chain, "farm", A)
    ev = event("TransformationEvent", None, "commissioning", inputEPCList=[A], outputEPCList=[B])
    with raises("custody", A, perm=True):
        chain.add("processor", ev)


def test_transformation_output_must_be_new(chain):
    commission(chain, "farm", A, B)
    ev = event("TransformationEvent", None, "commissioning", inputEPCList=[A], outputEPCList=[B])
    with raises("commission-once", B):
        chain.add("farm", ev)


def test_recalled_input_cannot_be_transformed(chain):
    commission(chain, "farm", A)
    chain.add("regulator", observe("holding", A, disposition="recalled"))
    ev = event("TransformationEvent", None, "commissioning", inputEPCList=[A], outputEPCList=[B])
    with raises("recalled", A):
        chain.add("farm", ev)


# ------------------------------------------------------------------ aggregation


def pack(parent: str, *children: str):
    return event("AggregationEvent", "ADD", "packing", parentID=parent, childEPCs=list(children))


def unpack(parent: str, *children: str):
    kw = {"childEPCs": list(children)} if children else {}
    return event("AggregationEvent", "DELETE", "unpacking", parentID=parent, **kw)


def test_children_move_with_their_container(chain):
    commission(chain, "processor", A, B)
    chain.add("processor", pack(CASE, A, B))
    case = normalize_code(CASE)
    assert chain.custody.get(case).children == (A, B)
    assert chain.custody.get(case).commissioned_by == "processor"  # implicitly commissioned
    assert chain.custody.get(A).parent == case
    with raises("aggregated", A):
        chain.add("processor", observe("shipping", A), to="distributor")
    with raises("aggregated", A):
        chain.add("processor", observe("retail_selling", A, disposition="retail_sold"))
    chain.add("processor", observe("storing", A))  # observing a packed item is fine
    chain.add("processor", observe("shipping", CASE), to="distributor")
    assert chain.custody.get(A).custodian == "distributor"
    assert chain.custody.get(B).custodian == "distributor"
    assert 3 in chain.custody.log[A]  # the move is in the child's history
    chain.add("distributor", unpack(CASE, A))
    assert chain.custody.get(A).parent == ""
    assert chain.custody.get(case).children == (B,)
    chain.add("distributor", observe("shipping", A), to="retailer")
    chain.add("distributor", unpack(CASE))
    assert chain.custody.get(B).parent == ""


def test_child_already_in_another_container_is_refused(chain):
    commission(chain, "processor", A)
    chain.add("processor", pack(CASE, A))
    with raises("aggregated", A):
        chain.add("processor", pack("urn:epc:id:sscc:6903456.0000000102", A))


def test_aggregation_shape_rules(chain):
    commission(chain, "processor", A, B)
    with raises("aggregation"):
        chain.add("processor", event("AggregationEvent", "ADD", "packing", childEPCs=[A]))
    chain.add("processor", pack(CASE, A))
    with raises("aggregation", B):
        chain.add("processor", unpack(CASE, B))


def test_aggregation_needs_custody_of_children(chain):
    commission(chain, "farm", A)
    with raises("custody", A, perm=True):
        chain.add("processor", pack(CASE, A))


def test_nested_containers_move_together(chain):
    pallet = "urn:epc:id:sscc:6903456.0000000900"
    commission(chain, "processor", A)
    chain.add("processor", pack(CASE, A))
    chain.add("processor", pack(pallet, CASE))
    chain.add("processor", observe("shipping", pallet), to="distributor")
    assert chain.custody.get(A).custodian == "distributor"
    chain.add("regulator", observe("holding", pallet, disposition="recalled"))
    assert chain.custody.get(A).recalled  # a recall reaches a container's contents


# ------------------------------------------------------------------ error declarations


def test_error_declaration_changes_nothing_and_needs_a_stakeholder(chain):
    commission(chain, "farm", A)
    before = chain.custody.get(A)
    decl = {"declarationTime": "2026-03-02T08:00:00+08:00", "reason": "incorrect_data"}
    ev = event(action="ADD", step="commissioning", epcList=[A], errorDeclaration=decl)
    chain.add("farm", ev)
    after = chain.custody.get(A)
    assert after == CodeState(**{**before.__dict__, "last_index": 1})
    with raises("custody", A, perm=True):
        chain.add("retailer", ev)


# ------------------------------------------------------------------ blocks and persistence


def test_block_sees_earlier_records_and_reports_refusals_by_position():
    chain = Chain()
    bu = chain.block(
        [
            ("farm", event(action="ADD", step="commissioning", epcList=[A]), ""),
            ("farm", observe("shipping", A), "slaughterhouse"),
            ("farm", observe("storing", A), ""),  # refused: no longer farm's
            ("slaughterhouse", observe("receiving", A), ""),
        ]
    )
    assert [p for p, _ in bu.accepted] == [0, 1, 3]
    assert [r.position for r in bu.refused] == [2]
    assert bu.refused[0].error.rule == "custody"
    assert [u.log_index for _, u in bu.accepted] == [0, 1, 2]  # refused records get no index
    assert bu.codes() == [(A,), (A,), (A,)]  # BlockWrite.codes for the store's code index
    assert not bu.ok
    st = chain.custody.get(A)
    assert st is not None
    assert st.custodian == "slaughterhouse"


def test_proposer_filtering_matches_validator():
    items = [
        ("farm", event(action="ADD", step="commissioning", epcList=[A, B]), ""),
        ("retailer", observe("storing", A), ""),
        ("farm", pack(CASE, A, B), ""),
        ("farm", observe("shipping", CASE), "distributor"),
    ]
    recs = [signed(a, e, to=t) for a, e, t in items]
    base = InMemoryCustody()
    proposed = apply_block(base, recs, GENESIS, 10)
    kept = [recs[p] for p, _ in proposed.accepted]
    validated = apply_block(base, kept, GENESIS, 10)
    assert validated.ok
    assert validated.puts() == proposed.puts()
    assert base.states == {}  # the view is never mutated


def test_puts_layout_and_state_encoding():
    chain = Chain()
    commission(chain, "processor", A, B)
    rec, signers = signed("processor", pack(CASE, A, B))
    upd = apply(chain.custody, rec, signers, GENESIS, 7)
    puts = list(upd.puts(with_history=True))
    dbs = {db for db, _, _ in puts}
    assert dbs == {DB_CUSTODY, DB_EDGES, DB_HISTORY}
    assert {db for db, _, _ in upd.puts()} == {DB_CUSTODY, DB_EDGES}
    case = normalize_code(CASE)
    assert (DB_EDGES, f"F{case}\x00{A}".encode(), b"child") in puts
    assert (DB_EDGES, f"B{A}\x00{case}".encode(), b"parent") in puts
    assert (DB_HISTORY, history_key(A, 7), b"") in puts
    assert split_key(history_key(A, 7)) == (A, (7).to_bytes(8, "big"))
    fwd = [k for db, k, _ in puts if db == DB_EDGES and k.startswith(edge_prefix(FWD, case))]
    assert sorted(edge_target(k) for k in fwd) == [A, B]
    assert not [k for _, k, _ in puts if k.startswith(edge_prefix(BACK, case))]
    for db, key, value in puts:
        if db == DB_CUSTODY:
            st = decode_state(value)
            assert st.code == key.decode()
            assert encode_state(st) == value


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)  # quotes, controls, CJK
_CODES = st.tuples() | st.lists(_TEXT, max_size=3).map(tuple)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    st.builds(
        CodeState,
        code=_TEXT,
        commissioned_by=_TEXT,
        custodian=_TEXT,
        status=st.sampled_from(["active", "closed", "recalled"]),
        parent=_TEXT | st.just(""),
        children=_CODES,
        inputs=_CODES,
        outputs=_CODES,
        first_index=st.integers(0, 2**63) | st.just(0),
        last_index=st.integers(0, 2**63) | st.just(0),
        disposition=_TEXT | st.just(""),
        closed=st.booleans(),
        recalled=st.booleans(),
        is_class=st.booleans(),
    )
)
def test_state_encoding_is_sorted_compact_json_without_defaults(state: CodeState) -> None:
    """The field-by-field encoder writes the very bytes of the generic JSON encoding (the
    stored format), and ``decode_state`` reads them back."""
    d: dict[str, object] = {"c": state.code, "by": state.commissioned_by, "cu": state.custodian}
    default = CodeState("", "", "")
    for name, short in _STATE_KEYS.items():
        v = getattr(state, name)
        if short not in d and v != getattr(default, name):
            d[short] = list(v) if isinstance(v, tuple) else v
    want = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert encode_state(state) == want
    assert decode_state(want) == state


def test_a_state_with_values_of_another_type_is_still_encoded() -> None:
    """A value of an unexpected type (only a corrupt store could give one) takes the
    generic JSON encoder rather than failing the block."""
    odd = CodeState("c", "a", "a", children=(1, 2))  # type: ignore[arg-type]
    assert encode_state(odd) == b'{"by":"a","c":"c","ch":[1,2],"cu":"a"}'


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "custodian": _TEXT,
            "parent": _TEXT,
            "children": _CODES,
            "last_index": st.integers(0, 2**40),
            "disposition": _TEXT,
            "closed": st.booleans(),
            "status": st.sampled_from(["active", "closed", "recalled"]),
        },
    )
)
def test_evolve_is_dataclasses_replace(changes: dict[str, object]) -> None:
    base = CodeState("A", "farm", "farm", children=("B",), first_index=3, last_index=5)
    got = base.evolve(**changes)
    assert got == dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    assert base == CodeState("A", "farm", "farm", children=("B",), first_index=3, last_index=5)
    with pytest.raises(TypeError, match="no field"):
        base.evolve(custodain="typo")


# ------------------------------------------------------------------ lots of serialised items

LOT_DL = "https://id.gs1.org/01/06901234123456/10/L9"
ITEMS_IN_L9 = [f"https://id.gs1.org/01/06901234123456/10/L9/21/S{i}" for i in (1, 2)]


def commission_in_lot(chain: Chain, code: str, ilmd: dict[str, str]) -> None:
    chain.add("farm", event(action="ADD", step="commissioning", epcList=[code], ilmd=ilmd))


def test_items_commissioned_in_a_lot_are_found_from_the_lot_and_recalled_with_it(chain):
    # the lot qualifier of an item's Digital Link is not part of the item's code; it was
    # dropped, so a recall of the lot missed the items and they could still be sold
    chain.add("farm", event(action="ADD", step="commissioning", epcList=ITEMS_IN_L9))
    commission_in_lot(chain, "urn:epc:id:sgtin:6901234.012345.S3", {"cbvmda:lotNumber": "L9"})
    items = [normalize_code(c) for c in [*ITEMS_IN_L9, "urn:epc:id:sgtin:6901234.012345.S3"]]
    # the lot itself was never commissioned: its items make it traceable
    fwd = trace_forward(chain.custody, LOT_DL)
    assert [(n.code, n.relation) for n in fwd.nodes[1:]] == [(c, "item") for c in sorted(items)]
    back = trace_back(chain.custody, items[0])
    assert [(n.code, n.relation) for n in back.nodes] == [(items[0], "self"), (LOT_DL, "lot")]
    scope = [n.code for n in recall_scope(chain.custody, LOT_DL)]
    assert sorted(scope) == sorted(items)
    chain.add("regulator", observe("holding", *scope, disposition="recalled"))
    with raises("recalled", items[0]):
        chain.add("farm", observe("retail_selling", items[0], disposition="retail_sold"))


def test_no_lot_link_without_a_lot_or_for_a_lot_outside_gs1s_characters(chain):
    chain.add("farm", event(action="ADD", step="commissioning", epcList=[URN]))
    assert [n.relation for n in trace_back(chain.custody, URN).nodes] == ["self"]
    # a new record with such a lot is refused (``lot_conflict``); a logged one links none
    ev = event(action="ADD", step="commissioning", epcList=["urn:epc:id:sgtin:6901234.012345.7"])
    ev["ilmd"] = {"lotNumber": "a lot"}
    with pytest.raises(InputError, match="is not 1-20 characters of GS1's"):
        chain.add("farm", ev)
    assert lot_links(ev) == []


def test_a_container_named_as_its_own_child_is_told_so(chain):
    commission(chain, "farm", A, CASE)
    ev = event("AggregationEvent", "ADD", "packing", parentID=CASE, childEPCs=[A, CASE])
    with raises("duplicate-code", normalize_code(CASE)) as err:
        chain.add("farm", ev)
    assert "cannot also be one of its own children" in str(err.value)
    assert "transformation" not in str(err.value)


def test_an_item_commissioned_in_a_recalled_lot_is_born_recalled(chain):
    # a second QA pass sold such an item: the recall covered only the items of its time
    chain.add("farm", event(action="ADD", step="commissioning", quantityList=[{"epcClass": LOT}]))
    chain.add("regulator", event(step="holding", disposition="recalled",
                                 quantityList=[{"epcClass": LOT}]))  # fmt: skip
    late = "urn:epc:id:sgtin:6901234.012345.late1"
    commission_in_lot(chain, late, {"cbvmda:lotNumber": "L1"})
    st = chain.custody.get(normalize_code(late))
    assert st is not None
    assert st.recalled
    assert st.disposition == "recalled"  # (QA: it read "active", its commissioning's)
    with raises("recalled"):
        chain.add("farm", observe("retail_selling", late, disposition="retail_sold"))


def test_only_a_lots_custodian_commissions_items_into_it(chain):
    # QA: a retailer gave its own item the farm's lot, and so the farm's origin, by naming
    # the lot in its commissioning; and items could be added to a lot already consumed
    chain.add("farm", event(action="ADD", step="commissioning", quantityList=[{"epcClass": LOT}]))
    with raises("custody", normalize_code(LOT)) as err:
        commission_in_lot_as(chain, "retailer", "urn:epc:id:sgtin:6901234.012345.W9", "L1")
    assert "'retailer' may not commission items into a code held by 'farm'" in str(err.value)
    commission_in_lot_as(chain, "farm", "urn:epc:id:sgtin:6901234.012345.W1", "L1")  # its own
    chain.add("farm", event(action="DELETE", step="destroying", quantityList=[{"epcClass": LOT}]))
    with raises("closed", normalize_code(LOT)):
        commission_in_lot_as(chain, "farm", "urn:epc:id:sgtin:6901234.012345.W2", "L1")
    # a lot known only by its items (never commissioned) has no custodian to ask
    commission_in_lot_as(chain, "retailer", "urn:epc:id:sgtin:6901234.012345.W3", "L77")


def commission_in_lot_as(chain: Chain, author: str, code: str, lot: str) -> None:
    ev = event(action="ADD", step="commissioning", epcList=[code])
    ev["ilmd"] = {"cbvmda:lotNumber": lot}
    chain.add(author, ev)


# ------------------------------------------------------------------ transformationID

TID = "urn:epc:id:gdti:0614141.12345.400"
D, E = "local:farm:ham-001", "local:farm:ham-002"


def transform_part(chain: Chain, author: str, ins: list[str], outs: list[str], tid: str = TID):
    kw: dict[str, object] = {"transformationID": tid}
    if ins:
        kw["inputEPCList"] = ins
    if outs:
        kw["outputEPCList"] = outs
    return chain.add(author, event("TransformationEvent", None, "commissioning", **kw))


def test_events_sharing_a_transformation_id_link_every_input_to_every_output(chain):
    # QA: a transformation recorded as two events (inputs, later outputs) left the outputs
    # with no source and a recall of the input missed them (EPCIS 2.0: transformationID)
    commission(chain, "farm", A, B)
    transform_part(chain, "farm", [A], [])
    transform_part(chain, "farm", [B], [C])
    transform_part(chain, "farm", [], [D])
    tid = "transformation:" + normalize_code(TID)
    back = trace_back(chain.custody, D)
    assert [(n.code, n.relation) for n in back.nodes] == [
        (normalize_code(D), "self"), (tid, "input"), (normalize_code(A), "input"),
        (normalize_code(B), "input"),
    ]  # fmt: skip
    scope = {n.code for n in recall_scope(chain.custody, A)}
    assert {tid, normalize_code(C), normalize_code(D)} <= scope
    chain.add("regulator", observe("holding", *scope, disposition="recalled"))
    transform_part(chain, "farm", [], [E])  # made after the recall: born recalled
    assert chain.custody.get(normalize_code(E)).recalled


def test_only_the_transformations_author_adds_events_to_it(chain):
    commission(chain, "farm", A)
    commission(chain, "slaughterhouse", B)
    transform_part(chain, "farm", [A], [])
    with raises("custody", normalize_code(TID)) as err:
        transform_part(chain, "slaughterhouse", [B], [C])
    assert "may not add events to the transformation of a code held by 'farm'" in str(err.value)


def test_a_transformation_id_that_is_a_products_code_leaves_that_product_alone(chain):
    # QA: an active item's SGTIN as transformationID became the node the inputs pass
    # through (recalling it would recall the outputs), and an unused one was squatted
    item = "urn:epc:id:sgtin:6901234.012345.3"
    commission(chain, "farm", A, item)
    transform_part(chain, "farm", [A], [B], tid=item)
    assert [n.code for n in trace_forward(chain.custody, item).nodes] == [normalize_code(item)]
    back = [n.code for n in trace_back(chain.custody, B).nodes]
    assert back == [normalize_code(B), "transformation:" + normalize_code(item), normalize_code(A)]
    unused = "urn:epc:id:sgtin:6901234.012345.50"
    transform_part(chain, "farm", [], [C], tid=unused)
    commission(chain, "slaughterhouse", unused)  # still free for the product it names


def test_a_transformation_node_is_named_only_by_a_recall(chain):
    with pytest.raises(InputError, match="names the trace node of a transformationID"):
        commission(chain, "farm", "transformation:urn:uuid:0a0b")


def test_outputs_made_in_a_lot_are_found_from_it_and_only_its_custodian_makes_them(chain):
    # QA: a transformation's outputs named a lot (Digital Link /10/, ilmd lotNumber) that
    # neither its trace nor its recall knew, whoever held the lot
    chain.add("farm", event(action="ADD", step="commissioning", quantityList=[{"epcClass": LOT}]))
    commission(chain, "farm", A)
    commission(chain, "slaughterhouse", B)
    out = "https://id.gs1.org/01/06901234123456/10/L1/21/8"
    with raises("custody", normalize_code(LOT)):
        chain.add("slaughterhouse", event("TransformationEvent", None, "commissioning",
                                          inputEPCList=[B], outputEPCList=[out]))  # fmt: skip
    chain.add("farm", event("TransformationEvent", None, "commissioning",
                            inputEPCList=[A], outputEPCList=[out]))  # fmt: skip
    fwd = trace_forward(chain.custody, LOT)
    assert (normalize_code(out), "item") in [(n.code, n.relation) for n in fwd.nodes]


@pytest.mark.parametrize(
    ("tid", "message"),
    [
        ("", "must be a non-empty string"),
        ("urn:epc:id:GDTI:0614141.12345.400", "write 'urn:epc:id:gdti:"),
        ("urn:epc:id:sgtin:garbage", "is not a valid SGTIN EPC URN"),
    ],
)
def test_a_transformation_id_must_be_written_as_a_code_is(chain, tid, message):
    commission(chain, "farm", A)
    with pytest.raises(InputError, match=message):
        transform_part(chain, "farm", [A], [B], tid=tid)


def test_a_lot_number_with_characters_a_digital_link_escapes_links_its_items(chain):
    # QA: the ILMD lot "2026/11" was pasted into the lot's Digital Link unescaped
    # (.../10/2026/11, a code no spelling names), so the lot's recall missed its items
    lot = "urn:epc:class:lgtin:6901234.000020.2026%2F11"
    chain.add("farm", event(action="ADD", step="commissioning", quantityList=[{"epcClass": lot}]))
    plain = "urn:epc:id:sgtin:6901234.000020.B1"
    commission_in_lot(chain, plain, {"cbvmda:lotNumber": "2026/11"})
    linked = "https://id.gs1.org/01/06901234000207/10/2026%2F11/21/B2"
    commission_in_lot(chain, linked, {"cbvmda:lotNumber": "2026/11"})
    scope = sorted(n.code for n in recall_scope(chain.custody, lot))
    assert scope == sorted(normalize_code(c) for c in (lot, plain, linked))
    recall = chain.add("regulator", observe("holding", lot, disposition="recalled"))
    late = "urn:epc:id:sgtin:6901234.000020.B3"
    commission_in_lot(chain, late, {"cbvmda:lotNumber": "2026/11"})  # born recalled
    assert chain.custody.get(normalize_code(late)).recalled
    # its history names the recall it was born under (QA: it showed no recall at all)
    page = history(chain.custody, late)
    assert len(page.log_indexes) == 1  # its commissioning: the recall is the lot's record
    st = page.state
    assert (st.status, st.recalled_by, st.recalled_at) == (
        "recalled",
        "regulator",
        recall.log_index,
    )


def test_a_lot_number_under_the_documents_own_prefix_links_its_item(chain):
    # QA: a document mapping "mda" to CBV master data in its @context wrote mda:lotNumber;
    # the key was not read, so the item was in no lot (and missed by the lot's recall)
    chain.add("farm", event(action="ADD", step="commissioning", quantityList=[{"epcClass": LOT}]))
    item = "urn:epc:id:sgtin:6901234.012345.A2"
    ev = event(action="ADD", step="commissioning", epcList=[item], ilmd={"mda:lotNumber": "L1"})
    chain.add("farm", {"@context": [{"mda": "urn:epcglobal:cbv:mda#"}], **ev})
    scope = [n.code for n in recall_scope(chain.custody, LOT)]
    assert scope == [normalize_code(LOT), normalize_code(item)]


def test_an_aggregation_observe_packs_the_children_it_saw_inside_the_parent(chain):
    # QA: an AggregationEvent OBSERVE was accepted and changed nothing: the pallet handed
    # on without its case, and the pallet's recall missed the case
    commission(chain, "farm", A, B, CASE)
    chain.add("farm", event("AggregationEvent", "ADD", "packing", parentID=CASE, childEPCs=[A]))
    seen = event("AggregationEvent", "OBSERVE", "storing", parentID=CASE, childEPCs=[A, B])
    upd = chain.add("farm", seen)
    assert chain.custody.get(normalize_code(CASE)).children == (
        normalize_code(A),
        normalize_code(B),
    )
    assert chain.custody.get(normalize_code(B)).parent == normalize_code(CASE)
    assert [e.downstream for e in upd.edges] == [normalize_code(B)]  # A was inside already
    scope = {n.code for n in recall_scope(chain.custody, CASE)}
    assert {normalize_code(B)} <= scope
    # seen inside another container than the ledger's: refused, as an ADD would be
    box = "urn:epc:id:sscc:6903456.0000000102"
    commission(chain, "farm", box)
    with raises("aggregated", normalize_code(B)):
        chain.add(
            "farm", event("AggregationEvent", "OBSERVE", "storing", parentID=box, childEPCs=[B])
        )


@pytest.mark.parametrize(
    "more",
    [
        {"disposition": "sellable_accessible"},
        {"disposition": "https://ref.gs1.org/cbv/Disp-active"},
        {"persistentDisposition": {"unset": ["recalled"]}},
        {"persistentDisposition": {"set": ["sellable_accessible"]}},
    ],
    ids=["sellable", "active-iri", "unset-recalled", "set-sellable"],
)
def test_the_custodian_of_a_recalled_code_cannot_mark_it_fit_for_sale(chain, more):
    # QA: accepted, so the public history contradicted the recall (the sale stayed refused)
    commission(chain, "farm", A)
    chain.add("regulator", observe("holding", A, disposition="recalled"))
    with raises("recalled", normalize_code(A)) as err:
        chain.add("farm", {**event(step="storing", epcList=[A]), **more})
    assert "its recall stands until it is declared in error" in str(err.value)
    chain.add("farm", event(step="storing", epcList=[A]))  # an observation without one: fine


@pytest.mark.parametrize(
    "ctx",
    [
        [{"mda": {"@id": "urn:epcglobal:cbv:mda#"}}],
        [{"mda": "urn:epcglobal:cbv:mda#", "n": {"@type": "xsd:integer"}}],
        {"mda": "urn:epcglobal:cbv:mda#", "other": ["x"]},
    ],
    ids=["expanded-id", "typed-term-beside", "one-object"],
)
def test_a_context_with_object_valued_terms_is_read_not_a_type_error(chain, ctx):
    # QA: an @context holding an object (GS1's examples use {"@type": ...} terms) raised
    # TypeError when the event had an ILMD: `epcis import` and `record submit` crashed
    chain.add("farm", event(action="ADD", step="commissioning", quantityList=[{"epcClass": LOT}]))
    item = "urn:epc:id:sgtin:6901234.012345.A3"
    ev = event(action="ADD", step="commissioning", epcList=[item], ilmd={"mda:lotNumber": "L1"})
    chain.add("farm", {"@context": ctx, **ev})
    scope = [n.code for n in recall_scope(chain.custody, LOT)]
    assert scope == [normalize_code(LOT), normalize_code(item)]


# ------------------------------------------------------------------ inspections


def test_an_inspection_may_not_call_a_closed_code_fit(chain):
    # QA: a scrapped gas cylinder took an inspection "active" (a fresh certificate)
    commission(chain, "farm", A)
    chain.add("farm", observe("destroying", A, disposition="destroyed"))
    for fit in ("active", "conformant", "sellable_accessible"):
        with raises("closed", normalize_code(A)) as err:
            new_record(chain, "inspector", observe("inspecting", A, disposition=fit))
        assert f"cannot be inspected {fit}" in str(err.value)
    new_record(chain, "inspector", observe("inspecting", A, disposition="destroyed"))  # as it is
    # nor through persistentDisposition (QA re-check: set sellable_accessible was committed)
    cases = [
        ({"set": ["sellable_accessible"]}, "sellable_accessible (persistentDisposition set)"),
        ({"unset": ["destroyed"], "set": ["in_progress"]}, "no longer destroyed"),
    ]
    for pd, said in cases:
        with raises("closed", normalize_code(A)) as err:
            new_record(chain, "regulator", observe("sampling", A, persistentDisposition=pd))
        assert said in str(err.value)
    new_record(chain, "inspector", observe("inspecting", A))  # no finding
    # a rule for new records: such an inspection, logged before it, replays as it was
    chain.add("inspector", observe("inspecting", A, disposition="active"))


def test_an_inspection_may_not_clear_a_recall_nor_close_a_code(chain):
    commission(chain, "farm", A, B)
    chain.add("regulator", observe("holding", A, disposition="recalled"))
    with raises("recalled", normalize_code(A)):
        new_record(chain, "inspector", observe("inspecting", A, disposition="active"))
    new_record(chain, "inspector", observe("inspecting", A, disposition="conformant"))
    # QA: an inspection "destroyed" was committed and left the code open
    with raises("inspection", normalize_code(B)) as err:
        new_record(chain, "inspector", observe("inspecting", B, disposition="destroyed"))
    assert "an inspection does not close a code" in str(err.value)
    assert not chain.custody.get(normalize_code(B)).closed


# ------------------------------------------------------------------ declarations


def test_a_close_of_unknown_origin_is_undone_only_if_nothing_came_after(chain):
    """A state an earlier version wrote has no ``closed_at``: which record closed the code
    is not known, so the old rule holds (declare the later records first)."""
    commission(chain, "farm", A)
    chain.add("farm", observe("destroying", A, disposition="destroyed"))  # log index 1
    chain.add("inspector", observe("inspecting", A))  # log index 2
    code = normalize_code(A)
    old = chain.custody.states[code]
    assert old.closed_at == 1
    chain.custody.states[code] = dataclasses.replace(old, closed_at=-1)  # as written before
    decl = {"declarationTime": "2026-03-02T08:00:00Z"}
    ev = {**observe("destroying", A, disposition="destroyed"), "errorDeclaration": decl}
    rec, signers = signed("farm", ev)
    with raises("error-declaration", code) as err:
        apply(chain.custody, rec, signers, GENESIS, 3, declared=1)
    assert "has a record after the declared event (log index 2, the event 1)" in str(err.value)
    chain.custody.states[code] = old  # with it known: reopened
    upd = apply(chain.custody, rec, signers, GENESIS, 3, declared=1)
    assert not upd.states[code].closed


# ------------------------------------------------------------------ backdating


def at(hhmm: str, day: int = 1) -> dict[str, str]:
    return {"eventTime": f"2026-03-{day:02d}T{hhmm}:00+08:00"}


def new_record(chain, author: str, ev: dict[str, Any], *, to: str = ""):
    """Apply ``ev`` as a new record (the rules for new records too) and commit it."""
    rec, signers = signed(author, ev, to=to)
    upd = apply(chain.custody, rec, signers, GENESIS, len(chain.log), new=True)
    chain.custody.commit(upd)
    chain.log.append(rec)
    return upd


def test_a_custodians_event_is_not_dated_before_it_held_the_code(chain):
    # QA: hazardous goods handed on three hours before they were received; a storing event
    # dated 1970
    new_record(chain, "farm", event(action="ADD", step="commissioning", epcList=[A], **at("08:00")))
    assert chain.custody.get(normalize_code(A)).since_ms == 1772323200000
    with raises("event-time", normalize_code(A)) as err:
        new_record(chain, "farm", observe("storing", A, **at("07:00")))
    assert "is before 'farm' came to hold the code (2026-03-01T00:00:00Z" in str(err.value)
    new_record(chain, "farm", observe("storing", A, **at("07:50")))  # within 15 minutes
    ship = observe("shipping", A, **at("10:05"))
    new_record(chain, "farm", ship, to="slaughterhouse")  # the receiver holds it from 10:05
    with raises("event-time", normalize_code(A)):
        new_record(chain, "slaughterhouse", observe("shipping", A, **at("07:00")), to="processor")
    with raises("event-time"):
        new_record(chain, "slaughterhouse", observe("storing", A, eventTime="1970-01-01T00:00:00Z"))
    new_record(chain, "slaughterhouse", observe("storing", A, **at("11:00")))
    # others' events are not judged by it: an inspection recorded late, a recall
    new_record(chain, "inspector", observe("inspecting", A, **at("09:00")))


def test_a_certified_block_replays_a_backdated_event(chain):
    """The rule is for new records: a log written before it replays as it was."""
    chain.add("farm", event(action="ADD", step="commissioning", epcList=[A], **at("08:00")))
    chain.add("farm", observe("storing", A, eventTime="1970-01-01T00:00:00Z"))
    assert chain.custody.get(normalize_code(A)).last_index == 1


def test_a_close_is_not_dated_before_an_event_recorded_on_the_code(chain):
    # QA-O: an elevator inspected in 2025 was then recorded destroyed in 2021
    a = normalize_code(A)
    new_record(chain, "farm", event(action="ADD", step="commissioning", epcList=[A], **at("08:00")))
    new_record(chain, "inspector", observe("inspecting", A, **at("09:00", day=20)))
    with raises("event-time", a) as err:
        new_record(chain, "farm", observe("destroying", A, **at("10:00", day=5)))
    assert "before the code's event at log #1 (2026-03-20T01:00:00Z)" in str(err.value)
    with raises("event-time", a):  # a sale, or a transformation consuming it, alike
        new_record(chain, "farm", observe("retail_selling", A, **at("10:00", day=5)))
    made = event(
        "TransformationEvent",
        None,
        "commissioning",
        inputEPCList=[A],
        outputEPCList=[B],
        **at("10:00", day=5),
    )
    with raises("event-time", a):
        new_record(chain, "farm", made)
    assert not chain.custody.get(a).closed
    new_record(chain, "farm", observe("destroying", A, **at("08:50", day=20)))  # 15 min allowed
    assert chain.custody.get(a).closed


def test_a_declared_event_no_longer_dates_a_close(chain):
    """The latest event in force is worked out again when one is declared in error."""
    a = normalize_code(A)
    new_record(chain, "farm", event(action="ADD", step="commissioning", epcList=[A], **at("08:00")))
    new_record(chain, "inspector", observe("inspecting", A, **at("09:00", day=3)))
    wrong = observe("inspecting", A, **at("09:00", day=20))
    new_record(chain, "inspector", wrong)
    with raises("event-time", a):
        new_record(chain, "farm", observe("destroying", A, **at("10:00", day=5)))
    declare(chain, "inspector", wrong, len(chain.log) - 1)
    assert chain.custody.get(a).seen == (f"1@{1772499600000}",)
    with raises("event-time", a):  # the inspection of day 3 still stands
        new_record(chain, "farm", observe("destroying", A, **at("10:00", day=2)))
    new_record(chain, "farm", observe("destroying", A, **at("10:00", day=5)))
    assert chain.custody.get(a).closed


def test_a_close_captured_late_after_its_case_or_a_recall_is_accepted(chain):
    """Only inspections that named the code count: not its container's, not a recall, not
    the custodian's own handling (review: the evening's unpacking named the items, and the
    day's sales, uploaded after it, were refused)."""
    a, b = normalize_code(A), normalize_code(B)
    new_record(
        chain,
        "farm",
        event(action="ADD", step="commissioning", epcList=[A, B, CASE], **at("08:00")),
    )
    pack = event("AggregationEvent", "ADD", "packing", parentID=CASE, childEPCs=[A], **at("08:30"))
    new_record(chain, "farm", pack)
    new_record(chain, "inspector", observe("inspecting", CASE, **at("11:00")))
    unpack = event(
        "AggregationEvent", "DELETE", "unpacking", parentID=CASE, childEPCs=[A], **at("18:00")
    )
    new_record(chain, "farm", unpack)
    new_record(chain, "farm", observe("storing", A, **at("18:30")))  # the evening's stock-take
    new_record(
        chain, "farm", observe("retail_selling", A, disposition="retail_sold", **at("10:00"))
    )  # sold before the case's inspection, the unpacking and the stock-take
    assert chain.custody.get(a).closed
    new_record(chain, "regulator", observe("recalling", B, disposition="recalled", **at("12:00")))
    new_record(chain, "farm", observe("destroying", B, **at("10:00")))  # destroyed before it
    assert chain.custody.get(b).closed


def test_a_certified_block_replays_a_close_dated_before_an_event(chain):
    """The rule is for new records: a log written before it replays as it was."""
    chain.add("farm", event(action="ADD", step="commissioning", epcList=[A], **at("08:00")))
    chain.add("inspector", observe("inspecting", A, **at("09:00", day=20)))
    chain.add("farm", observe("destroying", A, **at("10:00", day=5)))
    assert chain.custody.get(normalize_code(A)).closed


def test_a_logged_declaration_of_a_transformation_whose_output_moved_replays(chain):
    """Refused as a new record (declare the later events first); one logged before the rule
    replays, undoing nothing, as it did then."""
    commission(chain, "farm", A)
    made = event("TransformationEvent", None, "commissioning", inputEPCList=[A], outputEPCList=[B])
    chain.add("farm", made)  # log index 1
    chain.add("farm", event("AggregationEvent", "ADD", "packing", parentID=CASE, childEPCs=[B]))
    decl = {**made, "errorDeclaration": {"declarationTime": "2026-03-02T08:00:00Z"}}
    rec, signers = signed("farm", decl)
    with raises("error-declaration", normalize_code(B)):
        apply(chain.custody, rec, signers, GENESIS, 3, declared=1, new=True)
    upd = apply(chain.custody, rec, signers, GENESIS, 3, declared=1)
    assert upd.states[normalize_code(A)].closed  # still consumed


@pytest.mark.parametrize(
    "key",
    ["cbvmda:lotNumber", "urn:epcglobal:cbv:mda#lotNumber", "urn:epcglobal:cbv:mda:lotNumber"],
)
def test_every_spelling_of_cbvs_lot_number_links_the_item(key):
    # QA re-check: the expanded urn:epcglobal:cbv:mda: key was read as no lot, so an item
    # made in a recalled lot escaped the recall
    ev = event(action="ADD", step="commissioning", epcList=["urn:epc:id:sgtin:6901234.012345.A7"],
               ilmd={key: "L1"})  # fmt: skip
    assert lot_links(ev) == [
        (normalize_code(LOT), normalize_code("urn:epc:id:sgtin:6901234.012345.A7"))
    ]


def test_a_recall_leaves_a_closed_code_saying_how_it_went(chain):
    # QA re-check: a re-run of a recall showed sold and destroyed codes as plain "(closed)",
    # the recall having overwritten retail_sold with recalled
    commission(chain, "farm", A, B)
    chain.add("farm", observe("retail_selling", A, disposition="retail_sold"))
    chain.add("regulator", observe("holding", A, B, disposition="recalled"))
    a, b = chain.custody.get(normalize_code(A)), chain.custody.get(normalize_code(B))
    assert (a.recalled, a.disposition) == (True, "retail_sold")
    assert (b.recalled, b.disposition) == (True, "recalled")


# ------------------------------------------------------------------ findings that hold


def sell(chain: Chain, author: str, code: str):
    return new_record(chain, author, observe("retail_selling", code, disposition="retail_sold"))


def test_a_lot_found_non_conformant_holds_its_items_from_sale(chain):
    # QA: a batch of infant formula failed its inspection, and its tins were still sold
    lot = normalize_code(LOT)
    chain.add("farm", event(action="ADD", step="commissioning", quantityList=[{"epcClass": LOT}]))
    early = "urn:epc:id:sgtin:6901234.012345.H1"
    commission_in_lot_as(chain, "farm", early, "L1")
    assert chain.custody.get(normalize_code(early)).lot == lot
    failed = event(
        step="inspecting", disposition="non_conformant", quantityList=[{"epcClass": LOT}]
    )
    at = len(chain.log)
    new_record(chain, "inspector", failed)
    assert (chain.custody.get(lot).held_at, chain.custody.get(lot).held_by) == (at, "inspector")
    late = "urn:epc:id:sgtin:6901234.012345.H2"  # made in the lot after the finding
    commission_in_lot_as(chain, "farm", late, "L1")
    for item in (early, late):
        with raises("held", normalize_code(item)) as err:
            sell(chain, "farm", item)
        assert f"its lot {lot} was found non_conformant by 'inspector'" in str(err.value)
        assert f"(the record at log index {at})" in str(err.value)
    # the trace says so, on the item and on the lot
    node = trace_back(chain.custody, early).nodes[0]
    assert (node.held_at, node.held_by, node.held_via) == (at, "inspector", lot)
    assert trace_back(chain.custody, LOT).nodes[0].held_via == ""
    # the lot's custodian cannot find it conformant itself; an inspector can
    passed = {**failed, "disposition": "conformant"}
    with raises("held", lot) as err:
        new_record(chain, "farm", {**passed, "bizStep": "inspecting"})
    assert "only an inspector or a regulator may find it conformant" in str(err.value)
    new_record(chain, "inspector", passed)
    assert chain.custody.get(lot).held_at == -1
    sell(chain, "farm", early)
    assert chain.custody.get(normalize_code(early)).closed


def test_a_producers_own_finding_holds_until_it_or_an_inspector_finds_it_conformant(chain):
    commission(chain, "farm", A, B)
    new_record(chain, "farm", observe("inspecting", A, B, disposition="non_conformant"))
    with raises("held", normalize_code(A)) as err:
        sell(chain, "farm", A)
    assert "the code was found non_conformant by 'farm'" in str(err.value)
    # a hold moves with the goods; the receiver cannot lift the sender's finding
    new_record(chain, "farm", observe("shipping", B), to="retailer")
    with raises("held", normalize_code(B)):
        new_record(chain, "retailer", observe("receiving", B, disposition="conformant"))
    with raises("held", normalize_code(B)):
        sell(chain, "retailer", B)
    # nor made into something else (QA: a held lot's outputs would be free to sell)
    made = event("TransformationEvent", None, "commissioning", inputEPCList=[A], outputEPCList=[C])
    with raises("held", normalize_code(A)) as err:
        new_record(chain, "farm", made)
    assert "it may not be used as a transformation's input until" in str(err.value)
    new_record(chain, "farm", observe("inspecting", A, disposition="conformant"))
    sell(chain, "farm", A)
    # an inspector's finding takes a custodian's over: the custodian cannot lift it then
    new_record(chain, "regulator", observe("sampling", B, disposition="non_conformant"))
    assert chain.custody.get(normalize_code(B)).held_by == "regulator"
    # persistentDisposition says the same as a disposition
    lift = {"unset": ["non_conformant"]}
    new_record(chain, "inspector", observe("inspecting", B, persistentDisposition=lift))
    sell(chain, "retailer", B)


def test_a_finding_declared_in_error_lifts_its_hold_and_a_logged_sale_replays(chain):
    commission(chain, "farm", A, B)
    failed = observe("inspecting", A, B, persistentDisposition={"set": ["non_conformant"]})
    at = len(chain.log)
    new_record(chain, "inspector", failed)
    assert chain.custody.get(normalize_code(A)).held_at == at
    # a rule for new records: a sale logged before it replays as it was
    chain.add("farm", observe("retail_selling", B, disposition="retail_sold"))
    assert chain.custody.get(normalize_code(B)).closed
    decl = {**failed, "errorDeclaration": {"declarationTime": "2026-03-02T08:00:00Z"}}
    rec, signers = signed("inspector", decl)
    upd = apply(chain.custody, rec, signers, GENESIS, len(chain.log), declared=at, new=True)
    chain.custody.commit(upd)
    assert chain.custody.get(normalize_code(A)).held_at == -1
    chain.log.append(rec)
    sell(chain, "farm", A)


def test_a_lot_known_only_by_its_items_can_be_found_non_conformant(chain):
    # the lot of Digital Link items is seldom commissioned itself: its inspection made it
    # refused as an unknown code, so a failed batch could not be recorded at all
    chain.add("farm", event(action="ADD", step="commissioning", epcList=ITEMS_IN_L9))
    failed = event(
        step="sampling", disposition="non_conformant", quantityList=[{"epcClass": LOT_DL}]
    )
    new_record(chain, "regulator", failed)
    lot = chain.custody.get(LOT_DL)
    assert (lot.custodian, lot.commissioned_by, lot.held_by) == ("", "", "regulator")
    late = f"{LOT_DL}/21/S9"  # made in it later, by the lot's maker or another member
    new_record(chain, "farm", event(action="ADD", step="commissioning", epcList=[late]))
    for item in (ITEMS_IN_L9[0], late):
        with raises("held", normalize_code(item)):
            sell(chain, "farm", item)


# ------------------------------------------------------------------ GS1 company prefixes


def test_company_digits_start_where_a_keys_company_prefix_does():
    from node.epcis import company_digits

    assert company_digits(normalize_code(URN)) == "6901234123456"  # (the indicator off)
    assert company_digits(normalize_code(CASE)).startswith("6903456")
    assert company_digits(normalize_code("urn:epc:id:sgln:6901234.00001.0")).startswith("6901234")
    assert company_digits(normalize_code("urn:epc:id:grai:6901234.00001.9")).startswith("6901234")
    assert company_digits(normalize_code("urn:epc:id:giai:6901234.A9")) == "6901234A9"
    assert company_digits(A) == ""  # (a local code: no GS1 key)
    # keys left as written (QA: a rival commissioned these under a bound prefix)
    for other in (
        "urn:epc:id:itip:6901234.000002.01.02.X1",
        "urn:epc:id:upui:6901234.000002.U1",
        "urn:epc:id:pgln:6901234.00001",
        "urn:epc:id:gdti:6901234.00001.D1",
        "https://id.gs1.org/417/6901234000016",
        "https://example.com/8018/690123400000000017",
    ):
        assert company_digits(normalize_code(other)).startswith("6901234"), other
    assert company_digits("urn:epc:id:usdod:CAGE1.5678") == ""  # (not a GS1 scheme)
    assert company_digits("transformation:x") == ""


def bound_chain() -> Chain:
    """A chain whose genesis binds 6901234 to farm and 6903456 to processor and distributor
    (a brand owner and its contract packer)."""
    from node.genesis import Genesis

    doc = GENESIS.to_dict()
    for m in doc["members"]:
        if m["id"] == "farm":
            m["gs1_prefixes"] = ["6901234"]
        if m["id"] in ("processor", "distributor"):
            m["gs1_prefixes"] = ["6903456"]
    return Chain(genesis=Genesis.from_dict(doc))


def test_a_bound_gs1_prefix_is_commissioned_only_by_its_members():
    # QA: a member commissioned codes under another company's GTIN and became their
    # producer (who may recall them); the genuine maker was then refused (commission-once)
    chain = bound_chain()
    with raises("gs1-prefix", DL, perm=True) as err:
        commission(chain, "slaughterhouse", URN)
    assert (
        "GS1 company prefix 6901234 is bound to 'farm' in the genesis: only it commissions "
        "codes under it, not 'slaughterhouse'"
    ) in str(err.value)
    commission(chain, "farm", URN, LOT)
    commission(chain, "distributor", CASE)  # (a prefix shared by two members)
    with raises("gs1-prefix", perm=True) as err:
        commission(chain, "retailer", "urn:epc:id:sscc:6903456.0000000102")
    assert "bound to 'processor', 'distributor' in the genesis: only they commission" in str(
        err.value
    )
    commission(chain, "retailer", A, "urn:epc:id:sgtin:6911111.012345.1")  # (bound to none)
    # the outputs of a transformation and the parent of a packing are commissioned too
    out = "urn:epc:id:sgtin:6901234.012345.99"
    ev = event("TransformationEvent", None, "commissioning", inputEPCList=[A], outputEPCList=[out])
    with raises("gs1-prefix", normalize_code(out), perm=True):
        chain.add("retailer", ev)
    pallet = "urn:epc:id:sscc:6903456.0000000777"
    pack = event("AggregationEvent", "ADD", "packing", parentID=pallet, childEPCs=[A])
    with raises("gs1-prefix", normalize_code(pallet), perm=True):
        chain.add("retailer", pack)


def test_no_event_type_sells_a_held_or_recalled_code(chain):
    # QA: an AggregationEvent (or AssociationEvent) with disposition retail_sold sold held
    # and recalled tins, packed or unpacked; partially_dispensed dispensed a held drug
    commission(chain, "farm", A, B, C, CASE)
    chain.add("farm", event("AggregationEvent", "ADD", "packing", parentID=CASE, childEPCs=[A]))
    new_record(chain, "inspector", observe("inspecting", A, disposition="non_conformant"))
    chain.add("regulator", observe("holding", B, disposition="recalled"))
    pallet = "urn:epc:id:sscc:6903456.0000000555"
    sold = {"disposition": "retail_sold"}
    for ev, code in (
        (event("AggregationEvent", "ADD", "packing", parentID=pallet, childEPCs=[CASE], **sold), A),
        (event("AggregationEvent", "DELETE", "retail_selling", parentID=CASE, childEPCs=[A]), A),
        (event("AssociationEvent", "ADD", "packing", parentID=pallet, childEPCs=[B], **sold), B),
        (observe("other", A, disposition="partially_dispensed"), A),
    ):
        with raises("held" if code == A else "recalled", normalize_code(code)):
            new_record(chain, "farm", ev)
    new_record(chain, "farm", observe("other", C, disposition="partially_dispensed"))
    assert not chain.custody.get(normalize_code(C)).closed  # (it leaves the code open)


def test_what_holds_is_worked_out_from_the_findings_in_force(chain):
    # QA: one hold was kept per code, so declaring one of two failed tests, or the test
    # that lifted a hold, or an inspector's hold over the custodian's own, freed the code
    commission(chain, "farm", A, B, C)

    def declare(author: str, ev: dict[str, Any], at: int) -> None:
        decl = {**ev, "errorDeclaration": {"declarationTime": "2026-03-02T08:00:00Z"}}
        rec, signers = signed(author, decl)
        chain.custody.commit(
            apply(chain.custody, rec, signers, GENESIS, len(chain.log), declared=at, new=True)
        )
        chain.log.append(rec)

    def held(code: str) -> tuple[int, str]:
        st = chain.custody.get(normalize_code(code))
        return st.held_at, st.held_by

    bad, good = (observe("inspecting", A, disposition=d) for d in ("non_conformant", "conformant"))
    first = len(chain.log)
    new_record(chain, "inspector", bad)
    new_record(chain, "inspector", {**bad, "eventTime": "2026-03-01T09:00:00+08:00"})
    declare("inspector", {**bad, "eventTime": "2026-03-01T09:00:00+08:00"}, first + 1)
    assert held(A) == (first, "inspector")  # the first test still stands
    lift = len(chain.log)
    new_record(chain, "regulator", good)
    assert held(A) == (-1, "")
    declare("regulator", good, lift)
    assert held(A) == (first, "inspector")  # held again
    with raises("held", normalize_code(A)):
        sell(chain, "farm", A)
    # the custodian's own finding stands when the inspector's is declared in error
    own = len(chain.log)
    new_record(chain, "farm", observe("inspecting", B, disposition="non_conformant"))
    theirs = len(chain.log)
    new_record(chain, "inspector", observe("inspecting", B, disposition="non_conformant"))
    assert held(B) == (theirs, "inspector")
    declare("inspector", observe("inspecting", B, disposition="non_conformant"), theirs)
    assert held(B) == (own, "farm")
    # a conformant finding that lifts nothing is not kept (a sensor's, every minute)
    new_record(chain, "inspector", observe("sensor_reporting", C, disposition="conformant"))
    assert chain.custody.get(normalize_code(C)).findings == ()


def test_a_case_found_non_conformant_holds_what_is_in_it(chain):
    commission(chain, "farm", A, CASE)
    chain.add("farm", event("AggregationEvent", "ADD", "packing", parentID=CASE, childEPCs=[A]))
    new_record(chain, "inspector", observe("inspecting", CASE, disposition="non_conformant"))
    chain.add(
        "farm", event("AggregationEvent", "DELETE", "unpacking", parentID=CASE, childEPCs=[A])
    )
    with raises("held", normalize_code(A)):
        sell(chain, "farm", A)  # (QA: unpacked, the tins sold)


def test_a_closed_lot_found_non_conformant_can_be_found_conformant(chain):
    # QA: a decommissioned lot's hold held its items, and a finding conformant was refused
    lot = normalize_code(LOT)
    chain.add("farm", event(action="ADD", step="commissioning", quantityList=[{"epcClass": LOT}]))
    commission_in_lot_as(chain, "farm", "urn:epc:id:sgtin:6901234.012345.Z1", "L1")
    chain.add(
        "farm", event(action="DELETE", step="decommissioning", quantityList=[{"epcClass": LOT}])
    )
    failed = event(
        step="inspecting", disposition="non_conformant", quantityList=[{"epcClass": LOT}]
    )
    new_record(chain, "inspector", failed)
    new_record(chain, "inspector", {**failed, "disposition": "conformant"})
    assert chain.custody.get(lot).held_at == -1
    with raises("closed", lot):  # (still no fresh certificate for a closed code)
        new_record(chain, "inspector", {**failed, "disposition": "active"})


def test_a_member_a_codes_prefix_is_bound_to_recalls_it_as_its_producer():
    # QA: the brand owner could not recall what its contract manufacturer made under the
    # brand's prefix; nor could a producer recall, as a lot, a lot it never commissioned
    chain = bound_chain()
    commission(chain, "distributor", CASE)  # (6903456: processor's and distributor's)
    recall = {"disposition": "recalled"}
    with raises("recall", normalize_code(CASE), perm=True) as err:
        chain.add("retailer", observe("holding", CASE, **recall))
    assert "or a member its GS1 company prefix is bound to" in str(err.value)
    chain.add("processor", observe("holding", CASE, **recall))
    st = chain.custody.states[normalize_code(CASE)]
    assert (st.recalled, st.recalled_by, st.custodian) == (True, "processor", "distributor")
    # a lot under the farm's prefix, known only by its items: recalled as a lot
    lot = "urn:epc:class:lgtin:6901234.012345.Q7"
    commission_in_lot_as(chain, "farm", "urn:epc:id:sgtin:6901234.012345.Q7a", "Q7")
    with raises("recall", perm=True):
        chain.add("processor", event(step="holding", quantityList=[{"epcClass": lot}], **recall))
    chain.add("farm", event(step="holding", quantityList=[{"epcClass": lot}], **recall))
    made = chain.custody.states[normalize_code(lot)]
    assert (made.recalled, made.custodian, made.recalled_by) == (True, "", "farm")
    commission_in_lot_as(chain, "farm", "urn:epc:id:sgtin:6901234.012345.Q7b", "Q7")
    assert chain.custody.states[normalize_code("urn:epc:id:sgtin:6901234.012345.Q7b")].recalled


def test_a_container_finding_reaches_its_contents_on_their_own_account(chain):
    # QA re-check: a case of held (or recalled) tins could be transformed, and its outputs
    # sold; a case's finding declared in error after unpacking still held the tins; and a
    # case found conformant lifted a tin's own finding
    commission(chain, "farm", A, B, CASE)
    pallet = "urn:epc:id:sscc:6903456.0000000556"
    commission(chain, "farm", pallet)
    chain.add("farm", event("AggregationEvent", "ADD", "packing", parentID=CASE, childEPCs=[A]))
    chain.add("farm", event("AggregationEvent", "ADD", "packing", parentID=pallet, childEPCs=[B]))
    own = len(chain.log)
    new_record(chain, "inspector", observe("inspecting", A, disposition="non_conformant"))
    chain.add("regulator", observe("holding", B, disposition="recalled"))
    for box, rule in ((CASE, "held"), (pallet, "recalled")):
        made = event("TransformationEvent", None, "commissioning", inputEPCList=[box],
                     outputEPCList=[f"local:farm:out-{rule}"])  # fmt: skip
        with raises(rule):
            new_record(chain, "farm", made)
    # the case found non_conformant: the tin held on the case's account too ...
    new_record(chain, "inspector", observe("inspecting", CASE, disposition="non_conformant"))
    # ... and the case found conformant lifts that account only, not the tin's own finding
    new_record(chain, "inspector", observe("inspecting", CASE, disposition="conformant"))
    tin = chain.custody.states[normalize_code(A)]
    assert (tin.held_at, tin.held_from) == (own, "")
    new_record(chain, "inspector", observe("inspecting", A, disposition="conformant"))
    # a case's finding declared in error after unpacking frees what it held
    failed = observe(
        "inspecting", CASE, disposition="non_conformant", eventTime="2026-03-01T09:00:00+08:00"
    )
    at = len(chain.log)
    new_record(chain, "inspector", failed)
    tin = chain.custody.states[normalize_code(A)]
    assert (tin.held_at, tin.held_from) == (at, normalize_code(CASE))
    with raises("held", normalize_code(A)) as err:
        sell(chain, "farm", A)
    assert f"its container {normalize_code(CASE)} was found non_conformant" in str(err.value)
    chain.add(
        "farm", event("AggregationEvent", "DELETE", "unpacking", parentID=CASE, childEPCs=[A])
    )
    decl = {**failed, "errorDeclaration": {"declarationTime": "2026-03-02T08:00:00Z"}}
    rec, signers = signed("inspector", decl)
    chain.custody.commit(
        apply(chain.custody, rec, signers, GENESIS, len(chain.log), declared=at, new=True)
    )
    chain.log.append(rec)
    assert chain.custody.states[normalize_code(A)].held_at == -1
    sell(chain, "farm", A)


# ------------------------------------------------------------------ corrective events


ITEM = "urn:epc:id:sgtin:6901234.012345.A7"


def declare(chain: Chain, author: str, ev: dict[str, Any], declared: int, *, new: bool = True):
    """Apply the error declaration of ``ev`` (committed at log index ``declared``)."""
    decl = {**ev, "errorDeclaration": {"declarationTime": "2026-03-02T08:00:00Z"}}
    rec, signers = signed(author, decl)
    upd = apply(chain.custody, rec, signers, GENESIS, len(chain.log), declared=declared, new=new)
    chain.custody.commit(upd)
    chain.log.append(rec)
    return upd


def in_lot(lot: str):
    return event(action="ADD", step="commissioning", epcList=[ITEM], ilmd={"cbvmda:lotNumber": lot})


def codes_of(page) -> list[str]:
    return [n.code for n in page.nodes[1:]]


def test_a_commissioning_declared_in_error_is_made_again_by_a_corrective_event(chain):
    # QA: an item commissioned in the wrong lot could not be corrected: the corrective
    # commissioning was refused (commission-once), and the trace kept the wrong lot, so a
    # recall of the right lot missed the item and one of the wrong lot caught it
    item = normalize_code(ITEM)
    wrong, right = (normalize_code(f"urn:epc:class:lgtin:6901234.012345.{x}") for x in "WR")
    wrong_ev = in_lot("W")
    chain.add("farm", wrong_ev)
    assert codes_of(trace_back(chain.custody, item)) == [wrong]
    declare(chain, "farm", wrong_ev, 0)
    st = chain.custody.get(item)
    assert (st.closed, st.void_at, st.unlinked) == (True, 0, (wrong,))
    assert codes_of(trace_back(chain.custody, item)) == []  # the link no longer counts
    assert codes_of(trace_forward(chain.custody, wrong)) == []
    with raises("closed", item) as err:  # nothing acts on a code never made
        new_record(chain, "farm", observe("shipping", ITEM), to="slaughterhouse")
    assert "code is void: the record that made it (log index 0) is declared in error" in str(
        err.value
    )
    with raises("commission-once", item) as err:  # only its maker makes it again
        new_record(chain, "slaughterhouse", in_lot("R"))
    assert "only 'farm' makes it again" in str(err.value)
    new_record(chain, "farm", in_lot("R"))  # the corrective event
    st = chain.custody.get(item)
    assert (st.status, st.custodian, st.first_index, st.lot, st.void_at) == (
        "active", "farm", 2, right, -1
    )  # fmt: skip
    assert codes_of(trace_back(chain.custody, item)) == [right]
    assert codes_of(trace_forward(chain.custody, right)) == [item]
    assert codes_of(trace_forward(chain.custody, wrong)) == []
    assert recall_scope(chain.custody, wrong)[1:] == []
    with raises("commission-once", item):  # made again once only
        new_record(chain, "farm", in_lot("R"))
    new_record(chain, "farm", observe("shipping", ITEM), to="slaughterhouse")  # open again
    assert chain.custody.get(item).custodian == "slaughterhouse"


def test_a_log_written_before_voiding_replays_acts_on_a_declared_commissionings_codes(chain):
    # A log of an earlier version: its declared commissioning was an annotation, and the
    # farm handed the item on after it. Replayed (logged records, not new), the handoff
    # meets a void code: the code is made whole again and the handoff replays as it was,
    # where refusing it would stop every node resyncing that log
    item = normalize_code(ITEM)
    wrong = normalize_code("urn:epc:class:lgtin:6901234.012345.W")
    chain.add("farm", in_lot("W"))
    declare(chain, "farm", in_lot("W"), 0, new=False)
    assert chain.custody.get(item).void_at == 0
    handoff = observe("shipping", ITEM)
    rec, signers = signed("farm", handoff, to="slaughterhouse")
    with raises("closed", item):  # a version that voids commits no such record
        apply(chain.custody, rec, signers, GENESIS, len(chain.log), new=True)
    upd = chain.add("farm", handoff, to="slaughterhouse")  # logged: it replays
    st = chain.custody.get(item)
    assert (st.status, st.custodian, st.void_at, st.closed_at, st.unlinked, st.lot) == (
        "active", "slaughterhouse", -1, -1, (), wrong
    )  # fmt: skip
    assert item in upd.states
    assert codes_of(trace_back(chain.custody, item)) == [wrong]  # the lot's link counts again
    with raises("commission-once", item):  # made whole, it is no void code to make again
        new_record(chain, "farm", in_lot("R"))


def test_a_declared_commissioning_acted_on_since_stays_and_a_finding_outlives_a_remake(chain):
    commission(chain, "farm", A, B)
    chain.add("farm", observe("shipping", A), to="slaughterhouse")
    chain.add("inspector", observe("inspecting", B, disposition="non_conformant"))
    declare(chain, "farm", event(action="ADD", step="commissioning", epcList=[A, B]), 0)
    assert chain.custody.get(A).status == "active"  # handed on since: an annotation only
    assert chain.custody.get(A).void_at == -1
    assert chain.custody.get(B).void_at == 0  # an inspection is no act on it
    new_record(chain, "farm", event(action="ADD", step="commissioning", epcList=[B]))
    st = chain.custody.get(B)
    assert st.status == "active"
    assert st.held_at == 2  # remaking a code does not shed an inspector's finding
    with raises("held", B):
        new_record(chain, "farm", observe("retail_selling", B, disposition="retail_sold"))


def test_a_transformation_declared_in_error_is_made_again_from_the_right_inputs(chain):
    commission(chain, "farm", A, C)
    made = event("TransformationEvent", None, "commissioning", inputEPCList=[A], outputEPCList=[B])
    chain.add("farm", made)  # log index 1: A is consumed, B made from it
    declare(chain, "farm", made, 1)
    assert (chain.custody.get(A).closed, chain.custody.get(B).void_at) == (False, 1)
    assert codes_of(trace_forward(chain.custody, A)) == []
    right = event("TransformationEvent", None, "commissioning", inputEPCList=[C], outputEPCList=[B])
    new_record(chain, "farm", right)  # the corrective transformation
    st = chain.custody.get(B)
    assert (st.status, st.inputs, st.unlinked) == ("active", (C,), (A,))
    assert codes_of(trace_back(chain.custody, B)) == [C]
    assert codes_of(trace_forward(chain.custody, A)) == []
    assert codes_of(trace_forward(chain.custody, C)) == [B]


def test_gs1s_error_declaration_and_corrective_event_document_applies_whole(chain):
    # QA: GS1's own example: the declaration was applied, its corrective event refused
    # (commission-once), so the output stayed closed for good
    doc = json.loads(
        (
            EPCIS_DIR
            / "JSON"
            / "WithErrorDeclaration"
            / "ErrorDeclarationAndCorrectiveEvent.jsonld"
        ).read_text(encoding="utf-8")
    )
    declared_ev, corrective = (r.event for r in import_document(doc))
    assert declared_ev is not None
    assert corrective is not None
    original = {k: v for k, v in declared_ev.items() if k != "errorDeclaration"}
    made = original["inputEPCList"][0]
    lot = original["inputQuantityList"][0]["epcClass"]
    quantity = [{"epcClass": lot, "quantity": 1000, "uom": "KGM"}]
    when = {"eventTime": "2020-01-13T00:00:00+01:00"}
    chain.add("farm", event(action="ADD", step="commissioning", epcList=[made],
                            quantityList=quantity, **when))  # fmt: skip
    chain.add("farm", original)  # log index 1
    declare(chain, "farm", original, 1)
    output = normalize_code(original["outputEPCList"][0])
    assert chain.custody.get(output).void_at == 1
    new_record(chain, "farm", corrective)
    st = chain.custody.get(output)
    assert (st.status, st.first_index, st.unlinked) == ("active", 3, ())
    assert set(codes_of(trace_back(chain.custody, output))) == {
        normalize_code(made),
        normalize_code(lot),
    }


def test_a_remake_in_another_lot_keeps_the_hold_of_its_first_lots_finding(chain):
    # QA: an item of a lot found non_conformant was declared, remade in a clean lot and
    # sold: the hold of its first lot's finding did not follow it
    item = normalize_code(ITEM)
    held_lot, clean = (normalize_code(f"urn:epc:class:lgtin:6901234.012345.{x}") for x in "HC")
    first = in_lot("H")
    chain.add("farm", first)  # log index 0
    chain.add("inspector", event(step="inspecting", disposition="non_conformant",
                                 quantityList=[{"epcClass": held_lot, "quantity": 1}]))  # fmt: skip
    declare(chain, "farm", first, 0)
    new_record(chain, "farm", in_lot("C"))  # remade in another lot
    st = chain.custody.get(item)
    assert (st.lot, st.held_at, st.held_by, st.held_from) == (clean, 1, "inspector", held_lot)
    with raises("held", item) as err:
        new_record(chain, "farm", observe("retail_selling", ITEM, disposition="retail_sold"))
    assert f"its lot {held_lot} was found non_conformant by 'inspector'" in str(err.value)
    # the lot's finding declared in error reaches it: sold then
    finding = event(step="inspecting", disposition="non_conformant",
                    quantityList=[{"epcClass": held_lot, "quantity": 1}])  # fmt: skip
    declare(chain, "inspector", finding, 1)
    assert chain.custody.get(item).held_at == -1
    new_record(chain, "farm", observe("retail_selling", ITEM, disposition="retail_sold"))


@pytest.mark.parametrize(
    "close",
    [
        {"step": "decommissioning", "action": "DELETE", "disposition": "inactive", "epcList": [A]},
        {"step": "storing", "action": "DELETE", "epcList": [A]},
        {"step": "storing", "persistentDisposition": {"set": ["retail_sold"]}, "epcList": [A]},
        {"step": "storing", "persistentDisposition": {"set": ["dispensed", "destroyed"]},
         "epcList": [A]},
        {"step": "storing", "persistentDisposition": {"set": ["partially_dispensed"]},
         "epcList": [A]},
        {"etype": "AggregationEvent", "step": "decommissioning", "action": "DELETE",
         "parentID": CASE, "childEPCs": [C]},
    ],
)  # fmt: skip
def test_a_recalled_code_is_not_retired_nor_marked_sold_by_other_means(chain, close):
    # QA-X M1: a recalled can was decommissioned (its recall then listed it as "closed",
    # as a consumed input); L1: persistentDisposition set retail_sold on it committed;
    # QA-Z: by an AggregationEvent DELETE, and partially_dispensed, too. Rules for new
    # records: a block of an earlier version that holds one still replays
    commission(chain, "farm", A, B, C, CASE)
    chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=CASE,
                            childEPCs=[C]))  # fmt: skip
    chain.add("regulator", observe("holding", A, B, C, disposition="recalled"))
    target = (close.get("epcList") or close["childEPCs"])[0]
    rec, signers = signed("farm", event(**close))
    with raises("recalled", normalize_code(target) if target == C else target):
        apply(chain.custody, rec, signers, GENESIS, len(chain.log), new=True)
    assert chain.custody.get(A).status == "recalled"
    apply(chain.custody, rec, signers, GENESIS, len(chain.log))  # (logged: taken)
    for ends in (
        event(step="scrapping", action="DELETE", epcList=[B]),
        event(step="storing", action="DELETE", disposition="disposed", epcList=[B]),
    ):
        rec, signers = signed("farm", ends)
        apply(chain.custody, rec, signers, GENESIS, len(chain.log), new=True)  # (its end)


def test_a_containers_trace_back_reaches_where_its_contents_came_from(chain):
    # QA-X M2: a pallet's trace back named only the pallet, and a case's only its pallet:
    # a regulator scanning a label got no origin
    pallet = "urn:epc:id:sscc:6903456.0000000102"
    commission(chain, "farm", A, C, CASE, pallet)
    chain.add("farm", event("TransformationEvent", None, "commissioning", inputEPCList=[A],
                            outputEPCList=[B]))  # fmt: skip
    chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=CASE,
                            childEPCs=[B, C]))  # fmt: skip
    chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=pallet,
                            childEPCs=[CASE]))  # fmt: skip
    got = {(n.code, n.relation, n.via) for n in trace_back(chain.custody, pallet).nodes}
    case, p = normalize_code(CASE), normalize_code(pallet)
    assert got == {(p, "self", ""), (case, "child", p), (B, "child", case),
                   (C, "child", case), (A, "input", B)}  # fmt: skip
    # from an item, its containers, not what else they held (no source of it)
    item = {(n.code, n.relation) for n in trace_back(chain.custody, B).nodes}
    assert item == {(B, "self"), (A, "input"), (case, "parent"), (p, "parent")}


def test_a_containers_trace_back_does_not_follow_its_contents_to_later_containers(chain):
    # QA-Z: a pallet's trace back went from a case it once held to the case's new pallet
    pallet, later = "urn:epc:id:sscc:6903456.0000000103", "urn:epc:id:sscc:6903456.0000000104"
    commission(chain, "farm", C, CASE, pallet, later)
    for parent, child in ((CASE, C), (pallet, CASE)):
        chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=parent,
                                childEPCs=[child]))  # fmt: skip
    chain.add("farm", event(action="DELETE", etype="AggregationEvent", parentID=pallet,
                            childEPCs=[CASE]))  # fmt: skip
    chain.add("farm", event(action="ADD", etype="AggregationEvent", parentID=later,
                            childEPCs=[CASE]))  # fmt: skip
    got = {n.code for n in trace_back(chain.custody, pallet).nodes}
    assert got == {normalize_code(pallet), normalize_code(CASE), C}


def test_a_persistent_disposition_that_sells_an_expired_code_is_a_sale(chain):
    # review: persistentDisposition set retail_sold was checked on recalled codes only, so
    # an expired (or held) code could be marked sold that way
    commission(chain, "farm", A)
    chain.add("farm", observe("holding", A, disposition="expired"))
    sold = observe("storing", A, persistentDisposition={"set": ["retail_sold"]})
    with raises("expired", A):
        new_record(chain, "farm", sold)
