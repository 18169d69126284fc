"""What a run observed, and the properties checked against it.

Properties (each failure is listed under its name in ``RunResult.violations``):

- ``agreement``: no two honest validators commit different blocks at one height.
- ``validity``: honest validators commit only blocks the validity rule accepts.
- ``certificate``: every honest commit carries a certificate that ``verify_certificate``
  accepts for the committed block.
- ``double_sign``: no honest validator signs two different votes for one (height, round,
  type) or two different proposals for one (height, round), across crashes and restarts.
- ``evidence``: every equivocation an honest replica was shown (both conflicting, validly
  signed messages delivered while it still kept that height and round) became evidence,
  and all evidence honest replicas emit verifies offline.
- ``commit_order`` / ``no_crash``: commits are sequential; the replica never raised.
- ``liveness``: after the network stabilises (GST, partitions healed, crashed nodes back)
  every honest validator commits ``k_heights`` more heights within ``liveness_bound_ms``.

``agreement`` and ``liveness`` are only promised with at most f Byzantine validators; the
rest must hold whatever the Byzantine validators do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consensus.messages import Message, Proposal, block_hash_of
from consensus.validators import ValidatorSet

if TYPE_CHECKING:
    from consensus.sim.scenario import Scenario
    from consensus.sim.world import Instance

__all__ = ["CONDITIONAL", "Observations", "RunResult", "check"]

CONDITIONAL = frozenset({"agreement", "liveness"})
SAFETY = frozenset({"agreement", "validity", "certificate", "double_sign", "commit_order"})

_Key = tuple[str, str, int, int, int]


def message_key(msg: Message) -> tuple[_Key, object]:
    """(equivocation slot, content) of a signed message."""
    if isinstance(msg, Proposal):
        return ("proposal", msg.proposer, msg.height, msg.round, 0), (
            msg.block_hash,
            msg.pol_round,
        )
    return ("vote", msg.validator, msg.height, msg.round, int(msg.type)), msg.block_hash


@dataclass
class Observations:
    violations: dict[str, list[str]] = field(default_factory=dict)
    commits: dict[int, dict[int, bytes]] = field(default_factory=dict)
    signed_by_honest: dict[_Key, object] = field(default_factory=dict)
    evidence: set[_Key] = field(default_factory=set)
    seen_by: dict[tuple[int, int], dict[_Key, object]] = field(default_factory=dict)
    equivocations: set[_Key] = field(default_factory=set)
    stable_heights: dict[int, int] = field(default_factory=dict)
    end_heights: dict[int, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    dropped: int = 0
    steps: int = 0
    crashes: int = 0
    sim_ms: int = 0

    def violation(self, prop: str, detail: str) -> None:
        self.violations.setdefault(prop, []).append(detail)

    def signed(self, slot: int, msg: Message, persisted: bytes | None) -> None:
        key, content = message_key(msg)
        prev = self.signed_by_honest.setdefault(key, content)
        if prev != content:
            self.violation("double_sign", f"honest {key} signed {prev!r} and {content!r}")

    def committed(self, slot: int, height: int, block_hash: bytes, now: int) -> None:
        at = self.commits.setdefault(height, {})
        at[slot] = block_hash
        if len(set(at.values())) > 1:
            self.violation("agreement", f"height {height}: honest slots disagree at t={now}")

    def observe(self, inst: Instance, msg: Message, validators: ValidatorSet) -> None:
        """Record what the replica will keep, to know which equivocations it was shown."""
        r = inst.replica
        if r is None or not r.retains(msg.height, msg.round):
            return
        if isinstance(msg, Proposal) and (
            msg.block is None
            or msg.proposer != validators.proposer(msg.height, msg.round)
            or not -1 <= msg.pol_round < msg.round
            or block_hash_of(msg.block) != msg.block_hash
        ):
            return
        key, content = message_key(msg)
        seen = self.seen_by.setdefault((inst.iid, inst.epoch), {})
        first = seen.setdefault(key, content)
        if first != content:
            self.equivocations.add(key)


@dataclass(frozen=True)
class RunResult:
    seed: int
    description: str
    expect_safe: bool
    violations: dict[str, list[str]]
    heights_committed: int
    evidence_found: int
    equivocations: int
    delivered: int
    steps: int
    sim_ms: int
    counters: dict[str, int]

    @property
    def safety_violated(self) -> bool:
        return any(p in SAFETY for p in self.violations)

    @property
    def liveness_failed(self) -> bool:
        return "liveness" in self.violations

    @property
    def ok(self) -> bool:
        """No property failed that must hold under this run's assumptions."""
        if self.expect_safe:
            return not self.violations
        return not any(p not in CONDITIONAL for p in self.violations)


def check(sc: Scenario, obs: Observations) -> RunResult:
    missing = sorted(obs.equivocations - obs.evidence)
    for key in missing:
        obs.violation("evidence", f"equivocation {key} was shown to an honest node, no evidence")
    for slot, start in sorted(obs.stable_heights.items()):
        end = obs.end_heights.get(slot, start)
        if end < start + sc.k_heights:
            obs.violation(
                "liveness",
                f"val{slot}: {end - start} heights after stabilising at {sc.stable_ms} ms "
                f"(need {sc.k_heights} within {sc.liveness_bound_ms} ms)",
            )
    return RunResult(
        seed=sc.seed,
        description=sc.describe(),
        expect_safe=sc.expect_safe,
        violations=obs.violations,
        heights_committed=min(obs.end_heights.values(), default=0),
        evidence_found=len(obs.evidence),
        equivocations=len(obs.equivocations),
        delivered=obs.delivered,
        steps=obs.steps,
        sim_ms=obs.sim_ms,
        counters=obs.counters,
    )
