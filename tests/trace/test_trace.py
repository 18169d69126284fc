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
