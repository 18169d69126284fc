"""Store-backed trace index (``node.trace.TraceIndex``) over the custody sub-databases.

Every lookup is a point read or a prefix scan (``custody`` states, ``edges`` keyed
``FWD|BACK code NUL other``, and the store's code index for history): queries never scan
the log.
"""

from __future__ import annotations

from collections.abc import Sequence

from node import custody
from node.store import Store

_PAGE = 100_000


class StoreTraceIndex:
    def __init__(self, store: Store) -> None:
        self.store = store

    def state(self, code: str) -> custody.CodeState | None:
        raw = self.store.get(custody.DB_CUSTODY, code.encode())
        return custody.decode_state(raw) if raw is not None else None

    def _edges(self, tag: bytes, code: str) -> list[tuple[str, str]]:
        rows = self.store.scan(custody.DB_EDGES, custody.edge_prefix(tag, code), limit=_PAGE)
        return [(custody.edge_target(k), v.decode()) for k, v in rows]

    def downstream(self, code: str) -> Sequence[tuple[str, str]]:
        return self._edges(custody.FWD, code)

    def upstream(self, code: str) -> Sequence[tuple[str, str]]:
        return self._edges(custody.BACK, code)

    def history(self, code: str, start: int, limit: int) -> Sequence[int]:
        return self.store.code_indexes(code, start, limit)
