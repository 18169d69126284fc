"""EPCIS eventIDs: one event, one record.

EPCIS 2.0 gives every event an ``eventID`` (a URI, e.g. ``urn:uuid:...`` or the ``ni:``
hash of its canonical form) that is unique across all events, and repositories refuse a
second capture of one. A ledger that let the same eventID commit twice would count one
shipment as two and trace a copy as a second event. So, for new records: a record whose
event carries an ``eventID`` is refused if a committed record carries the same one, or if
another record of its block does (rule ``event-id``). Certified blocks (sync, audit) are
not judged by it: a log written before the rule still replays.

The one exception is EPCIS 2.0's error declaration: an event that is wrong is declared so by
capturing it again, same eventID, with an ``errorDeclaration`` (a reason, the corrective
events' IDs). A new record carrying one (rule ``error-declaration``) must name by eventID an
event a committed record holds, restate it (same type, action, bizStep, disposition and
codes), be by that record's author or a regulator, and be the eventID's only declaration.
The custody rules then undo what can be undone (``node.custody``: a closing event, or a
recall, on codes nothing has happened to since); the rest is corrected by new events.

The index is the sub-database ``event_ids`` (``node.store.EXTRA_DBS``):

    b"e" || UTF-8(eventID)        -> record id    (b"h" || SHA-256 when the key is too long)
    b"d" || UTF-8(eventID)        -> record id of its error declaration (b"g" || SHA-256)
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
from dataclasses import dataclass
from typing import Any

from node.epcis import compared_event_id, normalize_code
from node.errors import LedgerError, RuleError, RulePermissionError, StorageError
from node.genesis import Genesis
from node.permissions import bare_disposition, bare_step
from node.records import TraceRecord, VerifiedRecord, event_time_ms
from node.store import MAX_RAW_KEY, Store, StoreReader
from proto import types_pb2

DB = "event_ids"
RULE = "event-id"
RULE_DECLARATION = "error-declaration"
DECLARING_ROLES = ("regulator",)  # may declare any member's event in error
_MARK = b"m"
_U64 = struct.Struct(">Q")
_BATCH_BLOCKS = 256  # blocks indexed per write transaction by ``catch_up``

log = logging.getLogger("suyuan.event_ids")


def event_id(record: TraceRecord) -> str:
    """The record's EPCIS eventID as compared, "" if it has none (a non-string names none):
    a ``urn:uuid:`` in lower case (RFC 9562: a UUID's hex digits are case-insensitive)."""
    eid = record.event.get("eventID")
    return compared_event_id(eid) if isinstance(eid, str) else ""


def is_declaration(record: TraceRecord) -> bool:
    """Whether ``record``'s event is an EPCIS error declaration (``errorDeclaration``)."""
    return record.error_declaration is not None


def key(eid: str, declared: bool = False) -> bytes:
    """The index key of an event's record (``declared``: of its error declaration)."""
    raw = eid.encode("utf-8", "surrogatepass")
    if len(raw) + 1 <= MAX_RAW_KEY:
        return (b"d" if declared else b"e") + raw
    return (b"g" if declared else b"h") + hashlib.sha256(raw).digest()


def pending_key(record: TraceRecord) -> str:
    """What the mempool keeps one pending record per: "" (no eventID), the eventID, or
    for an error declaration the eventID after a NUL (one declaration per event)."""
    eid = event_id(record)
    return "\0" + eid if eid and is_declaration(record) else eid


@dataclass(frozen=True)
class Declared:
    """The committed record an error declaration names, found by its eventID."""

    record_id: bytes
    log_index: int
    record: TraceRecord


def declared_record(eid: str, reader: StoreReader) -> Declared | None:
    """The committed (non-declaration) record with eventID ``eid``, or None."""
    rid = reader.get(DB, key(eid))
    index = reader.index_of(rid) if rid is not None else None
    raw = reader.envelope_at(index) if index is not None else None
    if rid is None or index is None or raw is None:
        return None
    try:
        record = TraceRecord.from_payload(types_pb2.Envelope.FromString(raw).payload, strict=False)
    except (LedgerError, ValueError):
        return None
    return Declared(rid, index, record)


def _by_role(r: TraceRecord) -> tuple[Any, ...]:
    """The event's canonical codes by role (QA: a transformation's inputs and outputs
    swapped, or a parent and child swapped, passed for a restatement)."""
    c = r.roles
    return (
        frozenset(c.objects), c.parent, frozenset(c.children), frozenset(c.inputs),
        frozenset(c.outputs),
    )  # fmt: skip


def _restates(a: TraceRecord, b: TraceRecord) -> str:
    """The first field in which ``b`` does not restate ``a``'s event, or ""."""
    for what, get in (
        ("type", lambda r: r.event_type),
        ("action", lambda r: str(r.event.get("action", ""))),
        ("bizStep", lambda r: bare_step(r.biz_step)),
        ("disposition", lambda r: bare_disposition(str(r.event.get("disposition", "")))),
        ("codes", _by_role),
    ):
        if get(a) != get(b):
            return what
    return ""


def check_declaration(record: TraceRecord, reader: StoreReader, genesis: Genesis) -> Declared:
    """The committed record a new error declaration declares; raises ``RuleError`` (rule
    ``error-declaration``) unless it may (see the module docstring)."""
    codes = record.codes()
    code = normalize_code(codes[0]) if codes else ""  # (as the custody rules name it; QA)
    eid = event_id(record)
    if not eid:
        raise RuleError(
            RULE_DECLARATION,
            "an error declaration names the event it declares by that event's eventID",
            code,
        )
    if record.is_handoff:
        raise RuleError(
            RULE_DECLARATION,
            "an error declaration moves no custody: it is not a handoff (a wrong handoff is "
            "corrected by a handoff back)",
            code,
        )
    found = declared_record(eid, reader)
    if found is None:
        raise RuleError(
            RULE_DECLARATION,
            f"eventID {eid[:120]!r} is not on a committed record of this chain: only an "
            "event on the chain can be declared in error here",
            code,
        )
    rid = reader.get(DB, key(eid, declared=True))
    if rid is not None:
        raise RuleError(
            RULE_DECLARATION,
            f"eventID {eid[:120]!r} is already declared in error (record {rid.hex()})",
            code,
        )
    decl = record.error_declaration or {}
    decl_ms = event_time_ms(str(decl.get("declarationTime", "")))
    event_ms = event_time_ms(found.record.event_time)
    if decl_ms is not None and event_ms is not None and decl_ms < event_ms:
        # (QA: a declaration dated before its event was committed.) An event dated after
        # its own block (a wrong date, up to a day ahead is let in) is declared once it is
        # committed (QA: its goods were stuck until that date came)
        committed_ms = reader.block_time_at(found.log_index)
        if committed_ms is None or decl_ms < min(event_ms, committed_ms):
            raise RuleError(
                RULE_DECLARATION,
                "errorDeclaration.declarationTime is before the declared event's eventTime "
                "and before its record was committed: an error is declared after the event",
                code,
            )
    differs = _restates(found.record, record)
    if differs:
        raise RuleError(
            RULE_DECLARATION,
            f"an error declaration restates the event it declares: its {differs} "
            f"{'differ' if differs == 'codes' else 'differs'} "
            f"from record {found.record_id.hex()[:16]}...'s (eventID {eid[:120]!r})",
            code,
        )
    member = genesis.member(record.author)
    if record.author != found.record.author and not (
        member is not None and member.has_role(*DECLARING_ROLES)
    ):
        raise RulePermissionError(
            RULE_DECLARATION,
            f"{record.author!r} may not declare an event of {found.record.author!r} in "
            "error (its author or a regulator may)",
            code,
        )
    return found


def check_record(record: TraceRecord, reader: StoreReader, genesis: Genesis) -> None:
    """Rules event-id and error-declaration for one new record against the committed log;
    raises ``RuleError``."""
    if is_declaration(record):
        check_declaration(record, reader, genesis)
        return
    eid = event_id(record)
    why = duplicate(eid, reader) if eid else ""
    if why:
        raise refusal(why, record)


def duplicate(eid: str, reader: StoreReader) -> str:
    """Why ``eid`` may not be committed again ("" if it may): the record that has it."""
    rid = reader.get(DB, key(eid))
    if rid is None:
        return ""
    return f"eventID {eid[:120]!r} is already on the chain (record {rid.hex()})"


def refusal(why: str, record: TraceRecord) -> RuleError:
    codes = record.codes()
    return RuleError(
        RULE,
        f"{why}: EPCIS gives each event its own eventID (an event already captured is "
        "not captured twice; a new event needs a new eventID)",
        codes[0] if codes else "",
    )


def check_new(
    records: Sequence[VerifiedRecord], reader: StoreReader, genesis: Genesis
) -> list[tuple[int, RuleError]]:
    """The records of one block (in order) that the rules refuse: (position, error). A
    record is refused when a committed record or an earlier record of the block has its
    eventID; an error declaration as ``check_declaration`` says, or if an earlier record
    of the block declares the same event."""
    out: list[tuple[int, RuleError]] = []
    seen: set[str] = set()  # the ``pending_key`` of each earlier record of the block
    for i, v in enumerate(records):
        key_ = pending_key(v.record)
        try:
            check_record(v.record, reader, genesis)
            if key_ in seen:
                raise _in_block(v.record, key_)
        except RuleError as e:
            out.append((i, e.with_traceback(None)))
            continue
        if key_:
            seen.add(key_)
    return out


def _in_block(record: TraceRecord, key_: str) -> RuleError:
    eid = key_.lstrip("\0")[:120]
    if key_.startswith("\0"):
        codes = record.codes()
        return RuleError(
            RULE_DECLARATION,
            f"eventID {eid!r} is declared by an earlier record of this block",
            codes[0] if codes else "",
        )
    return refusal(f"eventID {eid!r} is named by an earlier record of this block", record)


def puts(records: Iterable[VerifiedRecord], height: int) -> list[tuple[str, bytes, bytes]]:
    """The index's puts for a committed block at ``height`` (a repeat in an old log keeps
    the latest record)."""
    out = [
        (DB, key(eid, is_declaration(v.record)), v.record_id)
        for v in records
        if (eid := event_id(v.record))
    ]
    out.append((DB, _MARK, _U64.pack(height)))
    return out


def indexed_height(store: Store) -> int:
    raw = store.get(DB, _MARK)
    return _U64.unpack(raw)[0] if raw is not None and len(raw) == _U64.size else 0


def _payload_event_id(envelope: bytes) -> tuple[str, bytes, bool] | None:
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
    declared = isinstance(ev, dict) and isinstance(ev.get("errorDeclaration"), dict)
    return compared_event_id(eid), hashlib.sha256(pb.payload).digest(), declared


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
                    batch.append((DB, key(found[0], found[2]), found[1]))
        batch.append((DB, _MARK, _U64.pack(hi)))
        store.put_extra(batch)
    return head - start


__all__ = [
    "DB",
    "RULE",
    "RULE_DECLARATION",
    "Declared",
    "catch_up",
    "check_declaration",
    "check_new",
    "check_record",
    "declared_record",
    "duplicate",
    "event_id",
    "indexed_height",
    "is_declaration",
    "key",
    "pending_key",
    "puts",
    "refusal",
]
