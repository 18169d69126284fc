"""The record payload decoder (``node.payload_json``): the fast path and the standard
library agree, repeated keys are refused, and the nesting limit is exact and does not
depend on how deep the caller's stack is."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import payload_json
from node.envelope import Envelope
from node.errors import InputError
from node.payload_json import MAX_DEPTH, decode, depth_within
from node.records import TraceRecord, make_record, sign_record, verify_envelope
from tests.fixtures import genesis, key, object_event

G = genesis()

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def _nested(depth: int, leaf: Any = 0) -> Any:
    v = leaf
    for _ in range(depth):
        v = [v]
    return v


_SPELLINGS = [
    {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False},  # canonical
    {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": True},
    {"sort_keys": False, "separators": (", ", ": ")},
    {"sort_keys": True, "indent": 1},
]


@settings(max_examples=300, derandomize=True)
@given(
    doc=st.dictionaries(st.text(max_size=6), _values, max_size=5),
    spelling=st.sampled_from(range(4)),
)
def test_decode_equals_the_standard_library(doc: dict[str, Any], spelling: int) -> None:
    payload = json.dumps(doc, **_SPELLINGS[spelling]).encode()  # type: ignore[arg-type]
    assert decode(payload) == json.loads(payload)


@settings(max_examples=300, derandomize=True)
@given(value=_values, noise=st.text(alphabet='[]{}\\"', max_size=8))
def test_depth_is_exact_and_ignores_brackets_in_strings(value: Any, noise: str) -> None:
    doc = {"v": value, "s": noise}
    payload = json.dumps(doc).encode()
    d = _depth(doc)
    assert depth_within(payload, d)
    assert not depth_within(payload, d - 1)


def test_canonical_and_other_spellings_refuse_a_repeated_key() -> None:
    for payload in (b'{"a":1,"a":2}', b'{"a": 1, "b": {"c": 1, "c": 1}}'):
        with pytest.raises(InputError, match="duplicate key"):
            decode(payload)


@pytest.mark.parametrize(
    "payload",
    [b'{"n":1e16}', b'{"n":-0}', b'{"s":"\\ud800"}', b'{"n":123456789012345678901234567890}'],
    ids=["exponent", "negative-zero", "lone-surrogate", "big-int"],
)
def test_values_the_fast_path_writes_differently_match_the_standard_library(payload: bytes) -> None:
    assert decode(payload, strict=False) == json.loads(payload)  # (strict refuses a surrogate)


def test_nesting_limit_is_exact() -> None:
    ok = json.dumps({"x": _nested(MAX_DEPTH - 1)}).encode()
    assert decode(ok)["x"] == _nested(MAX_DEPTH - 1)
    deep = json.dumps({"x": _nested(MAX_DEPTH)}).encode()
    with pytest.raises(InputError, match=f"nests deeper than {MAX_DEPTH} levels"):
        decode(deep)


def test_very_deep_payload_is_bad_input_not_a_recursion_error() -> None:
    """Regression: 5,000 nested arrays raised RecursionError out of the record parser (a
    batch holding one such record failed as a whole, and a proposed block holding one
    would, by the code, stop a validator's consensus loop)."""
    payload = b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(InputError, match="nests deeper"):
        decode(payload)


@pytest.mark.parametrize(
    ("inside", "depth"),
    [(r"\\", 70), (r"\\\"", 70), (r"\"[", 70), (r"\\\\\"]", 63)],
    ids=["escaped-backslash", "escaped-backslash-then-quote", "escaped-quote", "odd-run"],
)
def test_escapes_inside_strings_are_read_as_json_reads_them(inside: str, depth: int) -> None:
    text = '{"s":"' + inside + '","x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    json.loads(text)  # valid JSON, so the verdict is exact
    assert depth_within(text.encode()) is (depth <= MAX_DEPTH)


def test_an_unterminated_string_of_escaped_quotes_is_checked_in_linear_time() -> None:
    """Regression: a regex with an alternation re-scanned to the end from every quote, so
    60,000 escaped quotes took seconds; this is a bad payload any member could sign."""
    payload = b'{"a":' + b"[" * 100 + b'"' + b'\\"' * 60_000
    assert not depth_within(payload)  # not JSON: refused either way
    with pytest.raises(InputError):
        decode(payload)


def test_the_verdict_does_not_depend_on_the_callers_stack() -> None:
    payload = json.dumps({"x": _nested(MAX_DEPTH - 1)}).encode()
    limit = sys.getrecursionlimit()

    def deep_call(n: int) -> Any:
        return decode(payload) if n == 0 else deep_call(n - 1)

    assert deep_call(limit - 200)["x"] == _nested(MAX_DEPTH - 1)


def _signed_payload(payload: bytes) -> Envelope:
    env = Envelope(payload)
    return env.with_signature("farm", key("farm").sign(env.signed_bytes()))


def test_a_signed_deep_record_is_refused_at_verification_and_in_a_block() -> None:
    good = sign_record(make_record(G, "farm", object_event(["urn:x:1"])), key("farm"))
    deep = good.payload.replace(
        b'"author"', b'"attributes":{"x":' + b"[" * 900 + b"]" * 900 + b'},"author"'
    )
    env = _signed_payload(deep)
    with pytest.raises(InputError, match="nests deeper"):
        verify_envelope(env, G)
    with pytest.raises(InputError, match="nests deeper"):
        TraceRecord.from_payload(deep)


def test_make_record_refuses_what_nodes_would_refuse() -> None:
    with pytest.raises(InputError, match="nests deeper"):
        make_record(G, "farm", object_event(["urn:x:1"]), attributes={"x": _nested(MAX_DEPTH)})
    with pytest.raises(InputError, match="nests deeper"):
        make_record(G, "farm", object_event(["urn:x:1"]), attributes={"x": _nested(3000)})
    rec = make_record(
        G, "farm", object_event(["urn:x:1"]), attributes={"x": _nested(MAX_DEPTH - 3)}
    )
    assert payload_json.depth_within(rec.to_payload())


def test_every_shared_epcis_event_is_well_within_the_limit() -> None:
    from tests.fixtures import epcis_events

    deepest = max(_depth(e) for _, e in epcis_events())
    assert deepest + 1 <= MAX_DEPTH // 4


def test_every_shared_epcis_event_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The payloads ``sign_record`` writes re-encode byte for byte with ``orjson``, so the
    standard library's decoder (the slow path) is never reached for them."""
    from tests.fixtures import epcis_events

    class Refuse:
        def decode(self, text: str) -> Any:
            raise AssertionError("the slow path was taken")

    payloads = [make_record(G, "farm", e).to_payload() for _, e in epcis_events()]
    monkeypatch.setattr(payload_json, "_DECODER", Refuse())
    for p in payloads:
        assert decode(p) == json.loads(p)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":[1,-Infinity]}',
        b'{"a": 1e400}',
        b'{"b":{"c":-1E+999}}',
    ],
)
def test_strict_refuses_numbers_json_does_not_have(payload: bytes) -> None:
    # Python's json read these (NaN, infinities), so such a record was committed and its
    # export was not JSON; a certified block's record is read with strict=False (replay)
    with pytest.raises(InputError, match=r"not a JSON number|out of range for JSON"):
        decode(payload)
    assert decode(payload, strict=False) == json.loads(payload)


def test_strict_keeps_large_finite_numbers() -> None:
    assert decode(b'{"a": 1.5e308, "b": -2.2e-308, "c": 10000000000000000000000}') == {
        "a": 1.5e308,
        "b": -2.2e-308,
        "c": 10**22,
    }


def test_a_record_with_nan_is_refused_at_admission_and_replays_if_committed() -> None:
    from node.chain import parse_trusted
    from node.convert import envelope_to_proto

    g = genesis()
    rec = make_record(g, "farm", object_event(["u:1"]))
    env = sign_record(rec, key("farm"))
    bad = Envelope(
        env.payload.replace(b'"action":"ADD"', b'"action":"ADD","x:v":NaN'), env.payload_type
    )
    bad = bad.with_signature("farm", key("farm").sign(bad.signed_bytes()))
    with pytest.raises(InputError, match="NaN is not a JSON number"):
        verify_envelope(bad, g)
    assert math.isnan(verify_envelope(bad, g, committed=True).record.event["x:v"])
    assert parse_trusted(envelope_to_proto(bad)).record_id == bad.record_id


@pytest.mark.parametrize(
    "where", [b'"attributes":{"note":"ok\\ud800"},', b'"attributes":{"n":"\\udfff"},']
)
def test_a_new_record_with_an_unpaired_surrogate_is_refused_a_committed_one_reads(where) -> None:
    # QA: a member's own client committed "\ud800" in an attribute; every `record get
    # --json` and `epcis export` of that code then failed with a traceback
    good = sign_record(make_record(G, "farm", object_event(["urn:x:1"])), key("farm"))
    bad = good.payload.replace(b'"author"', where + b'"author"')
    with pytest.raises(InputError, match="not Unicode"):
        verify_envelope(_signed_payload(bad), G)
    assert TraceRecord.from_payload(bad, strict=False).attributes  # a logged one replays
    paired = good.payload.replace(b'"author"', b'"attributes":{"n":"\\ud83d\\ude00"},"author"')
    assert TraceRecord.from_payload(paired).attributes == {"n": "\U0001f600"}


def test_json_output_escapes_an_unpaired_surrogate_and_keeps_other_text() -> None:
    from node.textrules import json_text

    assert json_text({"a": "中"}) == '{"a": "中"}'
    assert json_text({"a": "中\ud800"}) == '{"a": "\\u4e2d\\ud800"}'
    json_text({"a": "\ud800"}).encode("utf-8")  # writable


def test_a_number_of_too_many_digits_is_named() -> None:
    # QA-Y L4: the refusal quoted Python's "use sys.set_int_max_str_digits()"
    import sys

    import pytest

    from node.errors import InputError
    from node.payload_json import decode

    with pytest.raises(InputError) as e:
        decode(b'{"x":' + b"9" * 5000 + b"}")
    assert str(e.value) == (
        f"record: a number in the payload has more than {sys.get_int_max_str_digits()} digits"
    )
