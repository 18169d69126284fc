"""``node.trace`` queries: what an unknown or malformed queried code is answered with."""

import pytest

from node.custody import InMemoryCustody
from node.errors import InputError, NotFoundError
from node.trace import history, trace_back, trace_forward


def test_a_malformed_code_in_a_query_is_an_input_error_naming_the_spelling():
    # QA: `trace history urn:epc:id:SGTIN:...` said "not known" (exit 1), though the same
    # spelling in a record is refused with the spelling to use (exit 2)
    idx = InMemoryCustody()
    with pytest.raises(InputError, match=r"write 'urn:epc:id:sgtin:6903456\.000020\.K3'"):
        history(idx, "urn:epc:id:SGTIN:6903456.000020.K3", 10, "")
    with pytest.raises(InputError, match="wrong check digit"):
        trace_forward(idx, "https://id.gs1.org/01/06901234123450/21/X", 8, 10, "")
    with pytest.raises(InputError, match="is not a valid SGTIN EPC URN"):
        trace_back(idx, "urn:epc:id:sgtin:6901234.00001.1001", 8, 10, "")


def test_a_well_formed_unknown_code_is_not_found():
    idx = InMemoryCustody()
    with pytest.raises(NotFoundError, match="is not known"):
        history(idx, "urn:epc:id:sgtin:6903456.000020.K3", 10, "")
    with pytest.raises(NotFoundError, match="is not known"):
        trace_back(idx, "local:farm:pig-1", 8, 10, "")


def test_a_lot_known_only_by_its_items_has_an_empty_history_not_unknown():
    # QA-Q: `trace history` of such a lot said "not known", where trace forward listed items
    from node.epcis import normalize_code
    from tests.trace.helpers import Chain, event

    chain = Chain()
    ev = event(action="ADD", step="commissioning", epcList=["urn:epc:id:sgtin:6901234.012345.G1"])
    ev["ilmd"] = {"cbvmda:lotNumber": "GIFT01"}
    chain.add("farm", ev)
    lot = normalize_code("urn:epc:class:lgtin:6901234.012345.GIFT01")
    page = history(chain.custody, lot, 10, "")
    assert (page.code, page.log_indexes, page.state.status) == (lot, (), "unknown")
    forward = trace_forward(chain.custody, lot, 8, 10, "")
    assert [n.code for n in forward.nodes][1:] == [
        normalize_code("urn:epc:id:sgtin:6901234.012345.G1")
    ]
