"""Sealed attributes (``node.sealed``): who can open them, and what is refused."""

import base64

import pytest

from node.errors import InputError, VerificationError
from node.genesis import Member
from node.keys import KeyPair
from node.records import check_new_record, make_record
from node.sealed import (
    MAX_RECIPIENTS,
    binding,
    open_sealed,
    private_key,
    recipient_key,
    seal,
    seal_attributes,
    seal_problem,
)
from tests.fixtures import genesis as make_genesis
from tests.fixtures import object_event

FARM = KeyPair.from_seed("farm", bytes([1]) * 32)
REG = KeyPair.from_seed("regulator", bytes([2]) * 32)
OTHER = KeyPair.from_seed("other", bytes([3]) * 32)
CODE = ["urn:epc:id:sgtin:6901234.012345.1001"]
AAD = binding("ab" * 32, "farm", "price")


@pytest.fixture(scope="module")
def genesis():
    return make_genesis()


def member(key: KeyPair, x25519: bytes = b"") -> Member:
    return Member(key.name, ("enterprise",), key.public_key, x25519_key=x25519)


def test_every_recipient_opens_the_value_and_no_one_else():
    keys = [recipient_key(member(FARM)), recipient_key(member(REG))]
    text = seal({"price": 12.5, "note": "批次 7"}, keys, AAD)
    want = (True, {"note": "批次 7", "price": 12.5})
    for key in (FARM, REG):
        assert open_sealed(text, private_key(key), AAD) == want
    assert open_sealed(text, private_key(OTHER), AAD) == (False, None)


def test_sealing_twice_gives_different_bytes():
    keys = [recipient_key(member(REG))]
    # a fresh file key, nonce and ephemeral key each time
    assert seal("x", keys, AAD) != seal("x", keys, AAD)


def test_a_genesis_x25519_key_is_used_instead_of_the_signing_key():
    separate = bytes(private_key(OTHER).public_key)
    text = seal("x", [recipient_key(member(REG, x25519=separate))], AAD)
    assert open_sealed(text, private_key(REG), AAD) == (False, None)
    assert open_sealed(text, private_key(OTHER), AAD) == (True, "x")


def test_a_damaged_body_is_an_error_for_its_recipient():
    raw = bytearray(base64.b64decode(seal("secret", [recipient_key(member(REG))], AAD)))
    raw[-1] ^= 1
    damaged = base64.b64encode(bytes(raw)).decode()
    assert seal_problem(damaged) == ""  # well formed: only a recipient can tell
    with pytest.raises(VerificationError, match="does not decrypt"):
        open_sealed(damaged, private_key(REG), AAD)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"\x02\x01" + bytes(200)).decode(), "not a version-1 sealed value"),
        (base64.b64encode(b"\x01\x00" + bytes(200)).decode(), "0 recipients"),
        (base64.b64encode(b"\x01\x02" + bytes(100)).decode(), "truncated"),
    ],
)
def test_malformed_values_are_named(text, problem):
    assert problem in seal_problem(text)
    with pytest.raises(InputError):
        open_sealed(text, private_key(REG), AAD)


def test_recipient_count_is_bounded():
    with pytest.raises(InputError, match="1 to 16 recipients"):
        seal("x", [], AAD)
    with pytest.raises(InputError, match="1 to 16 recipients"):
        seal("x", [recipient_key(member(REG))] * (MAX_RECIPIENTS + 1), AAD)


def test_seal_attributes_seals_for_the_author_too_and_names_a_non_member(genesis):
    author, regulator = "farm", "regulator"
    sealed = seal_attributes(genesis, author, [regulator], {"price": 3})
    assert set(sealed) == {"price"}
    raw = base64.b64decode(sealed["price"])
    assert raw[1] == 2  # the author and the regulator, once each
    with pytest.raises(InputError, match="'nobody' is not a member"):
        seal_attributes(genesis, author, ["nobody"], {"price": 3})


def test_new_records_refuse_malformed_or_shadowing_sealed_values(genesis):
    author = "farm"
    ok = seal_attributes(genesis, author, [], {"price": 3})
    make_record(genesis, author, object_event(CODE), sealed=ok)  # accepted
    with pytest.raises(InputError, match="sealed attribute 'price' is not base64"):
        make_record(genesis, author, object_event(CODE), sealed={"price": "??"})
    with pytest.raises(InputError, match="'price' is both public and sealed"):
        make_record(genesis, author, object_event(CODE), attributes={"price": 1}, sealed=ok)
    with pytest.raises(InputError, match="needs a name"):
        make_record(genesis, author, object_event(CODE), sealed={"": ok["price"]})
    record = make_record(genesis, author, object_event(CODE), sealed=ok)
    check_new_record(record)


def test_a_value_opens_only_under_its_own_chain_author_and_name():
    # QA: a ciphertext copied into another member's record, or under another name, opened
    # cleanly: the recipient could not tell a replayed or relabelled value
    text = seal(12.5, [recipient_key(member(REG))], AAD)
    assert open_sealed(text, private_key(REG), AAD) == (True, 12.5)
    for other in (
        binding("ab" * 32, "distributor", "price"),
        binding("ab" * 32, "farm", "discount_pct"),
        binding("cd" * 32, "farm", "price"),
    ):
        with pytest.raises(VerificationError, match="copied from another record or attribute"):
            open_sealed(text, private_key(REG), other)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"x": -float("inf")}])
def test_a_value_that_is_not_finite_json_is_refused(value):
    # QA: NaN sealed and committed, then printed by `record get --json` as invalid JSON
    with pytest.raises(InputError, match="not finite JSON"):
        seal(value, [recipient_key(member(REG))], AAD)
