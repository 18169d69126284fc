"""Quorum math checked against brute force over subsets (STYLE.md §5, etcd quick_test)."""

from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.quorum import QuorumResult, join_reasons, max_faulty, quorum, skip_threshold


def brute_f(n: int) -> int:
    # Largest f with n >= 3f + 1.
    return max(f for f in range(n) if n >= 3 * f + 1)


def smallest_intersecting(n: int) -> int:
    """Smallest q such that every two q-subsets of n share more than f members."""
    f = brute_f(n)
    for q in range(1, n + 1):
        if all(
            len(set(a) & set(b)) > f
            for a in combinations(range(n), q)
            for b in combinations(range(n), q)
        ):
            return q
    raise AssertionError


@pytest.mark.parametrize("n", range(1, 9))
def test_quorum_matches_brute_force(n):
    f, q = max_faulty(n), quorum(n)
    assert f == brute_f(n)
    assert q == min(k for k in range(n + 1) if 3 * k > 2 * n)  # more than two thirds
    # Any two quorums share an honest validator, whichever f are faulty.
    for a in combinations(range(n), q):
        for b in combinations(range(n), q):
            for faulty in combinations(range(n), f):
                assert (set(a) & set(b)) - set(faulty)
    assert q <= n - f  # the honest validators alone form a quorum
    assert q >= smallest_intersecting(n)
    if n % 3 == 1:
        assert q == smallest_intersecting(n) == 2 * f + 1


@given(st.integers(min_value=1, max_value=10_000))
def test_quorum_properties(n):
    f, q = max_faulty(n), quorum(n)
    assert n >= 3 * f + 1
    assert n < 3 * (f + 1) + 1
    assert 2 * q - n >= f + 1  # two quorums share an honest validator
    assert q <= n - f  # live with f silent
    assert q == (2 * n) // 3 + 1
    assert skip_threshold(n) == f + 1
    if n == 3 * f + 1:
        assert q == 2 * f + 1


@given(st.integers(min_value=1, max_value=40), st.data())
def test_skip_threshold_always_contains_an_honest(n, data):
    f = max_faulty(n)
    faulty = set(data.draw(st.sets(st.integers(0, n - 1), max_size=f)))
    group = data.draw(st.sets(st.integers(0, n - 1), min_size=skip_threshold(n)))
    assert group - faulty


def test_max_faulty_rejects_zero():
    with pytest.raises(ValueError, match="must be >= 1"):
        max_faulty(0)


@given(st.integers(0, 10), st.integers(1, 10), st.booleans())
def test_quorum_result_truthiness(verified, needed, failed):
    r = QuorumResult(verified, needed, reason="bad" if failed else "", presented=verified)
    assert bool(r) == (verified >= needed and not failed)
    assert r.missing == max(0, needed - verified)


def test_quorum_result_describe():
    r = QuorumResult(2, 3, presented=3, reason="invalid signature from 'v2'")
    assert r.describe("certificate") == (
        "certificate: 2/3 valid signatures, need 3 (invalid signature from 'v2')"
    )
    # a quorum of valid signatures beside a bad one: the bad one is the reason, said first
    r = QuorumResult(3, 3, presented=4, reason="invalid signature from 'v2'")
    assert r.describe("certificate") == (
        "certificate: invalid signature from 'v2' (every signature must be valid; "
        "3/4 are, 3 needed)"
    )
    assert QuorumResult(3, 3, presented=3).describe("certificate") == (
        "certificate: 3/3 valid signatures, need 3"
    )


def test_join_reasons_is_bounded():
    many = [f"duplicate signature from 'v{i % 4}'" for i in range(200_000)]
    line = join_reasons(many)
    assert line == (
        "duplicate signature from 'v0'; duplicate signature from 'v1'; "
        "duplicate signature from 'v2'; and 199997 more"
    )
    assert join_reasons(many[:3]) == "; ".join(many[:3])
    assert join_reasons([]) == ""
