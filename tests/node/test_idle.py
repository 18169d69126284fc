"""``node.idle.IdleGate``: what a node holds back at an idle height, and when it lets go."""

from __future__ import annotations

from consensus.events import RequestProposal, ScheduleTimeout
from consensus.messages import Step
from node.idle import IdleGate


def _timeout(height: int, round_: int = 0, step: Step = Step.PROPOSE) -> ScheduleTimeout:
    return ScheduleTimeout(height, round_, step, 1000)


def test_off_holds_nothing() -> None:
    gate = IdleGate(0)
    assert not gate.wants(_timeout(5))
    assert not gate.wants(RequestProposal(5, 0))


def test_only_the_start_of_round_0_is_held() -> None:
    gate = IdleGate(60_000)
    assert gate.wants(_timeout(5))
    assert gate.wants(RequestProposal(5, 0))
    # a later round goes on as Tendermint's; prevote and precommit timeouts are never held
    assert not gate.wants(_timeout(5, round_=1))
    assert not gate.wants(RequestProposal(5, 1))
    assert not gate.wants(_timeout(5, step=Step.PREVOTE))
    assert not gate.wants(_timeout(5, step=Step.PRECOMMIT))
    assert not gate.wants(object())


def test_held_actions_are_released_once_and_their_height_never_held_again() -> None:
    gate = IdleGate(60_000)
    t, p = _timeout(5), RequestProposal(5, 0)
    assert gate.hold(t) is True  # the first at height 5: the caller arms its timer
    assert gate.hold(p) is False
    assert gate.waiting == 5
    assert gate.release(4) == []  # (an older height's timer)
    assert gate.waiting == 5
    assert gate.release(5) == [t, p]
    assert gate.waiting == 0
    assert gate.release(5) == []
    assert not gate.wants(_timeout(5))  # woken: height 5 goes on
    assert gate.wants(_timeout(6))


def test_a_newer_height_replaces_what_an_older_one_held() -> None:
    gate = IdleGate(60_000)
    gate.hold(_timeout(5))
    assert gate.hold(_timeout(7)) is True  # (a sync moved the replica on)
    assert gate.waiting == 7
    assert gate.release(9) == [_timeout(7)]  # a peer's message at a later height
    assert not gate.wants(_timeout(8))
