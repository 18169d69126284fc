"""The hint `trace back|forward` prints when a walk stops at its depth limit."""

from __future__ import annotations

from cli.trace_cmd import _truncated_hint
from node.trace import MAX_DEPTH
from proto import services_pb2


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
