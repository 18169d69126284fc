"""SignState bytes and the double-sign guard."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from consensus.messages import Step
from consensus.signstate import SignGuard, SignState
from consensus.validators import BlockHash
from node.errors import InputError

hashes = st.one_of(st.none(), st.binary(min_size=32, max_size=32).map(BlockHash))


@given(
    st.integers(1, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.sampled_from(list(Step)),
    hashes,
    st.integers(-1, 2**31 - 1),
    st.binary(min_size=64, max_size=64),
    st.integers(-1, 2**31 - 1),
    st.binary(min_size=32, max_size=32).map(BlockHash),
)
def test_roundtrip(h, r, step, bh, pol, sig, lr, lh):
    assume(sig != bytes(64))  # all-zero means "no signature" on disk
    s = SignState(h, r, step, bh, pol, sig, lr, lh if lr >= 0 else None)
    data = s.to_bytes()
    assert len(data) == 21 + 8 + 4 + 1 + 4 + 1 + 32 + 4 + 32 + 64 + 2 * (4 + 1 + 32 + 64)
    assert SignState.from_bytes(data) == s
    s2 = SignState(h, r, step, bh, pol, sig, lr, lh if lr >= 0 else None, 3, bh, sig, 4, bh, sig)
    assert SignState.from_bytes(s2.to_bytes()) == s2


def test_the_274_byte_layout_without_the_last_precommit_still_reads():
    import struct

    body = struct.pack(">QIBiB32si32s64siB32s64s", 5, 2, 2, -1, 1, A, 1, A, b"s" * 64, 2, 1, A,
                       b"p" * 64)  # fmt: skip
    s = SignState.from_bytes(b"suyuan/sign-state/v1\0" + body)
    assert (s.prevote_round, s.prevote_signature) == (2, b"p" * 64)
    assert (s.precommit_round, s.precommit_hash, s.precommit_signature) == (-1, None, b"")


@pytest.mark.parametrize(
    "data", [b"", b"x" * 274, b"suyuan/sign-state/v1\0" + bytes(253), b"x" * 375]
)
def test_garbage_rejected(data):
    with pytest.raises(InputError):
        SignState.from_bytes(data)


A, B = BlockHash(bytes([1]) * 32), BlockHash(bytes([2]) * 32)


def test_guard_orders_positions_and_allows_identical_resign():
    g = SignGuard(SignState(5, 2, Step.PREVOTE, A, signature=b"s" * 64))
    assert g.check(5, 2, Step.PREVOTE, A) == b"s" * 64  # identical re-sign
    assert g.check(5, 2, Step.PREVOTE, B) is False  # conflicting
    assert g.check(5, 2, Step.PREVOTE, None) is False
    assert g.check(5, 2, Step.PROPOSE, A) is False  # earlier step
    assert g.check(5, 1, Step.PRECOMMIT, A) is False  # earlier round
    assert g.check(4, 9, Step.PRECOMMIT, A) is False  # earlier height
    assert g.check(5, 2, Step.PRECOMMIT, B) is True
    assert g.check(5, 3, Step.PROPOSE, B) is True
    assert g.check(6, 0, Step.PROPOSE, B) is True
    assert SignGuard(None).check(1, 0, Step.PROPOSE, A) is True


def test_guard_never_moves_backwards():
    g = SignGuard(SignState(5, 2, Step.PREVOTE, A))
    with pytest.raises(RuntimeError):
        g.record(SignState(5, 1, Step.PRECOMMIT, A))


def test_early_113_byte_layout_still_reads():
    import struct

    body = struct.pack(">QIBiB32si32s64s", 5, 2, 3, -1, 1, A, 2, A, b"s" * 64)
    s = SignState.from_bytes(b"suyuan/sign-state/v1\0" + body)
    assert s == SignState(5, 2, Step.PRECOMMIT, A, -1, b"s" * 64, 2, A)
    assert s.prevote_round == -1


def test_a_locked_value_round_trips_and_garbage_is_refused():
    from consensus.lockstate import LockedValue
    from consensus.messages import Vote, VoteType
    from tests.consensus.harness import make_block

    block = make_block(3, 1, "v1", "x")
    from consensus.validators import ValidatorId

    votes = tuple(
        Vote(VoteType.PREVOTE, 3, 1, A, ValidatorId(f"v{i}"), bytes([i]) * 64) for i in range(3)
    )
    lv = LockedValue(3, 1, block, votes)
    back = LockedValue.from_bytes(lv.to_bytes())
    assert (back.height, back.round, back.prevotes) == (3, 1, votes)
    assert back.block.SerializeToString() == block.SerializeToString()
    data = lv.to_bytes()
    for bad in (b"", data[:-1], data + b"x", b"x" + data[1:]):
        with pytest.raises(InputError):
            LockedValue.from_bytes(bad)
