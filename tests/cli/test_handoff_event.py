"""`handoff offer`'s event: where each code goes (no node needed)."""

from __future__ import annotations

from cli.handoff_cmd import handoff_event

WHEN = "2026-03-01T08:00:00.000Z"
ITEM = "urn:epc:id:sgtin:6901234.012345.1"
LOT = "urn:epc:class:lgtin:6901234.012345.L1"
LOT_DL = "https://id.gs1.org/01/06901234123456/10/L2"


def test_lots_given_as_codes_go_to_the_quantity_list():
    # a lot passed as CODE was put in epcList, where EPCIS has instances only
    ev = handoff_event([ITEM, LOT, LOT_DL], [], WHEN, "shipping", "in_transit", "")
    assert ev["epcList"] == [ITEM]
    assert ev["quantityList"] == [{"epcClass": LOT}, {"epcClass": LOT_DL}]


def test_a_lot_alone_makes_no_epc_list():
    ev = handoff_event([], [LOT], WHEN, "shipping", "in_transit", "")
    assert "epcList" not in ev
    assert ev["quantityList"] == [{"epcClass": LOT}]
    assert ev["eventTimeZoneOffset"] == "+00:00"
