"""Scenarios: everything about one simulated run, drawn from a seed.

A scenario fixes the network (latency before and after GST, drop and duplicate rates),
the partitions (each a set of validator slots cut off from the rest for an interval before
GST), the crashes and restarts of honest validators (also before GST), and the Byzantine
validators with their behaviours. With more Byzantine validators than f, every Byzantine
slot runs as Twins against a split of the honest validators, the attack that can really
break agreement, so that the checker is seen to bite.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from consensus.params import TimeoutParams
from consensus.quorum import max_faulty

__all__ = ["BEHAVIOURS", "Crash", "Partition", "Scenario", "make_scenario"]

BEHAVIOURS = (
    "equivocate",  # proposer sends different proposals to different peers, votes both ways
    "double_vote",  # conflicting prevotes/precommits to different peers
    "withhold",  # drops most of its own votes, sends the rest to a few peers
    "bad_sig",  # forged signatures, other chains, unknown ids, malformed messages
    "replay",  # re-sends old messages from earlier heights and rounds
    "invalid_block",  # proposes blocks the validity rules reject; accepts anything
    "twins",  # two instances sharing one key, each talking to half the honest nodes
    "silent",  # never sends anything
)


@dataclass(frozen=True)
class Partition:
    """Slots in ``side`` cannot exchange messages with the others during [start, end)."""

    start_ms: int
    end_ms: int
    side: frozenset[int]


@dataclass(frozen=True)
class Crash:
    """Honest ``slot`` crashes at ``at_ms`` (midway through an action list if ``mid_step``)
    and restarts from its persisted state at ``restart_ms``."""

    slot: int
    at_ms: int
    restart_ms: int
    mid_step: bool


@dataclass(frozen=True)
class Scenario:
    seed: int
    n: int
    byzantine: tuple[tuple[int, str], ...]  # (slot, behaviour)
    gst_ms: int
    delta_ms: int  # latency bound after GST
    pre_mean_ms: int  # mean latency before GST (exponential, capped)
    pre_max_ms: int
    drop: float  # before GST
    dup: float
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    twin_split: tuple[frozenset[int], frozenset[int]] | None = None  # honest slot groups
    params: TimeoutParams = field(default_factory=lambda: TimeoutParams(400, 200, 200, 100))
    k_heights: int = 3  # liveness: heights each honest node must add after stabilisation
    liveness_bound_ms: int = 60_000  # ... within this much simulated time
    rebroadcast_ms: int = 700
    async_validity: bool = True

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def expect_safe(self) -> bool:
        """Whether agreement and liveness must hold (at most f Byzantine)."""
        return len(self.byzantine) <= self.f

    @property
    def stable_ms(self) -> int:
        """When the network is synchronous and every fault has healed."""
        ends = [self.gst_ms]
        ends += [p.end_ms for p in self.partitions]
        ends += [c.restart_ms for c in self.crashes]
        return max(ends)

    def describe(self) -> str:
        byz = ",".join(f"{s}:{b}" for s, b in self.byzantine) or "-"
        return (
            f"seed={self.seed} n={self.n} byz={byz} gst={self.gst_ms} drop={self.drop:.2f} "
            f"partitions={len(self.partitions)} crashes={len(self.crashes)}"
        )


def make_scenario(seed: int, n: int, byzantine: int, **overrides: object) -> Scenario:
    """Draw a scenario for ``seed`` with ``byzantine`` faulty slots among ``n``."""
    if not 0 <= byzantine <= n:
        raise ValueError("byzantine must be between 0 and n")
    rng = random.Random(f"scenario/{seed}/{n}/{byzantine}")
    f = max_faulty(n)
    slots = list(range(n))
    byz_slots = sorted(rng.sample(slots, byzantine))
    honest = [s for s in slots if s not in byz_slots]
    attack = byzantine > f
    behaviours = ["twins"] * byzantine if attack else [rng.choice(BEHAVIOURS) for _ in byz_slots]
    twin_split: tuple[frozenset[int], frozenset[int]] | None = None
    if "twins" in behaviours and len(honest) >= 2:
        shuffled = honest[:]
        rng.shuffle(shuffled)
        cut = len(shuffled) // 2 if attack else rng.randint(1, len(shuffled) - 1)
        twin_split = (frozenset(shuffled[:cut]), frozenset(shuffled[cut:]))
    gst = rng.randint(1_000, 12_000)
    partitions: list[Partition] = []
    if attack and twin_split is not None and rng.random() < 0.8:
        # Cut the honest halves apart for a while: each half then only hears its twins.
        partitions.append(Partition(0, rng.randint(gst // 2, gst), twin_split[0]))
    for _ in range(rng.choice((0, 0, 1, 2))):
        start = rng.randint(0, gst - 500)
        end = rng.randint(start + 200, gst)
        side = frozenset(rng.sample(slots, rng.randint(1, n - 1)))
        partitions.append(Partition(start, end, side))
    crashes: list[Crash] = []
    for slot in rng.sample(honest, min(len(honest), rng.choice((0, 0, 1, 1, 2)))):
        at = rng.randint(0, gst - 200)
        crashes.append(Crash(slot, at, rng.randint(at + 50, gst), rng.random() < 0.5))
    sc = Scenario(
        seed=seed,
        n=n,
        byzantine=tuple(zip(byz_slots, behaviours, strict=True)),
        gst_ms=gst,
        delta_ms=rng.randint(5, 150),
        pre_mean_ms=rng.randint(5, 300),
        pre_max_ms=rng.randint(300, 3_000),
        drop=rng.choice((0.0, 0.05, 0.2, 0.4)),
        dup=rng.choice((0.0, 0.05, 0.2)),
        partitions=tuple(partitions),
        crashes=tuple(crashes),
        twin_split=twin_split,
        async_validity=rng.random() < 0.7,
    )
    return replace(sc, **overrides)  # type: ignore[arg-type]
