import datetime as dt
import json
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.chain import parse_trusted
from node.convert import envelope_to_proto
from node.envelope import Envelope, Signature
from node.epcis import normalize_code
from node.errors import (
    ChainMismatchError,
    InputError,
    MembershipError,
    RulePermissionError,
    VerificationError,
)
from node.keys import KeyPair
from node.records import (
    EVENT_TYPES,
    TraceRecord,
    cosign,
    is_date_time,
    lookalike_problem,
    make_record,
    sign_record,
    verify_envelope,
)
from node.textrules import control_char
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


def test_every_payload_bit_flip_fails_verification():
    """Signatures are checked before the payload is parsed (DSSE): a flipped bit anywhere in
    the payload is a failed verification (exit 3), never "payload is not UTF-8 JSON"."""
    env = signed()
    assert len(env.payload) * 8 > 2000
    for bit in range(len(env.payload) * 8):
        bad = replace(env, payload=_flip(env.payload, bit))
        with pytest.raises(VerificationError, match="signature by 'farm': invalid"):
            verify_envelope(bad, G)


def test_every_signature_bit_flip_fails():
    ev = object_event(["urn:x:1"], biz_step="shipping", action="OBSERVE")
    env = cosign(signed(event=ev, handoff_to="slaughterhouse"), key("slaughterhouse"))
    for i, sig in enumerate(env.signatures):
        for bit in range(len(sig.sig) * 8):
            sigs = list(env.signatures)
            sigs[i] = Signature(sig.keyid, _flip(sig.sig, bit))
            with pytest.raises(VerificationError, match=f"signature by {sig.keyid!r}: invalid"):
                verify_envelope(replace(env, signatures=tuple(sigs)), G)


def test_unknown_keyid_is_membership_error_before_parsing():
    env = replace(signed(), payload=b"not json at all")
    with pytest.raises(VerificationError, match="invalid"):
        verify_envelope(env, G)
    stranger = Envelope(b"not json", env.payload_type, (Signature("stranger", b"\0" * 64),))
    with pytest.raises(MembershipError, match="'stranger': not a member"):
        verify_envelope(stranger, G)


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


def test_handoff_to_non_member_is_named_before_the_missing_signature():
    ev = object_event(["urn:x:1"], biz_step="shipping", action="OBSERVE")
    env = signed(event=ev, handoff_to="nobody")
    for require_all in (True, False):
        with pytest.raises(MembershipError, match="handoff receiver 'nobody' is not a member"):
            verify_envelope(env, G, require_all_signers=require_all)


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
    with pytest.raises(RulePermissionError, match=r"^rule role: author 'auditor' "):
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


@pytest.mark.parametrize(
    "when",
    [
        "2026-03-01T08:00:00+08:00",
        "2026-03-01T00:00:00.000Z",
        "2005-04-03T20:33:31.116-06:00",
        "2016-12-31t23:59:60z",  # a leap second; RFC 3339 allows lower-case t and z
        "2026-02-28T23:59:59.123456789+14:00",
    ],
)
def test_event_time_accepts_rfc3339_date_times(when):
    assert is_date_time(when)
    make_record(G, "farm", dict(object_event(["u:1"]), eventTime=when))


@pytest.mark.parametrize(
    "when",
    [
        "yesterday",
        "2026-03-01",  # a date: no time
        "2026-03-01T08:00:00",  # no UTC offset
        "2026-03-01 08:00:00Z",  # a space for the T
        "2026-02-30T08:00:00Z",  # no such day
        "2026-13-01T08:00:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T08:60:00Z",
        "2026-03-01T08:00:61Z",
        "2026-03-01T08:00:00+24:00",
        "2026-03-01T08:00:00.Z",
        "2026-03-01T08:00:00.1234567890Z",  # more than nanoseconds
        "２０２６-03-01T08:00:00Z",  # full-width digits
        "2026-03-01T08:00:00Z\n",
    ],
)
def test_event_time_refuses_what_is_not_one(when):
    # "yesterday" was committed and exported as EPCIS, which it is not
    assert not is_date_time(when)
    with pytest.raises(InputError, match=r"eventTime.*RFC 3339"):
        make_record(G, "farm", dict(object_event(["u:1"]), eventTime=when))
    # signed by hand (no make_record): refused at verification, step 3; a certified block
    # holding it (a log written before the rule) still replays
    draft = replace(
        make_record(G, "farm", object_event(["u:1"])),
        event=dict(object_event(["u:1"]), eventTime=when),
    )
    env = sign_record(draft, key("farm"))
    with pytest.raises(InputError, match=r"eventTime.*RFC 3339"):
        verify_envelope(env, G)
    assert parse_trusted(envelope_to_proto(env)).record.event_time == when


@settings(max_examples=200, derandomize=True, database=None)
@given(
    st.datetimes(timezones=st.timezones()),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)
def test_event_time_accepts_every_python_aware_datetime(when, spec):
    text = when.isoformat(timespec=spec)
    assert is_date_time(text) == (len(text) - text.rfind(":") == 3 and text[-6] in "+-"), text


EVENTS = list(epcis_events())


def test_the_shared_epcis_examples_are_there():
    """Without ../shared/epcis the parametrized test below would collect nothing and pass."""
    assert len(EVENTS) >= 47, "../shared/epcis/JSON is missing or incomplete"
    assert {e["type"] for _, e in EVENTS} == set(EVENT_TYPES)


@pytest.mark.parametrize(("name", "event"), EVENTS, ids=[n for n, _ in EVENTS])
def test_every_shared_epcis_event_signs_and_verifies(name, event):
    env = signed(event=event)
    v = verify_envelope(Envelope.from_json(env.to_json()), G)
    assert json.loads(env.payload)["event"] == event, name
    assert v.record.event_type == event["type"]


@settings(max_examples=100, derandomize=True)
@given(
    codes=st.lists(
        st.text(min_size=1, max_size=40).filter(lambda c: not lookalike_problem(c)),
        min_size=1,
        max_size=8,
        unique_by=normalize_code,  # a code named twice is refused
    ),
    attrs=st.dictionaries(
        st.text(max_size=10).filter(lambda n: not control_char(n)),  # (names: one line)
        st.text(max_size=30),
        max_size=5,
    ),
)
def test_records_round_trip_property(codes, attrs):
    env = signed(event=object_event(codes), attributes=attrs or None)
    v = verify_envelope(Envelope.from_json(env.to_json()), G)
    assert v.record.codes() == list(dict.fromkeys(codes))
    assert (v.record.attributes or {}) == attrs


@pytest.mark.parametrize(
    ("dup", "key_name"),
    [
        (lambda p: p.replace(b'"author":"farm"', b'"author":"retailer","author":"farm"'), "author"),
        (lambda p: p.replace(b'"type":"ObjectEvent"', b'"type":"X","type":"ObjectEvent"'), "type"),
    ],
)
def test_duplicate_json_keys_in_payload_refused(dup, key_name):
    """Regression: a payload with a repeated key was accepted (the last value won)."""
    payload = dup(signed().payload)
    assert payload != signed().payload
    env = Envelope(payload).with_signature(
        "farm", key("farm").sign(Envelope(payload).signed_bytes())
    )
    with pytest.raises(InputError, match=f"duplicate key '{key_name}'"):
        verify_envelope(env, G)


@pytest.mark.parametrize(
    ("field", "value", "word"),
    [
        ("bizStep", "RECALLING", "recalling"),
        ("bizStep", "Recalling", "recalling"),
        ("bizStep", " recalling", "recalling"),
        ("bizStep", "recalling ", "recalling"),
        ("bizStep", "http://ref.gs1.org/cbv/BizStep-recalling", "recalling"),
        ("bizStep", "https://ref.gs1.org/cbv/BizStep-RECALLING", "recalling"),
        ("bizStep", "https://ref.gs1.org/cbv/bizstep-recalling", "recalling"),
        ("bizStep", "URN:EPCGLOBAL:CBV:BIZSTEP:RECALLING", "recalling"),
        ("disposition", "DESTROYED", "destroyed"),
        ("disposition", "http://ref.gs1.org/cbv/Disp-recalled", "recalled"),
        ("disposition", "urn:epcglobal:cbv:disp:Retail_Sold", "retail_sold"),
    ],
)
def test_a_cbv_lookalike_is_refused(field, value, word):
    # "RECALLING" by an enterprise was committed: the roles and custody rules read only
    # CBV's spellings, so it was no recall, yet trace history showed "recalling"
    event = dict(object_event(["u:1"], "inspecting", "OBSERVE"), **{field: value})
    with pytest.raises(InputError, match=f"^event: {field} .* is not how CBV spells '{word}'"):
        make_record(G, "farm", event)


def test_ilmd_only_where_things_are_made():
    # QA: an OBSERVE carrying a lot in its ilmd was accepted, and its lot read by no one
    lot = {"cbvmda:lotNumber": "L1"}
    observe = dict(object_event(["u:1"], "inspecting", "OBSERVE"), ilmd=lot)
    with pytest.raises(InputError, match=r"'ilmd' .* an ObjectEvent ADD or a TransformationEvent"):
        make_record(G, "farm", observe)
    made = dict(object_event(["u:1"], "commissioning", "ADD"), ilmd=lot)
    assert make_record(G, "farm", made).event["ilmd"] == lot


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bizStep", "recalling"),
        ("bizStep", "urn:epcglobal:cbv:bizstep:recalling"),
        ("bizStep", "https://ref.gs1.org/cbv/BizStep-recalling"),
        ("bizStep", "https://example.org/steps/Recalling-Lot"),  # a custom step: an extension
        ("bizStep", "urn:example:bizstep:RECALLING"),
        ("disposition", "recalled"),
        ("disposition", "urn:epcglobal:cbv:disp:retail_sold"),
        ("disposition", "https://ref.gs1.org/cbv/Disp-destroyed"),
    ],
)
def test_cbv_spellings_and_custom_uris_pass(field, value):
    event = dict(object_event(["u:1"], "inspecting", "OBSERVE"), **{field: value})
    assert make_record(G, "farm", event).event[field] == value


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("bizStep", 123, "'bizStep' must be a string"),
        ("disposition", ["recalled"], "'disposition' must be a string"),
        ("eventTimeZoneOffset", "+8:00", "'eventTimeZoneOffset'"),
        ("eventTimeZoneOffset", "+14:30", "'eventTimeZoneOffset'"),
        ("eventTimeZoneOffset", 8, "'eventTimeZoneOffset'"),
    ],
)
def test_event_field_types_are_checked(field, value, why):
    event = dict(object_event(["u:1"]), **{field: value})
    with pytest.raises(InputError, match=why):
        make_record(G, "farm", event)


@pytest.mark.parametrize("where", ["readPoint", "bizLocation"])
def test_a_malformed_gs1_location_is_refused(where):
    # QA-Q: a readPoint SGLN of 8 digits was committed
    ev = object_event(["urn:epc:id:sgtin:6901234.000001.3005"])
    with pytest.raises(InputError, match=f"{where}.id .* is not a valid SGLN EPC URN"):
        make_record(G, "farm", {**ev, where: {"id": "urn:epc:id:sgln:6901234.1.0"}})
    make_record(G, "farm", {**ev, where: {"id": "urn:epc:id:sgln:0614141.07346.1234"}})
    make_record(G, "farm", {**ev, where: {"id": "local:farm:barn-2"}})  # a local place


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("bizStep", "comissioning", "is not a CBV 2.0 bizStep (did you mean 'commissioning'?)"),
        ("disposition", "fresh", "is not a CBV 2.0 disposition: a bare word must be CBV's"),
    ],
)
def test_a_bare_word_that_is_no_cbv_word_is_refused(field, value, why):
    # QA-Q: a misspelt bizStep committed, and commissioned the codes
    ev = object_event(["urn:epc:id:sgtin:6901234.000001.3005"])
    with pytest.raises(InputError, match=re.escape(why)):
        make_record(G, "farm", {**ev, field: value})
    make_record(G, "farm", {**ev, field: f"https://example.com/{field.lower()}/{value}"})


def test_codes_refused_only_when_made_stay_usable_once_committed():
    # review: an element string or an EPC URN of no scheme, committed before the rule, could
    # no longer be recalled, sold or destroyed; and "(2024)-batch-7" read as an element string
    for code in ("(01)06901234123456(21)A001", "urn:epc:id:foo:1.2.3"):
        recall = {**object_event([code], "recalling", "OBSERVE"), "disposition": "recalled"}
        make_record(G, "regulator", recall)
        with pytest.raises(InputError):
            make_record(G, "farm", object_event([code]))
    for local in ("(2024)-batch-7", "(12)pallet"):
        make_record(G, "farm", object_event([local]))
    made = object_event([])
    made = {**made, "type": "TransformationEvent", "inputEPCList": ["local:farm:a"],
            "outputEPCList": ["(01)06901234123456(21)A002"]}  # fmt: skip
    del made["epcList"], made["action"]
    with pytest.raises(InputError, match="write its Digital Link"):
        make_record(G, "farm", made)


def test_a_bare_step_of_the_genesis_permissions_table_is_the_consortiums_own():
    # review: a consortium that gave roles to its own bare step could no longer record it
    own = genesis(permissions=[("quarantining", ("enterprise",)), ("*", ("enterprise",))])
    ev = object_event(["urn:epc:id:sgtin:6901234.000001.3005"])
    make_record(own, "farm", {**ev, "bizStep": "quarantining"})
    with pytest.raises(InputError, match=r"not a CBV 2\.0 bizStep"):
        make_record(own, "farm", {**ev, "bizStep": "quarantinning"})


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("urn:qa2:pig:2\u200b", "a character that shows nothing"),
        ("urn:qa2:pig:\u2062" + "2", "a character that shows nothing"),
        ("urn:qa2:pig:\uff12", "plainer form"),  # a full-width 2
        ("lot-\ufb01sh-7", "plainer form"),  # the ligature fi
        ("URN:QA2:PIG:2", "not in lower case: write 'urn:qa2:PIG:2'"),
        ("urn:QA2:pig:2", "not in lower case: write 'urn:qa2:pig:2'"),
        ("URN:UUID:0d7c6b6e", "not in lower case: write 'urn:uuid:0d7c6b6e'"),
    ],
)
def test_a_lookalike_code_is_refused(code, why):
    # these were committed beside urn:qa2:pig:2, looking the same, with their own history
    with pytest.raises(InputError, match=why):
        make_record(G, "farm", object_event([code]))


@pytest.mark.parametrize(
    "code",
    ["urn:qa2:PIG:2", "猪肉-批次-7", "https://id.gs1.org/01/09506000134352/10/ABC", "Lot 7"],
)
def test_plain_codes_pass(code):
    # a URN's namespace-specific part is case-sensitive (RFC 8141): PIG is not pig
    assert make_record(G, "farm", object_event([code])).codes() == [code]


@pytest.mark.parametrize(
    ("field", "codes"),
    [
        ("epcList", ["urn:qa2:pig:2", "urn:qa2:pig:2"]),
        # the same SGTIN as an EPC URN and as its Digital Link
        (
            "epcList",
            [
                "urn:epc:id:sgtin:0614141.107346.2017",
                "https://id.gs1.org/01/10614141073464/21/2017",
            ],
        ),
        ("childEPCs", ["urn:qa2:pig:1", "urn:qa2:pig:2", "urn:qa2:pig:1"]),
    ],
)
def test_a_code_named_twice_in_one_list_is_refused(field, codes):
    # was committed, and exported as EPCIS that fails the schema's uniqueItems
    ev = object_event(["urn:qa2:parent:1"]) if field != "epcList" else object_event(codes)
    if field != "epcList":
        ev = {**ev, "type": "AggregationEvent", "parentID": "urn:qa2:case:1", field: codes}
        del ev["epcList"]
    with pytest.raises(InputError, match=f"{field} names .* twice"):
        make_record(G, "farm", ev)


@pytest.mark.parametrize(
    ("code", "why"),
    [
        # each was committed beside urn:epc:id:sgtin:6901234.000001.3005 as another code
        ("urn:epc:id:SGTIN:6901234.000001.3005", "capitals in its kind or scheme"),
        ("https://id.gs1.org/01/06901234000016/21/%33005", "percent-encodes '3'"),
        # and these as codes no scanner could read
        ("urn:epc:id:sgtin:garbage", "not a valid SGTIN EPC URN"),
        ("urn:epc:id:sgtin:6901234.00001.1001", "13 digits together"),  # 12 digits
        ("urn:epc:class:lgtin:6901234.0001.L1", "not a valid LGTIN EPC URN"),
        ("urn:epc:id:sscc:6903456.000000010", "not a valid SSCC EPC URN"),
        ("urn:epc:id:sgtin:6901234.000001.a b", "character set"),
        ("urn:epc:id:sgtin:6901234.000001.ABCDEFGHIJKLMNOPQRSTU", "1-20 characters"),
        ("https://id.gs1.org/01/06901234000017/21/1", "wrong check digit: 06901234000016"),
        ("https://example.com/00/123456789012345678", "SSCC with a wrong check digit"),
        ("https://id.gs1.org/414/123456789012", "a GLN has 13"),
        # a second QA pass: each of these was another key for an object already named
        ("https://id.gs1.org/01/09506000134352/21/A1%21", "percent-encodes '!' as '%21'"),
        ("https://id.gs1.org/01/09506000134352/21/A2%2f", "write '%2F'"),
        ("urn:epc:id:sgtin:9506000.013435.A3%2f", "write '%2F'"),
        ("https://id.gs1.org/01/09506000134352/21/A5%", "a '%' that starts no escape"),
        ("https://id.gs1.org/01/009506000134352/21/A4", "a GTIN of 15 digits"),
        ("http://example.com/01/009506000134352/21/A6", "a GTIN of 15 digits"),
        ("https://example.com/0%31/09506000134352/21/C3", "percent-encodes '1'"),
        # a third: unescaped characters an EPC URN escapes, and GS1 keys in other digits
        ("https://id.gs1.org/01/09506000134352/21/A&B", "write it as %26"),
        ("https://id.gs1.org/01/09506000134352/21/A<B", "write it as %3C"),
        ("urn:epc:id:sgtin:9506000.013435.A/B", "not key/value pairs"),
        ("urn:epc:id:sgtin:9506000.013435.A?B", "write it as %3F"),
        ("https://id.gs1.org/414/0614141123452/254/0", "leave out /254/0"),
        # Digital Links whose canonical form drops what tells two objects apart
        ("https://brand.example/253/x/01/09506000134352/21/A1", "names two GS1 keys (253 and 01)"),
        ("https://id.gs1.org/01/09506000134352/235/TPX1", "the qualifier 235"),
        ("https://id.gs1.org/01/09506000134352/21/S/21/T", "the qualifier 21 twice"),
        ("https://id.gs1.org/gtin/09506000134352/ser/A1", "the convenience name 'gtin'"),
        ("https://id.gs1.org/8003/00614141123453400", "GRAI with a wrong check digit"),
        # GS1 element strings, the text under a barcode (QA-Q: another company's GTIN and
        # serial so written passed as a local code, outside the GS1-prefix binding)
        (
            "(01)06901234123456(21)A001",
            "element string (the text under a barcode), which this ledger does not read as a "
            "GS1 key: write its Digital Link, 'https://id.gs1.org/01/06901234123456/21/A001'",
        ),
        ("(00)369034560000001014", "write its Digital Link, 'https://id.gs1.org/00/3690345600"),
        # EPC URNs of no Tag Data Standard scheme (QA-Q)
        ("urn:epc:id:lgtin:6901234.012345.LOTA2026", "a lot is urn:epc:class:lgtin:"),
        ("urn:epc:id:foo:1.2.3", "names no EPC scheme of GS1's Tag Data Standard"),
        ("urn:epc:class:sgtin:6901234.012345.1", "urn:epc:class: is followed by one of lgtin"),
        ("https://id.gs1.org/8003/00614141123452A B", "GRAI serial"),
        ("https://id.gs1.org/8004/0614141 A", "GIAI"),
        ("urn:epc:id:sgln:0614141.12345.", "not key/value pairs"),
        (
            "https://id.gs1.org/01/\u0660\u0669\u0665\u0660\u0666\u0660\u0660\u0660\u0661\u0663\u0664\u0663\u0665\u0662/21/A1",
            "not digits 0-9",
        ),
        (
            "https://example.com/01/\u0660\u0669\u0665\u0660\u0666\u0660\u0660\u0660\u0661\u0663\u0664\u0663\u0665\u0662/21/A1",
            "not digits 0-9",
        ),
    ],
)
def test_a_malformed_gs1_identifier_is_refused(code, why):
    with pytest.raises(InputError, match=re.escape(why)):
        make_record(G, "farm", object_event([code]))


@pytest.mark.parametrize(
    "code",
    [
        "urn:epc:id:sgtin:6901234.000001.3005",
        "https://id.gs1.org/01/06901234000016/21/3005",
        "https://id.gs1.org/01/06901234000016/21/A%2FB",  # a reserved character, encoded
        "urn:epc:id:sgtin:6901234.000001.%22q%22",
        "https://example.com/01/09506000134352/10/ABC?linkType=all",
        "urn:epc:id:sscc:6903456.0000000101",
        "urn:epc:id:gsrn:0614141.1234567890",  # a scheme not converted: passes as written
        "urn:epc:idpat:sgtin:4012345.098765.*",
        # refused by the first version of the rule, valid per GS1's Tag Data Standard
        "urn:epc:id:sgtin:9506000.013435.A.B",
        "urn:epc:id:sgtin:9506000.013435.A:B",
        "urn:epc:class:lgtin:9506000.013435.L.1",
        "urn:epc:idpat:sgtin:9506000.*.*",
        "https://id.gs1.org/01/09506000134352/21/A%26B",  # as the EPC URN escapes '&'
        "urn:epc:id:sgtin:9506000.013435.A%26B",
        "https://id.gs1.org/01/09506000134352/21/A2%2F",
        "urn:epc:id:sgln:0614141.12345.0",
        "urn:epc:id:sgln:0614141.12345.A1",
        "https://example.com/my/path/01/09506000134352/10/L9/21/S1",
        "https://example.com/parking/lot/5",  # not a Digital Link: an opaque URL code
        "urn:epc:id:grai:0614141.12345.400",
        "urn:epc:id:grai:0614141.12345.",  # a GRAI without a serial
        "urn:epc:id:giai:0614141.A1",
        "https://example.com/2026/01/report/x/y",
    ],
)
def test_well_formed_gs1_identifiers_pass(code):
    assert make_record(G, "farm", object_event([code])).codes() == [code]


def test_code_rules_read_a_fixed_unicode_version():
    # the running Python's unicodedata differs between 3.11 (Unicode 14) and 3.12 (15):
    # a character one of them calls a format character, the other unassigned, would split
    # the validators; node.textrules reads Unicode 3.2, frozen in every Python
    from node import textrules

    assert textrules.hidden_char("a\U00013439b") == "\U00013439"  # unassigned in 3.2
    assert textrules.hidden_char("a\u2066b") == "\u2066"  # a bidi isolate (Unicode 6.3)
    assert textrules.hidden_char("a\u200bb") == "\u200b"  # a space in 3.2, a format char later
    assert textrules.hidden_char("猪肉 批次") == ""
    assert textrules.plain("ｒｅ\u00adcalling\u200b") == "recalling"
    assert lookalike_problem("lot-\U0001e030") != ""


@pytest.mark.parametrize(
    "value", ["recalling\u200b", "ｒｅｃａｌｌｉｎｇ", "re\u00adcalling", "\u3000recalling"]
)
def test_a_cbv_lookalike_with_hidden_or_full_width_characters_is_refused(value):
    event = dict(object_event(["u:1"], "inspecting", "OBSERVE"), bizStep=value)
    with pytest.raises(InputError, match="is not how CBV spells 'recalling'"):
        make_record(G, "farm", event)


def test_an_envelope_from_another_consortium_is_told_as_such():
    # QA: an offer from another testnet (the same member names, other keys) was refused as
    # "signature by 'farm': invalid" with no word of the other chain
    from node.genesis import Genesis, Member

    other_farm = KeyPair.from_seed("farm", bytes([9]) * 32)
    g2 = Genesis.build("other-chain", [Member("farm", ("enterprise",), other_farm.public_key)],
                       ["farm"])  # fmt: skip
    env = sign_record(make_record(g2, "farm", object_event(["urn:x:1"])), other_farm)
    with pytest.raises(VerificationError) as err:
        verify_envelope(env, G)
    assert "signature by 'farm': invalid (the payload, unverified, names chain 'other-chain'" in (
        str(err.value)
    )
    assert "an envelope for another chain?" in str(err.value)


@pytest.mark.parametrize(
    ("attachment", "message"),
    [
        ({"name": "report\nsealed x: 1", "sha256": "0" * 64}, "control or invisible"),
        ({"name": "a\u200bb.pdf", "sha256": "0" * 64}, "control or invisible"),
        ({"name": "", "sha256": "0" * 64}, "is empty"),
        ({"name": "r.pdf", "sha256": "A" * 64}, "64 lower-case hex"),
    ],
)
def test_new_records_refuse_attachments_that_would_print_as_something_else(attachment, message):
    with pytest.raises(InputError, match=message):
        make_record(G, "farm", object_event(["urn:x:1"]), attachments=[attachment])


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("attributes", "备注\nattribute 结论"),  # a newline forged a line of `record get`
        ("attributes", "k\x1b[2J"),  # an escape sequence cleared the terminal
        ("attributes", "price\u202e"),  # a right-to-left override
        ("sealed", "x\u2028y"),
    ],
)
def test_an_attribute_name_with_a_control_or_format_character_is_refused(field, name):
    # (the name is judged before a sealed value's form)
    sealed, attributes = ({name: "v"}, None) if field == "sealed" else (None, {name: "v"})
    with pytest.raises(InputError, match="control or format character"):
        make_record(G, "farm", object_event(["u:1"]), sealed=sealed, attributes=attributes)


def test_attribute_names_in_any_script_pass():
    attrs = {"检验结论": "符合", "note with spaces": 1, "\U0001f969 cut": "ok"}
    assert make_record(G, "farm", object_event(["u:1"]), attributes=attrs).attributes == attrs


@pytest.mark.parametrize("field", ["epcList", "outputEPCList"])
def test_an_item_whose_digital_link_lot_is_not_the_ilmd_lot_is_refused(field):
    # QA: the item was linked to its Digital Link's lot only, so the recall of the ILMD's
    # lot (named in the very record) missed it
    item = "https://id.gs1.org/01/06902345000025/10/FM20260302/21/MIX1"
    ev: dict[str, object] = {
        **object_event([]),
        "ilmd": {"cbvmda:lotNumber": "FM20260301"},
    }
    ev.pop("epcList")
    if field == "outputEPCList":
        ev.update(type="TransformationEvent", inputEPCList=["u:in"], outputEPCList=[item])
        ev.pop("action")
    else:
        ev["epcList"] = [item]
    with pytest.raises(InputError, match="by its Digital Link, but the event's ILMD lotNumber"):
        make_record(G, "farm", ev)
    ev["ilmd"] = {"cbvmda:lotNumber": "FM20260302"}  # the same lot: fine
    assert make_record(G, "farm", ev)


@pytest.mark.parametrize(
    ("ilmd", "extra", "why"),
    [
        # QA: a quantityList lot's Digital Link against another ILMD lot committed
        ({"cbvmda:lotNumber": "LOTY"},
         {"quantityList": [{"epcClass": "https://id.gs1.org/01/06901234000306/10/LOTX"}]},
         "quantityList code"),
        # a lot number that is not text skipped the comparison
        ({"cbvmda:lotNumber": 1}, {}, "is not a string"),
        ({"cbvmda:lotNumber": ["LOT2"]}, {}, "is not a string"),
        # QA: these put a GS1 product's items in no lot, so the lot's recall missed them
        ({"cbvmda:lotNumber": "LX1 "}, {}, "is not 1-20 characters of GS1's"),
        ({"cbvmda:lotNumber": "批号LX1"}, {}, "is not 1-20 characters of GS1's"),
        ({"cbvmda:lotNumber": "L" * 21}, {}, "is not 1-20 characters of GS1's"),
        ({"cbvmda:lotNumber": ""}, {}, "is not 1-20 characters of GS1's"),
        # QA: two lot keys, the first taken without a word
        ({"cbvmda:lotNumber": "A1", "lotNumber": "B1"}, {}, "names two lot numbers"),
    ],
)  # fmt: skip
def test_an_ilmd_lot_that_another_lot_contradicts_is_refused(ilmd, extra, why):
    ev = {**object_event(["urn:epc:id:sgtin:6901234.000030.1"]), "ilmd": ilmd, **extra}
    with pytest.raises(InputError, match=why):
        make_record(G, "farm", ev)


def test_a_local_codes_lot_number_is_free_text():
    # a lot number only names a GS1 lot for a GTIN's items; a local code's is master data
    ev = {**object_event(["local:farm:pig-1"]), "ilmd": {"cbvmda:lotNumber": "批号 7"}}
    assert make_record(G, "farm", ev)


@settings(max_examples=400, derandomize=True)
@given(
    st.datetimes(min_value=dt.datetime(1000, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.sampled_from(["", ".5", ".123", ".123456", ".1234567"]),
    st.sampled_from(["Z", "z", "+08:00", "-05:30", "+00:00", "-23:59"]),
    st.sampled_from(["T", "t"]),
    st.booleans(),
)
def test_event_time_ms_reads_common_spellings_as_its_general_path(when, frac, zone, t, leap):
    """``event_time_ms`` reads the common spellings with ``fromisoformat``; the general path
    (leap seconds, a lower-case t or z, odd fraction lengths) must give the same instant."""
    from node.records import _DATE_TIME, _event_time_ms, event_time_ms

    sec = "60" if leap else f"{when.second:02d}"
    text = f"{when:%Y-%m-%d}{t}{when:%H:%M}:{sec}{frac}{zone}"
    m = _DATE_TIME.fullmatch(text)
    assert m is not None, text
    try:
        general = _event_time_ms(text, m)
    except (OverflowError, OSError):  # (a year at the edge, east or west of UTC)
        return
    assert event_time_ms(text) == general, text
