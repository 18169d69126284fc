"""Pending records, verified and waiting for a block.

Invariants:
  * every entry passed admission (signatures, membership, replay, rules at that time);
  * an entry leaves only when committed, when a block shows it invalid, or when evicted
    by ``drop``; record ids, (author, nonce) pairs and EPCIS eventIDs are unique within the
    pool;
  * ``take`` returns entries in arrival order within the count and byte limits;
  * ``by_leaf`` finds an entry by its envelope's Merkle leaf hash (payload and every
    signature), the identity a compact proposal names records by.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from node import event_ids
from node.errors import OverloadError, ReplayError
from node.records import TraceRecord, VerifiedRecord
from proto import types_pb2


@dataclass(frozen=True, slots=True)
class Pending:
    record_id: bytes
    envelope: types_pb2.Envelope
    verified: VerifiedRecord
    size: int
    arrived: float  # monotonic seconds, for latency accounting


class Mempool:
    def __init__(self, max_records: int, max_bytes: int) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._items: OrderedDict[bytes, Pending] = OrderedDict()
        self._nonces: dict[tuple[str, str], bytes] = {}
        self._by_leaf: dict[bytes, bytes] = {}
        self._event_ids: dict[str, bytes] = {}  # ``event_ids.pending_key`` -> its pending record
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._items

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def nonce_pending(self, author: str, nonce: str) -> bool:
        return (author, nonce) in self._nonces

    def room(self) -> int:
        """How many more records fit (the record bound; bytes are checked on ``add``)."""
        return max(0, self.max_records - len(self._items))

    def has_room(self, size: int) -> bool:
        return len(self._items) < self.max_records and self._bytes + size <= self.max_bytes

    def add(self, p: Pending) -> None:
        """Add a verified record. Raises ReplayError or OverloadError; the pool is unchanged."""
        if p.record_id in self._items:
            raise ReplayError(f"record {p.record_id.hex()} is already pending")
        key = (p.verified.record.author, p.verified.record.nonce)
        if key in self._nonces:
            raise ReplayError(f"nonce {key[1]!r} of {key[0]!r} is already pending")
        eid = self.check_event_id(p.verified.record)
        if not self.has_room(p.size):
            raise OverloadError(
                f"mempool full ({len(self._items)} records, {self._bytes} bytes); retry later"
            )
        self._items[p.record_id] = p
        self._nonces[key] = p.record_id
        self._by_leaf[p.verified.leaf_hash] = p.record_id
        if eid:
            self._event_ids[eid] = p.record_id
        self._bytes += p.size

    def check_event_id(self, record: TraceRecord) -> str:
        """Rule event-id against the pending records: raises ``RuleError`` naming the
        pending record that has ``record``'s eventID (or declares its event); else returns
        the record's ``event_ids.pending_key``."""
        eid = event_ids.pending_key(record)
        if eid and eid in self._event_ids:
            what = "an error declaration of eventID" if eid[0] == "\0" else "eventID"
            raise event_ids.refusal(
                f"{what} {eid.lstrip(chr(0))[:120]!r} is on a pending record "
                f"(record {self._event_ids[eid].hex()})",
                record,
            )
        return eid

    def get(self, record_id: bytes) -> Pending | None:
        return self._items.get(record_id)

    def by_leaf(self, leaf_hash: bytes) -> Pending | None:
        """The entry whose envelope has this Merkle leaf hash, if pending."""
        rid = self._by_leaf.get(leaf_hash)
        return self._items.get(rid) if rid is not None else None

    def take(self, max_records: int, max_bytes: int) -> list[Pending]:
        out: list[Pending] = []
        total = 0
        for p in self._items.values():
            if len(out) >= max_records or (out and total + p.size > max_bytes):
                break
            out.append(p)
            total += p.size
        return out

    def remove(self, record_ids: Iterable[bytes]) -> None:
        for rid in record_ids:
            p = self._items.pop(rid, None)
            if p is not None:
                self._nonces.pop((p.verified.record.author, p.verified.record.nonce), None)
                self._by_leaf.pop(p.verified.leaf_hash, None)
                eid = event_ids.pending_key(p.verified.record)
                if eid and self._event_ids.get(eid) == rid:
                    del self._event_ids[eid]
                self._bytes -= p.size

    def remove_nonces(self, nonces: Iterable[tuple[str, str]]) -> list[bytes]:
        """Drop pending records that use any of these (author, nonce) pairs; returns their
        record ids."""
        gone = [rid for n in nonces if (rid := self._nonces.get(n)) is not None]
        self.remove(gone)
        return gone

    def items(self) -> list[Pending]:
        return list(self._items.values())
