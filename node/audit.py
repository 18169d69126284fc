"""Audit of a whole chain: replay every committed block with nothing but the genesis file.

``Auditor`` consumes ``CommittedBlock`` messages in height order (from a node's
``Ledger.StreamBlocks``, or a store in tests and benchmarks) and checks, per block, in
this order (the first failure stops the audit and names its height):

  (1) header: parses, belongs to this chain (chain id, genesis hash), height is the
      previous height + 1 (the first block is 1);
  (2) link: ``prev_block_hash`` is the previous block's hash (32 zero bytes at height 1);
  (3) certificate: >= 2f+1 distinct validators' valid precommits for SHA-256(header) at the
      header's height and round; any bad signature fails it;
  (4) contents: ``num_records`` and ``records_hash`` match the envelopes;
  (5) envelopes: every envelope verifies (``node.records.verify_envelope``);
  (6) replay: no record id and no (author, nonce) repeats anywhere in the log;
  (7) rules: ``custody.apply_block`` over an ``InMemoryCustody`` refuses no record;
  (8) log: ``log_size`` and ``log_root`` equal the RFC 9162 root recomputed from every
      envelope's leaf bytes so far;
  (9) checkpoint (optional, from an earlier audit): the block hash at each height the
      checkpoint lists equals the one recorded then; at the checkpoint's height, the block
      is the checkpoint's certified header (so the log is consistent with it — the
      recomputed root over its log size is its root). The chain must reach that height.

Envelope verification (5) -- signatures, record parsing and the membership/role checks,
the bound of an audit -- runs off the main thread while it replays earlier blocks (steps
1-4 and 6-9 are sequential and stay in the main process):

* small chains use a thread pool (its threads' signature checks release the GIL,
  ``node.ed25519.release_gil_in_this_thread``; parsing does not);
* once ``process_threshold`` records have been fed, later chunks go to a pool of
  ``processes`` worker processes (default ``os.cpu_count()``; 0 = never), started with the
  ``spawn`` method (safe next to gRPC's threads) and given the genesis once. A chunk is
  sent as serialized ``Envelope`` messages and comes back as compact results: per envelope
  either the error message or (record id, leaf hash, record fields, signers).

Invariants: results are consumed strictly in feed order, so the first failing block and
the message of its first failing step are the same whatever the pools; a worker runs the
very same ``verify_envelope`` as the thread path; every pool is shut down by ``close``
(``finish``, ``fail`` and ``audit_blocks`` call it on every path, also on
``KeyboardInterrupt``), and workers ignore SIGINT so Ctrl-C reaches only the main process,
which then stops them.

While any ``Auditor`` is open, Python's cyclic garbage collector is paused (process-wide;
it is re-enabled when the last one closes, if it was enabled when the first one opened):
the replay keeps millions of long-lived objects (custody states, replay sets) that every
full collection would walk again, for no garbage -- the audit creates no reference cycles
on its success path. That was ~30% of the main process's CPU per record.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import hmac
import multiprocessing
import operator
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from consensus.certificate import verify_certificate
from consensus.quorum import QuorumResult
from consensus.validators import ValidatorSet
from node import custody, ed25519, event_ids, merkle
from node.chain import records_hash
from node.convert import envelope_from_proto
from node.envelope import envelope_leaf_bytes
from node.errors import LedgerError, VerificationError
from node.genesis import Genesis
from node.records import TraceRecord, verify_envelope
from node.verify import SavedCheckpoint, parse_header, require_checkpoint
from proto import types_pb2

_ZERO = bytes(32)
_CHUNK = 256
_PROCESS_CHUNK = 500
#: Records fed before worker processes are started (smaller chains never start them).
PROCESS_THRESHOLD = 8192


class AuditError(VerificationError):
    """The chain failed an audit step; ``height`` is the block at fault (0: none)."""

    def __init__(self, height: int, step: str, message: str) -> None:
        self.height = height
        self.step = step
        super().__init__(f"audit failed at height {height} ({step}): {message}")


@dataclass
class AuditReport:
    """What an audit saw. ``ok`` is False when it stopped at ``error``."""

    blocks: int = 0
    records: int = 0
    height: int = 0
    log_size: int = 0
    log_root: bytes = merkle.EMPTY_ROOT
    head_hash: bytes = _ZERO
    seconds: float = 0.0
    checkpoint_height: int = 0
    error: AuditError | None = None
    block_hashes: list[bytes] = field(default_factory=list)
    last: types_pb2.CommittedBlock | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "blocks": self.blocks,
            "records": self.records,
            "height": self.height,
            "log_size": self.log_size,
            "log_root": self.log_root.hex(),
            "head_hash": self.head_hash.hex(),
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records_per_second, 1),
            "checkpoint_height": self.checkpoint_height,
            "error": None if self.error is None else str(self.error),
            "failed_height": None if self.error is None else self.error.height,
        }

    def saved_checkpoint(self) -> SavedCheckpoint:
        """The last audited certified header, with every block hash up to it."""
        if self.last is None:
            raise VerificationError("audit: no block to save a checkpoint of")
        cp = types_pb2.Checkpoint(header=self.last.block.header, certificate=self.last.certificate)
        return SavedCheckpoint(cp, tuple(self.block_hashes))


#: One envelope's outcome: its error message (step 5 failed), or its record id, Merkle leaf
#: hash, record (a ``TraceRecord``, or its fields in declaration order when it crossed a
#: process boundary: a plain tuple is somewhat cheaper to pickle than the dataclass) and
#: signers.
_Result = str | tuple[bytes, bytes, TraceRecord | tuple[Any, ...], tuple[str, ...]]
_Verified = list[_Result]


class _GcPause:
    """Counted pause of the cyclic GC: disabled while at least one holder is open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    def acquire(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self._was_enabled:
                gc.enable()


_gc_pause = _GcPause()


#: The genesis of a worker process (set once by ``_worker_init``).
_worker_genesis: Genesis | None = None


def _check(pb: types_pb2.Envelope, genesis: Genesis) -> _Result:
    try:
        env = envelope_from_proto(pb)
        v = verify_envelope(env, genesis, committed=True)
    except LedgerError as e:
        return str(e)
    return (v.record_id, merkle.leaf_hash(envelope_leaf_bytes(env)), v.record, env.signers())


def _verify_chunk(pbs: Sequence[types_pb2.Envelope], genesis: Genesis) -> _Verified:
    """Step (5) for ``pbs`` in this process (the thread-pool path)."""
    return [_check(pb, genesis) for pb in pbs]


def _worker_init(genesis: Genesis) -> None:
    """Worker-process initializer: keep the genesis; leave Ctrl-C to the main process;
    no cyclic GC (a worker only makes short-lived, acyclic garbage)."""
    global _worker_genesis  # noqa: PLW0603 -- one genesis per worker process, set once
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()
    _worker_genesis = genesis


def _verify_raw_chunk(raws: Sequence[bytes]) -> _Verified:
    """Step (5) in a worker process for serialized ``Envelope`` messages; records come back
    as field tuples (see ``_Result``)."""
    g = _worker_genesis
    assert g is not None, "worker not initialized"
    out: _Verified = []
    for raw in raws:
        res = _check(types_pb2.Envelope.FromString(raw), g)
        if not isinstance(res, str):
            rid, leaf, rec, signers = res
            assert isinstance(rec, TraceRecord)
            res = (rid, leaf, _record_fields(rec), signers)
        out.append(res)
    return out


#: Every ``TraceRecord`` field, in declaration (= ``__init__``) order, so that
#: ``TraceRecord(*_record_fields(r)) == r`` whatever fields the record gains.
_record_fields: Callable[[TraceRecord], tuple[Any, ...]] = operator.attrgetter(
    *(f.name for f in dataclasses.fields(TraceRecord))
)


@dataclass
class _Pending:
    cb: types_pb2.CommittedBlock
    header: types_pb2.BlockHeader | None
    block_hash: bytes
    cert: Future[QuorumResult]
    chunks: list[Future[_Verified]]


class Auditor:
    """Feed committed blocks in order, then ``finish``. See the module docstring."""

    def __init__(
        self,
        genesis: Genesis,
        saved: SavedCheckpoint | None = None,
        *,
        threads: int = 4,
        processes: int | None = None,
        process_threshold: int = PROCESS_THRESHOLD,
        window: int = 16,
        on_block: Callable[[AuditReport], None] | None = None,
    ) -> None:
        """``threads``: thread-pool size (certificates, and envelopes of small chains);
        ``processes``: worker processes for envelopes once ``process_threshold`` records
        have been fed (None: ``os.cpu_count()``; 0: threads only); ``window``: blocks in
        flight ahead of the sequential replay."""
        self.genesis = genesis
        self.validators = ValidatorSet.from_pairs(genesis.validator_keys())
        self.saved = saved
        self.cp_height = 0
        self.cp_hash = b""
        self._first_diff = 0  # the first height whose block differs from the saved hashes
        if saved is not None:
            res = require_checkpoint(saved.checkpoint, genesis)
            self.cp_height, self.cp_hash = res.height, res.block_hash
            if saved.block_hashes and (
                len(saved.block_hashes) != res.height or saved.block_hashes[-1] != res.block_hash
            ):
                raise VerificationError(
                    "audit checkpoint: block_hashes do not end at the checkpoint's header"
                )
        self.report = AuditReport(checkpoint_height=self.cp_height)
        self._pool = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="audit",
            initializer=ed25519.release_gil_in_this_thread,  # these threads check in parallel
        )
        self._procs = (os.cpu_count() or 1) if processes is None else processes
        self._proc_threshold = process_threshold
        self._proc_pool: ProcessPoolExecutor | None = None
        self._fed = 0
        self._window = window
        self._pending: deque[_Pending] = deque()
        self._custody = custody.InMemoryCustody()
        self._ids: set[bytes] = set()
        self._nonces: set[tuple[str, str]] = set()
        self._events: dict[str, int] = {}  # eventID -> log index (``event_ids``' "e" keys)
        self._stack: list[bytes] = []
        self._on_block = on_block
        self._closed = False
        _gc_pause.acquire()
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------ API

    def feed(self, cb: types_pb2.CommittedBlock) -> None:
        """Queue one block; raises ``AuditError`` as soon as an earlier block fails."""
        raw = bytes(cb.block.header)
        bh = hashlib.sha256(raw).digest()
        envs = cb.block.envelopes
        g, vs = self.genesis, self.validators
        cert_f = self._pool.submit(verify_certificate, cb.certificate, vs, g.hash, g.chain_id, bh)
        self._fed += len(envs)
        procs = self._process_pool()
        chunks: list[Future[_Verified]]
        if procs is not None:
            chunks = [
                procs.submit(
                    _verify_raw_chunk,
                    [e.SerializeToString() for e in envs[i : i + _PROCESS_CHUNK]],
                )
                for i in range(0, len(envs), _PROCESS_CHUNK)
            ]
        else:
            listed = list(envs)
            chunks = [
                self._pool.submit(_verify_chunk, listed[i : i + _CHUNK], g)
                for i in range(0, len(listed), _CHUNK)
            ]
        self._pending.append(_Pending(cb, parse_header(raw), bh, cert_f, chunks))
        while len(self._pending) > self._window:
            self._process(self._pending.popleft())

    def finish(self) -> AuditReport:
        """Process what is queued and run the final checkpoint check. An ``AuditError`` goes
        into the report; anything else (a worker process killed, ``KeyboardInterrupt``)
        propagates. Either way the pools are closed first."""
        try:
            while self._pending:
                self._process(self._pending.popleft())
            if self.report.height < self.cp_height:
                differs = (
                    f"; it differs from the saved history from height {self._first_diff}: "
                    "the log was rewritten"
                    if self._first_diff
                    else ""
                )
                raise AuditError(
                    self._first_diff or self.report.height + 1,
                    "checkpoint",
                    f"the chain ends at height {self.report.height}, before the "
                    f"checkpoint's height {self.cp_height}: history was truncated{differs}",
                )
        except AuditError as e:
            self.report.error = e
        finally:
            self.close()
        return self.report

    def fail(self, error: AuditError) -> AuditReport:
        """Record ``error`` (raised by ``feed``) and stop."""
        self.report.error = error
        self.close()
        return self.report

    def close(self) -> None:
        """Stop every pool (idempotent): queued chunks are cancelled, running ones awaited,
        worker processes joined; then release this auditor's pause of the GC."""
        self.report.seconds = time.perf_counter() - self._t0
        self._procs = 0  # never start worker processes after close
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            try:
                if self._proc_pool is not None:
                    self._proc_pool.shutdown(wait=True, cancel_futures=True)
            finally:
                if not self._closed:
                    self._closed = True
                    _gc_pause.release()

    def _process_pool(self) -> ProcessPoolExecutor | None:
        """The worker-process pool, started on first need (None: use threads)."""
        if self._proc_pool is None and self._procs > 0 and self._fed >= self._proc_threshold:
            try:
                self._proc_pool = ProcessPoolExecutor(
                    max_workers=self._procs,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(self.genesis,),
                )
            except OSError:  # no POSIX semaphores (some sandboxes): stay on threads
                self._procs = 0
        return self._proc_pool

    # ------------------------------------------------------------------ one block

    def _process(self, p: _Pending) -> None:
        r = self.report
        expected = r.height + 1
        # (1) header
        h = p.header
        if h is None:
            raise AuditError(expected, "header", "header does not parse")
        if h.chain_id != self.genesis.chain_id or h.genesis_hash != self.genesis.hash:
            raise AuditError(expected, "header", "header belongs to another chain")
        if h.height != expected:
            raise AuditError(expected, "header", f"got height {h.height}: heights not contiguous")
        height = h.height
        # (2) link
        if not hmac.compare_digest(bytes(h.prev_block_hash), r.head_hash):
            raise AuditError(height, "link", "prev_block_hash is not the previous block's hash")
        # (3) certificate
        cert = p.cb.certificate
        q = p.cert.result()
        if cert.height != height:
            raise AuditError(height, "certificate", f"certificate is for height {cert.height}")
        if cert.round < h.round:  # decided in the round it was built for, or re-proposed later
            raise AuditError(
                height,
                "certificate",
                f"certificate round {cert.round} precedes the block's {h.round}",
            )
        if not q:
            raise AuditError(height, "certificate", q.describe("certificate"))
        # (4) contents
        envs = p.cb.block.envelopes
        if h.num_records != len(envs):
            raise AuditError(height, "contents", f"num_records {h.num_records}, {len(envs)} sent")
        results: _Verified = []
        for f in p.chunks:
            results.extend(f.result())
        # (5) envelopes
        ids: list[bytes] = []
        leaves: list[bytes] = []
        items: list[tuple[TraceRecord, tuple[str, ...]]] = []
        for i, res in enumerate(results):
            if isinstance(res, str):
                raise AuditError(height, "envelope", f"record {i}: {res}")
            rid, leaf, rec, signers = res
            ids.append(rid)
            leaves.append(leaf)
            items.append((rec if isinstance(rec, TraceRecord) else TraceRecord(*rec), signers))
        if h.records_hash != records_hash(ids):
            raise AuditError(height, "contents", "records_hash does not match the envelopes")
        # (6) replay
        seen_ids, seen_nonces = self._ids, self._nonces
        for i, (rid, (rec, _)) in enumerate(zip(ids, items, strict=True)):
            nonce = (rec.author, rec.nonce)
            if rid in seen_ids or nonce in seen_nonces:
                raise AuditError(height, "replay", f"record {i} ({rid.hex()}) repeats")
            seen_ids.add(rid)
            seen_nonces.add(nonce)
        # (7) rules (an error declaration undoes what the record of its eventID closed)
        # (as a node's index: the blocks before this one; a repeat keeps the latest record)
        events = self._events
        declared: dict[int, int] = {}
        ours: list[tuple[str, int]] = []
        for i, (rec, _) in enumerate(items):
            eid = event_ids.event_id(rec)
            if eid and event_ids.is_declaration(rec):
                if eid in events:
                    declared[i] = events[eid]
            elif eid:
                ours.append((eid, r.log_size + i))
        update = custody.apply_block(self._custody, items, self.genesis, r.log_size, declared)
        events.update(ours)
        if update.refused:
            ref = update.refused[0]
            raise AuditError(height, "rules", f"record {ref.position}: {ref.error}")
        self._custody.commit(update)
        # (8) log
        size = r.log_size
        stack = self._stack
        node = merkle.node_hash
        for leaf in leaves:
            size += 1
            acc, m = leaf, size
            while not m & 1:
                acc = node(stack.pop(), acc)
                m >>= 1
            stack.append(acc)
        root = merkle.fold(stack)
        if h.log_size != size or not hmac.compare_digest(bytes(h.log_root), root):
            raise AuditError(
                height, "log", f"header log ({h.log_size}) differs from the recomputed ({size})"
            )
        # (9) checkpoint
        if height <= self.cp_height:
            assert self.saved is not None
            known = self.saved.block_hashes
            if known and known[height - 1] != p.block_hash and not self._first_diff:
                self._first_diff = height  # (judged at the checkpoint's height, below)
            if height == self.cp_height and p.block_hash != self.cp_hash:
                first = self._first_diff or height
                raise AuditError(
                    first,
                    "checkpoint",
                    "history differs from the saved checkpoint: the log was rewritten "
                    f"(first differing height {first}; at the checkpoint's height "
                    f"{height} another certified header)",
                )
            if height == self.cp_height and self._first_diff:
                # the chain reaches the checkpoint's certified block by hash links, so every
                # block below it is fixed: the saved list, not the log, is wrong
                raise VerificationError(
                    f"audit checkpoint: its block_hashes are damaged (height {self._first_diff} "
                    "differs from a chain that reaches the checkpoint's certified header); "
                    "the log is not shown rewritten by it"
                )
        r.blocks += 1
        r.records += len(ids)
        r.height, r.log_size, r.log_root, r.head_hash = height, size, root, p.block_hash
        r.block_hashes.append(p.block_hash)
        r.last = p.cb
        if self._on_block is not None:
            self._on_block(r)


def audit_blocks(
    blocks: Any,
    genesis: Genesis,
    saved: SavedCheckpoint | None = None,
    *,
    threads: int = 4,
    processes: int | None = None,
    process_threshold: int = PROCESS_THRESHOLD,
    on_block: Callable[[AuditReport], None] | None = None,
) -> AuditReport:
    """Audit an iterable of ``CommittedBlock``; never raises an ``AuditError`` (it is in
    the report), but an error of the iterable itself (a node going away) propagates.
    Every pool is shut down before this returns or raises. ``processes`` and
    ``process_threshold``: see ``Auditor``."""
    auditor = Auditor(
        genesis,
        saved,
        threads=threads,
        processes=processes,
        process_threshold=process_threshold,
        on_block=on_block,
    )
    try:
        for cb in blocks:
            auditor.feed(cb)
    except AuditError as e:
        return auditor.fail(e)
    except BaseException:
        auditor.close()
        raise
    return auditor.finish()


__all__ = ["AuditError", "AuditReport", "Auditor", "audit_blocks"]
