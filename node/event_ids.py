"""EPCIS eventIDs: one event, one record.

EPCIS 2.0 gives every event an ``eventID`` (a URI, e.g. ``urn:uuid:...`` or the ``ni:``
hash of its canonical form) that is unique across all events, and repositories refuse a
second capture of one. A ledger that let the same eventID commit twice would count one
shipment as two and trace a copy as a second event. So, for new records: a record whose
event carries an ``eventID`` is refused if a committed record carries the same one, or if
another record of its block does (rule ``event-id``). Certified blocks (sync, audit) are
not judged by it: a log written before the rule still replays.

The index is the sub-database ``event_ids`` (``node.store.EXTRA_DBS``):

    b"e" || UTF-8(eventID)        -> record id    (b"h" || SHA-256 when the key is too long)
    b"m"                          -> u64 height: every block up to it is indexed

Written in each block's store transaction (``puts``), so it is exact at every head. A store
of an earlier version (or one an older node went on writing) is indexed from the blocks
above that height when the chain is opened (``catch_up``), before any record is judged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from node.epcis import compared_event_id
from node.errors import RuleError, StorageError
from node.records import TraceRecord, VerifiedRecord
from node.store import MAX_RAW_KEY, Store, StoreReader
from proto import types_pb2

DB = "event_ids"
RULE = "event-id"
_MARK = b"m"
_U64 = struct.Struct(">Q")
_BATCH_BLOCKS = 256  # blocks indexed per write transaction by ``catch_up``

log = logging.getLogger("suyuan.event_ids")


def event_id(record: TraceRecord) -> str:
    """The record's EPCIS eventID as compared, "" if it has none (a non-string names none):
    a ``urn:uuid:`` in lower case (RFC 9562: a UUID's hex digits are case-insensitive)."""
    eid = record.event.get("eventID")
    return compared_event_id(eid) if isinstance(eid, str) else ""


def key(eid: str) -> bytes:
    raw = eid.encode("utf-8", "surrogatepass")
    if len(raw) + 1 <= MAX_RAW_KEY:
        return b"e" + raw
    return b"h" + hashlib.sha256(raw).digest()


def duplicate(eid: str, reader: StoreReader) -> str:
    """Why ``eid`` may not be committed again ("" if it may): the record that has it."""
    rid = reader.get(DB, key(eid))
    if rid is None:
        return ""
    return f"eventID {eid[:120]!r} is already on the chain (record {rid.hex()[:16]}...)"


def refusal(why: str, record: TraceRecord) -> RuleError:
    codes = record.codes()
    return RuleError(
        RULE,
        f"{why}: EPCIS gives each event its own eventID (an event already captured is "
        "not captured twice; a new event needs a new eventID)",
        codes[0] if codes else "",
    )


def check_new(
    records: Sequence[VerifiedRecord], reader: StoreReader
) -> list[tuple[int, RuleError]]:
    """The records of one block (in order) that the rule refuses: (position, error). A
    record is refused when a committed record or an earlier record of the block has its
    eventID."""
    out: list[tuple[int, RuleError]] = []
    seen: set[str] = set()
    for i, v in enumerate(records):
        eid = event_id(v.record)
        if not eid:
            continue
        why = duplicate(eid, reader)
        if not why and eid in seen:
            why = f"eventID {eid[:120]!r} is named by an earlier record of this block"
        if why:
            out.append((i, refusal(why, v.record)))
        else:
            seen.add(eid)
    return out


def puts(records: Iterable[VerifiedRecord], height: int) -> list[tuple[str, bytes, bytes]]:
    """The index's puts for a committed block at ``height`` (a repeat in an old log keeps
    the latest record)."""
    out = [(DB, key(eid), v.record_id) for v in records if (eid := event_id(v.record))]
    out.append((DB, _MARK, _U64.pack(height)))
    return out


def indexed_height(store: Store) -> int:
    raw = store.get(DB, _MARK)
    return _U64.unpack(raw)[0] if raw is not None and len(raw) == _U64.size else 0


def _payload_event_id(envelope: bytes) -> tuple[str, bytes] | None:
    pb = types_pb2.Envelope()
    pb.ParseFromString(envelope)
    try:
        doc: Any = json.loads(pb.payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    ev = doc.get("event") if isinstance(doc, dict) else None
    eid = ev.get("eventID") if isinstance(ev, dict) else None
    if not isinstance(eid, str):
        return None
    return compared_event_id(eid), hashlib.sha256(pb.payload).digest()


def catch_up(store: Store) -> int:
    """Index the eventIDs of every block above the index's height; returns the blocks read.
    Idempotent: a crash part way leaves a lower height, and the same puts are made again."""
    start, head = indexed_height(store), store.head().height
    if start >= head:
        return 0
    if head - start > _BATCH_BLOCKS:
        log.info("indexing the eventIDs of blocks %d-%d", start + 1, head)
    for lo in range(start + 1, head + 1, _BATCH_BLOCKS):
        hi = min(lo + _BATCH_BLOCKS - 1, head)
        batch: list[tuple[str, bytes, bytes]] = []
        for h in range(lo, hi + 1):
            block = store.get_block(h)
            if block is None:
                raise StorageError(f"store is corrupt: block {h} is missing below the head")
            for env in block.envelopes:
                found = _payload_event_id(env)
                if found is not None:
                    batch.append((DB, key(found[0]), found[1]))
        batch.append((DB, _MARK, _U64.pack(hi)))
        store.put_extra(batch)
    return head - start


__all__ = [
    "DB",
    "RULE",
    "catch_up",
    "check_new",
    "duplicate",
    "event_id",
    "indexed_height",
    "key",
    "puts",
    "refusal",
]
