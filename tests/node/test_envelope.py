import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.envelope import Envelope, Signature, envelope_leaf_bytes, pae
from node.errors import InputError


def test_pae_matches_dsse_published_example():
    # DSSE protocol.md, "Test Vectors"
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_dsse_example_envelope_parses():
    doc = {
        "payload": "aGVsbG8gd29ybGQ=",
        "payloadType": "http://example.com/HelloWorld",
        "signatures": [
            {
                "sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJ"
                "PcIAriEGAHTVeCUjW2JIZA=="
            }
        ],
    }
    env = Envelope.from_json_dict(doc)
    assert env.payload == b"hello world"
    assert env.signed_bytes() == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert len(env.signatures[0].sig) == 64


def test_url_safe_base64_accepted():
    raw = bytes(range(250, 256)) * 3
    doc = {"payloadType": "t", "payload": base64.urlsafe_b64encode(raw).decode(), "signatures": []}
    assert Envelope.from_json_dict(doc).payload == raw


def test_non_canonical_base64_refused():
    """Regression: base64 with non-zero padding bits ("aGk=" and "aGl=" both decode to b"hi")
    was accepted, so one envelope had several JSON spellings."""
    assert base64.b64decode("aGl=") == b"hi"
    for payload in ("aGl=", "aGm=", "aGn="):
        with pytest.raises(InputError, match="'payload' is not canonical base64"):
            Envelope.from_json_dict({"payloadType": "t", "payload": payload, "signatures": []})
    sig = base64.b64encode(bytes(64)).decode()  # "AAAA...AA==": last char carries pad bits
    bad_sig = sig[:-3] + "B=="
    assert base64.b64decode(bad_sig) == bytes(64)
    doc = {"payloadType": "t", "payload": "aGk=", "signatures": [{"keyid": "a", "sig": bad_sig}]}
    with pytest.raises(InputError, match=r"'signatures\[0\]\.sig' is not canonical base64"):
        Envelope.from_json_dict(doc)
    url = base64.urlsafe_b64encode(b"\xfb\xff").decode()  # "-_8=": URL-safe alphabet
    with pytest.raises(InputError, match="not canonical"):
        Envelope.from_json_dict({"payloadType": "t", "payload": url[:-2] + "9=", "signatures": []})
    assert Envelope.from_json_dict({"payloadType": "t", "payload": url, "signatures": []})


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"payloadType": "t"},
        {"payloadType": "t", "payload": "***"},
        {"payloadType": "t", "payload": "", "signatures": {}},
        {"payloadType": "t", "payload": "", "signatures": [{"keyid": "a", "sig": "%%"}]},
        {"payloadType": "t", "payload": "", "extra": 1},
        {"payloadType": "", "payload": ""},
    ],
)
def test_malformed_envelopes_refused(doc):
    with pytest.raises(InputError):
        Envelope.from_json_dict(doc)


sigs = st.lists(
    st.builds(Signature, st.text(min_size=1, max_size=20), st.binary(min_size=64, max_size=64)),
    max_size=4,
    unique_by=lambda s: s.keyid,
)


@settings(max_examples=200, derandomize=True)
@given(payload=st.binary(max_size=2000), ptype=st.text(min_size=1, max_size=60), sigs=sigs)
def test_json_round_trip(payload, ptype, sigs):
    env = Envelope(payload, ptype, tuple(sigs))
    back = Envelope.from_json(env.to_json())
    assert back == env
    assert back.record_id == env.record_id


@settings(max_examples=200, derandomize=True)
@given(a=st.binary(max_size=100), b=st.binary(max_size=100), t=st.text(min_size=1, max_size=10))
def test_pae_is_injective(a, b, t):
    if a != b:
        assert pae(t, a) != pae(t, b)
        assert envelope_leaf_bytes(Envelope(a, t)) != envelope_leaf_bytes(Envelope(b, t))


def test_leaf_bytes_cover_signatures():
    e1 = Envelope(b"x", "t", (Signature("a", b"1" * 64),))
    e2 = Envelope(b"x", "t", (Signature("a", b"2" * 64),))
    e3 = Envelope(b"x", "t", (Signature("a", b"1" * 64), Signature("b", b"1" * 64)))
    leaves = {envelope_leaf_bytes(e) for e in (e1, e2, e3)}
    assert len(leaves) == 3
