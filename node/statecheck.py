"""Check a stopped node's store against a replay of its own log (``suyuan node check``).

The store's derived indexes (code states, trace links, each code's records, record ids,
author nonces, eventIDs, the Merkle nodes) carry no checksums: a changed byte in one makes
``trace`` answer wrongly without a word. This check replays every block of the store, each
one's certificate verified against the genesis, through the sync path (``ChainState``'s
``validate_block`` and ``commit``) into a fresh store in a scratch folder, then compares
the two stores entry by entry. A resync of the node from its peers would build exactly the
replayed store, so any difference is damage (or rules upgraded in place; see the README).

Invariants: the checked store is opened and brought up to this version as a node's start
would (a format-2 store upgraded, eventIDs of an earlier version indexed: ``catch_up``),
and otherwise only read; the scratch store is removed whatever happens;
the sign state (the node's own) is not compared; record ids are compared as the mapping
the store answers with (``ids`` plus the ids its sweep has not written yet), which does
not depend on when the store was upgraded from format 2.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import lmdb
from google.protobuf.message import DecodeError

from node import event_ids
from node.chain import EXTRA_DBS, ChainState, parse_certified
from node.errors import ConfigError, DamagedStoreError, LedgerError, StorageError
from node.genesis import Genesis
from node.store import OWNER_KEY, Store
from proto import types_pb2

#: sub-databases compared byte for byte, with what they hold (for messages)
COMPARED: dict[str, str] = {
    "meta": "the head",
    "blocks": "blocks",
    "block_ends": "block boundaries",
    "recent_ids": "recent blocks' record ids",
    "nonces": "author nonces",
    "codes": "code histories",
    "merkle": "Merkle nodes",
    "custody": "code states",
    "edges": "trace links",
    "evidence": "evidence",
    "event_ids": "eventIDs",
}
SCRATCH_PREFIX = ".check-"
_SHOWN = 64  # bytes of a key or value shown in a difference


@dataclass(frozen=True)
class Difference:
    """One entry that differs: ``stored`` or ``replayed`` is None where it is missing."""

    db: str
    key: bytes
    stored: bytes | None
    replayed: bytes | None

    def describe(self) -> str:
        what = COMPARED.get(self.db, "record ids" if self.db == "ids" else self.db)
        at = _first_difference(self.stored, self.replayed)
        return (
            f"{self.db} ({what}) key {_show_key(self.db, self.key)}: stored "
            f"{_show(self.stored, at)}, a replay has {_show(self.replayed, at)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "key": self.key.hex(),
            "stored": None if self.stored is None else self.stored.hex(),
            "replayed": None if self.replayed is None else self.replayed.hex(),
        }


def _first_difference(a: bytes | None, b: bytes | None) -> int:
    """Where two values first differ (0 if either is missing)."""
    if a is None or b is None:
        return 0
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _show(b: bytes | None, at: int = 0) -> str:
    """``b`` as text (or hex), a window of it around offset ``at`` (QA-T: a long code state
    was cut off before the byte that differed)."""
    if b is None:
        return "nothing"
    start = max(0, min(at - _SHOWN // 4, len(b) - _SHOWN)) if len(b) > _SHOWN else 0
    part = b[start : start + _SHOWN]
    text = part.decode("utf-8", "replace")
    shown = repr(text) if text.isprintable() else part.hex()
    before = "..." if start else ""
    after = "..." if start + _SHOWN < len(b) else ""
    size = f" ({len(b)} bytes)" if before or after else ""
    return f"{before}{shown}{after}{size}"


def _show_key(db: str, key: bytes) -> str:
    """A key as its index names it: a code history's ``code #log-index`` (QA-T: printed as
    hex), a nonce's ``author/nonce``, a height or log index as a number."""
    if db == "codes" and len(key) > 9 and key[-9:-8] == b"\x00":
        code = key[:-9].decode("utf-8", "replace")
        return f"{code!r} #{int.from_bytes(key[-8:], 'big')}"
    if db == "nonces" and key and key[0] < 255 and len(key) > key[0]:
        author = key[1 : 1 + key[0]].decode("utf-8", "replace")
        return f"{author!r}/{key[1 + key[0] :].decode('utf-8', 'replace')!r}"
    if db in ("blocks", "recent_ids", "block_ends") and len(key) == 8:
        return str(int.from_bytes(key, "big"))
    return _show(key)


@dataclass
class CheckReport:
    blocks: int = 0
    records: int = 0
    seconds: float = 0.0
    #: entries compared per sub-database (stored side)
    entries: dict[str, int] = field(default_factory=dict)
    #: differing entries per sub-database
    differing: dict[str, int] = field(default_factory=dict)
    #: the first differences found (at most ``limit`` of ``check_store``)
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differing

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "blocks": self.blocks,
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "entries": self.entries,
            "differing": self.differing,
            "differences": [d.to_dict() for d in self.differences],
        }


def check_store(
    store: Store,
    genesis: Genesis,
    *,
    scratch_parent: Path,
    limit: int = 20,
    on_block: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Replay ``store``'s blocks into a scratch store under ``scratch_parent`` and compare.

    ``on_block(height, records)`` is called after each replayed block.

    Raises:
        DamagedStoreError: a block cannot be read back, or fails its certificate or the
            ledger's checks (its records, chain link, log root): the log itself is damaged.
        StorageError: the scratch store cannot be written (the message names the folder).
    """
    t0 = time.monotonic()
    report = CheckReport()
    event_ids.catch_up(store)  # (as a node's start: else an earlier version's store differs)
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=scratch_parent))
    try:
        with Store.open(scratch, genesis.hash, extra_dbs=EXTRA_DBS) as replay:
            chain = ChainState(replay, genesis)
            top = store.head().height
            for h in range(1, top + 1):
                first = replay.head().log_size
                ids = _replay_block(store, chain, h)
                _check_ids(report, store, ids, first, limit)
                report.blocks = h
                report.records = replay.head().log_size
                if on_block is not None:
                    on_block(h, report.records)
            try:
                for db in COMPARED:
                    _compare(report, db, _entries(store, db), _entries(replay, db), limit)
                _compare_stored_ids(report, store, replay, limit)
            except lmdb.Error as e:  # (QA-T: MDB_CORRUPTED: "Located page was wrong type")
                raise DamagedStoreError(
                    f"the store's pages are damaged ({e}); move the store away and start the "
                    "node with --resync"
                ) from e
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.seconds = time.monotonic() - t0
    return report


def _replay_block(store: Store, chain: ChainState, h: int) -> list[bytes]:
    """Replay block ``h`` of ``store`` into ``chain``; returns its record ids."""
    try:
        sb = store.get_block(h)
        if sb is None:
            raise DamagedStoreError(f"block {h} is missing from the store")
        block = types_pb2.Block.FromString(sb.block_bytes())
        cert = types_pb2.CommitCertificate.FromString(sb.certificate_bytes)
        chain.check_certificate(block, cert)  # (as a sync checks a block)
        known = parse_certified(block)
        prepared = chain.validate_block(block, verify_signatures=False, known=known)
    except DamagedStoreError:
        raise
    except (LedgerError, ValueError, DecodeError, lmdb.Error) as e:  # (QA-T: tracebacks)
        raise DamagedStoreError(
            f"block {h} of the store does not verify ({type(e).__name__}: {e}); move the store "
            "away and start the node with --resync"
        ) from e
    chain.commit(prepared, cert)
    return [r.record_id for r in known if r is not None]


def _check_ids(report: CheckReport, store: Store, ids: list[bytes], first: int, limit: int) -> None:
    """Each replayed record id has its log index in the store."""
    with store.reader() as ours:
        for index, rid in enumerate(ids, first):
            got = ours.index_of(rid)
            if got != index:
                stored = None if got is None else got.to_bytes(8, "big")
                _note(report, Difference("ids", rid, stored, index.to_bytes(8, "big")), limit)


def _entries(store: Store, db: str) -> Iterator[tuple[bytes, bytes]]:
    for key, value in store.items(db):
        if db == "meta" and key == OWNER_KEY:
            continue  # (node-local: which member's node keeps the store)
        yield key, value


def _compare(
    report: CheckReport,
    db: str,
    stored: Iterator[tuple[bytes, bytes]],
    replayed: Iterator[tuple[bytes, bytes]],
    limit: int,
) -> None:
    """Merge the two key-ordered runs, noting every key whose value differs or is missing
    on one side."""
    count = 0
    a, b = next(stored, None), next(replayed, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            _note(report, Difference(db, a[0], a[1], None), limit)
            count += 1
            a = next(stored, None)
        elif a is None or b[0] < a[0]:
            _note(report, Difference(db, b[0], None, b[1]), limit)
            b = next(replayed, None)
        else:
            if a[1] != b[1]:
                _note(report, Difference(db, a[0], a[1], b[1]), limit)
            count += 1
            a, b = next(stored, None), next(replayed, None)
    report.entries[db] = count


def _compare_stored_ids(report: CheckReport, store: Store, replay: Store, limit: int) -> None:
    """Every id in the store's ``ids`` is one the replay knows, at the same log index (the
    other way round is ``_check_ids``, block by block)."""
    count = 0
    with replay.reader() as theirs:
        for key, value in _entries(store, "ids"):
            count += 1
            want = theirs.index_of(key)
            got = int.from_bytes(value, "big") if len(value) == 8 else None
            if want != got:
                rep = None if want is None else want.to_bytes(8, "big")
                _note(report, Difference("ids", key, value, rep), limit)
    report.entries["ids"] = count


def _note(report: CheckReport, d: Difference, limit: int) -> None:
    report.differing[d.db] = report.differing.get(d.db, 0) + 1
    if len(report.differences) < limit:
        report.differences.append(d)


def check_in_child(
    path: Path,
    genesis: Genesis,
    *,
    scratch_parent: Path,
    limit: int = 20,
    on_block: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """``check_store`` of the store at ``path``, run in a forked child process, so that a
    damaged page on which LMDB aborts (an assertion in ``mdb.c`` ends the process) becomes
    a ``DamagedStoreError`` here (QA-T: exit 134, no message). The caller holds the data
    folder's lock, which the child inherits; ``on_block`` is called here, as the child
    reports each block. A scratch folder the child left is removed."""
    room = _room_problem(path, scratch_parent)
    if room:  # (QA-V: on a full disk, the replay's writes ended the child: "damaged")
        raise StorageError(room)
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_check_child,
        args=(send, path, genesis, scratch_parent, limit, on_block is not None, os.getpid()),
        daemon=True,
    )
    child.start()
    send.close()
    report: CheckReport | None = None
    failure: tuple[str, str] | None = None
    try:
        while True:
            try:
                msg = recv.recv()
            except EOFError:
                break
            if msg[0] == "block" and on_block is not None:
                on_block(msg[1], msg[2])
            elif msg[0] == "done":
                report = msg[1]
            elif msg[0] == "error":
                failure = (msg[1], msg[2])
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
            child.join()
        recv.close()
        code = child.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
        # (measured before the scratch store is removed, which gives its room back: review)
        room = _room_problem(path, scratch_parent, stopped=how) if report is None else ""
        remove_stale_scratch(scratch_parent)
    if failure is not None:
        kind = {"ConfigError": ConfigError, "StorageError": StorageError}.get(failure[0])
        raise (kind or DamagedStoreError)(failure[1])
    if report is None:
        if room:
            raise StorageError(room)
        raise DamagedStoreError(
            f"store at {path} is damaged: reading it stopped the check ({how}; LMDB ends a "
            "process on some damaged pages); move the store away and start the node with "
            "--resync"
        )
    return report


#: free space below which a check that stopped is put down to the scratch disk, not the store
_LOW_ROOM = 64 * 1024 * 1024


def _room_problem(path: Path, scratch_parent: Path, *, stopped: str = "") -> str:
    """Why the scratch folder's disk cannot take the replay ("": it can, or unknown). The
    replayed store takes about the room the store's data file uses; a check that
    ``stopped`` (a signal: LMDB's writes to its map end the process on a full disk) is put
    down to the disk when under ``_LOW_ROOM`` is left."""
    try:
        free = shutil.disk_usage(scratch_parent).free
        used = (path / "data.mdb").stat().st_blocks * 512
    except OSError:
        return ""
    if stopped and free < _LOW_ROOM:
        why = f"the check stopped ({stopped}) with {free:,} bytes free on {scratch_parent}"
    elif not stopped and free < used:
        why = f"{scratch_parent} has {free:,} bytes free, and the replay needs about {used:,}"
    else:
        return ""
    return (
        f"{why}: the store was not judged (it is not found damaged); free space, or give "
        "--scratch DIR on a disk with room"
    )


def _die_with(parent: int) -> None:
    """End this process when ``parent`` ends (Linux's parent-death signal; QA-V: a check
    killed with -9 left its replay running for seconds, holding the data folder)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # (it ended before the signal was asked for)
        os._exit(1)


def _check_child(
    conn: Connection,
    path: Path,
    genesis: Genesis,
    scratch: Path,
    limit: int,
    ticks: bool,
    parent: int,
) -> None:
    """The child of ``check_in_child``: every answer goes back through ``conn``."""
    _die_with(parent)
    try:
        with Store.open(path, genesis.hash, create=False, extra_dbs=EXTRA_DBS) as store:
            report = check_store(
                store,
                genesis,
                scratch_parent=scratch,
                limit=limit,
                on_block=(lambda h, n: conn.send(("block", h, n))) if ticks else None,
            )
        conn.send(("done", report))
    except LedgerError as e:
        conn.send(("error", type(e).__name__, str(e)))
    except Exception as e:  # (a bug, not damage: said as it is)
        conn.send(("error", "LedgerError", f"the check failed ({type(e).__name__}: {e})"))
    finally:
        conn.close()


def remove_stale_scratch(parent: Path) -> list[Path]:
    """Remove scratch folders an interrupted check left in ``parent``; returns them."""
    gone = [p for p in parent.glob(SCRATCH_PREFIX + "*") if p.is_dir()]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone
