"""The pure parts of `suyuan bench`: percentiles, the steady window, the token bucket."""

from __future__ import annotations

from typing import Any

import pytest

from testnet import bench_stats as st
from testnet.loadgen import TokenBucket


def test_percentile_linear_between_ranks() -> None:
    assert st.percentile([1, 2, 3, 4, 5], 50) == 3
    assert st.percentile([1, 2, 3, 4], 50) == 2.5
    assert st.percentile([10, 0], 0) == 0
    assert st.percentile([10, 0], 100) == 10
    assert st.percentile(list(range(101)), 99) == pytest.approx(99)
    assert st.percentile([7], 95) == 7
    with pytest.raises(ValueError):
        st.percentile([], 50)
    with pytest.raises(ValueError):
        st.percentile([1], 101)


def test_weighted_percentile_equals_expanded() -> None:
    pairs = [(5.0, 3), (1.0, 2), (9.0, 1), (4.0, 0)]
    expanded = [5.0] * 3 + [1.0] * 2 + [9.0]
    for q in (0, 10, 50, 90, 95, 99, 100):
        assert st.weighted_percentile(pairs, q) == pytest.approx(st.percentile(expanded, q))
    with pytest.raises(ValueError):
        st.weighted_percentile([(1.0, 0)], 50)


def test_steady_window_of_an_even_run_is_the_even_rate() -> None:
    events = [(float(t), 100) for t in range(1, 101)]  # 100 records/s for 100 s
    w = st.steady_window(events)
    assert (w.start, w.end) == (10.0, 90.0)
    assert w.records == 8000
    assert w.rate == pytest.approx(100.0)


def test_steady_window_ignores_slow_start_and_tail() -> None:
    events = [(0.0, 10), (5.0, 10)] + [(10.0 + i, 100) for i in range(20)] + [(60.0, 10)]
    w = st.steady_window(events)
    assert 10.0 <= w.start < w.end <= 29.0
    assert w.rate == pytest.approx(100.0)


def test_steady_window_empty_and_time_window() -> None:
    assert st.steady_window([]).rate == 0.0
    assert st.steady_window([(1.0, 0)]).records == 0
    events = [(float(t), 10) for t in range(10)]
    lo, hi = st.middle(0.0, 10.0)
    assert (lo, hi) == pytest.approx((1.0, 9.0))
    w = st.time_window(events, 1.0, 9.0)
    assert w.records == 80  # t = 2..9 (the window is (start, end])
    assert w.rate == pytest.approx(10.0)


def test_interpolate_and_distribution() -> None:
    samples = [(0.0, 0.0), (2.0, 4.0), (4.0, 4.0)]
    assert st.interpolate(samples, 1.0) == pytest.approx(2.0)
    assert st.interpolate(samples, -1.0) == 0.0
    assert st.interpolate(samples, 9.0) == 4.0
    assert st.interpolate(samples, 3.0) == 4.0
    with pytest.raises(ValueError):
        st.interpolate([], 0.0)
    d = st.distribution([4000, 200, 1000, 3000])
    assert d["count"] == 4
    assert d["min"] == 200
    assert d["max"] == 4000
    assert d["median"] == 2000.0
    assert st.distribution([])["count"] == 0


def test_token_bucket_enforces_the_rate() -> None:
    b = TokenBucket(rate=1000.0, burst=200.0, now=0.0)
    assert b.delay(200, 0.0) == 0.0  # the initial burst
    assert b.delay(200, 0.0) == pytest.approx(0.2)  # 200 more need 0.2 s
    # a sender that waits what it is told sends at exactly the rate on average
    b = TokenBucket(rate=1000.0, burst=100.0, now=0.0)
    now, sent = 0.0, 0
    while now < 10.0:
        now += b.delay(100, now)
        sent += 100
    assert sent / now == pytest.approx(1000.0, rel=0.02)


def test_token_bucket_saves_at_most_burst_and_unlimited() -> None:
    b = TokenBucket(rate=100.0, burst=50.0, now=0.0)
    assert b.delay(50, 100.0) == 0.0  # idle for long: only 50 saved
    assert b.delay(50, 100.0) == pytest.approx(0.5)
    u = TokenBucket(rate=0.0, burst=1.0, now=0.0)
    assert all(u.delay(10_000, 0.0) == 0.0 for _ in range(10))


def _load_doc(commit_times: list[float], end_send: float) -> dict[str, Any]:
    batch = {"t_send": 0.0, "t_admit": 0.01, "n": 200, "accepted": 200, "dropped": 0,
             "codes": {"0": 200}}  # fmt: skip
    return {
        "start": 0.0,
        "end_send": end_send,
        "rate": 0.0,
        "batches": [dict(batch, t_commit=t, committed=200) for t in commit_times],
        "sign_seconds": 1.0,
        "record_bytes": 400,
        "envelope_bytes": 560,
        "errors": [],
        "unacked_ids": [],
    }


def test_a_run_too_short_for_a_steady_window_reports_the_whole_run() -> None:
    # 5,000 records sent at once gave a window of 0.1 ms and a rate of 0, or (without
    # --seconds) 4,000 records in 0.3 s, above the ceiling
    from testnet.bench import analyse_load

    short = analyse_load(_load_doc([1.0 + 0.05 * i for i in range(25)], 0.001), seconds=5)
    assert short["steady"] is False
    assert short["committed_rps"] == short["overall_rps"] == 5000 / 2.2
    assert "too short for a steady window" in short["warning"]
    long = analyse_load(_load_doc([0.5 * i + 0.25 for i in range(40)], 20.0), seconds=20)
    assert long["steady"] is True
    assert long["warning"] == ""
    assert long["committed_rps"] == 400.0  # 16 s window, 32 batches of 200
