"""The node's durable state: one LMDB environment with named sub-databases.

Layout (integers are big-endian, so keys that grow are appended in key order):

============  ==========================================  ==================================
sub-database  key                                         value
============  ==========================================  ==================================
meta          ``version`` / ``genesis`` / ``head``        format, chain identity, head
sign          ``state``                                   consensus last-signed state
blocks        height (8 bytes)                            ``_BLOCK`` fields, header bytes,
                                                          certificate bytes, envelope end
                                                          offsets, the envelopes back to back
block_ends    log index one past a block's last record    height (non-empty blocks only)
ids           record id (32 bytes)                        log index (8 bytes)
recent_ids    height (8 bytes), of the last K blocks only   first log index, the block's ids
nonces        len(author) || author || nonce (``nonce_key``)  empty
codes         code || 0x00 || log index (``code_key``)     empty (keys sort by code, index)
merkle        level || chunk (node.merkle_store)          127 node hashes per chunk
custody ...   upper layers' keys (custody, edges,            upper layers' values
              evidence, event_ids: ``node.event_ids``)
============  ==========================================  ==================================

Each envelope is stored once, inside its block's value (a run of overflow pages, so no
per-record page slack); the log index of a record is found through ``ids`` and its block
through ``block_ends``.

``ids`` is written by a sweep, not per block: record ids are random, so inserting a block's
ids one by one dirties about one B-tree page per record once the index outgrows a few
thousand pages (at 1,000,000 records a 2,000-record block's commit wrote about 1,850 random
pages and took 280 ms). Instead the id space is cut into ``IDS_SWEEP_SLICES`` slices by the
id's first byte; the commit of block ``h`` writes the pending ids of slice ``h mod K``
(those of every block since that slice's last turn) in one sorted ``putmulti``, touching
only that slice's pages. Until its turn an id is answered from memory. Each block's ids
are also kept in ``recent_ids`` (one value per block, appended) until the sweep has written
them all, so a restart rebuilds the pending ones and nothing is lost in a crash.

Index keys are raw bytes, not digests, so that a block's inserts
(one author's nonces, a range of serial codes) land on few B-tree pages: every page a
transaction touches is copied and written at commit.

Invariants:

* A block is written in ONE durable write transaction (``append_block``): after a crash the
  store holds the whole block or none of it, and the head always names the last whole block.
* Envelope and header bytes are stored once, exactly as given, and never re-serialized.
* Stored Merkle nodes never change; the head's ``log_root`` is the fold of the frontier.
* Every record id of a block at height ``<= head - IDS_SWEEP_SLICES`` is in ``ids``; the
  younger ones are in ``ids`` or pending in memory (``Store._mem``), never neither.
* A full map never reaches the caller: the transaction is aborted, the map grown and the
  whole transaction retried. Any other LMDB failure (disk full...) aborts the transaction,
  leaves the store as it was and raises ``StorageError``.

Threads: one writer thread plus any number of reader threads; every read method uses its
own short read transaction. One ``Store`` per path per process (an LMDB rule).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import lmdb
from google.protobuf.message import DecodeError

from node import merkle
from node.errors import (
    ConfigError,
    DamagedStoreError,
    InputError,
    NotFoundError,
    ReplayError,
    StorageError,
)
from node.merkle_store import Frontier, NodeReader, extend, preview
from proto import types_pb2


def free_space(path: Path) -> str:
    """ " (N MiB free ...)" for a failed write under ``path``: LMDB reports a full disk as
    an I/O error, so the free space is what tells the operator; "" if it cannot be read."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return ""
    return f" ({free / 2**20:.1f} MiB free on its filesystem)"


FORMAT_VERSION = 3  # 2: every id written with its block (opened and upgraded: a subset of 3)
_UPGRADABLE = (2,)  # 1: the first layout of 80ef47c (post-order nodes, envelopes db)
IDS_SWEEP_SLICES = 32  # K: an id reaches ``ids`` within K blocks (memory: ~2K blocks of ids)
ZERO_HASH = bytes(32)  # the head's block hash before the first block (prev_block_hash at 1)
DEFAULT_MAP_SIZE = 1 << 30  # address space only; the file grows with the data
#: pre-declared sub-databases for upper layers
EXTRA_DBS = ("custody", "edges", "evidence", "event_ids")
MAX_RAW_KEY = 400  # longer nonce or code keys are replaced by a digest (LMDB keys <= 511)
DEFAULT_PAGE = 1000
_CORE_DBS = ("meta", "sign", "blocks", "block_ends", "ids", "recent_ids", "nonces", "codes")
_MERKLE_DB = "merkle"
#: meta key naming the member whose node keeps the store (node-local: not in a replay)
OWNER_KEY = b"member"

_U64 = struct.Struct(">Q")
_HEAD = struct.Struct(">Q32sQ32s")
_BLOCK = struct.Struct(">QI32sII")  # first index, count, block hash, header len, cert len
_VERSION = struct.Struct(">I")
_U32 = _VERSION

T = TypeVar("T")
_EMPTY_HEAD = (0, ZERO_HASH, 0, merkle.EMPTY_ROOT)


@dataclass(frozen=True)
class Head:
    """The last whole block and the log after it. ``height == 0``: no block yet."""

    height: int
    block_hash: bytes
    log_size: int
    log_root: bytes


@dataclass(frozen=True)
class BlockWrite:
    """Everything one committed block adds to the store, written atomically.

    Per-record sequences are parallel (same length, log order). ``leaf_data[i]`` is what is
    hashed into the log for record ``i`` (only its hash is stored), or, if ``leaves_hashed``,
    already its RFC 9162 leaf hash (a caller that has the hashes spares hashing them again).
    ``extra`` holds generic puts ``(db, key, value)`` for upper layers (``value is None``
    deletes ``key``).
    """

    height: int
    block_hash: bytes
    header_bytes: bytes
    certificate_bytes: bytes
    envelopes: Sequence[bytes]
    record_ids: Sequence[bytes]
    leaf_data: Sequence[bytes]
    codes: Sequence[Sequence[str]]
    nonces: Sequence[tuple[str, str]]
    extra: Sequence[tuple[str, bytes, bytes | None]] = ()
    leaves_hashed: bool = False


@dataclass(frozen=True)
class StoredBlock:
    """A stored block: exact header and certificate bytes, and its envelopes in order."""

    height: int
    block_hash: bytes
    header_bytes: bytes
    certificate_bytes: bytes
    first_index: int
    envelopes: tuple[bytes, ...]

    def block_bytes(self) -> bytes:
        """The serialized ``Block`` (proto/types.proto), built from the stored bytes."""
        return _field(1, self.header_bytes) + b"".join(_field(2, e) for e in self.envelopes)

    def committed_block_bytes(self) -> bytes:
        """The serialized ``CommittedBlock``; no signed byte is re-serialized."""
        return _field(1, self.block_bytes()) + _field(2, self.certificate_bytes)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nonce_key(author: str, nonce: str) -> bytes:
    """The replay-index key of an author's nonce: ``len(author) || author || nonce``.

    Raw bytes, so that one author's successive nonces (counters, timestamps) sort together
    and a block's inserts touch few pages; a key that would be too long (or an author of 255+
    bytes) becomes ``0xff || SHA-256(len(author), author, nonce)``.
    """
    a = author.encode()
    key = bytes((len(a),)) + a + nonce.encode() if len(a) < 255 else b""
    if not key or len(key) > MAX_RAW_KEY:
        key = b"\xff" + hashlib.sha256(_U32.pack(len(a)) + a + nonce.encode()).digest()
    return key


def code_key(code: str) -> bytes:
    """The code-index key prefix of a trace code: ``code || 0x00``; each entry appends the
    8-byte log index, so entries sort by code, then index. Raw, so codes sharing a prefix
    (serial ranges) stay together; a code with NUL or too long becomes ``0x00 || SHA-256``."""
    raw = code.encode()
    if b"\x00" in raw or len(raw) > MAX_RAW_KEY:
        raw = b"\x00" + hashlib.sha256(raw).digest()
    return raw + b"\x00"


def _id_slice(record_id: bytes) -> int:
    """The sweep slice of a record id (by its first byte); slice ``h mod K`` is written
    by the commit of block ``h``."""
    return record_id[0] * IDS_SWEEP_SLICES >> 8


def _check_index(value: int, what: str) -> None:
    """Heights and log indexes are unsigned 64-bit integers (keys are packed big-endian)."""
    if not 0 <= value < 1 << 64:
        raise InputError(
            f"{what} {value} is negative" if value < 0 else f"{what} {value} is too large"
        )


def damaged(what: str) -> DamagedStoreError:
    """The error for stored data that is not what was committed (LMDB keeps no checksums)."""
    return DamagedStoreError(
        f"store is damaged: {what} (a changed byte in data.mdb); stop this node, move its "
        "store away and start it with --resync (it syncs the log from its peers)"
    )


def _layout(height: int, value: bytes | memoryview) -> tuple[int, int, int, int]:
    """(first log index, envelope count, offsets start, envelopes start) of a stored block
    value; ``DamagedStoreError`` if the value's own lengths do not fit it."""
    try:
        first, n, _hash, hlen, clen = _BLOCK.unpack_from(value)
    except struct.error as e:
        raise damaged(f"block {height} does not parse") from e
    offsets = _BLOCK.size + hlen + clen
    if offsets + 4 * n > len(value):
        raise damaged(f"block {height} does not parse")
    return first, n, offsets, offsets + 4 * n


def _unpack_block(height: int, value: bytes | memoryview) -> tuple[StoredBlock, int, int]:
    """A stored block value -> (block without envelopes, offsets start, envelopes start)."""
    first, _, offsets, data = _layout(height, value)
    block_hash, hlen = _BLOCK.unpack_from(value)[2:4]  # (the layout checked they fit)
    h0 = _BLOCK.size
    header, cert = bytes(value[h0 : h0 + hlen]), bytes(value[h0 + hlen : offsets])
    return StoredBlock(height, block_hash, header, cert, first, ()), offsets, data


def _envelope_in(value: bytes | memoryview, offsets: int, data: int, i: int) -> bytes:
    """Envelope ``i`` of a stored block value (see ``_layout``)."""
    end = data + _U32.unpack_from(value, offsets + 4 * i)[0]
    start = data + (_U32.unpack_from(value, offsets + 4 * (i - 1))[0] if i else 0)
    if not data <= start <= end <= len(value):
        raise damaged("an envelope's bounds lie outside its block")
    return bytes(value[start:end])


class _Gate:
    """Readers share the map; growing it (``set_mapsize``) or closing excludes them.

    ``enter``/``leave`` are the hot path (every read): one uncontended lock each, and a
    notification only when an exclusive holder is waiting. Not re-entrant: a reader must
    not enter again while inside (a waiting grower would block it).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._exclusive = False
        self._waiting = 0

    def enter(self) -> None:
        with self._cond:
            while self._exclusive or self._waiting:  # a waiting grower goes first
                self._cond.wait()
            self._readers += 1

    def leave(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._waiting and not self._readers:
                self._cond.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def _abort(txn: lmdb.Transaction) -> None:
    with contextlib.suppress(lmdb.Error):  # already finished by a failed commit
        txn.abort()


def _check_block(b: BlockWrite) -> None:
    n = len(b.envelopes)
    lengths = {len(b.record_ids), len(b.leaf_data), len(b.codes), len(b.nonces)}
    if lengths != {n}:
        raise InputError(f"block {b.height}: per-record sequences differ in length")
    if len(b.block_hash) != merkle.HASH_SIZE or not b.header_bytes:
        raise InputError(f"block {b.height}: needs a 32-byte hash and header bytes")
    if any(len(r) != merkle.HASH_SIZE for r in b.record_ids):
        raise InputError(f"block {b.height}: every record id must be 32 bytes")
    if b.leaves_hashed and any(len(h) != merkle.HASH_SIZE for h in b.leaf_data):
        raise InputError(f"block {b.height}: every leaf hash must be 32 bytes")


def _check_file_holds_pages(env: lmdb.Environment, p: Path) -> None:
    """Refuse a data file shorter than the pages its meta page counts (a truncated copy):
    reading a page past the end of a mapped file kills the process with SIGBUS, with no
    message at all."""
    pages = env.info()["last_pgno"] + 1
    size = (p / "data.mdb").stat().st_size
    need = pages * env.stat()["psize"]
    if size < need:  # (the caller closes ``env``)
        raise StorageError(
            f"store at {p} is corrupt: data.mdb holds {size} bytes, its pages need {need} "
            "(a truncated copy?); move data.mdb away and start the node with --resync"
        )


class Store:
    """The LMDB-backed ledger state of one node. Create with ``Store.open``."""

    def __init__(
        self,
        path: Path,
        env: lmdb.Environment,
        dbs: dict[str, lmdb._Database],
        head: Head,
        frontier: Frontier,
        map_size: int,
    ) -> None:
        self._path = path
        self._env = env
        self._dbs = dbs
        self._head = head
        self._frontier = frontier
        self._map_size = map_size
        self._wlock = threading.Lock()
        self._gate = _Gate()
        self._closed = False
        # the ids sweep: slice -> {id: log index} not yet in ``ids``; ``_mem`` answers
        # lookups for those and, for K more blocks, for the ids a sweep just wrote (a read
        # transaction begun before that sweep does not see them); ``_swept`` remembers
        # which ids each recent sweep wrote, to forget them from ``_mem`` in time
        self._pending: list[dict[bytes, int]] = [{} for _ in range(IDS_SWEEP_SLICES)]
        self._mem: dict[bytes, int] = {}
        self._swept: deque[tuple[int, list[bytes]]] = deque()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        path: str | Path,
        genesis_hash: bytes,
        *,
        create: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        extra_dbs: Sequence[str] = (),
        max_readers: int = 254,
    ) -> Store:
        """Open (or create) the store in directory ``path`` for the chain ``genesis_hash``.

        Raises:
            StorageError: no store there (``create=False``), an LMDB database that is not
                a Suyuan store, another chain's store, an unknown format version, or LMDB
                cannot open it. What is there is read first, in a read-only transaction:
                nothing is created in a store that is refused.
        """
        if len(genesis_hash) != merkle.HASH_SIZE:
            raise InputError("genesis hash must be 32 bytes")
        p = Path(path)
        data = p / "data.mdb"
        if data.is_file() and data.stat().st_size == 0:  # (LMDB would take it as a new store)
            raise StorageError(
                f"store at {p} is corrupt: data.mdb is empty (0 bytes; a truncated copy?); "
                "move data.mdb away and start the node with --resync (a validator: without "
                "it, one whose recent blocks carry its signature refuses a new store)"
            )
        if not data.exists():
            if not create:
                raise StorageError(f"no store at {p}")
            try:
                p.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create the store at {p}: {e.strerror}") from e
        names = tuple(
            dict.fromkeys((*_CORE_DBS, _MERKLE_DB, *EXTRA_DBS, *(n for n in extra_dbs if n)))
        )
        try:
            env = lmdb.open(
                str(p),
                map_size=map_size,
                max_dbs=len(names) + 1,
                max_readers=max_readers,
                lock=True,
                sync=True,
                metasync=True,
                readahead=False,
                meminit=False,
            )
        except (
            lmdb.InvalidError,
            lmdb.CorruptedError,
            lmdb.PageNotFoundError,
            lmdb.VersionMismatchError,  # (QA-T: a flipped header byte reads as "format v...")
        ) as e:
            raise StorageError(  # (QA-S: "MDB_INVALID: File is not an LMDB file", no advice)
                f"store at {p} is corrupt ({e}); move its data.mdb away and start the node "
                "with --resync (it syncs the log from its peers)"
            ) from e
        except lmdb.Error as e:
            raise StorageError(f"cannot open the store at {p}: {e}") from e
        try:
            _check_file_holds_pages(env, p)
            new = cls._inspect(env, p, genesis_hash, names)
            # Only a new store or one of this chain and version gets here: the sub-databases
            # (and, for a new store, its meta) are created in one write transaction.
            with env.begin(write=True) as txn:
                dbs = {n: env.open_db(n.encode(), txn=txn) for n in names}
                if new:
                    txn.put(b"genesis", genesis_hash, db=dbs["meta"])
                    txn.put(b"head", _HEAD.pack(*_EMPTY_HEAD), db=dbs["meta"])
                # version 2 (every id already in ``ids``) satisfies version 3's invariant
                txn.put(b"version", _VERSION.pack(FORMAT_VERSION), db=dbs["meta"])
            with env.begin(db=dbs["meta"]) as txn:
                raw = txn.get(b"head")
            if raw is None or len(raw) != _HEAD.size:
                raise StorageError(f"store at {p} is corrupt: no head")
            head = Head(*_HEAD.unpack(raw))
            with env.begin(db=dbs[_MERKLE_DB]) as txn:
                frontier = NodeReader(txn.get).frontier(head.log_size)
        except lmdb.Error as e:
            env.close()
            raise StorageError(f"cannot open the store at {p}: {e}") from e
        except (KeyError, StorageError, ConfigError) as e:
            env.close()
            if isinstance(e, StorageError | ConfigError):
                raise
            raise StorageError(f"store at {p} is corrupt: Merkle node {e} missing") from e
        if frontier.root != head.log_root:
            env.close()
            raise StorageError(f"store at {p} is corrupt: log root does not match the head")
        store = cls(p, env, dbs, head, frontier, env.info()["map_size"])
        try:
            store._load_pending_ids()
        except lmdb.Error as e:
            env.close()
            raise StorageError(f"store at {p} is corrupt: {e}") from e
        return store

    @staticmethod
    def _inspect(env: lmdb.Environment, p: Path, genesis_hash: bytes, names: Sequence[str]) -> bool:
        """Look at what is at ``p`` in a read-only transaction, before anything is created.

        Returns True for a new store: an empty environment, or only empty sub-databases of
        our own names (a creation that was interrupted before its meta was written).

        Raises:
            StorageError: data that is not a Suyuan store (no format version), another
                format version, or another chain's store.
        """
        ours = {n.encode() for n in names}
        with env.begin() as txn:
            found = list(txn.cursor().iternext(values=False))
            version = stored = None
            if b"meta" in found:
                meta = env.open_db(b"meta", txn=txn, create=False)
                version, stored = txn.get(b"version", db=meta), txn.get(b"genesis", db=meta)
            if version is None:
                for name in found:
                    db = env.open_db(name, txn=txn, create=False) if name in ours else None
                    if db is None or txn.stat(db)["entries"]:
                        raise StorageError(
                            f"{p} holds an LMDB database that is not a Suyuan store "
                            "(no format version); refusing to use it"
                        )
                return True
        got = _VERSION.unpack(version)[0] if len(version) == _VERSION.size else None
        if got != FORMAT_VERSION and got not in _UPGRADABLE:
            raise StorageError(
                f"store at {p} has format version {got if got is not None else '?'}, "
                f"this node reads version {FORMAT_VERSION}"
            )
        if stored != genesis_hash:  # (a setting, not damage: QA-W, exit 4 named no fix)
            theirs = stored.hex()[:16] if stored else "none"
            raise ConfigError(
                f"store at {p} belongs to another chain (its genesis {theirs}..., the "
                f"genesis file given is {genesis_hash.hex()[:16]}...): is the config's "
                "`genesis` the consortium's file? If it is, this data folder is another "
                "chain's: move it away and start with --resync"
            )
        return False

    def close(self) -> None:
        """Close the environment (idempotent); waits for running reads to finish."""
        with self._wlock, self._gate.exclusive():
            if not self._closed:
                self._closed = True
                self._env.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def map_size(self) -> int:
        """The current LMDB map size in bytes (grows by itself)."""
        return self._map_size

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _read(self) -> Iterator[lmdb.Transaction[bytes]]:
        """A read transaction whose values are bytes."""
        with self._gate.shared():
            if self._closed:
                raise StorageError("the store is closed")
            with self._env.begin() as txn:
                yield txn

    @contextmanager
    def _view(self) -> Iterator[lmdb.Transaction[memoryview]]:
        """A read transaction whose values are zero-copy memoryviews, valid inside it."""
        with self._gate.shared():
            if self._closed:
                raise StorageError("the store is closed")
            with self._env.begin(buffers=True) as txn:
                yield txn

    def _write(self, work: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``work`` in one durable write transaction, growing the map when full."""
        with self._wlock:
            if self._closed:
                raise StorageError("the store is closed")
            while True:
                txn = self._env.begin(write=True)
                try:
                    result = work(txn)
                    txn.commit()
                    return result
                except lmdb.MapFullError:
                    _abort(txn)
                    self._grow()
                except lmdb.Error as e:
                    _abort(txn)
                    raise StorageError(
                        f"cannot write the store at {self._path}: {e}; nothing was written"
                        f"{free_space(self._path)}"
                    ) from e
                except BaseException:
                    _abort(txn)
                    raise

    def _grow(self) -> None:
        new = self._map_size * 2
        with self._gate.exclusive():
            try:
                self._env.set_mapsize(new)
            except lmdb.Error as e:
                raise StorageError(
                    f"cannot grow the store map to {new} bytes: {e}{free_space(self._path)}"
                ) from e
        self._map_size = self._env.info()["map_size"]

    # ------------------------------------------------------------------ writes

    def append_block(self, block: BlockWrite) -> None:
        """Store one committed block atomically and durably.

        Raises:
            StorageError: ``block.height`` is not ``head().height + 1``, an unknown extra
                sub-database, or the disk refuses the write. The store is unchanged.
            ReplayError: a record id or (author, nonce) is already stored. Unchanged.
            InputError: the block's sequences are inconsistent.
        """
        _check_block(block)
        if block.height != self._head.height + 1:
            raise StorageError(
                f"block {block.height} does not follow the head (height {self._head.height})"
            )
        for name, _k, _v in block.extra:
            if name not in self._dbs or name in _CORE_DBS or name == _MERKLE_DB:
                raise StorageError(f"unknown extra sub-database {name!r}")
        ids = block.record_ids
        if len(set(ids)) != len(ids) or any(rid in self._mem for rid in ids):
            raise ReplayError(f"block {block.height} repeats a stored record id")
        # answerable from memory before the commit, so that no reader ever sees the new
        # head without its ids (a reader may see an id a moment before its block)
        first = self._head.log_size
        self._mem.update(zip(ids, range(first, first + len(ids)), strict=True))
        try:
            head, frontier, written = self._write(lambda txn: self._append_txn(txn, block))
        except BaseException:
            for rid in ids:
                self._mem.pop(rid, None)
            raise
        self._frontier = frontier
        self._head = head
        self._after_sweep(block, first, written)

    def _after_sweep(self, b: BlockWrite, first: int, written: list[bytes]) -> None:
        """Memory side of a committed block's ids (``_append_txn`` left memory untouched, as
        a retried transaction must): ``written`` are the ids its turn of the sweep wrote."""
        turn = b.height % IDS_SWEEP_SLICES
        self._pending[turn] = {}
        for i, rid in enumerate(b.record_ids, first):
            s = _id_slice(rid)
            if s != turn:
                self._pending[s][rid] = i
        self._swept.append((b.height, written))
        while self._swept and self._swept[0][0] <= b.height - IDS_SWEEP_SLICES:
            for rid in self._swept.popleft()[1]:
                self._mem.pop(rid, None)

    def _load_pending_ids(self) -> None:
        """Recompute the ids the sweep has not written yet: those of the last K blocks
        (kept in ``recent_ids``) whose slice has not had its turn since."""
        top = self._head.height
        with self._read() as txn:
            for h in range(max(1, top - IDS_SWEEP_SLICES + 1), top + 1):
                value = txn.get(_U64.pack(h), db=self._dbs["recent_ids"])
                if value is None:
                    continue  # an empty block, or one written by format version 2
                first = _U64.unpack_from(value)[0]
                for i in range((len(value) - 8) // 32):
                    rid = value[8 + 32 * i : 40 + 32 * i]
                    s = _id_slice(rid)
                    # written by the first block h' >= h with h' mod K == s, if any so far
                    if (s - h) % IDS_SWEEP_SLICES > top - h:
                        self._pending[s][rid] = first + i
                        self._mem[rid] = first + i

    def _index_of(self, txn: lmdb.Transaction, record_id: bytes) -> int | None:
        """A record's log index: pending in memory, else in ``ids`` (memory first: an id
        leaves ``_mem`` only K blocks after the sweep that wrote it)."""
        index = self._mem.get(record_id)
        if index is not None:
            return index
        raw = txn.get(record_id, db=self._dbs["ids"])
        return None if raw is None else _U64.unpack(raw)[0]

    def _append_txn(
        self, txn: lmdb.Transaction, b: BlockWrite
    ) -> tuple[Head, Frontier, list[bytes]]:
        if b.height != self._head.height + 1:
            raise StorageError(f"block {b.height} does not follow height {self._head.height}")
        dbs = self._dbs
        pack = _U64.pack
        first = self._head.log_size
        n = len(b.envelopes)
        appended = extend(self._frontier, b.leaf_data, hashed=b.leaves_hashed)
        front = appended.frontier

        ends = list(accumulate(map(len, b.envelopes)))
        value = b"".join(
            (
                _BLOCK.pack(first, n, b.block_hash, len(b.header_bytes), len(b.certificate_bytes)),
                b.header_bytes,
                b.certificate_bytes,
                struct.pack(f">{n}I", *ends),
                *b.envelopes,
            )
        )
        if not txn.put(pack(b.height), value, append=True, db=dbs["blocks"]):
            raise StorageError(f"block {b.height} is already stored")
        ids_db = dbs["ids"]  # (repeats within the block and in memory: ``append_block``)
        if any(txn.get(rid, db=ids_db) is not None for rid in b.record_ids):
            raise ReplayError(f"block {b.height} repeats a stored record id")
        # this block's turn of the sweep: its slice's pending ids, this block's included
        turn = b.height % IDS_SWEEP_SLICES
        due = dict(self._pending[turn])
        for i, rid in enumerate(b.record_ids):
            if _id_slice(rid) == turn:
                due[rid] = first + i
        if n:  # until the sweep has written them all: what a restart rebuilds from
            txn.put(pack(b.height), pack(first) + b"".join(b.record_ids), db=dbs["recent_ids"])
        if b.height > IDS_SWEEP_SLICES:
            txn.delete(pack(b.height - IDS_SWEEP_SLICES), db=dbs["recent_ids"])
        if due:
            with txn.cursor(ids_db) as cur:
                items = sorted((rid, pack(i)) for rid, i in due.items())
                if cur.putmulti(items, overwrite=False)[1] != len(items):
                    raise ReplayError(f"block {b.height} repeats a stored record id")
        if n:
            idx = [pack(i) for i in range(first, first + n)]
            nonce_items = [(nonce_key(a, nn), b"") for a, nn in b.nonces]
            with txn.cursor(dbs["nonces"]) as cur:
                if cur.putmulti(nonce_items, overwrite=False)[1] != n:
                    raise ReplayError(f"block {b.height} repeats a stored author nonce")
            code_items = [
                (code_key(c) + k, b"") for cs, k in zip(b.codes, idx, strict=True) for c in cs
            ]
            if code_items:
                with txn.cursor(dbs["codes"]) as cur:
                    cur.putmulti(code_items)
            txn.put(pack(first + n), pack(b.height), append=True, db=dbs["block_ends"])

        if appended.puts:
            with txn.cursor(dbs[_MERKLE_DB]) as cur:
                cur.putmulti(appended.puts)
        for name, key, val in b.extra:
            if val is None:
                txn.delete(key, db=dbs[name])
            else:
                txn.put(key, val, db=dbs[name])
        head = Head(b.height, b.block_hash, front.size, front.root)
        txn.put(
            b"head",
            _HEAD.pack(head.height, head.block_hash, head.log_size, head.log_root),
            db=dbs["meta"],
        )
        return head, front, list(due)

    def put_extra(self, items: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Write ``(db, key, value)`` puts to extra sub-databases in one transaction (an
        upper layer's index built outside a block's commit, e.g. ``node.event_ids``)."""
        for name, _k, _v in items:
            self._extra_db(name)  # (raises for an unknown one before anything is written)

        def work(txn: lmdb.Transaction) -> None:
            for name, k, v in items:
                txn.put(k, v, db=self._dbs[name])

        self._write(work)

    def put_sign_state(self, state: bytes, locked: bytes | None = None) -> None:
        """Durably record the consensus layer's last-signed state (fsynced on return), and
        with it, if given, the value it is locked on (``consensus.lockstate``), in the same
        transaction."""

        def work(txn: lmdb.Transaction) -> None:
            txn.put(b"state", state, db=self._dbs["sign"])
            if locked is not None:
                txn.put(b"locked", locked, db=self._dbs["sign"])

        self._write(work)

    # ------------------------------------------------------------------ reads

    def head(self) -> Head:
        """The last whole block and the log after it."""
        return self._head

    def get_sign_state(self) -> bytes | None:
        with self._read() as txn:
            return txn.get(b"state", db=self._dbs["sign"])

    def items(self, db: str) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of sub-database ``db`` in key order, from one read
        transaction held while the caller iterates (whole-store tools: ``node.statecheck``)."""
        with self._read() as txn, txn.cursor(self._dbs[db]) as cur:
            yield from cur.iternext(keys=True, values=True)

    def owner(self) -> str:
        """The member whose node keeps this store (its sign state is that key's); "" if
        none claimed it yet (a new store, or one of an earlier version)."""
        with self._read() as txn:
            raw = txn.get(OWNER_KEY, db=self._dbs["meta"])
        return raw.decode("utf-8", "replace") if raw is not None else ""

    def claim(self, member: str) -> None:
        """Record ``member`` as the store's owner (``owner``), durably."""
        self._write(lambda txn: txn.put(OWNER_KEY, member.encode(), db=self._dbs["meta"]))

    def get_locked(self) -> bytes | None:
        """The last value ``put_sign_state`` recorded as locked on, or None."""
        with self._read() as txn:
            return txn.get(b"locked", db=self._dbs["sign"])

    def get_block(self, height: int) -> StoredBlock | None:
        """The block at ``height`` with its envelopes, or ``None``.

        Raises:
            InputError: ``height`` is negative.
        """
        _check_index(height, "block height")
        with self._view() as txn:
            value = txn.get(_U64.pack(height), db=self._dbs["blocks"])
            if value is None:
                return None
            block, offsets, data = _unpack_block(height, value)
            n = (data - offsets) // 4
            ends = struct.unpack_from(f">{n}I", value, offsets)
            if any(b < a for a, b in zip((0, *ends), ends, strict=False)) or (
                n and data + ends[-1] > len(value)
            ):
                raise damaged(f"block {height} has envelope bounds outside it")
            starts = (0, *ends[:-1]) if n else ()
            envelopes = tuple(
                bytes(value[data + a : data + z]) for a, z in zip(starts, ends, strict=True)
            )
        return replace(block, envelopes=envelopes)

    def _height_key_at(self, txn: lmdb.Transaction[Any], index: int) -> Any:
        """The packed height of the block holding log index ``index``, or None past the
        blocks (``block_ends``: one past a block's last index -> its height)."""
        with txn.cursor(self._dbs["block_ends"]) as cur:
            return cur.value() if cur.set_range(_U64.pack(index + 1)) else None

    def _envelope_at(self, txn: lmdb.Transaction[memoryview], index: int) -> bytes | None:
        height = self._height_key_at(txn, index)
        if height is None:
            return None
        value = txn.get(height, db=self._dbs["blocks"])
        if value is None:
            raise StorageError(f"store is corrupt: block {_U64.unpack(height)[0]} is missing")
        h = _U64.unpack(bytes(height))[0]
        first, n, offsets, data = _layout(h, value)
        if not 0 <= index - first < n:
            raise damaged(f"block {h} does not hold log index {index}, as its index says")
        return _envelope_in(value, offsets, data, index - first)

    def get_envelope(self, record_id: bytes) -> bytes | None:
        """The envelope bytes of a record, exactly as stored, or ``None``."""
        with self._view() as txn:
            index = self._index_of(txn, record_id)
            return None if index is None else self._envelope_at(txn, index)

    def get_envelope_at(self, log_index: int) -> bytes | None:
        """The envelope at a log index, or ``None``."""
        with self._view() as txn:
            if not 0 <= log_index < self._head.log_size:
                return None
            return self._envelope_at(txn, log_index)

    def record_location(self, record_id: bytes) -> tuple[int, int] | None:
        """``(log_index, height)`` of a stored record, or ``None``."""
        with self._read() as txn:
            index = self._index_of(txn, record_id)
            if index is None:
                return None
            height = self._height_key_at(txn, index)
            if height is None:
                if index >= self._head.log_size or record_id in self._mem:
                    return None  # its block is being committed right now
                raise StorageError(f"store is corrupt: no block holds log index {index}")
            return index, _U64.unpack(height)[0]

    @contextmanager
    def reader(self) -> Iterator[StoreReader]:
        """One read transaction for many lookups (a block's or a batch's checks).

        Inside it, use only the reader: the store's own read methods would enter the
        growth gate again, which is not re-entrant."""
        with self._read() as txn:
            yield StoreReader(self, txn)

    def has_record(self, record_id: bytes) -> bool:
        with self._read() as txn:
            return self._index_of(txn, record_id) is not None

    def nonce_seen(self, author: str, nonce: str) -> bool:
        """Whether a stored record by ``author`` used ``nonce`` (survives restarts)."""
        with self._read() as txn:
            return txn.get(nonce_key(author, nonce), db=self._dbs["nonces"]) is not None

    def code_indexes(self, code: str, start: int = 0, limit: int = DEFAULT_PAGE) -> list[int]:
        """Ascending log indexes ``>= start`` of records naming ``code``, at most ``limit``.

        Page with ``start = last + 1``.

        Raises:
            InputError: ``start`` is negative.
        """
        _check_index(start, "log index")
        out: list[int] = []
        if limit <= 0:
            return out
        prefix = code_key(code)
        with self._read() as txn, txn.cursor(self._dbs["codes"]) as cur:
            if not cur.set_range(prefix + _U64.pack(start)):
                return out
            unpack = _U64.unpack
            for key in cur.iternext(values=False):
                if len(key) != len(prefix) + 8 or not key.startswith(prefix):
                    break
                out.append(unpack(key[-8:])[0])
                if len(out) >= limit:
                    break
        return out

    def get(self, db: str, key: bytes) -> bytes | None:
        """A value from an upper layer's sub-database."""
        with self._read() as txn:
            return txn.get(key, db=self._extra_db(db))

    def scan(
        self, db: str, prefix: bytes, *, after: bytes = b"", limit: int = DEFAULT_PAGE
    ) -> list[tuple[bytes, bytes]]:
        """Items of an upper layer's sub-database whose key starts with ``prefix``, in key
        order, starting after key ``after`` (for paging), at most ``limit``."""
        out: list[tuple[bytes, bytes]] = []
        with self._read() as txn, txn.cursor(self._extra_db(db)) as cur:
            if not cur.set_range(max(prefix, after)):
                return out
            for key, value in iter(cur):
                if not key.startswith(prefix) or len(out) >= limit:
                    break
                if key != after:
                    out.append((key, value))
        return out

    def _extra_db(self, name: str) -> lmdb._Database:
        if name in _CORE_DBS or name == _MERKLE_DB or name not in self._dbs:
            raise StorageError(f"unknown extra sub-database {name!r}")
        return self._dbs[name]

    # ------------------------------------------------------------------ the log

    def _check_size(self, size: int) -> None:
        if size < 0:
            raise InputError(f"log size {size} is negative")
        if size > self._head.log_size:
            raise NotFoundError(
                f"log size {size} is beyond this node's log ({self._head.log_size})"
            )

    def _with_nodes(self, work: Callable[[NodeReader], T]) -> T:
        """Run ``work`` on a NodeReader over one zero-copy read transaction (hot path: no
        generator-based context managers)."""
        gate = self._gate
        gate.enter()
        try:
            if self._closed:
                raise StorageError("the store is closed")
            txn = self._env.begin(db=self._dbs[_MERKLE_DB], buffers=True)
            try:
                return work(NodeReader(txn.get))
            finally:
                txn.abort()
        finally:
            gate.leave()

    def frontier(self) -> Frontier:
        """The log's current frontier (its perfect-subtree peaks), for previewing roots."""
        return self._frontier

    def preview_root(
        self, leaf_data: Sequence[bytes], *, hashed: bool = False
    ) -> tuple[int, bytes]:
        """``(log_size, log_root)`` after appending ``leaf_data`` (leaf hashes if ``hashed``)
        to the head; writes nothing.

        Call from the writer thread (a proposer building the next block's header).
        """
        return preview(self._frontier, leaf_data, hashed=hashed)

    def leaf_hash_at(self, index: int) -> bytes:
        """The stored leaf hash at ``index``.

        Raises:
            InputError: ``index`` is negative.
            NotFoundError: ``index`` is past the log.
        """
        _check_index(index, "leaf index")
        self._check_size(index + 1)
        return self._with_nodes(lambda nodes: nodes.node(0, index))

    def log_root(self, size: int) -> bytes:
        """The log's root at a past (or the current) size, in O(log n) reads."""
        self._check_size(size)
        if size == self._frontier.size:
            return self._frontier.root
        return self._with_nodes(lambda nodes: nodes.range_hash(0, size))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the log at ``size``."""
        self._check_size(size)
        if not 0 <= index < size:
            raise InputError(f"leaf index {index} is outside a log of size {size}")
        return self._with_nodes(lambda nodes: nodes.inclusion(index, size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof from the log at ``size1`` to the log at ``size2``."""
        self._check_size(size2)
        if not 0 <= size1 <= size2:
            raise InputError(f"no consistency proof from size {size1} to size {size2}")
        return self._with_nodes(lambda nodes: nodes.consistency(size1, size2))


class StoreReader:
    """Lookups inside one read transaction of ``Store.reader`` (valid only inside it)."""

    __slots__ = ("_ids", "_nonces", "_store", "_txn")

    def __init__(self, store: Store, txn: lmdb.Transaction[bytes]) -> None:
        self._store = store
        self._txn = txn
        self._ids = store._dbs["ids"]
        self._nonces = store._dbs["nonces"]

    def has_record(self, record_id: bytes) -> bool:
        return record_id in self._store._mem or self._txn.get(record_id, db=self._ids) is not None

    def nonce_seen(self, author: str, nonce: str) -> bool:
        return self._txn.get(nonce_key(author, nonce), db=self._nonces) is not None

    def get(self, db: str, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._store._extra_db(db))

    def index_of(self, record_id: bytes) -> int | None:
        """A committed record's log index, or None."""
        return self._store._index_of(self._txn, record_id)

    def envelope_at(self, index: int) -> bytes | None:
        """The envelope at a log index, or None past the log."""
        if not 0 <= index < self._store.head().log_size:
            return None
        raw = self._store._envelope_at(self._txn, index)  # type: ignore[arg-type]
        return bytes(raw) if raw is not None else None

    def block_time_at(self, index: int) -> int | None:
        """The header time (ms) of the committed block holding log index ``index``, or
        None past the log."""
        if not 0 <= index < self._store.head().log_size:
            return None
        key = self._store._height_key_at(self._txn, index)
        if key is None:
            return None
        height = bytes(key)
        value = self._txn.get(height, db=self._store._dbs["blocks"])
        if value is None:
            raise StorageError(f"store is corrupt: block {_U64.unpack(height)[0]} is missing")
        block = _unpack_block(_U64.unpack(height)[0], value)[0]
        header = types_pb2.BlockHeader()
        try:
            header.ParseFromString(block.header_bytes)
        except DecodeError as e:
            raise damaged(f"block {block.height}'s header does not parse") from e
        return int(header.time_ms)
