"""Envelope <-> protobuf converters keep bytes, order and the record id."""

from __future__ import annotations

import pytest

from node.convert import envelope_from_proto, envelope_to_proto
from node.envelope import Envelope, Signature
from node.errors import InputError
from proto import types_pb2
from tests import fixtures


def _signed() -> Envelope:
    g = fixtures.genesis()
    from node.records import cosign, make_record, sign_record

    rec = make_record(
        g,
        "farm",
        fixtures.object_event(["urn:epc:id:sgtin:6901234.000001.3"], "shipping", "OBSERVE"),
        category="meat",
        handoff_to="slaughterhouse",
    )
    return cosign(sign_record(rec, fixtures.key("farm")), fixtures.key("slaughterhouse"))


def test_round_trip_keeps_bytes_order_and_record_id():
    env = _signed()
    msg = envelope_to_proto(env)
    assert msg.payload == env.payload
    assert [s.keyid for s in msg.signatures] == ["farm", "slaughterhouse"]
    back = envelope_from_proto(types_pb2.Envelope.FromString(msg.SerializeToString()))
    assert back == env
    assert back.record_id == env.record_id


def test_unsigned_and_odd_bytes_cross_unchanged():
    env = Envelope(b"\x00\xffnot json", "x/y", (Signature("a", b"\x01" * 3),))
    assert envelope_from_proto(envelope_to_proto(env)) == env


def test_missing_payload_type_is_input_error():
    with pytest.raises(InputError, match="payload_type"):
        envelope_from_proto(types_pb2.Envelope(payload=b"{}"))
