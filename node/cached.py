"""``cached``: ``functools.cached_property`` without its lock.

Python 3.11's ``cached_property`` holds one ``RLock`` per property *for every instance of
the class* while it computes a value (3.12 removed the lock for this reason). A node
verifies records in several worker threads at once, and the first access to a record's
codes (``TraceRecord.roles``) or leaf hash then serialises those threads on that one lock,
each waiter parked on a futex while the holder may be waiting for the GIL.

Without the lock, two threads that read the same attribute of the same fresh object at the
same moment may both compute it; both get an equal value (the functions cached here are
pure) and one of them is kept. Like ``cached_property``, the value is stored in the
instance ``__dict__`` (frozen dataclasses included), which later reads find first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class cached(Generic[T]):  # noqa: N801 (used as a decorator, like cached_property)
    """A read-only attribute computed on first access by a pure method, then stored."""

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> cached[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> T | cached[T]:
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.name] = value
        return value


__all__ = ["cached"]
