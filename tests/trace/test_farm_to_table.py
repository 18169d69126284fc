"""The whole farm-to-table flow (testnet/scenario.py) with real signed records, at the pure level.

Pig batch commissioned at the farm, veterinary inspection, handoff to the slaughterhouse,
slaughter and cutting, QR-coded packages at the meat-product plant, cases to the
distributor and the supermarket, retail sales, contamination found by sampling; then the
back trace to the farm batch, the forward trace to every affected package, and the recall.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from node.custody import InMemoryCustody, apply, apply_block
from node.epcis import Committed, export_document
from node.errors import RuleError
from node.records import TraceRecord, cosign, make_record, sign_record, verify_envelope
from node.trace import history, recall_scope, trace_back, trace_forward
from testnet.scenario import DISPLAY_NAMES, ROLES, Draft, farm_to_table, recall_draft
from tests.trace.helpers import GENESIS, key

EPCIS = Path(__file__).resolve().parents[3] / "shared" / "epcis"


def sign(draft: Draft, nonce: int) -> tuple[TraceRecord, tuple[str, ...]]:
    rec = make_record(
        GENESIS,
        draft.author,
        draft.event,
        category=draft.category,
        handoff_to=draft.handoff_to,
        attributes=dict(draft.attributes) or None,
        nonce=f"{nonce:016x}",
    )
    env = sign_record(rec, key(draft.author))
    if draft.handoff_to:
        env = cosign(env, key(draft.handoff_to))
    v = verify_envelope(env, GENESIS)
    return v.record, env.signers()


class Ledger:
    def __init__(self) -> None:
        self.index = InMemoryCustody()
        self.log: list[TraceRecord] = []

    def submit(self, draft: Draft) -> None:
        rec, signers = sign(draft, 1000 + len(self.log))
        self.index.commit(apply(self.index, rec, signers, GENESIS, len(self.log)))
        self.log.append(rec)


@pytest.fixture(scope="module")
def run():
    sc = farm_to_table()
    ledger = Ledger()
    for d in sc.drafts:
        ledger.submit(d)
    return sc, ledger


def test_scenario_uses_the_demo_members():
    sc = farm_to_table()
    assert {d.author for d in sc.drafts} | {d.handoff_to for d in sc.drafts} - {""} <= set(ROLES)
    assert set(DISPLAY_NAMES) == set(ROLES)
    renamed = farm_to_table({"farm": "qingshan"})
    assert renamed.drafts[0].author == "qingshan"


def test_custody_after_the_flow(run):
    sc, ledger = run
    idx = ledger.index
    batch = idx.get(sc.farm_batch)
    assert batch is not None
    assert (batch.commissioned_by, batch.custodian, batch.status) == (
        "farm",
        "slaughterhouse",
        "active",
    )
    for p in sc.packages:
        st = idx.get(p)
        assert st is not None
        assert st.custodian == "retailer"
        assert st.commissioned_by == "processor"
        assert st.parent == ""
        assert st.status == ("closed" if p in sc.sold else "active")
    contaminated = idx.get(sc.contaminated)
    assert contaminated is not None
    assert contaminated.disposition == "non_conformant"


def test_back_trace_reaches_the_farm_batch(run):
    sc, ledger = run
    page = trace_back(ledger.index, sc.contaminated)
    by_code = {n.code: n for n in page.nodes}
    assert set(sc.back_to_farm) <= set(by_code)
    farm = by_code[sc.farm_batch]
    assert farm.commissioned_by == "farm"
    assert farm.relation == "input"
    assert ledger.index.upstream(sc.farm_batch) == []  # back to commissioning
    # the chain of "via" links walks from the farm batch back to the package
    chain = [sc.farm_batch]
    while by_code[chain[-1]].via:
        chain.append(by_code[chain[-1]].via)
    assert chain[-1] == sc.contaminated
    assert any(n.relation == "parent" for n in page.nodes)  # the case it travelled in


def test_forward_trace_finds_every_affected_package(run):
    sc, ledger = run
    page = trace_forward(ledger.index, sc.farm_batch)
    found = {n.code for n in page.nodes}
    assert found == sc.forward_from_batch
    custodians = {n.code: n.custodian for n in page.nodes}
    assert all(custodians[p] == "retailer" for p in sc.packages)
    small = trace_forward(ledger.index, sc.farm_batch, max_depth=2)
    assert small.depth_limited
    assert not set(sc.packages) & {n.code for n in small.nodes}


def test_history_is_in_log_order(run):
    sc, ledger = run
    idxs = history(ledger.index, sc.contaminated).log_indexes
    assert list(idxs) == sorted(idxs)
    steps = [ledger.log[i].biz_step for i in idxs]
    assert steps == ["commissioning", "packing", "shipping", "shipping", "unpacking", "sampling"]


def test_recall_then_only_return_or_destruction():
    sc = farm_to_table()
    ledger = Ledger()
    for d in sc.drafts:
        ledger.submit(d)
    scope = recall_scope(ledger.index, sc.farm_batch)
    assert {n.code for n in scope} == sc.forward_from_batch
    ledger.submit(recall_draft([n.code for n in scope], {n.code for n in scope if n.is_class}))
    for code in sc.forward_from_batch:
        st = ledger.index.get(code)
        assert st is not None
        assert st.recalled
        assert st.status in ("recalled", "closed")
    assert recall_scope(ledger.index, sc.farm_batch) == []
    unsold = [p for p in sc.packages if p not in sc.sold and p != sc.contaminated]
    ship = {
        "type": "ObjectEvent",
        "eventTime": "2026-03-06T09:00:00+08:00",
        "action": "OBSERVE",
        "bizStep": "shipping",
        "epcList": [unsold[0]],
    }
    with pytest.raises(RuleError, match="rule recalled"):
        ledger.submit(Draft("retailer", ship, handoff_to="distributor"))
    ledger.submit(Draft("retailer", {**ship, "disposition": "returned"}, handoff_to="distributor"))
    st = ledger.index.get(unsold[0])
    assert st is not None
    assert st.custodian == "distributor"
    destroy = {
        **ship,
        "bizStep": "destroying",
        "disposition": "destroyed",
        "epcList": [sc.contaminated],
    }
    ledger.submit(Draft("retailer", destroy))
    st = ledger.index.get(sc.contaminated)
    assert st is not None
    assert st.status == "closed"
    # the recalled package's history exports as a valid EPCIS document
    hist = history(ledger.index, sc.contaminated).log_indexes
    doc = export_document(
        [Committed(ledger.log[i], i) for i in hist], creation_date="2026-03-06T10:00:00+08:00"
    )
    schema = json.loads((EPCIS / "EPCIS-JSON-Schema.json").read_text(encoding="utf-8"))
    assert not list(jsonschema.Draft7Validator(schema).iter_errors(doc))
    assert [e["bizStep"] for e in doc["epcisBody"]["eventList"]][-2:] == ["holding", "destroying"]


def test_one_block_equals_one_record_at_a_time(run):
    sc, ledger = run
    items = [sign(d, 1000 + i) for i, d in enumerate(sc.drafts)]
    bu = apply_block(InMemoryCustody(), items, GENESIS, 0)
    assert bu.ok
    assert bu.states() == ledger.index.states
