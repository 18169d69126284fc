"""Quorum arithmetic for n equal-weight validators, and the result type thresholds return.

Invariants (n >= 1):

1. ``max_faulty(n) = f = floor((n - 1) / 3)``: the most Byzantine validators n tolerates.
2. ``quorum(n) = floor(2n / 3) + 1 = n - f``, Tendermint's "more than two thirds" ("2f+1"
   when n = 3f+1, where it is also the smallest size whose sets pairwise intersect in more
   than f validators). Any two quorums intersect in at least f + 1 validators, hence in an
   honest one; and q <= n - f, so the honest validators alone can form a quorum.
3. ``skip_threshold(n) = f + 1``: any set that large contains at least one honest validator.

This module is pure arithmetic (STYLE.md §4): ``tests/consensus/test_quorum.py`` checks it
against brute force over all subsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["QuorumResult", "join_reasons", "max_faulty", "quorum", "skip_threshold"]


def max_faulty(n: int) -> int:
    """Return f, the number of Byzantine validators that n validators tolerate."""
    if n < 1:
        raise ValueError(f"validator count must be >= 1, got {n}")
    return (n - 1) // 3


def quorum(n: int) -> int:
    """Return the quorum size (2f+1 for n = 3f+1; floor(2n/3)+1 in general)."""
    max_faulty(n)  # validates n
    return (2 * n) // 3 + 1


def skip_threshold(n: int) -> int:
    """Return f+1: the smallest group that is guaranteed to contain an honest validator."""
    return max_faulty(n) + 1


@dataclass(frozen=True)
class QuorumResult:
    """How many distinct validators validly signed, against the threshold needed.

    The result is truthy only when ``verified >= needed`` and no hard failure was found.
    A hard failure (``reason`` non-empty: a duplicate or unknown signer, an invalid
    signature, a malformed field) makes it falsy whatever the count, so that a certificate
    padded with garbage is rejected rather than silently accepted. It never raises; callers
    that want an exception use the raising wrappers (``require_certificate``).
    """

    verified: int
    needed: int
    signers: frozenset[str] = field(default_factory=frozenset)
    reason: str = ""
    presented: int = 0

    @property
    def missing(self) -> int:
        """Number of further valid signatures needed to reach the threshold."""
        return max(0, self.needed - self.verified)

    def __bool__(self) -> bool:
        return not self.reason and self.verified >= self.needed

    def describe(self, what: str) -> str:
        """One line, e.g. ``certificate: 2/3 valid signatures, need 3``; with a quorum of
        valid signatures and a hard failure, the failure comes first."""
        if self.reason and self.verified >= self.needed:
            return (
                f"{what}: {self.reason} (every signature must be valid; "
                f"{self.verified}/{self.presented} are, {self.needed} needed)"
            )
        line = f"{what}: {self.verified}/{self.presented} valid signatures, need {self.needed}"
        return f"{line} ({self.reason})" if self.reason else line


def join_reasons(reasons: list[str], shown: int = 3) -> str:
    """``reasons`` as one bounded line: the first ``shown``, then how many more (a
    certificate padded with thousands of bad signatures still gets a short message)."""
    line = "; ".join(reasons[:shown])
    return f"{line}; and {len(reasons) - shown} more" if len(reasons) > shown else line
