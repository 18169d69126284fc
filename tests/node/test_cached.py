"""node.cached.cached: computed on first access, stored in the instance, no lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from node.cached import cached


@dataclass(frozen=True)
class _Box:
    n: int

    @cached
    def double(self) -> int:
        """Twice n."""
        calls.append(self.n)
        return 2 * self.n


calls: list[int] = []


def test_computed_once_and_stored_in_the_instance():
    calls.clear()
    b = _Box(4)
    assert b.double == 8
    assert b.double == 8
    assert calls == [4]
    assert b.__dict__["double"] == 8
    assert _Box.double.__doc__ == "Twice n."
    assert isinstance(_Box.__dict__["double"], cached)


def test_threads_do_not_wait_on_each_other():
    # functools.cached_property (3.11) holds one lock for every instance while computing:
    # a thread computing one box's value blocked another computing a different box's
    started, release = threading.Event(), threading.Event()

    @dataclass(frozen=True)
    class Slow:
        n: int

        @cached
        def value(self) -> int:
            if self.n == 0:
                started.set()
                assert release.wait(10)
            return self.n

    first = Slow(0)
    t = threading.Thread(target=lambda: first.value, daemon=True)
    t.start()
    assert started.wait(10)
    try:
        assert Slow(1).value == 1  # with cached_property's lock this waited for `first`
        assert t.is_alive()  # ... so `first` was still being computed: no wait
    finally:
        release.set()
        t.join(10)
    assert first.value == 0
