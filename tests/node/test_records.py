import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.envelope import Envelope, Signature
from node.errors import ChainMismatchError, InputError, MembershipError, VerificationError
from node.keys import KeyPair
from node.records import TraceRecord, cosign, make_record, sign_record, verify_envelope
from tests.fixtures import epcis_events, genesis, key, object_event

G = genesis()


def signed(author="farm", event=None, **kw):
    rec = make_record(G, author, event or object_event(["urn:epc:id:sgtin:0614141.107346.1"]), **kw)
    return sign_record(rec, key(author))


def test_round_trip_verifies():
    env = signed(category="meat")
    v = verify_envelope(Envelope.from_json(env.to_json()), G)
    assert v.record.author == "farm"
    assert v.record.category == "meat"
    assert v.record_id == env.record_id
    assert v.record.codes() == ["urn:epc:id:sgtin:0614141.107346.1"]


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def test_every_payload_bit_flip_fails():
    env = signed()
    for bit in range(0, len(env.payload) * 8, 7):
        bad = replace(env, payload=_flip(env.payload, bit))
        with pytest.raises((VerificationError, InputError)):
            verify_envelope(bad, G)


def test_every_signature_bit_flip_fails():
    env = signed()
    sig = env.signatures[0]
    for bit in range(len(sig.sig) * 8):
        bad = replace(env, signatures=(Signature(sig.keyid, _flip(sig.sig, bit)),))
        with pytest.raises(VerificationError):
            verify_envelope(bad, G)


def test_non_member_signature_fails():
    outsider = KeyPair.from_seed("farm", b"\x01" * 32)  # claims to be farm, other key
    rec = make_record(G, "farm", object_event(["urn:x:1"]))
    with pytest.raises(VerificationError, match="invalid"):
        verify_envelope(sign_record(rec, outsider), G)
    stranger = KeyPair.from_seed("stranger", b"\x02" * 32)
    env = sign_record(rec, key("farm")).with_signature("stranger", b"\x00" * 64)
    with pytest.raises(MembershipError, match="not a member"):
        verify_envelope(env, G)
    assert stranger.name == "stranger"


def test_other_chain_fails():
    other = genesis("another-chain")
    rec = make_record(other, "farm", object_event(["urn:x:1"]))
    with pytest.raises(ChainMismatchError):
        verify_envelope(sign_record(rec, key("farm")), G)


def test_handoff_needs_both_signatures():
    ev = object_event(["urn:x:1"], biz_step="shipping", action="OBSERVE")
    env = signed(event=ev, handoff_to="slaughterhouse")
    with pytest.raises(VerificationError, match="receiver"):
        verify_envelope(env, G)
    assert verify_envelope(env, G, require_all_signers=False).record.handoff_to == "slaughterhouse"
    both = cosign(env, key("slaughterhouse"))
    assert verify_envelope(both, G).envelope.signers() == ("farm", "slaughterhouse")
    with pytest.raises(VerificationError, match="unexpected signer"):
        verify_envelope(cosign(both, key("retailer")), G)
    with pytest.raises(InputError, match="already carries"):
        cosign(both, key("farm"))


def test_one_signature_handoff_names_the_rule_and_the_codes():
    ev = object_event(["urn:x:1", "urn:x:2"], biz_step="shipping", action="OBSERVE")
    env = signed(event=ev, handoff_to="slaughterhouse")
    with pytest.raises(VerificationError) as info:
        verify_envelope(env, G)
    assert type(info.value) is VerificationError  # UNAUTHENTICATED: a signature is missing
    assert str(info.value) == (
        "rule handoff-signatures: missing signature of the receiver 'slaughterhouse' "
        "(codes urn:x:1, urn:x:2)"
    )


def test_role_per_biz_step():
    auditor_env = signed(author="auditor")  # auditors only read
    with pytest.raises(MembershipError, match="may not record"):
        verify_envelope(auditor_env, G)
    inspection = object_event(["u:1"], "inspecting", "OBSERVE")
    verify_envelope(signed(author="inspector", event=inspection), G)


def test_size_limit():
    env = signed(attributes={"blob": "x" * 70000})
    with pytest.raises(InputError, match="limit"):
        verify_envelope(env, G)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(extra=1),
        lambda d: d.update(category="cars"),
        lambda d: d.update(nonce="short"),
        lambda d: d["event"].update(type="FooEvent"),
        lambda d: d["event"].pop("eventTime"),
        lambda d: d["event"].pop("action"),
        lambda d: d.update(handoff={"from": "retailer", "to": "farm"}),
    ],
)
def test_malformed_records_refused(mutate):
    d = make_record(G, "farm", object_event(["u:1"])).to_dict()
    mutate(d)
    with pytest.raises(InputError):
        TraceRecord.from_dict(d)


EVENTS = list(epcis_events())


@pytest.mark.parametrize(("name", "event"), EVENTS, ids=[n for n, _ in EVENTS])
def test_every_shared_epcis_event_signs_and_verifies(name, event):
    env = signed(event=event)
    v = verify_envelope(Envelope.from_json(env.to_json()), G)
    assert json.loads(env.payload)["event"] == event, name
    assert v.record.event_type == event["type"]


@settings(max_examples=100, derandomize=True)
@given(
    codes=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=8),
    attrs=st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=5),
)
def test_records_round_trip_property(codes, attrs):
    env = signed(event=object_event(codes), attributes=attrs or None)
    v = verify_envelope(Envelope.from_json(env.to_json()), G)
    assert v.record.codes() == list(dict.fromkeys(codes))
    assert (v.record.attributes or {}) == attrs
