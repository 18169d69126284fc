"""Giving memory back after a large request: a full collection, then ``malloc_trim``.

gRPC's server keeps each finished call in reference cycles (its call state, the servicer
context, the abort exception and the frames that hold the request), which only the cyclic
collector frees; ``node.main.tune_gc`` makes young collections rare, so a large refused
request stayed reachable, and glibc kept the pages it freed (QA-Y: each refused 10 MB
Submit kept about 11 MB, and an outsider's 10 MB peer messages about 140 MB, for good).

``Hygiene.tick`` runs on the node's housekeeping timer: every ``CHECK_S`` it reads the
anonymous resident size, and when that is ``GROWTH_BYTES`` above the size after its last
collection (or the lowest seen since),
it collects every generation and returns free heap pages to the system. Under a steady
load the resident size levels off and this runs rarely; it never runs more often than
every ``CHECK_S``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger("suyuan.memory")

CHECK_S = 10.0
GROWTH_BYTES = 64 * 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's anonymous resident memory: resident less file-backed and shared
    pages (LMDB's map is a file's: a node serving sync or audits grows by the pages it
    reads, which no collection frees; review); 0 where ``/proc`` does not tell."""
    try:
        with open("/proc/self/statm", "rb") as f:
            fields = f.read().split()
        return max(0, int(fields[1]) - int(fields[2])) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _trimmer() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)`` (a no-op elsewhere: musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]

    def give_back() -> None:
        trim(0)

    return give_back


class Hygiene:
    """When to collect (``tick``); ``clock`` and ``rss`` are injectable for tests."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        rss: Callable[[], int] = resident_bytes,
        trim: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self._rss = rss
        self._trim = trim or _trimmer()
        self._next = clock() + CHECK_S
        self.baseline = rss()
        self.collections = 0

    def tick(self) -> bool:
        """Collect and trim if due and the resident size grew; True if it did."""
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + CHECK_S
        before = self._rss()
        if before - self.baseline < GROWTH_BYTES:
            self.baseline = min(self.baseline, before)
            return False
        gc.collect()
        self._trim()
        self.baseline = self._rss()
        self.collections += 1
        log.debug(
            "memory: %d MiB resident, %d MiB after a collection",
            before >> 20,
            self.baseline >> 20,
        )
        return True
