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
  * at most one helper process per node (``python -m node.sync_helper``, talking over its
    stdin and stdout), started when a sync pull is at least ``[sync] helper_min_blocks``
    blocks behind, stopped and reaped when the pull ends or the node stops (its input
    closes; killed by PID if it has not exited within 5 s). It exits by itself when the node
    dies (its input ends). If it fails, the pull goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import marshal
import struct
import sys
from collections import deque
from typing import Any, BinaryIO

from google.protobuf.message import DecodeError

from node.chain import parse_trusted
from node.envelope import Envelope, Signature
from node.epcis import EventCodes
from node.errors import LedgerError
from node.records import TraceRecord, VerifiedRecord
from proto import types_pb2

log = logging.getLogger("suyuan.sync")

#: Blocks decoded ahead of the one being applied (bounds the helper's queue and memory:
#: a decoded block is about 800 bytes per record).
LOOKAHEAD = 4
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(TraceRecord))
_CODES_FIELDS = tuple(f.name for f in dataclasses.fields(EventCodes))
_CODES_SLOTS = (*_CODES_FIELDS, "all")  # "all": the cached attribute's slot, filled ahead
_ROLES = 4 + len(_RECORD_FIELDS)  # a decoded row's codes by role; its leaf hash follows


def _shared(v: Any, canon: dict[str, str]) -> Any:
    """``v`` (a JSON value) with each string replaced by the first equal one seen in this
    block, so that ``marshal`` writes a repeated key or value once and the node's rebuild
    allocates (and later frees) it once per block instead of once per record."""
    if isinstance(v, str):
        return canon.setdefault(v, v)
    if isinstance(v, dict):  # keys interned: the node's rules look them up by literal
        return {sys.intern(k): _shared(x, canon) for k, x in v.items()}
    if isinstance(v, list):
        return [_shared(x, canon) for x in v]
    return v


def _flat(v: VerifiedRecord, canon: dict[str, str]) -> tuple[Any, ...]:
    """One record as plain values: id, payload, payload type, signatures, the record's
    fields (``_RECORD_FIELDS`` order), its codes by role (``_CODES_FIELDS`` order, then
    ``EventCodes.all``; None if deriving them raises: the node derives them again, and
    raises, itself), leaf hash. Strings are shared through ``canon`` (``_shared``)."""
    r, e = v.record, v.envelope
    try:
        c = r.roles
        roles: tuple[Any, ...] | None = (*(getattr(c, f) for f in _CODES_FIELDS), c.all)
    except LedgerError:
        roles = None
    return (
        v.record_id,
        e.payload,
        _shared(e.payload_type, canon),
        tuple((_shared(s.keyid, canon), s.sig) for s in e.signatures),
        *(_shared(getattr(r, f), canon) for f in _RECORD_FIELDS),
        roles,
        v.leaf_hash,  # (not the leaf: nothing reads it once its hash is known)
    )


def decode(block_bytes: bytes) -> bytes | None:
    """(In the helper.) The parsed records of a serialized ``Block``, as one marshal blob;
    None if the block does not parse or any record fails ``parse_trusted``."""
    block = types_pb2.Block()
    try:
        block.ParseFromString(block_bytes)
        canon: dict[str, str] = {}
        return marshal.dumps([_flat(parse_trusted(pb), canon) for pb in block.envelopes])
    except (LedgerError, DecodeError, ValueError):
        return None


def rebuild(blob: bytes, block: types_pb2.Block) -> list[VerifiedRecord | None]:
    """The records of ``decode``'s blob for ``block`` (the node's own copy of the block that
    was serialized for the helper); unknown protobuf fields of ``block``'s envelopes are
    discarded, as ``parse_trusted`` does. Raises ``ValueError`` on a blob that does not
    match the block."""
    try:
        rows = marshal.loads(blob)  # noqa: S302 (our own helper process, never the network)
    except (EOFError, TypeError) as e:  # (bad marshal data is itself a ValueError)
        raise ValueError(f"sync helper: an answer that does not load ({e})") from e
    if not isinstance(rows, list) or len(rows) != len(block.envelopes):
        raise ValueError("sync helper: decoded records do not match the block")
    try:
        return _rebuild_rows(rows, block)
    except (IndexError, TypeError, KeyError) as e:
        raise ValueError(f"sync helper: a decoded record has the wrong shape ({e})") from e


def _rebuild_rows(rows: list[Any], block: types_pb2.Block) -> list[VerifiedRecord | None]:
    # The frozen dataclasses' fields are set directly: their __init__ sets each one through
    # object.__setattr__, most of a rebuild's cost. Same objects, equal to the parse's
    # (``tests/node/test_sync_helper.py`` compares them).
    out: list[VerifiedRecord | None] = []
    new = object.__new__
    for pb, row in zip(block.envelopes, rows, strict=True):
        pb.DiscardUnknownFields()
        sigs = []
        for keyid, sig in row[3]:
            s = new(Signature)
            s.__dict__.update(keyid=keyid, sig=sig)
            sigs.append(s)
        env = new(Envelope)
        env.__dict__.update(payload=row[1], payload_type=row[2], signatures=tuple(sigs))
        rec = new(TraceRecord)
        d = rec.__dict__
        d.update(zip(_RECORD_FIELDS, row[4:_ROLES], strict=True))
        if row[_ROLES] is not None:  # the cached attribute's slot (node.cached)
            codes = d["roles"] = new(EventCodes)
            codes.__dict__.update(zip(_CODES_SLOTS, row[_ROLES], strict=True))
        v = new(VerifiedRecord)
        v.__dict__.update(record_id=row[0], record=rec, envelope=env, leaf_hash=row[_ROLES + 1])
        out.append(v)
    return out


_LEN = struct.Struct(">I")  # a request: the Block's length, then its bytes
_HEAD = struct.Struct(">BI")  # a reply: decoded (1) or not (0), blob length
_READY = b"suyuan-sync-helper/1\n"
_STOP_S = 5.0


def serve(inp: BinaryIO, out: BinaryIO) -> int:
    """(The helper's loop.) Read ``u32 length || Block bytes`` requests from ``inp`` until
    it ends (the node closed it, or died) and answer each, in order, with
    ``u8 decoded || u32 length || blob``. Returns the exit status (0)."""
    out.write(_READY)
    out.flush()
    while True:
        head = inp.read(_LEN.size)
        if len(head) < _LEN.size:
            return 0
        (n,) = _LEN.unpack(head)
        data = inp.read(n)
        if len(data) < n:
            return 0
        blob = decode(data)
        out.write(_HEAD.pack(blob is not None, len(blob or b"")))
        if blob:
            out.write(blob)
        out.flush()


#: Pipe capacity asked for (Linux's default is 64 KiB, its unprivileged maximum 1 MiB): a
#: block and its answer are each about 1 MB, so a wide pipe moves one in a few system calls
#: and event-loop wake-ups instead of dozens.
PIPE_BYTES = 1 << 20


def _widen_pipe(stream: asyncio.StreamWriter | asyncio.StreamReader | None) -> None:
    """Ask for ``PIPE_BYTES`` of capacity on ``stream``'s pipe; best effort (Linux only)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return
    setsz = getattr(fcntl, "F_SETPIPE_SZ", None)
    transport = getattr(stream, "transport", None) or getattr(stream, "_transport", None)
    pipe = transport.get_extra_info("pipe") if transport is not None else None
    if setsz is None or pipe is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), setsz, PIPE_BYTES)


class SyncHelper:
    """One helper process for one sync pull: ``python -m node.sync_helper``, fed over its
    stdin and answering on its stdout (event-loop object). Nothing here raises to the
    caller: a helper that is not up yet, or has failed, answers None and the caller parses
    the block itself."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._replies: asyncio.Task[None] | None = None
        self._waiting: deque[asyncio.Future[bytes | None]] = deque()
        self._up = False
        self.pid: int | None = None
        self.broken = False
        self._closing = False

    async def start(self) -> None:
        """Start the process; it is ``ready`` once it has imported what it needs."""
        if self._proc is not None or self.broken:
            return
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "node.sync_helper",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 20,
            )
        except OSError as e:
            self._broke(e)
            return
        self.pid = self._proc.pid
        for stream in (self._proc.stdin, self._proc.stdout):
            _widen_pipe(stream)
        self._replies = asyncio.create_task(
            self._read_replies(self._proc), name="sync-helper-replies"
        )

    @property
    def ready(self) -> bool:
        """The helper is up (until then, blocks are parsed by the node)."""
        return self._up and not self.broken

    async def _read_replies(self, proc: asyncio.subprocess.Process) -> None:
        out = proc.stdout
        try:
            if out is None:
                raise ValueError("no pipe from the helper")
            if await out.readexactly(len(_READY)) != _READY:
                raise ValueError("unexpected greeting")
            self._up = True
            log.info("sync helper process %s is up", self.pid)
            while True:
                ok, n = _HEAD.unpack(await out.readexactly(_HEAD.size))
                blob = await out.readexactly(n) if n else b""
                if not self._waiting:
                    raise ValueError("an answer nobody asked for")
                fut = self._waiting.popleft()
                if not fut.done():
                    fut.set_result(blob if ok else None)
        except asyncio.IncompleteReadError as e:
            if not (self._closing and not self._waiting and not e.partial):
                self._broke(e)  # (an end of output after ``close`` asked for it is not)
        except (ValueError, OSError, struct.error) as e:
            self._broke(e)
        finally:
            self._up = False
            while self._waiting:
                fut = self._waiting.popleft()
                if not fut.done():
                    fut.set_result(None)

    async def submit(self, block: types_pb2.Block) -> asyncio.Future[bytes | None] | None:
        """Send ``block`` to be decoded; None if the helper is not ready."""
        if not self.ready or self._proc is None or self._proc.stdin is None:
            return None
        data = block.SerializeToString()
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            self._proc.stdin.write(_LEN.pack(len(data)) + data)
            await self._proc.stdin.drain()
        except (OSError, RuntimeError) as e:  # a broken pipe: the helper is gone
            self._broke(e)
            if not fut.done():
                fut.set_result(None)
        return fut

    def _broke(self, e: BaseException) -> None:
        if not self.broken:
            log.warning("sync helper failed (%s); parsing in the node", e)
        self.broken = True

    async def close(self) -> None:
        """Stop the helper: close its input, wait for it to exit (killed by PID after
        ``_STOP_S``), idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._closing = True
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), _STOP_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        finally:
            if self._replies is not None:
                self._replies.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._replies
            log.info("sync helper process %s stopped (exit %s)", self.pid, proc.returncode)


if __name__ == "__main__":
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))
