"""``node.memory.Hygiene``: when a node collects and gives memory back (QA-Y H2)."""

from __future__ import annotations

from node.memory import CHECK_S, GROWTH_BYTES, Hygiene, resident_bytes


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_collects_only_when_due_and_grown() -> None:
    clock, rss, trims = _Clock(), [500 << 20], []
    h = Hygiene(clock, lambda: rss[0], lambda: trims.append(clock.now))
    rss[0] += GROWTH_BYTES  # grown, but not yet due
    assert not h.tick()
    clock.now += CHECK_S
    rss[0] = (500 << 20) + GROWTH_BYTES - 1  # due, not grown enough
    assert not h.tick()
    rss[0] += 1
    assert not h.tick()  # (due again only CHECK_S later)
    clock.now += CHECK_S
    assert h.tick()
    assert trims == [clock.now]
    assert h.baseline == rss[0]  # (measured after the trim)
    clock.now += CHECK_S
    assert not h.tick()  # no growth since


def test_the_baseline_follows_the_resident_size_down() -> None:
    clock, rss = _Clock(), [900 << 20]
    h = Hygiene(clock, lambda: rss[0], lambda: None)
    rss[0] = 300 << 20
    clock.now += CHECK_S
    assert not h.tick()
    assert h.baseline == 300 << 20
    rss[0] += GROWTH_BYTES
    clock.now += CHECK_S
    assert h.tick()


def test_the_resident_size_is_read() -> None:
    assert resident_bytes() > 1 << 20
