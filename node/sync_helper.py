"""A helper process that parses synced blocks: the second core during catch-up.

A node that is far behind is bound by one core of Python work per record (parse, custody
rules, store write), while the other core serves it blocks and then sits idle. The
head-independent part of that work, parsing each record (``node.chain.parse_trusted``)
and deriving its codes by role and its Merkle leaf, needs no node state, so a helper
process does it for the blocks ahead of the one being applied. It sends back plain values
in one ``marshal`` blob per block; rebuilding the records from it costs the node about
half of parsing them (unpickling dataclasses would cost more than parsing).

Invariants:
  * ``rebuild(decode(b), b)`` equals ``[parse_trusted(pb) for pb in b.envelopes]`` for
    every block ``b`` whose records all parse (the same record, envelope, id, codes by role
    and leaf); ``decode`` returns None if any record fails, and the caller then parses the
    block itself, so an error reads exactly as without the helper;
  * the node still checks each block's certificate, chain link, custody rules and log root
    itself; the helper only saves it the parsing;
  * at most one helper process per node, started when a sync pull is at least
    ``[sync] helper_min_blocks`` blocks behind, stopped (and reaped, by PID) when the pull
    ends or the node stops. If it dies, the pull goes on without it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import marshal
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from node.chain import parse_trusted
from node.envelope import Envelope, Signature
from node.epcis import EventCodes
from node.errors import LedgerError
from node.records import TraceRecord, VerifiedRecord
from proto import types_pb2

log = logging.getLogger("suyuan.sync")

#: Blocks decoded ahead of the one being applied (bounds the helper's queue and memory:
#: a decoded block is about 900 bytes per record).
LOOKAHEAD = 4


def _flat(v: VerifiedRecord) -> tuple[Any, ...]:
    r, e = v.record, v.envelope
    try:
        c = r.roles
        roles: tuple[Any, ...] | None = (
            c.objects,
            c.parent,
            c.children,
            c.inputs,
            c.consumed,
            c.outputs,
            c.classes,
        )
    except LedgerError:
        roles = None  # raised again, by the node, when its custody rules read them
    return (
        v.record_id,
        e.payload,
        e.payload_type,
        tuple((s.keyid, s.sig) for s in e.signatures),
        r.chain_id,
        r.genesis,
        r.author,
        r.nonce,
        r.category,
        r.event,
        r.handoff_from,
        r.handoff_to,
        r.attributes,
        r.sealed,
        r.attachments,
        roles,
        v.leaf,
        v.leaf_hash,
    )


def decode(block_bytes: bytes) -> bytes | None:
    """(In the helper.) The parsed records of a serialized ``Block``, as one marshal blob;
    None if the block does not parse or any record fails ``parse_trusted``."""
    block = types_pb2.Block()
    try:
        block.ParseFromString(block_bytes)
        return marshal.dumps([_flat(parse_trusted(pb)) for pb in block.envelopes])
    except (LedgerError, ValueError):
        return None


def rebuild(blob: bytes, block: types_pb2.Block) -> list[VerifiedRecord | None]:
    """The records of ``decode``'s blob for ``block`` (the node's own copy of the block that
    was serialized for the helper); unknown protobuf fields of ``block``'s envelopes are
    discarded, as ``parse_trusted`` does. Raises ``ValueError`` on a blob that does not
    match the block."""
    rows = marshal.loads(blob)  # noqa: S302 (our own helper process, never the network)
    if not isinstance(rows, list) or len(rows) != len(block.envelopes):
        raise ValueError("sync helper: decoded records do not match the block")
    out: list[VerifiedRecord | None] = []
    for pb, row in zip(block.envelopes, rows, strict=True):
        pb.DiscardUnknownFields()
        (rid, payload, ptype, sigs, chain_id, genesis, author, nonce, category, event,
         hf, ht, attrs, sealed, atts, roles, leaf, lh) = row  # fmt: skip
        env = Envelope(payload, ptype, tuple(Signature(k, s) for k, s in sigs))
        rec = TraceRecord(
            chain_id, genesis, author, nonce, category, event, hf, ht, attrs, sealed, atts
        )
        if roles is not None:
            rec.__dict__["roles"] = EventCodes(*roles)  # the cached_property's slot
        v = VerifiedRecord(rid, rec, env)
        v.__dict__["leaf"] = leaf
        v.__dict__["leaf_hash"] = lh
        out.append(v)
    return out


def _ready() -> int:
    return os.getpid()


class SyncHelper:
    """One helper process for one sync pull (event-loop object). ``submit`` never raises:
    a helper that is not up yet, or has died, answers None and the caller parses itself."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._up: asyncio.Future[int] | None = None
        self.pid: int | None = None
        self.broken = False

    def start(self) -> None:
        """Spawn the helper (not fork: the node's gRPC threads must not be forked)."""
        if self._pool is not None:
            return
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        )
        self._up = asyncio.wrap_future(self._pool.submit(_ready))

    @property
    def ready(self) -> bool:
        """The helper has answered once (until then, blocks are parsed by the node)."""
        if self._up is None or not self._up.done() or self.broken:
            return False
        if self._up.cancelled() or self._up.exception() is not None:
            self.broken = True
            return False
        if self.pid is None:
            self.pid = self._up.result()
            log.info("sync helper process %d is up", self.pid)
        return True

    def submit(self, block: types_pb2.Block) -> asyncio.Future[bytes | None] | None:
        """Decode ``block`` in the helper; None if the helper is not ready."""
        if not self.ready or self._pool is None:
            return None
        try:
            return asyncio.wrap_future(self._pool.submit(decode, block.SerializeToString()))
        except (BrokenProcessPool, RuntimeError) as e:
            self._broke(e)
            return None

    def _broke(self, e: BaseException) -> None:
        if not self.broken:
            log.warning("sync helper failed (%s); parsing in the node", e)
        self.broken = True

    async def answer(self, fut: asyncio.Future[bytes | None]) -> bytes | None:
        """A submitted block's blob, or None (the caller parses the block itself)."""
        try:
            return await fut
        except (BrokenProcessPool, concurrent.futures.CancelledError, OSError) as e:
            self._broke(e)
            return None

    async def close(self) -> None:
        """Stop the helper and wait for its process to end (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list(getattr(pool, "_processes", {}).values())
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, lambda: pool.shutdown(wait=True, cancel_futures=True))
        finally:
            for p in procs:  # shutdown joined them; a straggler is killed by PID
                if p.is_alive():
                    p.kill()
                    p.join(5)
            if self.pid is not None:
                log.info("sync helper process %d stopped", self.pid)
