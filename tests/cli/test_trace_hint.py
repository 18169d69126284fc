"""The hint `trace back|forward` prints when a walk stops at its depth limit."""

from __future__ import annotations

from cli.trace_cmd import _truncated_hint
from node.trace import MAX_DEPTH
from proto import services_pb2, types_pb2


def _nodes(depths: list[int]) -> list[services_pb2.TraceNode]:
    return [services_pb2.TraceNode(code=f"x.{d}.{i}", depth=d) for i, d in enumerate(depths)]


def test_below_the_most_it_says_raise_max_depth():
    assert "raise --max-depth (at most 64)" in _truncated_hint(_nodes([0, 1, 2]), True, 2)


def test_at_the_most_it_names_the_codes_to_go_on_from():
    # it said "raise --max-depth" where the node refuses more than 64
    hint = _truncated_hint(_nodes([0, MAX_DEPTH - 1, *[MAX_DEPTH] * 5]), True, 0)
    assert "--max-depth" not in hint
    assert "run `suyuan trace forward` from the deepest codes shown" in hint
    assert f"x.{MAX_DEPTH}.2, x.{MAX_DEPTH}.3, x.{MAX_DEPTH}.4 and 2 more" in hint
    assert "trace back" in _truncated_hint(_nodes([MAX_DEPTH]), False, MAX_DEPTH)


def test_history_names_the_recall_a_code_was_born_under():
    from cli.trace_cmd import _recall_note

    def info(i: int) -> types_pb2.RecordInfo:
        return types_pb2.RecordInfo(log_index=i)

    st = services_pb2.TraceNode(status="recalled", recalled=True, recalled_by="regulator")
    assert _recall_note(st, [], False) == " (recalled by regulator)"  # (an older node)
    st.recalled_at = 7
    born = _recall_note(st, [info(3)], False)  # its own history lacks the recall record
    assert born == (
        " (recalled by regulator, record at log #7; the recall of what it came from: "
        "`suyuan trace back`)"
    )
    assert (
        _recall_note(st, [info(3), info(7)], False) == " (recalled by regulator, record at log #7)"
    )
    assert "came from" not in _recall_note(st, [info(3)], True)  # (a page: it may be elsewhere)
    assert _recall_note(services_pb2.TraceNode(status="active"), [info(3)], False) == ""


def test_a_container_link_that_no_longer_holds_is_shown_as_former():
    from node.recall import relation_shown

    case = services_pb2.TraceNode(code="case", depth=0, container="")  # unpacked since
    pallet = services_pb2.TraceNode(code="pallet", depth=1, relation="parent", parent_code="case")
    assert relation_shown(pallet, {"case": case, "pallet": pallet}) == "parent (former)"
    case.container = "pallet"
    assert relation_shown(pallet, {"case": case, "pallet": pallet}) == "parent"
    child = services_pb2.TraceNode(code="item", relation="child", parent_code="case")
    assert relation_shown(child, {}) == "child (former)"
    child.container = "case"
    assert relation_shown(child, {}) == "child"
    assert relation_shown(services_pb2.TraceNode(relation="input"), {}) == "input"


def test_history_names_the_finding_that_holds_a_code_from_sale():
    from cli.trace_cmd import _desc, _hold_note

    st = services_pb2.TraceNode(status="active", custodian="processor")
    assert _hold_note(st) == ""
    assert _desc(st) == "custodian processor, active"
    st.held_at, st.held_by, st.held_via = 12, "inspector", "https://id.gs1.org/01/1/10/B7"
    assert _hold_note(st) == (
        " (held: its lot https://id.gs1.org/01/1/10/B7 found non_conformant by inspector, "
        "record at log #12; not for sale until found conformant)"
    )
    assert _desc(st) == "custodian processor, active, held"
    st.held_via = ""
    assert _hold_note(st).startswith(" (held: found non_conformant by inspector, record at")


def test_an_expired_codes_state_says_so() -> None:
    # QA-T: an expired item's `trace history` ended "active"; only --json told
    from cli.trace_cmd import state_line
    from proto import services_pb2

    node = services_pb2.TraceNode(code="c", status="active", custodian="farm",
                                  disposition="expired")  # fmt: skip
    assert state_line(node) == "custodian farm, active, expired"
