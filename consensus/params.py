"""Timeout parameters: each step's timeout grows linearly with the round.

``timeout(step, round) = base(step) + delta * round`` milliseconds. Growing timeouts are what
makes the protocol live after GST: eventually a round's timeouts exceed the (unknown)
message delay bound, and an honest proposer's round then decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import Step
from proto import types_pb2

__all__ = ["TimeoutParams"]


@dataclass(frozen=True)
class TimeoutParams:
    propose_ms: int = 3000
    prevote_ms: int = 1000
    precommit_ms: int = 1000
    delta_ms: int = 500

    def __post_init__(self) -> None:
        if min(self.propose_ms, self.prevote_ms, self.precommit_ms) <= 0 or self.delta_ms < 0:
            raise ValueError("timeouts must be positive and delta non-negative")

    def timeout(self, step: Step, round_: int) -> int:
        """Duration in ms of ``step``'s timeout in ``round_``."""
        base = {
            Step.PROPOSE: self.propose_ms,
            Step.PREVOTE: self.prevote_ms,
            Step.PRECOMMIT: self.precommit_ms,
        }[step]
        return base + self.delta_ms * round_

    @classmethod
    def from_proto(cls, p: types_pb2.ConsensusParams) -> TimeoutParams:
        """From genesis consensus parameters; zero fields keep the defaults."""
        d = cls()
        return cls(
            p.timeout_propose_ms or d.propose_ms,
            p.timeout_prevote_ms or d.prevote_ms,
            p.timeout_precommit_ms or d.precommit_ms,
            p.timeout_delta_ms or d.delta_ms,
        )
