"""Store-backed trace index (``node.trace.TraceIndex``) over the custody sub-databases.

Every lookup is a point read or a prefix scan of keys ``code NUL ...`` written by
``custody.CustodyUpdate.puts``: queries never scan the log.
"""

from __future__ import annotations

import struct
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

    def _edges(self, db: str, code: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for key, value in self.store.scan(db, custody.prefix(code), limit=_PAGE):
            _, rest = custody.split_key(key)
            out.append((rest.decode(), value.decode()))
        return out

    def downstream(self, code: str) -> Sequence[tuple[str, str]]:
        return self._edges(custody.DB_EDGES_FWD, code)

    def upstream(self, code: str) -> Sequence[tuple[str, str]]:
        return self._edges(custody.DB_EDGES_BACK, code)

    def history(self, code: str, start: int, limit: int) -> Sequence[int]:
        pre = custody.prefix(code)
        after = b""
        skipped = 0
        out: list[int] = []
        # skip ``start`` entries page by page (bounded by the history's length)
        while True:
            rows = self.store.scan(custody.DB_HISTORY, pre, after=after, limit=_PAGE)
            if not rows:
                return out
            for key, _ in rows:
                if skipped < start:
                    skipped += 1
                    continue
                out.append(struct.unpack(">Q", key[len(pre) :])[0])
                if len(out) >= limit:
                    return out
            after = rows[-1][0]
