"""Pure arithmetic of ``suyuan bench``: percentiles, the steady window, rates, distributions.

No I/O and no clocks here, so every function is unit-tested (tests/testnet/test_bench_math.py).

Definitions, written down:
  * percentiles interpolate linearly between closest ranks (numpy's default "linear"),
    optionally weighted (a batch of ``n`` records counts ``n`` times);
  * the steady window of a run driven by ``--records`` runs from the moment 10% of the
    committed records had been acknowledged to the moment 90% had; its rate is the records
    acknowledged inside it divided by its length. For ``--seconds`` it is the middle 80% of
    the sending time;
  * a per-process counter sampled over time (CPU seconds) is read at an instant by linear
    interpolation between the two samples around it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear between closest ranks.

    Raises ValueError for an empty sequence or ``q`` outside 0-100.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def weighted_percentile(pairs: Sequence[tuple[float, int]], q: float) -> float:
    """The ``q``-th percentile of (value, count) pairs, each value counted ``count`` times.

    Same definition as ``percentile`` over the expanded list, without expanding it.
    """
    items = sorted((v, n) for v, n in pairs if n > 0)
    total = sum(n for _, n in items)
    if total == 0:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    pos = (total - 1) * q / 100.0
    lo = math.floor(pos)
    frac = pos - lo

    def at(rank: int) -> float:
        seen = 0
        for v, n in items:
            seen += n
            if rank < seen:
                return v
        return items[-1][0]

    a = at(lo)
    b = at(min(lo + 1, total - 1))
    return a + (b - a) * frac


@dataclass(frozen=True)
class Window:
    """A steady window: [start, end] (seconds, one clock), and the records committed in it."""

    start: float
    end: float
    records: int

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def rate(self) -> float:
        """Records per second inside the window (0 for an empty or zero-length window)."""
        return self.records / self.seconds if self.seconds > 0 else 0.0


def steady_window(events: Sequence[tuple[float, int]], lo: float = 0.1, hi: float = 0.9) -> Window:
    """The window between the times ``lo`` and ``hi`` of all records were acknowledged.

    ``events`` are (time, records acknowledged at that time). The records counted are those
    acknowledged after the ``lo`` instant up to and including the ``hi`` instant, so a run
    of evenly spaced equal events yields exactly the even rate.
    """
    ev = sorted((t, n) for t, n in events if n > 0)
    total = sum(n for _, n in ev)
    if total == 0:
        return Window(0.0, 0.0, 0)
    lo_n, hi_n = lo * total, hi * total
    cum = 0
    t_lo = t_hi = ev[-1][0]
    c_lo = c_hi = total
    found_lo = False
    for t, n in ev:
        cum += n
        if not found_lo and cum >= lo_n:
            t_lo, c_lo, found_lo = t, cum, True
        if cum >= hi_n:
            t_hi, c_hi = t, cum
            break
    return Window(t_lo, t_hi, c_hi - c_lo)


def time_window(events: Sequence[tuple[float, int]], start: float, end: float) -> Window:
    """The records acknowledged within ``(start, end]`` (the ``--seconds`` steady window)."""
    return Window(start, end, sum(n for t, n in events if start < t <= end and n > 0))


def middle(start: float, end: float, fraction: float = 0.8) -> tuple[float, float]:
    """The middle ``fraction`` of the interval [start, end]."""
    margin = (end - start) * (1 - fraction) / 2
    return start + margin, end - margin


def interpolate(samples: Sequence[tuple[float, float]], t: float) -> float:
    """A sampled counter's value at ``t`` (linear between samples; clamped at the ends).

    ``samples`` are (time, value) sorted by time. Raises ValueError when empty.
    """
    if not samples:
        raise ValueError("no samples")
    times = [s[0] for s in samples]
    i = bisect.bisect_left(times, t)
    if i == 0:
        return samples[0][1]
    if i >= len(samples):
        return samples[-1][1]
    (t0, v0), (t1, v1) = samples[i - 1], samples[i]
    if t1 == t0:
        return v1
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def distribution(values: Sequence[int]) -> dict[str, float | int]:
    """count, min, median, p90, max of ``values`` (all 0 when empty)."""
    if not values:
        return {"count": 0, "min": 0, "median": 0, "p90": 0, "max": 0}
    return {
        "count": len(values),
        "min": min(values),
        "median": percentile(values, 50),
        "p90": percentile(values, 90),
        "max": max(values),
    }


__all__ = [
    "Window",
    "distribution",
    "interpolate",
    "middle",
    "percentile",
    "steady_window",
    "time_window",
    "weighted_percentile",
]
