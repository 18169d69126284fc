"""Idle heights: no empty block every second while nothing waits to be committed.

Tendermint decides a value at every height, so an idle chain commits an empty block each
time the proposer's wait for records runs out (about one a second: some 3 MB of headers
and certificates an hour per node). With ``[consensus] idle_block_interval_ms = N`` in a
node's config (N > 0), the node holds back the start of round 0 of each new height -- its
propose timeout, and its proposal if it is the round's proposer -- until the first of:

* a record is admitted to its mempool (or one is there already);
* a proposal or vote for this height, or a later one, arrives from a peer;
* N ms have passed since the height began: an empty block then marks time, so an idle
  chain still shows auditors that its validators are alive.

Holding back is safe: to the replica it is a slow local clock, and Tendermint's safety
never depends on when a round starts. It is live: a record is gossiped to every validator
and wakes each; the first awake sends a proposal or a vote, which wakes the rest; rounds
after 0 are never held, so a round that fails goes on as Tendermint's. As CometBFT's
``create_empty_blocks = false``, it is a node setting: validators that leave it at 0 keep
making a block every round and wake the others with their votes, but only once their
propose timeout runs out, so every validator should have the same value.

``IdleGate`` is the bookkeeping only (no clock, no I/O); ``node.node.Node`` arms the timer
and runs what is released.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.events import RequestProposal, ScheduleTimeout
from consensus.messages import Step

StartAction = ScheduleTimeout | RequestProposal


@dataclass
class IdleGate:
    """Round-0 start actions held per height. Invariants: actions of one height only are
    held (those of an older height are dropped when a newer one is held: the replica has
    moved on); a height once released is never held again."""

    interval_ms: int
    _height: int = 0  # the height whose round 0 is held; 0: none
    _held: list[StartAction] = field(default_factory=list)
    _released: int = 0  # the highest height released

    @property
    def waiting(self) -> int:
        """The height held back, 0 when none."""
        return self._height

    def wants(self, action: object) -> bool:
        """True iff the gate is on and ``action`` starts round 0 of a height not released:
        a propose timeout, or a proposal request."""
        if not self.interval_ms:
            return False
        if isinstance(action, ScheduleTimeout):
            if action.step is not Step.PROPOSE:
                return False
        elif not isinstance(action, RequestProposal):
            return False
        return action.round == 0 and action.height > self._released

    def hold(self, action: StartAction) -> bool:
        """Keep ``action`` (``wants`` said yes); True iff it is the first held at its height
        (the caller then arms that height's timer)."""
        if action.height != self._height:
            self._height, self._held = action.height, []
        self._held.append(action)
        return len(self._held) == 1

    def release(self, height: int) -> list[StartAction]:
        """What is held for ``height`` or an earlier height, once; heights up to ``height``
        are then never held."""
        self._released = max(self._released, height)
        if not self._height or self._height > height:
            return []
        out, self._height, self._held = self._held, 0, []
        return out


__all__ = ["IdleGate", "StartAction"]
