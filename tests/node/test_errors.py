"""node.errors.first_line: a library's message quoted in ours stays one short line."""

from __future__ import annotations

import pytest

from node.errors import MAX_QUOTED, InputError, first_line
from node.verify import parse_bundle_json


def test_first_line_keeps_one_line_and_bounds_it():
    assert first_line(ValueError("a\nb")) == "a"
    assert first_line(ValueError("")) == "ValueError"
    long = first_line(ValueError("x" * 100_000))
    assert len(long) == MAX_QUOTED
    assert long.endswith("...")


def test_protobuf_json_messages_are_not_doubled_nor_echo_the_document():
    # "Failed to load JSON: Failed to load JSON: duplicate key ..." and a top-level list
    # echoed the whole bundle (2 kB) into the error line
    with pytest.raises(InputError) as dup:
        parse_bundle_json('{"log_index": "1", "log_index": "2"}')
    assert "Failed to load JSON: Failed to load JSON" not in str(dup.value)
    with pytest.raises(InputError) as listed:
        parse_bundle_json("[" + '{"x": "' + "y" * 5000 + '"}]')
    assert len(str(listed.value)) < MAX_QUOTED + 100
